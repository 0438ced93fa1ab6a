/*
 * sums.h: checksum lists as sha256sum and xxhsum print and check them
 * (docs/manifest.md, "Checksum lists").  A folder's files are listed and
 * hashed here; a list read back is parsed here, distrusting every line, and
 * checked by libckpt/verify/sums_check.c.
 */
#ifndef CKPT_SUMS_H
#define CKPT_SUMS_H

#include "ckpt.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SUMS_HEX_MAX 64           /* SHA-256: 64 hex digits; XXH3-128: 32; git blob: 40 */

/*
 * Not a list format of its own, only read from Hugging Face Hub listings: git's blob id, the SHA-1
 * of "blob SIZE\0" and the bytes, which the Hub gives the files it keeps out of LFS.
 */
#define SUMS_GIT_BLOB ((ckpt_sums_format)2)
#define SUMS_LINE_MAX 8192        /* a longer line in a list is refused */
#define SUMS_FILE_MAX ((uint64_t)64 << 20)
#define SUMS_MAX_FILES 1000000    /* files listed or read, and folder depth 64 */

/* Hex digits of a format's digest. */
size_t sums_hex_len(ckpt_sums_format format);

/* "xxh128", "sha256". */
const char *sums_format_name(ckpt_sums_format format);

/* Counts bytes as they are hashed; returns non-zero to stop. */
typedef int (*sums_bytes_fn)(void *ctx, uint64_t bytes);

/* Bytes hashed by worker threads, told to the caller's progress callback one call at a time. */
struct sums_progress {
    pthread_mutex_t lock;   /* also guards the first failure of a run */
    ckpt_progress_fn fn;
    void *payload;
    uint64_t done, total;
    atomic_int stop;        /* fn asked to stop, or a worker failed */
    int rc;                 /* the first failure, cancellations last */
    ckpt_error err;
};

void sums_progress_init(struct sums_progress *p, ckpt_progress_fn fn, void *payload);
int sums_progress_add(void *progress, uint64_t bytes);   /* a sums_bytes_fn on a struct sums_progress */
void sums_progress_fail(struct sums_progress *p, int rc, const ckpt_error *err);   /* and stops the others */

/*
 * The digest of a whole file, as lowercase hex into `hex`.  `stop` (may be
 * NULL) is polled between chunks: CKPT_ERR_CANCELLED once it is set.
 */
int sums_hash_file(const char *path, const char *name, ckpt_sums_format format, char hex[SUMS_HEX_MAX + 1],
                   sums_bytes_fn count, void *ctx, atomic_int *stop, ckpt_error *err);

/* The regular files under a folder, sorted: paths relative to it, '/'-separated. */
struct sums_file {
    char *path;
    uint64_t size;
};

struct sums_files {
    struct sums_file *items;
    size_t count, cap;
};

/*
 * Every regular file under `dir` (symbolic links to files followed, as in a
 * Hugging Face cache snapshot; links to folders and names starting with '.'
 * skipped), sorted bytewise, or `dir` itself when it is a file (then the one
 * path is its base name).
 */
int sums_list_folder(const char *dir, struct sums_files *out, ckpt_error *err);
void sums_files_free(struct sums_files *f);

/* The line sha256sum (or xxhsum) prints for `path`, with its newline, into a malloc'd string. */
int sums_format_line(ckpt_sums_format format, const char *hex, const char *path, char **line, ckpt_error *err);

/* One line of a list read back. */
struct sums_entry {
    char *path;                   /* normalised: relative, no "." or ".." components */
    ckpt_sums_format format;
    char hex[SUMS_HEX_MAX + 1];   /* lowercase */
    size_t line;                  /* 1-based, for messages (a manifest's: the file's place in "files") */
    bool has_size;                /* a ckpt-manifest.json gives sizes too */
    uint64_t size;
};

/* A tensor a source manifest lists (ckpt manifest create): its file and logical bytes' XXH3-128. */
struct sums_tensor {
    char *name;
    char *file;                   /* normalised as entry paths are */
    char hex[33];
};

struct sums_list {
    struct sums_entry *items;
    size_t count, cap;
    struct sums_tensor *tensors;  /* a source manifest's, to name what changed in a file that differs */
    size_t tensor_count;
};

/*
 * The XXH3-128 of tensor `index`'s logical bytes (row-major little-endian, as ckpt_source_read
 * gives them), read a bounded chunk of lines at a time; "" for an alias.  `count` and `stop` as
 * for sums_hash_file.
 */
struct ckpt_source;
int sums_tensor_hash(const struct ckpt_source *src, size_t index, char hex[33], sums_bytes_fn count, void *ctx,
                     atomic_int *stop, ckpt_error *err);

/*
 * Reads a checksum list: GNU lines "HEX  PATH" (or "HEX *PATH", a leading
 * '\' for escaped names), BSD lines "SHA256 (PATH) = HEX", "XXH128 (PATH) =
 * HEX"; the digest's length tells SHA-256 from XXH3-128.  A list starting
 * with '{' or '[' is JSON: a ckpt-manifest.json (its "files": XXH3-128 and
 * size), or a Hugging Face Hub listing of a repository's files, the tree API's
 * array or model info's "siblings" (SHA-256 of LFS files, git blob ids of the
 * others, and sizes).  Blank lines and
 * lines starting with '#' are skipped.  Refuses (CKPT_ERR_FORMAT, naming the
 * file and line) a line over SUMS_LINE_MAX, bad hex, a path that is absolute
 * or climbs out with "..", a path listed twice.
 */
int sums_list_read(const char *file, struct sums_list *out, ckpt_error *err);
void sums_list_free(struct sums_list *l);

/* Adds one entry (path copied and checked as sums_list_read does); `origin` names it in messages. */
int sums_list_add(struct sums_list *l, const char *path, ckpt_sums_format format, const char *hex, const char *origin,
                  size_t line, ckpt_error *err);

#endif
