/*
 * safetensors_header.c: validating one safetensors file and declaring its
 * tensors.
 *
 * Applies every rule of the reference reader (huggingface/safetensors,
 * tensor.rs): header length within the limit and the file; UTF-8 JSON that
 * starts with '{'; no duplicate names; tensors covering the data buffer
 * exactly, in offset order, from 0, with no gap and no overlap; each
 * tensor's byte length equal to its element count times its element size,
 * computed without overflow; the buffer ending at the end of the file.
 * JSON is parsed by jansson, which checks UTF-8, refuses duplicate keys on
 * request and caps nesting depth, so a header cannot exhaust the stack.
 */
#include "safetensors.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

struct header_entry {
    const char *name;   /* owned by the JSON tree */
    ckpt_dtype dtype;
    uint32_t rank;
    uint64_t shape[SOURCE_MAX_RANK];
    uint64_t begin, end;
};

static bool json_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* Sub-byte types are valid safetensors but have no byte-addressable rows. */
static bool is_known_subbyte(const char *dtype)
{
    return strcmp(dtype, "F4") == 0 || strcmp(dtype, "F6_E2M3") == 0 || strcmp(dtype, "F6_E3M2") == 0;
}

static int parse_entry(const char *path, const char *name, const json_t *info, uint32_t max_rank,
                       struct header_entry *e, ckpt_error *err)
{
    if (!json_is_object(info))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: header entry is not an object", path, name);
    const json_t *dtype = json_object_get(info, "dtype");
    const json_t *shape = json_object_get(info, "shape");
    const json_t *offsets = json_object_get(info, "data_offsets");
    if (!json_is_string(dtype) || !json_is_array(shape) || !json_is_array(offsets))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: needs dtype, shape and data_offsets", path, name);

    e->name = name;
    e->dtype = ckpt_dtype_from_name(json_string_value(dtype));
    if (e->dtype == CKPT_DTYPE_INVALID)
        return ckpt_fail(err, is_known_subbyte(json_string_value(dtype)) ? CKPT_ERR_UNSUPPORTED : CKPT_ERR_FORMAT,
                         "%s: tensor %s: %s dtype %s", path, name,
                         is_known_subbyte(json_string_value(dtype)) ? "unsupported" : "unknown",
                         json_string_value(dtype));

    size_t rank = json_array_size(shape);
    if (rank > max_rank || rank > SOURCE_MAX_RANK)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: tensor %s: rank %zu is over the limit of %u (max_rank)", path, name,
                         rank, max_rank < SOURCE_MAX_RANK ? max_rank : SOURCE_MAX_RANK);
    e->rank = (uint32_t)rank;
    for (size_t d = 0; d < rank; d++)
        if (!json_u64(json_array_get(shape, d), &e->shape[d]))
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: shape is not a list of non-negative integers",
                             path, name);

    if (json_array_size(offsets) != 2 || !json_u64(json_array_get(offsets, 0), &e->begin) ||
        !json_u64(json_array_get(offsets, 1), &e->end))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: data_offsets is not [begin, end]", path, name);
    return CKPT_OK;
}

static int parse_metadata(struct ckpt_source *src, const char *path, const json_t *meta, ckpt_error *err)
{
    if (!json_is_object(meta))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: __metadata__ is not an object", path);
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)meta, key, value) {
        if (!json_is_string(value))
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: __metadata__ value of %s is not a string", path, key);
        int rc = source_add_metadata(src, key, json_string_value(value), path, err);
        if (rc)
            return rc;
    }
    return CKPT_OK;
}

static int by_offsets(const void *a, const void *b)
{
    const struct header_entry *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

/* The reference rules on the sorted entries: exact, gap-free coverage of the buffer. */
static int check_coverage(const char *path, struct header_entry *entries, size_t count,
                          uint64_t buffer_len, ckpt_error *err)
{
    uint64_t at = 0;
    for (size_t i = 0; i < count; i++) {
        const struct header_entry *e = &entries[i];
        if (e->begin != at || e->end < e->begin)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: data_offsets [%llu, %llu) %s at byte %llu",
                             path, e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
                             e->end < e->begin ? "are reversed"
                             : e->begin < at   ? "overlap the previous tensor"
                                               : "leave a gap",
                             (unsigned long long)at);
        uint64_t count_elems, nbytes;
        if (!ckpt_product_u64(e->shape, e->rank, &count_elems) ||
            !ckpt_mul_u64(count_elems, ckpt_dtype_size(e->dtype), &nbytes))
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: shape overflows 64 bits", path, e->name);
        if (e->end - e->begin != nbytes)
            return ckpt_fail(err, CKPT_ERR_FORMAT,
                             "%s: tensor %s: data_offsets span %llu bytes but shape and dtype need %llu", path,
                             e->name, (unsigned long long)(e->end - e->begin), (unsigned long long)nbytes);
        at = e->end;
    }
    if (at != buffer_len)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensors cover %llu bytes of a %llu-byte data buffer", path,
                         (unsigned long long)at, (unsigned long long)buffer_len);
    return CKPT_OK;
}

static int parse_header(struct ckpt_source *src, const char *path, uint32_t file, const json_t *root,
                        uint64_t data_start, ckpt_error *err)
{
    size_t count = json_object_size(root);
    struct header_entry *entries = calloc(count ? count : 1, sizeof *entries);
    if (!entries)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory for %zu header entries", path, count);

    int rc = CKPT_OK;
    size_t n = 0;
    const char *name;
    const json_t *info;
    json_object_foreach((json_t *)root, name, info) {
        if (strcmp(name, "__metadata__") == 0)
            rc = parse_metadata(src, path, info, err);
        else
            rc = parse_entry(path, name, info, src->limits.max_rank, &entries[n++], err);
        if (rc)
            goto done;
    }
    qsort(entries, n, sizeof *entries, by_offsets);
    rc = check_coverage(path, entries, n, src->files[file].size - data_start, err);
    for (size_t i = 0; i < n && !rc; i++) {
        struct tensor_view view = {file, data_start + entries[i].begin, entries[i].end - entries[i].begin, 0,
                                   NULL, false};
        bool split = false;
        if (src->split_fused)
            rc = fused_experts_declare(src, entries[i].name, entries[i].dtype, entries[i].rank, entries[i].shape,
                                       &view, &split, err);
        if (!rc && !split)
            rc = source_add_tensor(src, entries[i].name, entries[i].dtype, entries[i].rank, entries[i].shape, &view,
                                   err);
    }
done:
    free(entries);
    return rc;
}

int safetensors_load_file(struct ckpt_source *src, const char *path, ckpt_error *err)
{
    uint32_t file;
    int rc = source_add_file(src, path, &file, err);
    if (rc)
        return rc;
    const uint8_t *data = src->files[file].data;
    uint64_t size = src->files[file].size;

    if (size < 8)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: %llu bytes is too short for a safetensors header", path,
                         (unsigned long long)size);
    uint64_t header_len = ckpt_load_le64(data);
    if (header_len > src->limits.max_header_bytes)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: header of %llu bytes is over the limit of %llu (max_header_bytes)", path,
                         (unsigned long long)header_len, (unsigned long long)src->limits.max_header_bytes);
    if (header_len > size - 8)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: header claims %llu bytes but the file has only %llu after it",
                         path, (unsigned long long)header_len, (unsigned long long)(size - 8));
    if (header_len == 0 || data[8] != '{')
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: header does not start with '{'", path);

    json_error_t jerr;
    json_t *root = json_loadb((const char *)data + 8, (size_t)header_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: invalid header JSON at byte %d: %s", path, jerr.position + 8,
                         jerr.text);
    if (!json_is_object(root))
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: header is not a JSON object", path);
    else
        rc = parse_header(src, path, file, root, 8 + header_len, err);
    json_decref(root);
    return rc;
}
