/*
 * outdir.h: a destination folder built under a temporary name and renamed
 * into place only when complete.
 *
 * The temporary folder `.NAME.ckpt-tmp-XXXXXX` sits beside the destination
 * (same filesystem, so the final rename is atomic) and is flock()ed for as
 * long as its run lives.  A later run removes temporary folders whose lock
 * it can take: those of killed runs.  So an interrupted conversion leaves no
 * destination, and its litter goes with the next run.
 */
#ifndef CKPT_OUTDIR_H
#define CKPT_OUTDIR_H

#include "ckpt.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <xxhash.h>

/* A small file an in-memory outdir kept instead of writing it. */
struct outdir_kept {
    char *name;
    uint8_t *data;
    size_t len;
};

struct outdir {
    char *dst;
    char *tmp;
    int lock_fd;
    bool replace;   /* an existing destination is replaced (--force) */
    bool in_memory; /* set by the caller instead of outdir_begin: outdir_write_file and outdir_write_json keep
                       their files in `kept` and touch no disk (verify --against's copy of the side files) */
    struct outdir_kept *kept;
    size_t kept_count;
};

/* Creates the missing folders above `path` (not `path` itself), as mkdir -p does. */
int mkdir_parents(const char *path, ckpt_error *err);

/*
 * Creates the missing folders above `dst`, removes the stale temporaries of
 * `dst`, refuses an existing destination unless `replace`, creates the temporary.
 */
int outdir_begin(struct outdir *o, const char *dst, bool replace, ckpt_error *err);

/*
 * Refuses a `dst` that is `source` or holds it (a replaced DST would take
 * the source with it); a DST that does not exist yet holds nothing.
 */
int outdir_check_spares(const char *dst, const char *source, ckpt_error *err);

/* Creates (O_EXCL) the file `name` in the temporary folder; returns its descriptor in *fd. */
int outdir_create(struct outdir *o, const char *name, int *fd, ckpt_error *err);

/* Writes a whole small file (or, in memory, keeps a copy) and returns its XXH3-128. */
int outdir_write_file(struct outdir *o, const char *name, const void *data, size_t len, XXH128_hash_t *hash,
                      ckpt_error *err);

/*
 * Writes `doc` (consumed) as a small JSON file ending in a newline, dumped
 * with jansson `flags`; returns its XXH3-128 and size when asked.
 */
int outdir_write_json(struct outdir *o, const char *name, json_t *doc, size_t flags, XXH128_hash_t *hash,
                      uint64_t *size, ckpt_error *err);

/* A malloc'd path of `name` inside the temporary folder. */
char *outdir_path(const struct outdir *o, const char *name);

/* Flushes the folder and moves it to the destination. */
int outdir_commit(struct outdir *o, ckpt_error *err);

/* Removes the temporary folder (if not committed) and frees. */
void outdir_end(struct outdir *o);

/* Removes a folder tree without following symlinks. */
int remove_tree(const char *path);

/* fsyncs and closes a descriptor, reporting failure against `name`. */
int close_synced(int fd, const char *name, ckpt_error *err);

#endif
