/*
 * torch_legacy.c: torch.save files from before the zip container (torch 0.4
 * to 1.5), and plain pickles.
 *
 * A legacy file is five pickles in a row (the magic number, the protocol
 * version 1001, a sys_info dict with the byte order, the object, the list of
 * storage keys), then each storage in that list's order as an int64 element
 * count followed by its bytes.  A storage's element size comes from its type
 * in the object, so every storage reference is collected before any offset
 * can be computed.  A file whose first pickle is not the magic number is a
 * plain pickle: it is read only so that its refusal can say exactly why
 * (the global it would call, or that it holds no tensors).
 */
#include "torch.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"
#include "pickle.h"
#include "torch_state.h"

#include <stdlib.h>
#include <string.h>

static const uint8_t magic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

struct legacy_storage {
    const char *key;
    ckpt_dtype dtype;
    uint64_t numel, offset;
    bool placed;
};

/* Storages are found by key through a name index: a hostile file can name a million of them. */
struct legacy_ctx {
    struct ckpt_source *src;
    uint32_t file;
    struct legacy_storage *storages;
    size_t count, cap;
    struct name_index keys;
    bool big_endian;
};

static const char *storage_key(const void *storages, size_t i)
{
    return ((const struct legacy_storage *)storages)[i].key;
}

static struct legacy_storage *find(struct legacy_ctx *c, const char *key)
{
    size_t i = name_index_find(&c->keys, key, storage_key, c->storages);
    return i == SIZE_MAX ? NULL : &c->storages[i];
}

static int collect(void *ctx, const struct torch_storage_ref *ref, ckpt_error *err)
{
    struct legacy_ctx *c = ctx;
    const char *path = c->src->files[c->file].path;
    if (ref->dtype == CKPT_DTYPE_INVALID)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: untyped storage %s in a legacy file", path, ref->key);
    struct legacy_storage *s = find(c, ref->key);
    if (s)
        return s->dtype == ref->dtype && s->numel == ref->numel
                   ? CKPT_OK
                   : ckpt_fail(err, CKPT_ERR_FORMAT, "%s: storage %s is described two ways", path, ref->key);
    if (c->count == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        struct legacy_storage *grown = realloc(c->storages, cap * sizeof *grown);
        if (!grown)
            return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
        c->storages = grown;
        c->cap = cap;
    }
    c->storages[c->count] = (struct legacy_storage){ref->key, ref->dtype, ref->numel, 0, false};
    if (!name_index_add(&c->keys, c->count, storage_key, c->storages))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory indexing %zu storages", path, c->count + 1);
    c->count++;
    return CKPT_OK;
}

/* Walks the storage records after the pickles, in the order of the key list. */
static int place_storages(struct legacy_ctx *c, const struct pk_value *keys, uint64_t at, ckpt_error *err)
{
    const struct source_file *f = &c->src->files[c->file];
    if (!keys || keys->kind != PK_LIST)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: the storage key list is missing", f->path);
    for (size_t i = 0; i < keys->count; i++) {
        const char *key = pk_str(keys->items[i]);
        struct legacy_storage *s = key ? find(c, key) : NULL;
        if (!s)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: storage %s is listed but no tensor uses it", f->path,
                             key ? key : "?");
        if (f->size - at < 8 || at > f->size)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: storage %s lies past the end of the file", f->path, key);
        uint64_t numel = ckpt_load_le64(f->data + at), bytes, end;
        if (c->big_endian)
            numel = __builtin_bswap64(numel);
        if (numel != s->numel || !ckpt_mul_u64(numel, ckpt_dtype_size(s->dtype), &bytes) ||
            !ckpt_add_u64(at + 8, bytes, &end) || end > f->size)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: storage %s: %llu elements do not fit the file", f->path, key,
                             (unsigned long long)numel);
        s->offset = at + 8;
        s->placed = true;
        at = end;
    }
    return CKPT_OK;
}

static int locate(void *ctx, const struct torch_storage_ref *ref, ckpt_dtype dtype, struct tensor_view *view,
                  ckpt_error *err)
{
    struct legacy_ctx *c = ctx;
    struct legacy_storage *s = find(c, ref->key);
    (void)dtype;   /* extents are in the storage's own elements: the bytes place_storages checked */
    size_t es = s ? ckpt_dtype_size(s->dtype) : 0;
    if (!s || !s->placed)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: storage %s has no data", c->src->files[c->file].path, ref->key);
    view->file = c->file;
    view->storage_offset = s->offset;
    view->storage_bytes = s->numel * es;
    view->big_endian = c->big_endian;
    if (ref->has_view) {
        uint64_t end;
        if (!ckpt_add_u64(ref->view_offset, ref->view_numel, &end) || end > s->numel)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: storage view %s reaches outside storage %s",
                             c->src->files[c->file].path, ref->view_key, ref->key);
        view->storage_offset += ref->view_offset * es;
        view->storage_bytes = ref->view_numel * es;
    }
    return CKPT_OK;
}

static bool is_magic(const struct pk_value *v)
{
    return v->kind == PK_INT && v->big && v->len == sizeof magic && memcmp(v->s, magic, sizeof magic) == 0;
}

/* Loads the next pickle at *at into p[k] and advances *at. */
static int next_pickle(struct ckpt_source *src, const struct source_file *f, uint64_t *at, struct pickle *p,
                       ckpt_error *err)
{
    if (*at >= f->size)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: ends before its storages", f->path);
    int rc = pickle_load(p, f->data + *at, (size_t)(f->size - *at), f->path, src->limits.max_pickle_bytes, err);
    if (!rc)
        *at += p->end;
    return rc;
}

int torch_load_legacy(struct ckpt_source *src, uint32_t file, ckpt_error *err)
{
    const struct source_file *f = &src->files[file];
    struct pickle p[5] = {{0}};
    uint64_t at = 0;
    int rc = next_pickle(src, f, &at, &p[0], err);
    if (rc)
        return rc;
    if (!is_magic(p[0].root)) {   /* a plain pickle */
        rc = torch_state_declare(src, p[0].root, f->path, NULL, NULL, err);
        pickle_free(&p[0]);
        return rc;
    }
    struct legacy_ctx c = {src, file, NULL, 0, 0, {NULL, 0}, false};
    int64_t version = 0;
    for (int k = 1; k < 5 && !rc; k++)
        rc = next_pickle(src, f, &at, &p[k], err);
    if (!rc && (!pk_int(p[1].root, &version) || version != 1001))
        rc = ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: legacy protocol version %lld is not 1001", f->path,
                       (long long)version);
    if (!rc && p[2].root->kind == PK_DICT)
        for (size_t i = 0; i + 1 < p[2].root->count; i += 2)
            if (pk_str(p[2].root->items[i]) && strcmp(p[2].root->items[i]->s, "little_endian") == 0)
                c.big_endian = p[2].root->items[i + 1]->kind == PK_BOOL && !p[2].root->items[i + 1]->i;
    if (!rc)
        rc = torch_state_storages(p[3].root, f->path, collect, &c, err);
    if (!rc)
        rc = place_storages(&c, p[4].root, at, err);
    if (!rc)
        rc = torch_state_declare(src, p[3].root, f->path, locate, &c, err);
    for (int k = 0; k < 5; k++)
        pickle_free(&p[k]);
    free(c.storages);
    name_index_free(&c.keys);
    return rc;
}
