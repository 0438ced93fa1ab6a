/* records.c: see records.h. */
#include "records.h"

#include "libckpt/catalog/source.h"
#include "libckpt/common/error.h"
#include "formats/torch/zip.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HASH_CHUNK ((size_t)1 << 20)   /* 1 MiB reads: as fast from the page cache as larger ones, less resident */

int file_records_add(struct file_records *r, const char *name, uint64_t size, XXH128_hash_t hash, ckpt_error *err)
{
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        struct file_record *grown = reallocarray(r->items, cap, sizeof *grown);
        if (!grown)
            return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory recording %s", name);
        r->items = grown;
        r->cap = cap;
    }
    char *copy = strdup(name);
    if (!copy)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory recording %s", name);
    r->items[r->count++] = (struct file_record){copy, size, hash};
    return CKPT_OK;
}

void file_records_free(struct file_records *r)
{
    for (size_t i = 0; i < r->count; i++)
        free(r->items[i].name);
    free(r->items);
    *r = (struct file_records){0};
}

void hash_hex(XXH128_hash_t hash, char out[33])
{
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, hash);
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", c.digest[i]);
}

bool hex_hash(const char *hex, XXH128_hash_t *out)
{
    XXH128_canonical_t c;
    for (int i = 0; i < 16; i++) {
        unsigned v = 0;
        for (int k = 0; k < 2; k++) {
            char ch = hex[2 * i + k];
            unsigned d = ch >= '0' && ch <= '9' ? (unsigned)(ch - '0') : ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10) : 16;
            if (d > 15)
                return false;
            v = v * 16 + d;
        }
        c.digest[i] = (uint8_t)v;
    }
    if (hex[32])
        return false;
    *out = XXH128_hashFromCanonical(&c);
    return true;
}

/*
 * Reads bytes [offset, offset + len) of `fd` in chunks and hands each to
 * `use` with its file offset: the one read loop behind every hash of a
 * file's bytes, so a short or failed read is reported the same way by all.
 */
typedef int (*chunk_fn)(void *ctx, const uint8_t *buf, uint64_t at, size_t n, ckpt_error *err);

static int read_chunks(int fd, uint64_t offset, uint64_t len, const char *name, chunk_fn use, void *ctx,
                       ckpt_error *err)
{
    if (len > UINT64_MAX - offset)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: a range past 2^64 bytes", name);
    const uint64_t end = offset + len;
    uint8_t *buf = malloc(len < HASH_CHUNK ? (size_t)len + 1 : HASH_CHUNK);
    int rc = !buf ? ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory hashing", name) : CKPT_OK;
    while (!rc && offset < end) {
        size_t want = end - offset < HASH_CHUNK ? (size_t)(end - offset) : HASH_CHUNK;
        ssize_t n = pread(fd, buf, want, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = ckpt_fail(err, CKPT_ERR_READ, "%s: read failed at byte %llu: %s", name, (unsigned long long)offset,
                           strerror(errno));
            break;
        }
        if (n == 0) {
            rc = ckpt_fail(err, CKPT_ERR_READ, "%s: file truncated while hashing it (at byte %llu of %llu)", name,
                           (unsigned long long)offset, (unsigned long long)end);
            break;
        }
        rc = use(ctx, buf, offset, (size_t)n, err);
        offset += (uint64_t)n;
    }
    free(buf);
    return rc;
}

static int update_state(void *state, const uint8_t *buf, uint64_t at, size_t n, ckpt_error *err)
{
    (void)at;
    (void)err;
    XXH3_128bits_update(state, buf, n);
    return CKPT_OK;
}

int hash_file_update(int fd, uint64_t offset, uint64_t len, const char *name, XXH3_state_t *state, ckpt_error *err)
{
    return read_chunks(fd, offset, len, name, update_state, state, err);
}

int hash_file_range(int fd, uint64_t offset, uint64_t len, const char *name, XXH128_hash_t *out, ckpt_error *err)
{
    XXH3_state_t *state = XXH3_createState();
    int rc = !state ? ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory hashing", name) : CKPT_OK;
    if (!rc) {
        XXH3_128bits_reset(state);
        rc = hash_file_update(fd, offset, len, name, state, err);
    }
    if (!rc)
        *out = XXH3_128bits_digest(state);
    XXH3_freeState(state);
    return rc;
}

/*
 * A file's XXH3-128 and, in the same pass, the CRC-32 of each range its
 * reader left to this pass (source_file.crcs: sorted, apart): the bytes are
 * read once for both.
 */
struct crc_pass {
    const struct source_file *file;
    XXH3_state_t *state;
    size_t next;    /* the first entry of file->crcs not yet checked */
    uint32_t crc;   /* of the part of crcs[next] read so far */
};

static int hash_and_crc(void *ctx, const uint8_t *buf, uint64_t at, size_t n, ckpt_error *err)
{
    struct crc_pass *p = ctx;
    const struct source_file *f = p->file;
    XXH3_128bits_update(p->state, buf, n);
    uint64_t end = at + n;
    while (p->next < f->crc_count && f->crcs[p->next].offset < end) {
        const struct source_crc *c = &f->crcs[p->next];
        uint64_t from = c->offset > at ? c->offset : at, to = c->offset + c->size < end ? c->offset + c->size : end;
        if (to > from)
            p->crc = zip_crc32(p->crc, buf + (from - at), (size_t)(to - from));
        if (c->offset + c->size > end)
            break;   /* the entry goes on in the next chunk */
        if (p->crc != c->crc)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: entry %s fails its CRC check (corrupt file)", f->path,
                             c->entry);
        p->crc = 0;
        p->next++;
    }
    return CKPT_OK;
}

static int hash_and_check(int fd, const struct source_file *f, XXH128_hash_t *out, ckpt_error *err)
{
    struct crc_pass pass = {.file = f, .state = XXH3_createState()};
    int rc = !pass.state ? ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory hashing", f->path) : CKPT_OK;
    if (!rc) {
        XXH3_128bits_reset(pass.state);
        rc = read_chunks(fd, 0, f->size, f->path, hash_and_crc, &pass, err);
    }
    if (!rc && pass.next < f->crc_count)
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: entry %s lies past the end of the file", f->path,
                       f->crcs[pass.next].entry);
    if (!rc)
        *out = XXH3_128bits_digest(pass.state);
    XXH3_freeState(pass.state);
    return rc;
}

int hash_source_files(const struct ckpt_source *src, const bool *want, struct file_records *records, atomic_int *stop,
                      ckpt_error *err)
{
    int rc = CKPT_OK;
    for (size_t i = 0; i < src->file_count && !rc && !atomic_load(stop); i++) {
        const struct source_file *f = &src->files[i];
        XXH128_hash_t h;
        if (f->borrowed || (want && !want[i]))
            continue;   /* its bytes are hashed with the file they belong to */
        if (!f->backing) {   /* bytes in memory, or an archive's members inflated into a file with no name */
            h = XXH3_128bits(f->data, (size_t)f->size);
        } else {
            /* read, not the mapping: pages read through a file descriptor do not stay in our RSS */
            int fd = open(f->path, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                return ckpt_fail(err, CKPT_ERR_READ, "%s: cannot open: %s", f->path, strerror(errno));
            rc = f->crc_count ? hash_and_check(fd, f, &h, err) : hash_file_range(fd, 0, f->size, f->path, &h, err);
            close(fd);
        }
        if (!rc)
            rc = file_records_add(records, f->path, f->size, h, err);
    }
    return rc;
}
