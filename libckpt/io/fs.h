/*
 * fs.h: the files a source's readers look at, on disk or inside an archive.
 *
 * Readers find files by path (is it a folder, does it hold NAME, which files
 * end in .safetensors, map this file, read this small JSON).  A source opened
 * from an archive carries the archive's member table; paths under the
 * archive's own path ("model.nemo/model_weights.ckpt") are then answered from
 * that table, and every other path (and every path of a source without an
 * archive, fs == NULL) from the real file system.
 */
#ifndef CKPT_FS_H
#define CKPT_FS_H

#include "ckpt.h"
#include "vfile.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ckpt_source;

/* One member of an archive: a regular file's bytes, or a folder. */
struct fs_member {
    char *name;        /* normalised: no leading "./", no trailing '/', no "." or ".." components */
    uint64_t offset;   /* of its bytes in the archive's data file */
    uint64_t size;
    bool is_dir;
    bool is_link;      /* a bundle's file that was a symbolic link where it was packed: never copied as a side file */
};

struct ckpt_fs {
    char *root;                  /* the archive's path as opened: members are root "/" name */
    struct fs_member *members;   /* sorted by name */
    size_t count;
    const uint8_t *data;         /* the members' bytes, mapped (shared by the source's files) */
    uint64_t size;
    /*
     * Where the bytes of `data` are read back from (vfile.h): the archive
     * itself when read in place, a bundle's frames; NULL when data is a
     * private copy nothing else can change.  Released by fs_free.
     */
    struct vfile *backing;
    /*
     * Readies a member's bytes in `data` before a reader maps it (a bundle
     * decompresses the member's headers into place); NULL when data holds
     * every byte already.
     */
    int (*map_member)(struct ckpt_fs *fs, const struct fs_member *m, ckpt_error *err);
    void (*release)(struct ckpt_fs *fs);   /* frees what `opener` holds; NULL: nothing */
    void *opener;                          /* the state map_member and release work on */
};

/* True when `path` is the archive or under it (answered from the member table, not the disk). */
bool fs_inside(const struct ckpt_fs *fs, const char *path);

/* True when `path` is a folder. */
bool fs_is_dir(const struct ckpt_fs *fs, const char *path);

/* True when `path` is a regular file. */
bool fs_is_file(const struct ckpt_fs *fs, const char *path);

/* True when folder `dir` holds a regular file `name`. */
bool fs_has(const struct ckpt_fs *fs, const char *dir, const char *name);

/* Sorted paths "dir/NAME" of regular files in `dir` whose names end in `suffix`, skipping dot files. */
int fs_list_suffix(const struct ckpt_fs *fs, const char *dir, const char *suffix, char ***paths, size_t *count,
                   ckpt_error *err);

/* Sorted paths "dir/NAME" of the folders in `dir`, skipping dot names. */
int fs_list_folders(const struct ckpt_fs *fs, const char *dir, char ***paths, size_t *count, ckpt_error *err);

/*
 * Reads a whole regular file (an index, a config: a header) of at most `max`
 * bytes, the header limit, into a malloc'd NUL-terminated buffer.
 */
int fs_read_small(const struct ckpt_fs *fs, const char *path, uint64_t max, char **data, size_t *len,
                  ckpt_error *err);

/* Reads up to `cap` first bytes of regular file `path` into `buf`; returns how many, or -1. */
long fs_read_head(const struct ckpt_fs *fs, const char *path, void *buf, size_t cap);

/* The member at `path`, or NULL when the path is not inside the archive or names nothing. */
const struct fs_member *fs_member(const struct ckpt_fs *fs, const char *path);

/* Readies member `m`'s bytes in fs->data for a reader that maps it (see map_member). */
int fs_map_member(struct ckpt_fs *fs, const struct fs_member *m, ckpt_error *err);

void fs_free(struct ckpt_fs *fs);

#endif
