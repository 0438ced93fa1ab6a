/*
 * format.h: the seam between the core and the on-disk formats.
 *
 * Each reader recognises its format from a path (a file's first bytes, or a
 * folder's contents) and fills a ckpt_source through the calls in source.h.
 * Like SQLite's VFS, it is a small table of function pointers; adding a
 * format means adding one file and one line to the registry.
 */
#ifndef CKPT_FORMAT_H
#define CKPT_FORMAT_H

#include "libckpt/catalog/source.h"
#include "libckpt/io/fs.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a reader may look at to decide whether a path is its format. */
struct format_probe {
    const struct ckpt_fs *fs;  /* the archive the path may lie in (NULL: none); pass to format_dir_has & co */
    const char *path;
    bool is_dir;
    const uint8_t *head;   /* the first bytes of a file (empty for a folder) */
    size_t head_len;
};

#define FORMAT_PROBE_BYTES 64

struct format_reader {
    const char *name;
    /* True when `probe` looks like this format. Must not fail or allocate. */
    bool (*probe)(const struct format_probe *probe);
    /* Fills `src` from `path`; on failure the caller frees `src`. */
    int (*open)(struct ckpt_source *src, const char *path, ckpt_error *err);
};

/* Chooses the reader for `path`, or fails naming the path and the reason. */
int format_detect(const struct ckpt_fs *fs, const char *path, const struct format_reader **reader, ckpt_error *err);

/* True when `path` is a folder (on disk, or in archive `fs`). */
static inline bool format_is_dir(const struct ckpt_fs *fs, const char *path)
{
    return fs_is_dir(fs, path);
}

/* True when `path` is a folder holding a file called `name` (on disk, or in archive `fs`). */
static inline bool format_dir_has(const struct ckpt_fs *fs, const char *path, const char *name)
{
    return fs_has(fs, path, name);
}

/* The readers, in the order they are asked. */
extern const struct format_reader format_deepseek_mp;
extern const struct format_reader format_safetensors;
extern const struct format_reader format_deepspeed;
extern const struct format_reader format_torch;
extern const struct format_reader format_nemo2;
extern const struct format_reader format_megatron_torch_dist;
extern const struct format_reader format_megatron;
extern const struct format_reader format_dcp;

#endif
