/*
 * shard_index.h: the `*.index.json` file that spreads one checkpoint over
 * shards ({"metadata": {...}, "weight_map": {tensor: file}}), shared by
 * safetensors and torch `.bin` shards.
 */
#ifndef CKPT_SHARD_INDEX_H
#define CKPT_SHARD_INDEX_H

#include "libckpt/catalog/source.h"
#include "libckpt/io/fs.h"

struct shard_index {
    char *path;           /* the index file */
    char **files;         /* distinct shard paths (folder joined), sorted */
    size_t file_count;
    char **names;         /* tensor names ... */
    const char **name_file; /* ... and the shard each is mapped to (a string of `files`) */
    size_t name_count;
};

/*
 * Reads `dir/index_name`.  Refuses shard names that are absolute or climb
 * out of the folder, and files listed that do not exist.
 */
int shard_index_load(struct shard_index *index, const struct ckpt_fs *fs, const char *dir, const char *index_name,
                     const ckpt_limits *limits, ckpt_error *err);

/*
 * Checks the loaded source against the index: every listed tensor was found in
 * the shard the index names, and no shard holds a tensor the index omits.
 */
int shard_index_verify(const struct shard_index *index, const struct ckpt_source *src, ckpt_error *err);

void shard_index_free(struct shard_index *index);

/* Sorted paths "dir/NAME" (on disk, or in archive `fs`) of regular files in `dir` whose names end in `suffix`, skipping dot files. */
int dir_list_suffix(const struct ckpt_fs *fs, const char *dir, const char *suffix, char ***paths, size_t *count,
                    ckpt_error *err);

void path_list_free(char **paths, size_t count);

/*
 * A small text file naming something else (a checkpoint's `latest` tag,
 * Megatron's latest iteration) read into `out` (cap bytes, NUL-terminated),
 * trailing white space dropped; a file of cap bytes or more is refused as
 * "longer than `what`".
 */
int read_tag_file(const struct ckpt_fs *fs, const char *path, char *out, size_t cap, const char *what,
                  ckpt_error *err);

/* The folder "dir/name" (malloc'd into *out) that file `named_by` names; refused when it is not a folder. */
int named_folder(const struct ckpt_fs *fs, const char *dir, const char *name, const char *named_by, char **out,
                 ckpt_error *err);

/* A malloc'd "dir/name", or NULL when out of memory. */
char *path_join(const char *dir, const char *name);

#endif
