/*
 * bundle_fs.c: a bundle opened as the folder (or file) it holds, so that
 * every reader works on it unchanged; see bundle_open_fs in bundle.h.
 *
 * Readers parse headers and pickles through a mapping of each file and read
 * tensor data through its vfile.  The member table's `data` is one reserved
 * anonymous mapping as large as the bundle's files together (untouched
 * pages cost no memory); when a reader maps a member, the member's
 * non-tensor segments are decompressed into place.  Tensor segments stay
 * unfilled, zero pages: their bytes only ever come through the vfile.
 */
#include "bundle.h"

#include "libckpt/common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct bundle_fs {
    struct bundle *bundle;
    uint8_t *data;            /* the reservation, writable here */
    uint64_t size;
    bool *filled;             /* per file: its non-tensor bytes are in place */
    uint64_t held, max_held;  /* bytes filled in, and the limit (max_bundle_header_bytes) */
};

/*
 * The file a member of some bytes is: the last whose base is at or before its
 * offset (files follow each other, so the last is the one that is not empty).
 */
static size_t file_of(const struct bundle_fs *bf, const struct fs_member *m)
{
    size_t lo = 0, hi = bundle_index_of(bf->bundle)->file_count;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (bundle_file_base(bf->bundle, mid) <= m->offset)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static int map_member(struct ckpt_fs *fs, const struct fs_member *m, ckpt_error *err)
{
    struct bundle_fs *bf = fs->opener;
    const struct bundle_index *ix = bundle_index_of(bf->bundle);
    if (m->size == 0)
        return CKPT_OK;
    size_t file = file_of(bf, m);
    if (bf->filled[file])
        return CKPT_OK;
    const struct bundle_file *f = &ix->files[file];
    uint64_t held = bf->held;
    for (size_t s = f->first_segment; s < f->first_segment + f->segment_count; s++)
        if (ix->segments[s].kind == SEGMENT_BYTES)
            held += ix->segments[s].length;
    if (held > bf->max_held)
        return ckpt_fail(err, CKPT_ERR_LIMIT,
                         "%s/%s: the bundle's headers and pickles need %llu bytes in memory, over the limit of %llu "
                         "(max_bundle_header_bytes)", fs->root, f->path, (unsigned long long)held,
                         (unsigned long long)bf->max_held);
    struct bundle_cursor *c;
    int rc = bundle_cursor_take(bf->bundle, &c, err);
    uint8_t *base = bf->data + bundle_file_base(bf->bundle, file);
    for (size_t s = f->first_segment; !rc && s < f->first_segment + f->segment_count; s++) {
        const struct bundle_segment *g = &ix->segments[s];
        for (size_t k = g->first_frame; g->kind == SEGMENT_BYTES && !rc && k < g->first_frame + g->frame_count; k++)
            rc = bundle_decode_frame(bf->bundle, c, k, base + ix->frames[k].file_offset, err);
    }
    bundle_cursor_give(bf->bundle, c);
    if (!rc) {
        bf->filled[file] = true;
        bf->held = held;
    }
    return rc;
}

static void release(struct ckpt_fs *fs)
{
    struct bundle_fs *bf = fs->opener;
    if (!bf)
        return;
    if (bf->data)
        munmap(bf->data, (size_t)bf->size);
    bundle_close(bf->bundle);
    free(bf->filled);
    free(bf);
    fs->opener = NULL;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct fs_member *)a)->name, ((const struct fs_member *)b)->name);
}

/* The member table: one member per file, at its base in the files laid end to end. */
static int fill_members(struct ckpt_fs *fs, const struct bundle_index *ix, const struct bundle *b, const char *path,
                        ckpt_error *err)
{
    if (!(fs->members = calloc(ix->file_count, sizeof *fs->members)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < ix->file_count; i++) {
        if (!(fs->members[i].name = strdup(ix->files[i].path)))
            return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
        fs->count++;
        fs->members[i].offset = bundle_file_base(b, i);
        fs->members[i].size = ix->files[i].size;
        fs->members[i].is_link = ix->files[i].flags & BUNDLE_FILE_WAS_LINK;
    }
    qsort(fs->members, fs->count, sizeof *fs->members, by_name);
    return CKPT_OK;
}

int bundle_open_fs(const char *path, const ckpt_limits *limits, struct ckpt_fs **out, char **inner, ckpt_error *err)
{
    *out = NULL;
    *inner = NULL;
    ckpt_limits defaults;
    if (!limits) {
        ckpt_limits_default(&defaults);
        limits = &defaults;
    }
    struct bundle *b;
    int rc = bundle_open(path, limits, &b, err);
    if (rc)
        return rc;
    const struct bundle_index *ix = bundle_index_of(b);
    struct ckpt_fs *fs = calloc(1, sizeof *fs);
    struct bundle_fs *bf = fs ? calloc(1, sizeof *bf) : NULL;
    if (!bf || !(fs->root = strdup(path)) || !(bf->filled = calloc(ix->file_count, sizeof *bf->filled))) {
        if (bf)
            free(bf->filled);
        free(bf);
        if (fs)
            free(fs->root);
        free(fs);
        bundle_close(b);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    }
    bf->bundle = b;
    bf->size = ix->data_bytes;
    bf->max_held = limits->max_bundle_header_bytes;
    fs->opener = bf;
    fs->release = release;
    fs->map_member = map_member;
    fs->size = ix->data_bytes;
    rc = fill_members(fs, ix, b, path, err);
    if (!rc && bf->size) {
        void *m = mmap(NULL, (size_t)bf->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                       -1, 0);
        if (m == MAP_FAILED)
            rc = ckpt_fail(err, CKPT_ERR_LIMIT, "%s: cannot reserve %llu bytes of address space for the bundle's files",
                           path, (unsigned long long)bf->size);
        else
            fs->data = bf->data = m;
    }
    if (!rc) {
        size_t n = strlen(path) + 1 + (ix->flags & BUNDLE_SOURCE_IS_FILE ? strlen(ix->files[0].path) + 1 : 0);
        if (!(*inner = malloc(n)))
            rc = ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
        else if (ix->flags & BUNDLE_SOURCE_IS_FILE)
            snprintf(*inner, n, "%s/%s", path, ix->files[0].path);
        else
            memcpy(*inner, path, n);
    }
    if (rc) {
        fs_free(fs);
        return rc;
    }
    /* the vfile belongs to the bundle (its release does nothing); fs_free lets go of it through `release` */
    fs->backing = (struct vfile *)bundle_vfile(b);
    *out = fs;
    return CKPT_OK;
}

struct bundle *bundle_of_fs(const struct ckpt_fs *fs)
{
    return fs && fs->release == release ? ((struct bundle_fs *)fs->opener)->bundle : NULL;
}
