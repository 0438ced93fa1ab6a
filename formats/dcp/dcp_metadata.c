/*
 * dcp_metadata.c: the `.metadata` pickle of a PyTorch Distributed
 * Checkpoint, read as records; see dcp.h.
 *
 * The file pickles Metadata(state_dict_metadata, planner_data, storage_data
 * [, storage_meta, version]).  Each dataclass arrives as its class applied
 * to nothing and then given its fields by BUILD: a dict, or (None, dict)
 * for a class with slots; TensorProperties gives a tuple instead (its own
 * __getstate__).  The pickle machine keeps these as call nodes; here only
 * the fields a reader needs are taken out, each checked for its type.
 * storage_data maps MetadataIndex(fqn, offset, index) to
 * _StorageInfo(relative_path, offset, length): a chunk is found by its fqn
 * and its offsets (index is a hint and is ignored), through a sorted table.
 */
#include "dcp.h"

#include "formats/torch/torch_state.h"
#include "libckpt/common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PATH_LEN 4096

static const char *const metadata_modules[] = {
    "torch.distributed.checkpoint.metadata",
    "torch.distributed._shard.checkpoint.metadata",
};
static const char *const properties_modules[] = {
    "torch.distributed.checkpoint.metadata",
    "torch.distributed._shard.sharded_tensor.metadata",
};
static const char *const filesystem_modules[] = {
    "torch.distributed.checkpoint.filesystem",
    "torch.distributed._shard.checkpoint.filesystem",
};

/* True when v is a call of `name` from one of two modules (the torch >= 2 one and the older one). */
static bool is_record(const struct pk_value *v, const char *const modules[2], const char *name)
{
    return pk_is_call(v, modules[0], name) || pk_is_call(v, modules[1], name);
}

/*
 * A dataclass has a handful of fields: a bigger state is refused, so that a
 * hostile file cannot make each of many (memo-shared) lookups long.
 */
#define MAX_FIELDS 64

static const struct pk_value *dict_get(const struct pk_value *d, const char *key)
{
    if (!d || d->kind != PK_DICT || d->count > 2 * MAX_FIELDS)
        return NULL;
    for (size_t i = 0; i + 1 < d->count; i += 2)
        if (pk_str(d->items[i]) && strcmp(d->items[i]->s, key) == 0)
            return d->items[i + 1];
    return NULL;
}

/* A dataclass field from its BUILD state: a dict, or (dict or None, slots dict). */
static const struct pk_value *field(const struct pk_value *record, const char *name)
{
    const struct pk_value *state = record->state;
    if (state && state->kind == PK_TUPLE && state->count == 2) {
        const struct pk_value *v = dict_get(state->items[0], name);
        return v ? v : dict_get(state->items[1], name);
    }
    return dict_get(state, name);
}

struct parser {
    const char *origin;
    ckpt_error *err;
    uint64_t chunks, chunk_limit;   /* chunks over all tensors, bounded like the catalog's pieces */
    uint64_t bytes, byte_limit;     /* memory of the records, bounded like the pickle's */
};

static int malformed(struct parser *ps, const char *name, const char *what)
{
    return ckpt_fail(ps->err, CKPT_ERR_FORMAT, "%s: %s%s%s", ps->origin, name ? "entry " : "", name ? name : "",
                     what);
}

static bool get_u64(const struct pk_value *v, uint64_t *out)
{
    int64_t i;
    if (!pk_int(v, &i) || i < 0)
        return false;
    *out = (uint64_t)i;
    return true;
}

/* A torch.Size (kept by the pickle machine as its tuple) or list of `rank` non-negative ints. */
static bool get_dims(const struct pk_value *v, uint32_t rank, uint64_t *out)
{
    if (!v || (v->kind != PK_TUPLE && v->kind != PK_LIST) || v->count != rank)
        return false;
    for (uint32_t d = 0; d < rank; d++)
        if (!get_u64(v->items[d], &out[d]))
            return false;
    return true;
}

/* A str without NUL bytes, at most `max` bytes long. */
static const char *get_text(const struct pk_value *v, size_t max)
{
    const char *s = pk_str(v);
    return s && v->len <= max && strlen(s) == v->len ? s : NULL;
}

/* The storage a relative path names must stay inside the folder: no absolute path, no "..", no empty part. */
static bool safe_relative_path(const char *p)
{
    if (!p[0] || p[0] == '/')
        return false;
    for (const char *part = p;;) {
        const char *end = strchr(part, '/');
        size_t n = end ? (size_t)(end - part) : strlen(part);
        if (n == 0 || (n == 2 && part[0] == '.' && part[1] == '.'))
            return false;
        if (!end)
            return true;
        part = end + 1;
    }
}

/* ---- storage_data: a table sorted by (fqn, offsets) ---- */

struct storage_key {
    const char *fqn;
    const struct pk_value *offset;   /* a tuple, or NULL for a bytes entry (offset None) */
    struct dcp_storage storage;
};

static int compare_offsets(const struct pk_value *a, const struct pk_value *b)
{
    if (!a || !b)
        return (a != NULL) - (b != NULL);
    if (a->count != b->count)
        return (a->count > b->count) - (a->count < b->count);
    for (size_t d = 0; d < a->count; d++) {
        uint64_t x = 0, y = 0;
        get_u64(a->items[d], &x);
        get_u64(b->items[d], &y);
        if (x != y)
            return (x > y) - (x < y);
    }
    return 0;
}

static int compare_keys(const void *pa, const void *pb)
{
    const struct storage_key *a = pa, *b = pb;
    int c = strcmp(a->fqn, b->fqn);
    return c ? c : compare_offsets(a->offset, b->offset);
}

static int read_storage_info(struct parser *ps, const char *fqn, const struct pk_value *v, struct dcp_storage *out)
{
    if (!is_record(v, filesystem_modules, "_StorageInfo"))
        return malformed(ps, fqn, ": its storage_data value is not a _StorageInfo");
    const struct pk_value *t = field(v, "transform_descriptors");
    if (t && t->kind != PK_NONE && !((t->kind == PK_LIST || t->kind == PK_TUPLE) && t->count == 0))
        return ckpt_fail(ps->err, CKPT_ERR_UNSUPPORTED,
                         "%s: entry %s is stored through transforms (compression or encryption extensions)",
                         ps->origin, fqn);
    out->path = get_text(field(v, "relative_path"), MAX_PATH_LEN);
    if (!out->path || !get_u64(field(v, "offset"), &out->offset) || !get_u64(field(v, "length"), &out->length))
        return malformed(ps, fqn, ": its _StorageInfo lacks a path, an offset or a length");
    if (!safe_relative_path(out->path))
        return ckpt_fail(ps->err, CKPT_ERR_FORMAT, "%s: entry %s: storage path '%s' leaves the checkpoint folder",
                         ps->origin, fqn, out->path);
    return CKPT_OK;
}

static int index_storage(struct parser *ps, const struct pk_value *sd, struct storage_key **keys, size_t *count)
{
    if (!sd || sd->kind != PK_DICT)
        return malformed(ps, NULL, "Metadata has no storage_data dict (not written by a file system writer)");
    size_t n = sd->count / 2;
    *keys = calloc(n ? n : 1, sizeof **keys);
    if (!*keys)
        return ckpt_fail(ps->err, CKPT_ERR_NOMEM, "%s: out of memory", ps->origin);
    for (size_t i = 0; i < n; i++) {
        const struct pk_value *k = sd->items[2 * i];
        struct storage_key *key = &(*keys)[i];
        if (!is_record(k, metadata_modules, "MetadataIndex") || !(key->fqn = get_text(field(k, "fqn"), DCP_MAX_NAME)))
            return malformed(ps, NULL, "storage_data has a key that is not a MetadataIndex with a name");
        const struct pk_value *off = field(k, "offset");
        key->offset = off && off->kind != PK_NONE ? off : NULL;
        uint64_t scratch[SOURCE_MAX_RANK];
        if (key->offset && (key->offset->count > SOURCE_MAX_RANK ||
                            !get_dims(key->offset, (uint32_t)key->offset->count, scratch)))
            return malformed(ps, key->fqn, ": a storage_data key whose offset is malformed");
        int rc = read_storage_info(ps, key->fqn, sd->items[2 * i + 1], &key->storage);
        if (rc)
            return rc;
    }
    if (n)
        qsort(*keys, n, sizeof **keys, compare_keys);
    for (size_t i = 1; i < n; i++)
        if (compare_keys(&(*keys)[i - 1], &(*keys)[i]) == 0)
            return malformed(ps, (*keys)[i].fqn, ": storage_data lists one chunk twice");
    *count = n;
    return CKPT_OK;
}

static const struct dcp_storage *find_storage(const struct storage_key *keys, size_t n, const char *fqn,
                                              const struct pk_value *offset)
{
    struct storage_key probe = {fqn, offset, {0}};
    const struct storage_key *k = n ? bsearch(&probe, keys, n, sizeof *keys, compare_keys) : NULL;
    return k ? &k->storage : NULL;
}

/* ---- state_dict_metadata ---- */

static int read_dtype(struct parser *ps, const char *fqn, const struct pk_value *props, ckpt_dtype *dtype)
{
    if (!is_record(props, properties_modules, "TensorProperties"))
        return malformed(ps, fqn, ": its properties are not TensorProperties");
    /* TensorProperties pickles the tuple (dtype, layout, requires_grad, memory format, pin_memory) */
    const struct pk_value *st = props->state, *g = NULL;
    if (st && st->kind == PK_TUPLE && st->count == 5)
        g = st->items[0];
    else
        g = field(props, "dtype");
    if (!g || g->kind != PK_GLOBAL)
        return malformed(ps, fqn, ": its TensorProperties have no dtype");
    if ((*dtype = torch_dtype_global(g)) == CKPT_DTYPE_INVALID)
        return ckpt_fail(ps->err, CKPT_ERR_UNSUPPORTED, "%s: tensor %s has element type %s.%s, which libckpt does not read",
                         ps->origin, fqn, g->s, g->s2);
    return CKPT_OK;
}

static int read_tensor(struct parser *ps, struct dcp_entry *e, const struct pk_value *v,
                       const struct storage_key *keys, size_t nkeys, uint32_t max_rank)
{
    const struct pk_value *size = field(v, "size"), *chunks = field(v, "chunks");
    int rc = read_dtype(ps, e->name, field(v, "properties"), &e->dtype);
    if (rc)
        return rc;
    if (!size || (size->kind != PK_TUPLE && size->kind != PK_LIST) || size->count > max_rank)
        return malformed(ps, e->name, ": its size is missing or has too many dimensions");
    if (!chunks || chunks->kind != PK_LIST || chunks->count == 0)
        return malformed(ps, e->name, ": a tensor without chunks");
    uint64_t dims[SOURCE_MAX_RANK];
    if (!get_dims(size, (uint32_t)size->count, dims))
        return malformed(ps, e->name, ": its size is not a list of non-negative integers");
    /* bounded by the tensor's own shape before anything is made for its chunks */
    uint64_t most = source_max_pieces((uint32_t)size->count, dims);
    if (chunks->count > most)
        return ckpt_fail(ps->err, CKPT_ERR_LIMIT, "%s: tensor %s has %zu chunks, more than its shape allows (%llu)",
                         ps->origin, e->name, chunks->count, (unsigned long long)most);
    /* one record may be shared (memo) by many entries: the total is what bounds work and memory */
    if ((ps->chunks += chunks->count) > ps->chunk_limit)
        return ckpt_fail(ps->err, CKPT_ERR_LIMIT, "%s: more than %llu chunks in all (limit max_tensors)", ps->origin,
                         (unsigned long long)ps->chunk_limit);
    e->rank = (uint32_t)size->count;
    e->chunk_count = chunks->count;
    size_t width = e->rank ? e->rank : 1;
    if ((ps->bytes += (1 + 2 * e->chunk_count) * width * sizeof(uint64_t)) > ps->byte_limit)
        return ckpt_fail(ps->err, CKPT_ERR_LIMIT, "%s: chunk records need more than %llu bytes (limit max_pickle_bytes)",
                         ps->origin, (unsigned long long)ps->byte_limit);
    uint64_t *numbers = calloc((1 + 2 * e->chunk_count) * width, sizeof *numbers);
    e->chunks = calloc(e->chunk_count, sizeof *e->chunks);
    e->shape = numbers;
    if (!numbers || !e->chunks)
        return ckpt_fail(ps->err, CKPT_ERR_NOMEM, "%s: out of memory", ps->origin);
    if (!get_dims(size, e->rank, numbers))
        return malformed(ps, e->name, ": its size is not a list of non-negative integers");
    for (size_t c = 0; c < e->chunk_count; c++) {
        const struct pk_value *chunk = chunks->items[c];
        uint64_t *off = numbers + (1 + 2 * c) * width, *len = off + width;
        if (!is_record(chunk, metadata_modules, "ChunkStorageMetadata"))
            return malformed(ps, e->name, ": a chunk that is not a ChunkStorageMetadata");
        const struct pk_value *offsets = field(chunk, "offsets");
        if (!get_dims(offsets, e->rank, off) || !get_dims(field(chunk, "sizes"), e->rank, len))
            return malformed(ps, e->name, ": a chunk whose offsets or sizes do not match the tensor's rank");
        const struct dcp_storage *where = find_storage(keys, nkeys, e->name, offsets);
        if (!where) {
            char at[128] = "";
            for (uint32_t d = 0, n = 0; d < e->rank && n < sizeof at; d++)
                n += (uint32_t)snprintf(at + n, sizeof at - n, "%s%llu", d ? ", " : "", (unsigned long long)off[d]);
            return ckpt_fail(ps->err, CKPT_ERR_FORMAT, "%s: tensor %s: its chunk at [%s] has no storage_data entry",
                             ps->origin, e->name, at);
        }
        e->chunks[c] = (struct dcp_chunk){off, len, *where};
    }
    return CKPT_OK;
}

static int read_entry(struct parser *ps, struct dcp_entry *e, const struct pk_value *v,
                      const struct storage_key *keys, size_t nkeys, uint32_t max_rank)
{
    if (is_record(v, metadata_modules, "TensorStorageMetadata")) {
        e->is_tensor = true;
        return read_tensor(ps, e, v, keys, nkeys, max_rank);
    }
    if (is_record(v, metadata_modules, "BytesStorageMetadata")) {
        const struct dcp_storage *where = find_storage(keys, nkeys, e->name, NULL);
        if (!where)
            return ckpt_fail(ps->err, CKPT_ERR_FORMAT, "%s: entry %s has no storage_data entry", ps->origin, e->name);
        e->bytes = *where;
        return CKPT_OK;
    }
    return malformed(ps, e->name, ": neither TensorStorageMetadata nor BytesStorageMetadata");
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(const struct dcp_entry *const *)a)->name, (*(const struct dcp_entry *const *)b)->name);
}

/* A pickled dict may repeat a key, which Python would have merged: refused, as the reader cannot choose. */
static int check_unique_names(struct parser *ps, const struct dcp_metadata *md)
{
    if (md->count < 2)
        return CKPT_OK;
    const struct dcp_entry **order = malloc(md->count * sizeof *order);
    if (!order)
        return ckpt_fail(ps->err, CKPT_ERR_NOMEM, "%s: out of memory", ps->origin);
    for (size_t i = 0; i < md->count; i++)
        order[i] = &md->entries[i];
    qsort(order, md->count, sizeof *order, by_name);
    int rc = CKPT_OK;
    for (size_t i = 1; i < md->count && !rc; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0)
            rc = malformed(ps, order[i]->name, ": listed twice in state_dict_metadata");
    free(order);
    return rc;
}

int dcp_metadata_parse(struct dcp_metadata *md, const uint8_t *data, size_t len, const char *origin,
                       const ckpt_limits *limits, ckpt_error *err)
{
    memset(md, 0, sizeof *md);
    ckpt_limits defaults;
    if (!limits) {
        ckpt_limits_default(&defaults);
        limits = &defaults;
    }
    struct parser ps = {origin, err, 0, limits->max_tensors, 0, limits->max_pickle_bytes};
    int rc = pickle_load(&md->pickle, data, len, origin, limits->max_pickle_bytes, err);
    if (rc)
        return rc;
    const struct pk_value *root = md->pickle.root;
    if (!is_record(root, metadata_modules, "Metadata")) {
        dcp_metadata_free(md);
        return malformed(&ps, NULL, "is not a DCP Metadata record");
    }
    struct storage_key *keys = NULL;
    size_t nkeys = 0;
    const struct pk_value *sdm = field(root, "state_dict_metadata");
    uint32_t max_rank = limits->max_rank < SOURCE_MAX_RANK ? limits->max_rank : SOURCE_MAX_RANK;
    rc = index_storage(&ps, field(root, "storage_data"), &keys, &nkeys);
    if (!rc && (!sdm || sdm->kind != PK_DICT))
        rc = malformed(&ps, NULL, "Metadata has no state_dict_metadata dict");
    if (!rc && sdm->count / 2 > limits->max_tensors)
        rc = ckpt_fail(err, CKPT_ERR_LIMIT, "%s: more than %llu entries (limit max_tensors)", origin,
                       (unsigned long long)limits->max_tensors);
    if (!rc && sdm->count && !(md->entries = calloc(sdm->count / 2, sizeof *md->entries)))
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", origin);
    /* the names first: a repeated one is refused before any work is done for it */
    for (size_t i = 0; !rc && i + 1 < sdm->count; i += 2, md->count++)
        if (!(md->entries[i / 2].name = get_text(sdm->items[i], DCP_MAX_NAME)))
            rc = malformed(&ps, NULL, "state_dict_metadata has a key that is not a name (or one over 64 KiB)");
    if (!rc)
        rc = check_unique_names(&ps, md);
    for (size_t i = 0; !rc && i < md->count; i++)
        rc = read_entry(&ps, &md->entries[i], sdm->items[2 * i + 1], keys, nkeys, max_rank);
    free(keys);
    if (rc)
        dcp_metadata_free(md);
    return rc;
}

void dcp_metadata_free(struct dcp_metadata *md)
{
    for (size_t i = 0; i < md->count; i++) {
        free((void *)md->entries[i].shape);
        free(md->entries[i].chunks);
    }
    free(md->entries);
    pickle_free(&md->pickle);
    memset(md, 0, sizeof *md);
}
