/*
 * converted.c: what ckpt convert (and msModelSlim) add to a safetensors
 * folder, read back so that a converted folder is a source like any other:
 *
 *  - the device-image records "ckpt.layout.NAME" in shard metadata: each NZ
 *    tensor is presented as the logical matrix its tiles encode
 *    (source_present_nz), so converting it again never tiles twice;
 *  - quant_model_description.json: each tensor's msModelSlim type, and the
 *    folder's model_quant_type, version and group_size as msmodelslim.*
 *    metadata.
 *
 * Whoever hands over a folder may have edited every byte of it: every field
 * is checked against the tensor it describes before it is used, and a record
 * that does not fit is refused, naming the file and the tensor.
 */
#include "converted.h"

#include "formats/common/shard_index.h"
#include "libckpt/common/error.h"
#include "libckpt/kernels/acl.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECORD_MAX_BYTES 65536

static bool get_dims(const json_t *a, uint64_t *dims, uint32_t *rank)
{
    if (!json_is_array(a) || json_array_size(a) < 1 || json_array_size(a) > SOURCE_MAX_RANK)
        return false;
    *rank = (uint32_t)json_array_size(a);
    for (uint32_t d = 0; d < *rank; d++) {
        const json_t *v = json_array_get(a, d);
        if (!json_is_integer(v) || json_integer_value(v) < 1)
            return false;
        dims[d] = (uint64_t)json_integer_value(v);
    }
    return true;
}

static bool same_dims(const json_t *a, const uint64_t *dims, uint32_t rank)
{
    uint64_t got[SOURCE_MAX_RANK];
    uint32_t got_rank;
    return get_dims(a, got, &got_rank) && got_rank == rank && memcmp(got, dims, rank * sizeof *dims) == 0;
}

/* Why record `o` does not describe tensor t's tiles, or NULL; fills the logical shape, C0 and orientation. */
static const char *read_record(const json_t *o, const ckpt_tensor *t, uint64_t *shape, uint32_t *rank, uint64_t *c0,
                               bool *transposed)
{
    const json_t *tr = json_object_get(o, "transposed"), *c = json_object_get(o, "c0");
    size_t es = ckpt_dtype_size(t->dtype);
    if (!json_is_object(o) || !json_is_string(json_object_get(o, "layout")) ||
        strcmp(json_string_value(json_object_get(o, "layout")), "FRACTAL_NZ") != 0)
        return "is not a FRACTAL_NZ record";
    if (!get_dims(json_object_get(o, "nd_shape"), shape, rank) || *rank < 2)
        return "has no nd_shape of rank 2 or more";
    if (tr && !json_is_boolean(tr))
        return "has a transposed that is not true or false";
    *transposed = json_is_true(tr);
    /* records older than the device fields name no C0: it was 32 bytes of a row, 16 for 4-byte elements */
    *c0 = es == 4 ? 16 : es ? 32 / es : 0;
    if (c && (!json_is_integer(c) || json_integer_value(c) < 1 || json_integer_value(c) > 64))
        return "has a c0 that is not a tile width";
    if (c)
        *c0 = (uint64_t)json_integer_value(c);
    const json_t *f = json_object_get(o, "acl_format"), *d = json_object_get(o, "acl_dtype");
    const json_t *n = json_object_get(o, "storage_nbytes"), *orient = json_object_get(o, "orientation");
    if (f && json_integer_value(f) != ACL_FORMAT_FRACTAL_NZ_CODE)
        return "has an acl_format other than 29 (FRACTAL_NZ)";
    if (d && (!json_is_integer(d) || json_integer_value(d) != acl_dtype_of(t->dtype, NULL)))
        return "has an acl_dtype that is not its element type";
    if (json_object_get(o, "view_shape") && !same_dims(json_object_get(o, "view_shape"), shape, *rank))
        return "has a view_shape other than its nd_shape";
    if (json_object_get(o, "storage_shape") && !same_dims(json_object_get(o, "storage_shape"), t->shape, t->rank))
        return "has a storage_shape other than the stored one";
    if (n && (!json_is_integer(n) || (uint64_t)json_integer_value(n) != t->nbytes))
        return "has a storage_nbytes other than the stored size";
    if (orient && (!json_is_string(orient) ||
                   strcmp(json_string_value(orient), *transposed ? "in,out" : "out,in") != 0))
        return "has an orientation that contradicts transposed";
    if (*transposed) {   /* the record gives the tiled matrix; the tensor is its transpose */
        uint64_t x = shape[*rank - 1];
        shape[*rank - 1] = shape[*rank - 2];
        shape[*rank - 2] = x;
    }
    return NULL;
}

static int present_tiles(struct ckpt_source *src, ckpt_error *err)
{
    size_t prefix = strlen(LAYOUT_KEY_PREFIX);
    for (size_t k = 0; k < src->metadata_count; k++) {
        const char *key = src->metadata[k].key, *value = src->metadata[k].value;
        if (strncmp(key, LAYOUT_KEY_PREFIX, prefix) != 0)
            continue;
        size_t i = source_lookup(src, key + prefix);
        if (i == SIZE_MAX)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: layout record %s names no tensor of the checkpoint", src->path,
                             key);
        const ckpt_tensor *t = &src->tensors[i].pub;
        const char *file = src->files[t->file].path;
        json_t *o = strlen(value) <= RECORD_MAX_BYTES ? json_loads(value, JSON_REJECT_DUPLICATES, NULL) : NULL;
        uint64_t shape[SOURCE_MAX_RANK], c0 = 0;
        uint32_t rank = 0;
        bool transposed = false;
        const char *why = o ? read_record(o, t, shape, &rank, &c0, &transposed) : "is not a JSON object";
        json_decref(o);
        if (why)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: its layout record %s", file, t->name, why);
        int rc = source_present_nz(src, i, shape, rank, c0, transposed, err);
        if (rc)
            return rc;
    }
    return CKPT_OK;
}

/* The description's keys that are not tensors (msModelSlim's ascendv1.py L220-229, and MindIE's extras). */
static bool global_key(const char *key)
{
    static const char *const keys[] = {"version", "model_quant_type", "metadata", "group_size", "optional",
                                       "kv_cache_type", "kv_quant_type", "fa_quant_type", "indexer_quant_type",
                                       "is_nzcasted", "AtlasGMMPermute", "reduce_quant_type"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(key, keys[i]) == 0)
            return true;
    return false;
}

/* A type name as msModelSlim spells them: capitals, digits and underscores. */
static bool type_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 32)
        return false;
    for (; *s; s++)
        if (!isupper((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '_')
            return false;
    return true;
}

/* Int8 per-channel weights: their X.weight must be an I8 matrix. */
static bool int8_type(const char *type)
{
    return strcmp(type, "W8A8_DYNAMIC") == 0 || strcmp(type, "W8A16") == 0 || strcmp(type, "W8A8") == 0 ||
           strcmp(type, "W8A8_MIX") == 0;
}

static int check_typed(const struct ckpt_source *src, const char *path, const char *name, const char *type,
                       ckpt_error *err)
{
    size_t n = strlen(name), i = source_lookup(src, name);
    const ckpt_tensor *t = &src->tensors[i].pub;
    if (int8_type(type) && n > 7 && strcmp(name + n - 7, ".weight") == 0 &&
        (t->dtype != CKPT_DTYPE_I8 || t->rank != 2))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: says %s is %s, but it is %s of rank %u, not an int8 matrix", path,
                         name, type, ckpt_dtype_name(t->dtype), t->rank);
    return CKPT_OK;
}

static int read_globals(struct ckpt_source *src, const char *path, const json_t *doc, ckpt_error *err)
{
    const json_t *version = json_object_get(doc, "version"), *type = json_object_get(doc, "model_quant_type");
    const json_t *group = json_object_get(doc, "group_size");
    if ((version && !json_is_string(version)) || (type && (!json_is_string(type) ||
                                                           !type_name(json_string_value(type)))))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: version or model_quant_type is not a type name", path);
    if (group && (!json_is_integer(group) || json_integer_value(group) < 0 || json_integer_value(group) > (1 << 20)))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: group_size is not a group size", path);
    char number[32];
    int rc = CKPT_OK;
    if (version && strlen(json_string_value(version)) <= 32)
        rc = source_add_metadata(src, "msmodelslim.version", json_string_value(version), path, err);
    if (!rc && type)
        rc = source_add_metadata(src, "msmodelslim.model_quant_type", json_string_value(type), path, err);
    if (!rc && group) {
        snprintf(number, sizeof number, "%lld", (long long)json_integer_value(group));
        rc = source_add_metadata(src, "msmodelslim.group_size", number, path, err);
    }
    return rc;
}

static int read_description(struct ckpt_source *src, const char *dir, ckpt_error *err)
{
    char *path = path_join(dir, QUANT_DESCRIPTION_FILE);
    char *text = NULL;
    size_t len;
    int rc = path ? fs_read_small(src->fs, path, src->limits.max_header_bytes, &text, &len, err)
                  : ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", dir);
    json_error_t jerr;
    json_t *doc = rc ? NULL : json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!rc && !json_is_object(doc))
        rc = doc ? ckpt_fail(err, CKPT_ERR_FORMAT, "%s: not a JSON object", path)
                 : ckpt_fail(err, CKPT_ERR_FORMAT, "%s: invalid JSON at line %d: %s", path, jerr.line, jerr.text);
    if (!rc)
        rc = read_globals(src, path, doc, err);
    const char *key;
    const json_t *value;
    json_object_foreach(doc, key, value) {
        if (rc)
            break;
        if (global_key(key))
            continue;
        if (!json_is_string(value) || !type_name(json_string_value(value))) {
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: the type of %.200s is not a type name", path, key);
            break;
        }
        size_t i = source_lookup(src, key);
        if (i == SIZE_MAX)
            continue;   /* a tensor the shards do not hold: nothing to describe */
        rc = check_typed(src, path, key, json_string_value(value), err);
        if (!rc)
            rc = source_set_quant(src, i, json_string_value(value), err);
    }
    json_decref(doc);
    free(path);
    return rc;
}

int converted_apply(struct ckpt_source *src, const char *path, ckpt_error *err)
{
    int rc = present_tiles(src, err);
    if (!rc && format_is_dir(src->fs, path) && format_dir_has(src->fs, path, QUANT_DESCRIPTION_FILE))
        rc = read_description(src, path, err);
    return rc;
}
