/* zip.c: see zip.h. */
#include "zip.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"

#include <stdlib.h>
#include <string.h>

#define EOCD_SIG 0x06054b50u
#define EOCD64_SIG 0x06064b50u
#define LOCATOR_SIG 0x07064b50u
#define CENTRAL_SIG 0x02014b50u
#define LOCAL_SIG 0x04034b50u

/* Slicing-by-8 CRC-32: eight tables built per call (8 KiB, a few microseconds), no global state. */
uint32_t zip_crc32(uint32_t crc, const uint8_t *p, size_t n)
{
    uint32_t t[8][256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int s = 1; s < 8; s++)
            t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
    crc = ~crc;
    for (; n >= 8; n -= 8, p += 8) {
        uint32_t a = crc ^ ckpt_load_le32(p), b = ckpt_load_le32(p + 4);
        crc = t[7][a & 0xFF] ^ t[6][(a >> 8) & 0xFF] ^ t[5][(a >> 16) & 0xFF] ^ t[4][a >> 24] ^ t[3][b & 0xFF] ^
              t[2][(b >> 8) & 0xFF] ^ t[1][(b >> 16) & 0xFF] ^ t[0][b >> 24];
    }
    while (n--)
        crc = t[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

struct cd_location {
    uint64_t offset, size, entries;
};

static int find_directory(const uint8_t *d, uint64_t size, const char *path, struct cd_location *cd,
                          ckpt_error *err)
{
    if (size < 22)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: too short for a zip archive", path);
    uint64_t stop = size > 22 + 65535 ? size - 22 - 65535 : 0, at = size - 22;
    for (;; at--) {
        if (ckpt_load_le32(d + at) == EOCD_SIG)
            break;
        if (at == stop)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: no zip end-of-directory record", path);
    }
    const uint8_t *e = d + at;
    if (ckpt_load_le16(e + 4) != ckpt_load_le16(e + 6) || ckpt_load_le16(e + 4) > 1)
        return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: multi-part zip archives are not supported", path);
    cd->entries = ckpt_load_le16(e + 10);
    cd->size = ckpt_load_le32(e + 12);
    cd->offset = ckpt_load_le32(e + 16);
    bool zip64 = cd->entries == 0xFFFF || cd->size == 0xFFFFFFFFu || cd->offset == 0xFFFFFFFFu;
    if (zip64) {
        if (at < 20 || ckpt_load_le32(d + at - 20) != LOCATOR_SIG)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: zip64 archive without its locator", path);
        uint64_t z64 = ckpt_load_le64(d + at - 20 + 8);
        if (size < 56 || z64 > size - 56 || ckpt_load_le32(d + z64) != EOCD64_SIG)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: zip64 end record lies outside the file", path);
        cd->entries = ckpt_load_le64(d + z64 + 32);
        cd->size = ckpt_load_le64(d + z64 + 40);
        cd->offset = ckpt_load_le64(d + z64 + 48);
    }
    uint64_t end;
    if (!ckpt_add_u64(cd->offset, cd->size, &end) || end > size)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: zip central directory lies outside the file", path);
    if (cd->entries > cd->size / 46)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: zip claims %llu entries in a %llu-byte directory", path,
                         (unsigned long long)cd->entries, (unsigned long long)cd->size);
    return CKPT_OK;
}

/* Applies a zip64 extra field to the sizes and offset that overflowed 32 bits. */
static int read_zip64_extra(const uint8_t *extra, size_t len, uint64_t *size, uint64_t *comp, uint64_t *local,
                            const char *path, ckpt_error *err)
{
    for (size_t at = 0; at + 4 <= len;) {
        uint16_t id = ckpt_load_le16(extra + at), n = ckpt_load_le16(extra + at + 2);
        if (at + 4 + n > len)
            break;
        if (id == 0x0001) {
            const uint8_t *f = extra + at + 4;
            size_t k = 0;
            uint64_t *fields[3] = {size, comp, local};
            for (int i = 0; i < 3; i++) {
                if (*fields[i] != 0xFFFFFFFFu)
                    continue;
                if (k + 8 > n)
                    return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: zip64 extra field is too short", path);
                *fields[i] = ckpt_load_le64(f + k);
                k += 8;
            }
            return CKPT_OK;
        }
        at += 4 + n;
    }
    if (*size == 0xFFFFFFFFu || *comp == 0xFFFFFFFFu || *local == 0xFFFFFFFFu)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: zip entry needs a zip64 field it lacks", path);
    return CKPT_OK;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct zip_entry *)a)->name, ((const struct zip_entry *)b)->name);
}

static int by_offset(const void *a, const void *b)
{
    const struct zip_entry *x = *(struct zip_entry *const *)a, *y = *(struct zip_entry *const *)b;
    return x->data_offset < y->data_offset ? -1 : x->data_offset > y->data_offset;
}

/* No two entries' data may overlap (a zip bomb's trick), and none may run into the directory. */
static int check_overlaps(struct zip *z, uint64_t cd_offset, const char *path, ckpt_error *err)
{
    struct zip_entry **order = malloc((z->count + 1) * sizeof *order);
    if (!order)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < z->count; i++)
        order[i] = &z->entries[i];
    qsort(order, z->count, sizeof *order, by_offset);
    int rc = CKPT_OK;
    for (size_t i = 0; i < z->count && !rc; i++) {
        uint64_t end = order[i]->data_offset + order[i]->comp_size;
        uint64_t next = i + 1 < z->count ? order[i + 1]->data_offset : cd_offset;
        if (end > next)
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: zip entry %s overlaps %s", path, order[i]->name,
                           i + 1 < z->count ? order[i + 1]->name : "the central directory");
    }
    free(order);
    return rc;
}

static int read_entry(struct zip *z, const uint8_t *d, uint64_t size, uint64_t *at, uint64_t cd_end,
                      size_t *name_used, const char *path, ckpt_error *err)
{
    const uint8_t *c = d + *at;
    if (cd_end - *at < 46 || ckpt_load_le32(c) != CENTRAL_SIG)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: damaged zip central directory", path);
    uint16_t flags = ckpt_load_le16(c + 8), nlen = ckpt_load_le16(c + 28), xlen = ckpt_load_le16(c + 30);
    uint16_t clen = ckpt_load_le16(c + 32);
    if (46 + (uint64_t)nlen + xlen + clen > cd_end - *at)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: zip directory entry runs past the directory", path);
    if (flags & 1)
        return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: encrypted zip entries are not supported", path);
    struct zip_entry *e = &z->entries[z->count];
    e->method = ckpt_load_le16(c + 10);
    e->crc = ckpt_load_le32(c + 16);
    e->comp_size = ckpt_load_le32(c + 20);
    e->size = ckpt_load_le32(c + 24);
    uint64_t local = ckpt_load_le32(c + 42);
    char *name = z->names + *name_used;
    memcpy(name, c + 46, nlen);
    name[nlen] = '\0';
    *name_used += (size_t)nlen + 1;
    e->name = name;
    if (memchr(name, '\0', nlen))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: zip entry name holds a NUL byte", path);
    int rc = read_zip64_extra(c + 46 + nlen, xlen, &e->size, &e->comp_size, &local, path, err);
    if (rc)
        return rc;
    /* the local header gives the true data offset: its own name and extra (torch's alignment padding) */
    if (size < 30 || local > size - 30 || ckpt_load_le32(d + local) != LOCAL_SIG)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: zip entry %s: local header lies outside the file", path, name);
    uint64_t end;
    e->data_offset = local + 30 + ckpt_load_le16(d + local + 26) + ckpt_load_le16(d + local + 28);
    if (!ckpt_add_u64(e->data_offset, e->comp_size, &end) || end > size)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: zip entry %s: data lies outside the file", path, name);
    if (e->method == 0 && e->comp_size != e->size)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: zip entry %s: stored entry with two sizes", path, name);
    z->count++;
    *at += 46 + (uint64_t)nlen + xlen + clen;
    return CKPT_OK;
}

int zip_open(struct zip *z, const uint8_t *d, uint64_t size, const char *path, ckpt_error *err)
{
    memset(z, 0, sizeof *z);
    struct cd_location cd = {0, 0, 0};
    int rc = find_directory(d, size, path, &cd, err);
    if (rc)
        return rc;
    /* names are shorter than the directory, so one block of its size holds them all */
    z->entries = calloc(cd.entries + 1, sizeof *z->entries);
    z->names = malloc(cd.size + cd.entries + 1);
    if (!z->entries || !z->names) {
        zip_free(z);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory for %llu zip entries", path,
                         (unsigned long long)cd.entries);
    }
    uint64_t at = cd.offset;
    size_t name_used = 0;
    for (uint64_t i = 0; i < cd.entries && !rc; i++)
        rc = read_entry(z, d, size, &at, cd.offset + cd.size, &name_used, path, err);
    if (!rc)
        rc = check_overlaps(z, cd.offset, path, err);
    /* sorted by name: duplicates sit side by side, and lookups are a binary search */
    if (!rc)
        qsort(z->entries, z->count, sizeof *z->entries, by_name);
    for (size_t i = 1; i < z->count && !rc; i++)
        if (strcmp(z->entries[i - 1].name, z->entries[i].name) == 0)
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: zip entry %s appears twice", path, z->entries[i].name);
    if (rc)
        zip_free(z);
    return rc;
}

const struct zip_entry *zip_find(const struct zip *z, const char *name)
{
    size_t lo = 0, hi = z->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(z->entries[mid].name, name);
        if (c == 0)
            return &z->entries[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void zip_free(struct zip *z)
{
    free(z->entries);
    free(z->names);
    memset(z, 0, sizeof *z);
}
