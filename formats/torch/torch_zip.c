/*
 * torch_zip.c: torch.save archives (torch >= 1.6).
 *
 * Stored entries, which is every entry torch writes, are read in place
 * through the file's mapping at their true data offset (after the local
 * header's name and extra field, which newer torch pads to 64 bytes): no
 * copy, and a tensor is only touched when it is read.  libarchive cannot
 * give that (it streams entries through its own buffers), so the fast path
 * reads the central directory itself (zip.c).  Entries that are compressed
 * (an archive re-zipped by some other tool) are inflated by libarchive into
 * memory, each once however many tensors view it, and all of them together
 * bounded by max_pickle_bytes.
 */
#include "torch.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"
#include "pickle.h"
#include "torch_state.h"
#include "zip.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CRC_CHUNK ((size_t)1 << 20)

struct zip_ctx {
    struct ckpt_source *src;
    uint32_t file;
    struct zip zip;
    char prefix[1024];
    bool big_endian;
    uint32_t *inflated;        /* per entry: its buffer's file index + 1, 0 while not inflated */
    uint64_t inflated_bytes;
};

static const char *path_of(const struct zip_ctx *c)
{
    return c->src->files[c->file].path;
}

/* Inflates one entry through libarchive, refusing more bytes than it declares or than the limit. */
static int inflate_entry(struct zip_ctx *c, const struct zip_entry *e, uint8_t **out, ckpt_error *err)
{
    const struct source_file *f = &c->src->files[c->file];
    if (e->size > c->src->limits.max_pickle_bytes)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: compressed entry %s inflates to %llu bytes, over max_pickle_bytes",
                         f->path, e->name, (unsigned long long)e->size);
    struct archive *a = archive_read_new();
    if (!a)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", f->path);
    archive_read_support_format_zip(a);
    int rc = CKPT_ERR_NOT_FOUND;
    *out = NULL;
    if (archive_read_open_memory(a, f->data, (size_t)f->size) == ARCHIVE_OK) {
        struct archive_entry *ae;
        while (archive_read_next_header(a, &ae) == ARCHIVE_OK) {
            if (strcmp(archive_entry_pathname(ae), e->name) != 0)
                continue;
            uint8_t *buf = malloc(e->size + 1);
            la_ssize_t n = buf ? archive_read_data(a, buf, e->size + 1) : -1;
            if (n < 0 || (uint64_t)n != e->size) {
                free(buf);
                rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: entry %s does not inflate to its declared %llu bytes",
                               f->path, e->name, (unsigned long long)e->size);
            } else {
                *out = buf;
                rc = CKPT_OK;
            }
            break;
        }
    }
    if (rc == CKPT_ERR_NOT_FOUND)
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: entry %s cannot be read: %s", f->path, e->name,
                       archive_error_string(a) ? archive_error_string(a) : "unreadable archive");
    archive_read_free(a);
    return rc;
}

/* The bytes of an entry: in place when stored, inflated (and owned by the source) otherwise. */
static int entry_bytes(struct zip_ctx *c, const struct zip_entry *e, uint32_t *file, uint64_t *offset,
                       ckpt_error *err)
{
    if (e->method == 0) {
        *file = c->file;
        *offset = e->data_offset;
        return CKPT_OK;
    }
    *offset = 0;
    size_t index = (size_t)(e - c->zip.entries);
    if (!c->inflated && !(c->inflated = calloc(c->zip.count, sizeof *c->inflated)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path_of(c));
    if (c->inflated[index]) {
        *file = c->inflated[index] - 1;
        return CKPT_OK;
    }
    uint64_t total;
    if (!ckpt_add_u64(c->inflated_bytes, e->size, &total) || total > c->src->limits.max_pickle_bytes)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: compressed entries inflate to more than %llu bytes (max_pickle_bytes)",
                         path_of(c), (unsigned long long)c->src->limits.max_pickle_bytes);
    uint8_t *buf;
    char name[1200];
    snprintf(name, sizeof name, "%s:%s", path_of(c), e->name);
    int rc = inflate_entry(c, e, &buf, err);
    if (!rc)
        rc = source_add_buffer(c->src, name, buf, e->size, file, err);
    if (!rc) {
        c->inflated[index] = *file + 1;
        c->inflated_bytes = total;
    }
    return rc;
}

/*
 * Reads `n` bytes at `offset` of the zip's file for the CRC check: through
 * its backing (a file truncated meanwhile is an error, not SIGBUS, and no
 * page stays in our resident set), or where they are in memory.
 */
static int crc_bytes(const struct source_file *f, struct vfile_reader *r, uint64_t offset, size_t n, uint8_t *buf,
                     const uint8_t **bytes, const char *entry, ckpt_error *err)
{
    if (!f->backing) {
        *bytes = f->data + offset;
        return CKPT_OK;
    }
    char doing[1100];
    snprintf(doing, sizeof doing, "checking the CRC of entry %.1024s", entry);
    *bytes = buf;
    return vfile_read(r, f->backing, f->backing_offset + offset, buf, n, f->path, doing, err);
}

/* Checks every stored entry's CRC, reading each in chunks. */
static int check_crcs(struct zip_ctx *c, ckpt_error *err)
{
    const struct source_file *f = &c->src->files[c->file];
    struct vfile_reader r = VFILE_READER_INIT;
    uint8_t *buf = f->backing ? malloc(CRC_CHUNK) : NULL;
    int rc = f->backing && !buf ? ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", f->path) : CKPT_OK;
    for (size_t i = 0; i < c->zip.count && !rc; i++) {
        const struct zip_entry *e = &c->zip.entries[i];
        if (e->method != 0 || e->crc == 0)
            continue;
        uint32_t crc = 0;
        for (uint64_t at = 0; at < e->size && !rc; at += CRC_CHUNK) {
            size_t n = e->size - at < CRC_CHUNK ? (size_t)(e->size - at) : CRC_CHUNK;
            const uint8_t *bytes = NULL;
            rc = crc_bytes(f, &r, e->data_offset + at, n, buf, &bytes, e->name, err);
            if (!rc)
                crc = zip_crc32(crc, bytes, n);
        }
        if (!rc && crc != e->crc)
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: entry %s fails its CRC check (corrupt file)", f->path, e->name);
    }
    free(buf);
    vfile_reader_close(&r);
    return rc;
}

static int by_crc_offset(const void *a, const void *b)
{
    uint64_t x = ((const struct source_crc *)a)->offset, y = ((const struct source_crc *)b)->offset;
    return x < y ? -1 : x > y;
}

/*
 * With crc_when_converting, leaves the entries' CRC checks to the pass that
 * hashes the file for the manifest (records.c), which reads every byte of it
 * anyway: one read of the archive instead of two, and the check runs beside
 * the conversion instead of before it.  Only for a file its path opens
 * (hash_source_files reads it so) whose stored entries do not overlap (that
 * pass keeps one CRC running); otherwise *deferred stays false.
 */
static int defer_crcs(struct zip_ctx *c, bool *deferred, ckpt_error *err)
{
    struct source_file *f = &c->src->files[c->file];
    *deferred = false;
    if (!c->src->crc_when_converting || f->borrowed || !f->owns_backing || f->backing_offset ||
        !vfile_is_disk(f->backing))
        return CKPT_OK;
    size_t n = 0;
    for (size_t i = 0; i < c->zip.count; i++)
        n += c->zip.entries[i].method == 0 && c->zip.entries[i].crc != 0;
    struct source_crc *crcs = calloc(n + 1, sizeof *crcs);
    if (!crcs)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", f->path);
    size_t k = 0;
    for (size_t i = 0; i < c->zip.count; i++) {
        const struct zip_entry *e = &c->zip.entries[i];
        if (e->method == 0 && e->crc != 0)
            crcs[k++] = (struct source_crc){e->data_offset, e->size, e->crc, (char *)e->name};   /* copied below */
    }
    qsort(crcs, n, sizeof *crcs, by_crc_offset);
    bool apart = true;
    for (size_t i = 1; i < n && apart; i++)
        apart = crcs[i].offset >= crcs[i - 1].offset + crcs[i - 1].size;
    size_t named = 0;
    for (; named < n && apart; named++)   /* the names, owned now */
        if (!(crcs[named].entry = strdup(crcs[named].entry)))
            apart = false;   /* out of memory: check now instead */
    if (!apart) {
        for (size_t i = 0; i < named; i++)
            free(crcs[i].entry);
        free(crcs);
        return CKPT_OK;
    }
    f->crcs = crcs;
    f->crc_count = n;
    *deferred = true;
    return CKPT_OK;
}

static int locate(void *ctx, const struct torch_storage_ref *ref, ckpt_dtype dtype, struct tensor_view *view,
                  ckpt_error *err)
{
    struct zip_ctx *c = ctx;
    char name[1200];
    snprintf(name, sizeof name, "%sdata/%s", c->prefix, ref->key);
    const struct zip_entry *e = zip_find(&c->zip, name);
    if (!e)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: storage %s has no entry %s", path_of(c), ref->key, name);
    /* typed storages count elements, UntypedStorage bytes */
    uint64_t bytes;
    if (!ckpt_mul_u64(ref->numel, ref->dtype == CKPT_DTYPE_INVALID ? 1 : ckpt_dtype_size(dtype), &bytes) ||
        bytes > e->size)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: storage %s claims %llu elements but its entry has %llu bytes",
                         path_of(c), ref->key, (unsigned long long)ref->numel, (unsigned long long)e->size);
    int rc = entry_bytes(c, e, &view->file, &view->storage_offset, err);
    view->storage_bytes = bytes;
    view->big_endian = c->big_endian;
    return rc;
}

/*
 * The archive's top folder, from its data.pkl: "archive/data.pkl" gives
 * "archive/".  torch always writes one; a data.pkl at the root is read too,
 * so that a hostile archive is refused for what its pickle does.
 */
static const struct zip_entry *find_pickle(struct zip_ctx *c, ckpt_error *err)
{
    const struct zip_entry *found = NULL;
    for (size_t i = 0; i < c->zip.count; i++) {
        const char *name = c->zip.entries[i].name, *slash = strchr(name, '/');
        if (strcmp(name, "data.pkl") != 0 && (!slash || strcmp(slash, "/data.pkl") != 0))
            continue;
        if (found) {
            ckpt_fail(err, CKPT_ERR_FORMAT, "%s: more than one data.pkl", path_of(c));
            return NULL;
        }
        found = &c->zip.entries[i];
        snprintf(c->prefix, sizeof c->prefix, "%.*s", slash ? (int)(slash - name + 1) : 0, name);
    }
    if (!found)
        ckpt_fail(err, CKPT_ERR_FORMAT, "%s: a zip archive without data.pkl: not a torch.save file", path_of(c));
    return found;
}

/*
 * Notes every stored storage entry (PREFIX/data/KEY) as tensor data, those
 * no tensor is made of included (optimizer state): packing then keeps them
 * out of the bytes a bundle holds in memory.
 */
static int note_storages(struct zip_ctx *c, ckpt_error *err)
{
    char dir[1100];
    int n = snprintf(dir, sizeof dir, "%sdata/", c->prefix);
    int rc = CKPT_OK;
    for (size_t i = 0; i < c->zip.count && !rc; i++) {
        const struct zip_entry *e = &c->zip.entries[i];
        if (e->method == 0 && strncmp(e->name, dir, (size_t)n) == 0)
            rc = source_note_data(c->src, c->file, e->data_offset, e->size, err);
    }
    return rc;
}

static int read_byteorder(struct zip_ctx *c, ckpt_error *err)
{
    char name[1100];
    snprintf(name, sizeof name, "%sbyteorder", c->prefix);
    const struct zip_entry *e = zip_find(&c->zip, name);
    if (!e)
        return CKPT_OK;   /* absent: little-endian */
    const uint8_t *text = c->src->files[c->file].data + e->data_offset;
    if (e->method == 0 && e->size == 6 && memcmp(text, "little", 6) == 0)
        return CKPT_OK;
    if (e->method == 0 && e->size == 3 && memcmp(text, "big", 3) == 0) {
        c->big_endian = true;
        return CKPT_OK;
    }
    return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: byteorder is neither little nor big", path_of(c));
}

int torch_load_zip(struct ckpt_source *src, uint32_t file, ckpt_error *err)
{
    return torch_load_zip_visit(src, file, NULL, NULL, err);
}

int torch_load_zip_visit(struct ckpt_source *src, uint32_t file, torch_visit_fn visit, void *ctx, ckpt_error *err)
{
    struct zip_ctx c = {src, file, {0}, "", false, NULL, 0};
    const struct source_file *f = &src->files[file];
    int rc = zip_open(&c.zip, f->data, f->size, f->path, err);
    if (rc)
        return rc;
    const struct zip_entry *pkl = find_pickle(&c, err);
    rc = pkl ? read_byteorder(&c, err) : (err ? err->code : CKPT_ERR_FORMAT);
    bool deferred = false;
    if (!rc)
        rc = defer_crcs(&c, &deferred, err);
    if (!rc && !deferred)
        rc = check_crcs(&c, err);
    if (!rc)
        rc = note_storages(&c, err);
    uint32_t pfile = 0;
    uint64_t poffset = 0;
    if (!rc)
        rc = entry_bytes(&c, pkl, &pfile, &poffset, err);
    struct pickle p = {0};
    char origin[1200];
    if (!rc) {
        snprintf(origin, sizeof origin, "%s", f->path);
        rc = pickle_load(&p, src->files[pfile].data + poffset, (size_t)pkl->size, origin,
                         src->limits.max_pickle_bytes, err);
    }
    if (!rc)
        rc = torch_state_declare(src, p.root, origin, locate, &c, err);
    if (!rc && visit)
        rc = visit(ctx, p.root, origin, err);
    pickle_free(&p);
    zip_free(&c.zip);
    free(c.inflated);
    return rc;
}
