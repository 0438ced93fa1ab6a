/* manifest_read.c: see manifest_read.h and docs/manifest.md. */
#include "manifest_read.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"
#include "manifest.h"

#include "libckpt/plan/rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MANIFEST_MAX_BYTES ((uint64_t)1 << 30)

static bool get_u64(const json_t *o, const char *key, uint64_t *out)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static const char *get_str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static bool get_shape(const json_t *o, const char *key, uint64_t *shape, uint32_t *rank, uint32_t max)
{
    const json_t *a = json_object_get(o, key);
    if (!json_is_array(a) || json_array_size(a) > max)
        return false;
    *rank = (uint32_t)json_array_size(a);
    for (uint32_t d = 0; d < *rank; d++) {
        const json_t *v = json_array_get(a, d);
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return false;
        shape[d] = (uint64_t)json_integer_value(v);
    }
    return true;
}

/* A file name inside the folder: no separators, not "." or "..", not empty. */
static bool plain_name(const char *s)
{
    return s && *s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

static bool is_hash(const char *s)
{
    if (!s || strlen(s) != 32)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

static int load_files(struct manifest *m, const json_t *files, const char *path, ckpt_error *err)
{
    if (!json_is_array(files))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: no files list", path);
    m->file_count = json_array_size(files);
    m->files = calloc(m->file_count + 1, sizeof *m->files);
    if (!m->files)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < m->file_count; i++) {
        const json_t *f = json_array_get(files, i);
        struct manifest_file *mf = &m->files[i];
        mf->path = get_str(f, "path");
        mf->xxh3_128 = get_str(f, "xxh3_128");
        if (!plain_name(mf->path) || !is_hash(mf->xxh3_128) || !get_u64(f, "size", &mf->size))
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: files[%zu] needs a plain path, a size and an xxh3_128", path, i);
        for (size_t k = 0; k < i; k++)
            if (strcmp(m->files[k].path, mf->path) == 0)
                return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: file %s is listed twice", path, mf->path);
    }
    return CKPT_OK;
}

/* source.rows, when present: a selection inside its groups (docs/manifest.md). */
static bool get_rows(const json_t *src, ckpt_row_select *out)
{
    const json_t *o = json_object_get(src, "rows");
    *out = (ckpt_row_select){0, 0, 0, 0};
    if (!o)
        return true;
    uint64_t rows;
    return get_u64(o, "groups", &out->groups) && get_u64(o, "group_rows", &out->group_rows) &&
           get_u64(o, "offset", &out->offset) && get_u64(o, "count", &out->count) && out->groups > 0 &&
           out->count > 0 && out->offset <= out->group_rows && out->count <= out->group_rows - out->offset &&
           ckpt_mul_u64(out->groups, out->group_rows, &rows);
}

/* quant, when present: {"type", "role", "load_dtype"} of a quantized linear's part. */
static bool get_quant(const json_t *o, struct manifest_tensor *t)
{
    const json_t *q = json_object_get(o, "quant");
    t->quant = CKPT_QUANT_NONE;
    t->quant_role = CKPT_QUANT_ROLE_NONE;
    t->load_dtype = CKPT_DTYPE_INVALID;
    if (!q)
        return true;
    const char *type = get_str(q, "type"), *role = get_str(q, "role"), *load = get_str(q, "load_dtype");
    if (!type || !role || !load)
        return false;
    for (int k = CKPT_QUANT_W8A8_DYNAMIC; k <= CKPT_QUANT_W8A16; k++)
        if (strcmp(type, ckpt_quant_name((ckpt_quant)k)) == 0)
            t->quant = (ckpt_quant)k;
    for (int k = CKPT_QUANT_ROLE_WEIGHT; k <= CKPT_QUANT_ROLE_OFFSET; k++)
        if (strcmp(role, quant_role_name((ckpt_quant_role)k)) == 0)
            t->quant_role = (ckpt_quant_role)k;
    t->load_dtype = ckpt_dtype_from_name(load);
    return t->quant != CKPT_QUANT_NONE && t->quant_role != CKPT_QUANT_ROLE_NONE &&
           t->load_dtype != CKPT_DTYPE_INVALID;
}

/* device.c0 of an NZ tensor (older manifests have no device record: the C0 convert used then). */
static bool get_c0(const json_t *o, struct manifest_tensor *t)
{
    t->nz_c0 = 0;
    if (t->layout != CKPT_LAYOUT_FRACTAL_NZ)
        return !json_object_get(o, "device");
    const json_t *device = json_object_get(o, "device");
    if (!device) {
        size_t es = ckpt_dtype_size(t->dtype);
        t->nz_c0 = es == 4 ? 16 : es ? 32 / es : 0;
        return true;
    }
    return get_u64(device, "c0", &t->nz_c0) && t->nz_c0 > 0 && t->nz_c0 <= 64;
}

/*
 * What the recorded sizes cannot be, whoever wrote them: every later use
 * (hashing ranges, header comparison, fidelity's element size) trusts
 * nbytes to be the stored shape times the element size.
 */
static const char *sizes_disagreement(const struct manifest_tensor *t)
{
    uint64_t elems, nd_elems, bytes;
    if (!*t->name)
        return "empty name";
    if (ckpt_dtype_size(t->dtype) == 0 || ckpt_dtype_size(t->source_dtype) == 0)
        return "an element type without a byte size";
    if (!ckpt_product_u64(t->shape, t->rank, &elems) || !ckpt_mul_u64(elems, ckpt_dtype_size(t->dtype), &bytes) ||
        !ckpt_product_u64(t->nd_shape, t->nd_rank, &nd_elems))
        return "shape overflows 64 bits";
    if (t->layout == CKPT_LAYOUT_ND &&
        (t->rank != t->nd_rank || memcmp(t->shape, t->nd_shape, t->rank * sizeof *t->shape) != 0))
        return "an ND tensor whose nd_shape is not its shape";
    if (t->layout == CKPT_LAYOUT_FRACTAL_NZ && (t->nd_rank == 0 || nd_elems > elems))
        return "an NZ tensor whose tiles cannot hold its nd_shape";
    if (!t->alias_of && bytes != t->nbytes)
        return "nbytes is not shape times element size";
    if (t->alias_of && !*t->alias_of)
        return "empty alias_of";
    return NULL;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(const struct manifest_tensor *const *)a)->name, (*(const struct manifest_tensor *const *)b)->name);
}

/* Names are keys: a name listed twice would let an extra shard tensor hide behind the count. */
static int check_names(const struct manifest *m, const char *path, ckpt_error *err)
{
    const struct manifest_tensor **sorted = malloc((m->tensor_count + 1) * sizeof *sorted);
    if (!sorted)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < m->tensor_count; i++)
        sorted[i] = &m->tensors[i];
    qsort(sorted, m->tensor_count, sizeof *sorted, by_name);
    int rc = CKPT_OK;
    for (size_t i = 1; i < m->tensor_count && !rc; i++)
        if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0)
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s is listed twice", path, sorted[i]->name);
    /* an alias names a stored tensor of the manifest */
    for (size_t i = 0; i < m->tensor_count && !rc; i++) {
        const struct manifest_tensor *t = &m->tensors[i], key = {.name = t->alias_of}, *pk = &key;
        const struct manifest_tensor *const *target =
            t->alias_of ? bsearch(&pk, sorted, m->tensor_count, sizeof *sorted, by_name) : NULL;
        if (t->alias_of && (!target || (*target)->alias_of))
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s is an alias of %s, which is no stored tensor", path,
                           t->name, t->alias_of);
    }
    free(sorted);
    return rc;
}

static int load_tensor(struct manifest_tensor *t, const json_t *o, const char *path, size_t i, ckpt_error *err)
{
    const json_t *src = json_object_get(o, "source");
    const char *layout = get_str(o, "layout");
    t->name = get_str(o, "name");
    t->alias_of = get_str(o, "alias_of");
    t->source_name = get_str(src, "name");
    t->dtype = ckpt_dtype_from_name(get_str(o, "dtype") ? get_str(o, "dtype") : "");
    t->source_dtype = ckpt_dtype_from_name(get_str(src, "dtype") ? get_str(src, "dtype") : "");
    t->transposed = json_is_true(json_object_get(o, "transposed"));
    bool ok = t->name && t->source_name && t->dtype != CKPT_DTYPE_INVALID && t->source_dtype != CKPT_DTYPE_INVALID &&
              layout && (strcmp(layout, "ND") == 0 || strcmp(layout, "FRACTAL_NZ") == 0) &&
              get_shape(o, "shape", t->shape, &t->rank, 66) && get_shape(o, "nd_shape", t->nd_shape, &t->nd_rank, 64) &&
              get_rows(src, &t->rows);
    if (ok)
        t->layout = strcmp(layout, "ND") == 0 ? CKPT_LAYOUT_ND : CKPT_LAYOUT_FRACTAL_NZ;
    ok = ok && get_quant(o, t) && get_c0(o, t);
    if (ok && !t->alias_of) {
        t->file = get_str(o, "file");
        t->xxh3_128 = get_str(o, "xxh3_128");
        ok = plain_name(t->file) && is_hash(t->xxh3_128) && get_u64(o, "offset", &t->offset) &&
             get_u64(o, "nbytes", &t->nbytes) && t->offset <= (uint64_t)INT64_MAX - t->nbytes;
        /* safetensors offsets are 63-bit: below that, adding a header's length cannot wrap */
    }
    if (!ok)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensors[%zu] (%s) is malformed", path, i,
                         t->name ? t->name : "no name");
    const char *why = sizes_disagreement(t);
    if (why)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensors[%zu] (%s): %s", path, i, t->name, why);
    return CKPT_OK;
}

static int load_tensors(struct manifest *m, const json_t *tensors, const char *path, ckpt_error *err)
{
    if (!json_is_array(tensors))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: no tensors list", path);
    m->tensor_count = json_array_size(tensors);
    m->tensors = calloc(m->tensor_count + 1, sizeof *m->tensors);
    if (!m->tensors)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < m->tensor_count; i++) {
        int rc = load_tensor(&m->tensors[i], json_array_get(tensors, i), path, i, err);
        if (rc)
            return rc;
    }
    return check_names(m, path, err);
}

int manifest_load(struct manifest *m, const char *dir, ckpt_error *err)
{
    memset(m, 0, sizeof *m);
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, MANIFEST_NAME) >= (int)sizeof path)
        return ckpt_fail(err, CKPT_ERR_ARG, "%s: path too long", dir);
    FILE *f = fopen(path, "rb");
    if (!f)
        return ckpt_fail(err, CKPT_ERR_NOT_FOUND, "%s: no manifest: not a folder written by ckpt convert", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    if (size < 0 || (uint64_t)size > MANIFEST_MAX_BYTES)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: manifest larger than 1 GiB", path);
    json_error_t jerr;
    m->root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!m->root)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: invalid JSON at line %d: %s", path, jerr.line, jerr.text);
    const json_t *opts = json_object_get(m->root, "options");
    uint64_t version = 0;
    if (!get_u64(m->root, "manifest_version", &version) || version != MANIFEST_VERSION)
        return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: manifest_version is not %d", path, MANIFEST_VERSION);
    m->target = get_str(m->root, "target");
    m->dtype = get_str(opts, "dtype");
    m->nz = get_str(opts, "nz");
    m->overflow = get_str(opts, "overflow");
    m->rules = get_str(opts, "rules");
    m->rename = get_str(opts, "rename");   /* absent in manifests older than rename sets */
    m->quant = get_str(opts, "quant");     /* ... and these in ones older than quantization */
    const json_t *c0 = json_object_get(opts, "nz_fp32_c0");
    if (c0 && (!json_is_integer(c0) || (json_integer_value(c0) != 0 && json_integer_value(c0) != 8 &&
                                        json_integer_value(c0) != 16)))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: options.nz_fp32_c0 is not 0, 8 or 16", path);
    m->nz_fp32_c0 = c0 ? (unsigned)json_integer_value(c0) : 0;
    if (json_is_null(json_object_get(m->root, "target")))
        return ckpt_fail(err, CKPT_ERR_FORMAT,
                         "%s: the manifest of a source (ckpt_manifest_create), not of a conversion: check a copy "
                         "against its files list (ckpt_verify_sums)", path);
    if (!m->target || !m->nz || !m->overflow || !get_u64(opts, "max_shard_bytes", &m->max_shard_bytes))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: target or options are missing", path);
    const json_t *ds = json_object_get(json_object_get(m->root, "source"), "deepspeed_weights");
    m->deepspeed_weights = json_string_value(ds);
    if (ds && (!m->deepspeed_weights || (strcmp(m->deepspeed_weights, "fp32") && strcmp(m->deepspeed_weights, "module"))))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: source.deepspeed_weights is neither fp32 nor module", path);
    int rc = load_files(m, json_object_get(m->root, "files"), path, err);
    if (!rc)
        rc = load_tensors(m, json_object_get(m->root, "tensors"), path, err);
    return rc;
}

void manifest_free(struct manifest *m)
{
    json_decref(m->root);
    free(m->files);
    free(m->tensors);
    memset(m, 0, sizeof *m);
}

int manifest_options(const struct manifest *m, ckpt_convert_options *opts, const char *path, ckpt_error *err)
{
    ckpt_convert_options_default(opts);
    opts->target = ckpt_target_from_name(m->target);
    if (opts->target == CKPT_TARGET_NONE)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: unknown target %s", path, m->target);
    if (m->dtype && ckpt_float_type_parse(m->dtype, &opts->dtype) != CKPT_OK)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: unknown options.dtype %s", path, m->dtype);
    opts->rules = m->rules;
    opts->rules_origin = "manifest rules";
    opts->rename = m->rename;
    opts->max_shard_bytes = m->max_shard_bytes;
    opts->nz_fp32_c0 = m->nz_fp32_c0;
    if (m->quant && !rules_parse_quant(m->quant, &opts->quant))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: unknown quant %s", path, m->quant);
    if (strcmp(m->nz, "auto") == 0)
        opts->nz = CKPT_NZ_AUTO;
    else if (strcmp(m->nz, "all") == 0)
        opts->nz = CKPT_NZ_ALL;
    else if (strcmp(m->nz, "none") == 0)
        opts->nz = CKPT_NZ_NONE;
    else
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: unknown nz mode %s", path, m->nz);
    if (strcmp(m->overflow, "saturate") == 0)
        opts->overflow = CKPT_OVERFLOW_SATURATE;
    else if (strcmp(m->overflow, "inf") == 0)
        opts->overflow = CKPT_OVERFLOW_INF;
    else if (strcmp(m->overflow, "error") == 0)
        opts->overflow = CKPT_OVERFLOW_ERROR;
    else
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: unknown overflow policy %s", path, m->overflow);
    return CKPT_OK;
}
