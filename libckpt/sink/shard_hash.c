/* shard_hash.c: see shard_hash.h. */
#include "shard_hash.h"

#include "libckpt/manifest/records.h"

#include <stdlib.h>
#include <string.h>

int shard_hash_init(struct shard_hash *h, ckpt_error *err)
{
    *h = (struct shard_hash){.state = XXH3_createState()};
    if (!h->state)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    XXH3_128bits_reset(h->state);
    pthread_mutex_init(&h->lock, NULL);
    return CKPT_OK;
}

void shard_hash_free(struct shard_hash *h)
{
    if (!h->state)
        return;
    XXH3_freeState(h->state);
    free(h->pending);
    pthread_mutex_destroy(&h->lock);
    *h = (struct shard_hash){0};
}

/* Remembers [begin, end) as written, merged with the ranges it touches. */
static int remember(struct shard_hash *h, uint64_t begin, uint64_t end, ckpt_error *err)
{
    size_t at = 0;
    while (at < h->count && h->pending[at].end < begin)
        at++;
    size_t last = at;   /* ranges [at, last) touch or overlap the new one */
    while (last < h->count && h->pending[last].begin <= end)
        last++;
    if (last > at) {
        if (h->pending[at].begin < begin)
            begin = h->pending[at].begin;
        if (h->pending[last - 1].end > end)
            end = h->pending[last - 1].end;
        h->pending[at] = (struct shard_range){begin, end};
        memmove(h->pending + at + 1, h->pending + last, (h->count - last) * sizeof *h->pending);
        h->count -= last - at - 1;
        return CKPT_OK;
    }
    if (h->count == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 16;
        struct shard_range *p = realloc(h->pending, cap * sizeof *p);
        if (!p)
            return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
        h->pending = p;
        h->cap = cap;
    }
    memmove(h->pending + at + 1, h->pending + at, (h->count - at) * sizeof *h->pending);
    h->pending[at] = (struct shard_range){begin, end};
    h->count++;
    return CKPT_OK;
}

/* Reads back the remembered ranges that now continue the hashed prefix. */
static int catch_up(struct shard_hash *h, int fd, const char *name, ckpt_error *err)
{
    int rc = CKPT_OK;
    while (!rc && h->count && h->pending[0].begin <= h->hashed) {
        struct shard_range r = h->pending[0];
        if (r.end > h->hashed)
            rc = hash_file_update(fd, h->hashed, r.end - h->hashed, name, h->state, err);
        if (!rc && r.end > h->hashed)
            h->hashed = r.end;
        memmove(h->pending, h->pending + 1, (h->count - 1) * sizeof *h->pending);
        h->count--;
    }
    return rc;
}

int shard_hash_written(struct shard_hash *h, int fd, const uint8_t *data, uint64_t len, uint64_t offset,
                       const char *name, ckpt_error *err)
{
    int rc = CKPT_OK;
    pthread_mutex_lock(&h->lock);
    if (h->whole || len == 0) {
        /* nothing to follow */
    } else if (offset == h->hashed) {
        XXH3_128bits_update(h->state, data, (size_t)len);
        h->hashed += len;
        rc = catch_up(h, fd, name, err);
    } else if (offset > h->hashed) {
        rc = remember(h, offset, offset + len, err);
    } else {
        h->whole = true;   /* no writer does this; if one did, the file is hashed from scratch */
    }
    pthread_mutex_unlock(&h->lock);
    return rc;
}

int shard_hash_finish(struct shard_hash *h, int fd, uint64_t size, const char *name, XXH128_hash_t *out,
                      ckpt_error *err)
{
    if (h->whole)
        return hash_file_range(fd, 0, size, name, out, err);
    h->count = 0;   /* whatever is still remembered lies after a gap: read back with it */
    int rc = h->hashed < size ? hash_file_update(fd, h->hashed, size - h->hashed, name, h->state, err) : CKPT_OK;
    if (!rc && h->hashed > size)
        rc = ckpt_fail(err, CKPT_ERR_WRITE, "%s: %llu bytes written into a file of %llu", name,
                       (unsigned long long)h->hashed, (unsigned long long)size);
    if (!rc)
        *out = XXH3_128bits_digest(h->state);
    return rc;
}
