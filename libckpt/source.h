/*
 * source.h: the inside of a ckpt_source, and the calls format readers use to
 * fill its catalog.
 *
 * A reader maps the files it needs (source_add_file), then declares each
 * tensor with a view: where its elements live in a mapped file and how they
 * are strided.  source_add_tensor checks everything a hostile file could get
 * wrong (duplicate names, rank and count limits, element counts that
 * overflow, views that reach outside their storage) so that no reader has to
 * remember to.  Reading then goes through one strided copier (view.c).
 */
#ifndef CKPT_SOURCE_H
#define CKPT_SOURCE_H

#include "ckpt.h"

#include <stdbool.h>
#include <stdint.h>

/* Non-tensor values kept per source: enough for any training checkpoint's args and counters. */
#define SOURCE_MAX_OBJECTS 200000

/* No tensor has more dimensions than this, whatever ckpt_limits.max_rank says. */
#define SOURCE_MAX_RANK 64

/* A file of the source, mapped read-only, or bytes the reader produced itself. */
struct source_file {
    char *path;
    const uint8_t *data;
    uint64_t size;
    bool mapped;      /* data is an mmap (else malloc'd and owned) */
};

/*
 * Where a tensor's elements are: a storage of `storage_bytes` bytes starting
 * at byte `storage_offset` of file `file`; element (i0, i1, ...) sits at
 * element index elem_offset + sum(ik * strides[k]) of that storage.
 * strides == NULL means contiguous row-major.
 */
struct tensor_view {
    uint32_t file;
    uint64_t storage_offset;
    uint64_t storage_bytes;
    uint64_t elem_offset;
    const int64_t *strides;  /* copied by source_add_tensor */
    bool big_endian;
};

struct tensor_entry {
    ckpt_tensor pub;
    uint64_t *shape;
    int64_t *strides;        /* NULL when contiguous */
    struct tensor_view view;
    size_t alias_target;     /* index of the aliased tensor, or SIZE_MAX */
};

struct ckpt_source {
    char *path;                  /* as opened */
    const char *format;          /* static string */
    ckpt_limits limits;
    struct source_file *files;
    size_t file_count, file_cap;
    struct tensor_entry *tensors;
    size_t tensor_count, tensor_cap;
    size_t *name_slots;          /* open-addressing table of tensor index + 1; 0 = empty */
    size_t name_slot_count;
    ckpt_kv *metadata;           /* owned strings */
    size_t metadata_count, metadata_cap;
    ckpt_object *objects;        /* owned strings, except the static kind */
    size_t object_count, object_cap;
};

/* Maps `path` read-only and appends it to the source's files. */
int source_add_file(struct ckpt_source *src, const char *path, uint32_t *index, ckpt_error *err);

/* Appends bytes the reader owns from now on (malloc'd), named `path` in messages. */
int source_add_buffer(struct ckpt_source *src, const char *path, uint8_t *data, uint64_t size,
                      uint32_t *index, ckpt_error *err);

/*
 * Declares a tensor.  Refuses duplicate names, ranks or counts over the
 * limits, sizes that overflow, negative strides and views that reach outside
 * their storage or their file; every refusal names the file and the tensor.
 */
int source_add_tensor(struct ckpt_source *src, const char *name, ckpt_dtype dtype,
                      uint32_t rank, const uint64_t *shape, const struct tensor_view *view,
                      ckpt_error *err);

/* Declares `name` as another name for the already declared tensor `target`. */
int source_add_alias(struct ckpt_source *src, const char *name, size_t target, ckpt_error *err);

/* Adds a metadata pair; a key already present with another value is a format error. */
int source_add_metadata(struct ckpt_source *src, const char *key, const char *value,
                        const char *file, ckpt_error *err);

/* Records a non-tensor value; `kind` must be a static string (see ckpt_object). */
int source_add_object(struct ckpt_source *src, const char *name, const char *kind, const char *value,
                      ckpt_error *err);

/* Index of the tensor called `name`, or SIZE_MAX. */
size_t source_lookup(const struct ckpt_source *src, const char *name);

/*
 * Lines are rows of the last dimension counted over all leading ones: a
 * [B, M, N] tensor has B*M lines of N elements (a rank-0 tensor one line of one).
 */
uint64_t view_line_count(const ckpt_tensor *t);
uint64_t view_line_bytes(const ckpt_tensor *t);

/*
 * Drops the pages wholly inside [p, p + len) of a read-only file mapping from
 * this process (they stay in the page cache), so that streaming through a
 * large file does not grow the resident set (view.c).
 */
void source_release_pages(const uint8_t *p, uint64_t len);

/* Copies lines [first, first + count) of a tensor, row-major and little-endian (view.c). */
int view_read_lines(const struct ckpt_source *src, const struct tensor_entry *t, uint64_t first, uint64_t count,
                    uint8_t *dst, ckpt_error *err);

#endif
