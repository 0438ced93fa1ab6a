/* manifest.c: writing ckpt-manifest.json; see manifest.h and docs/manifest.md. */
#include "manifest.h"

#include "libckpt/catalog/source.h"
#include "libckpt/common/error.h"
#include "libckpt/plan/rules.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

const char *layout_name(ckpt_layout layout)
{
    return layout == CKPT_LAYOUT_FRACTAL_NZ ? "FRACTAL_NZ" : "ND";
}

static json_t *shape_json(const uint64_t *shape, uint32_t rank)
{
    json_t *a = json_array();
    for (uint32_t d = 0; d < rank && a; d++)
        json_array_append_new(a, json_integer((json_int_t)shape[d]));
    return a;
}

json_t *device_json(const ckpt_plan_entry *e)
{
    const char *acl_name;
    int acl_code = acl_dtype_of(e->dtype, &acl_name);
    return json_pack("{s:s, s:o, s:b, s:i, s:i, s:s?, s:o, s:s, s:o, s:I, s:I}", "layout", layout_name(e->layout),
                     "nd_shape", shape_json(e->nd_shape, e->nd_rank), "transposed", e->transposed, "acl_format",
                     ACL_FORMAT_FRACTAL_NZ_CODE, "acl_dtype", acl_code, "acl_dtype_name", acl_name, "view_shape",
                     shape_json(e->nd_shape, e->nd_rank), "orientation", e->transposed ? "in,out" : "out,in",
                     "storage_shape", shape_json(e->shape, e->rank), "c0", (json_int_t)e->nz_c0, "storage_nbytes",
                     (json_int_t)e->nbytes);
}

int layout_metadata(const ckpt_plan_entry *e, char **key, char **value)
{
    json_t *o = device_json(e);
    *value = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    size_t n = strlen(LAYOUT_KEY_PREFIX) + strlen(e->name) + 1;
    *key = malloc(n);
    if (!*key || !*value) {
        free(*key);
        free(*value);
        return -1;
    }
    memcpy(*key, LAYOUT_KEY_PREFIX, sizeof LAYOUT_KEY_PREFIX - 1);
    memcpy(*key + sizeof LAYOUT_KEY_PREFIX - 1, e->name, strlen(e->name) + 1);
    return 0;
}

json_t *files_json(const struct file_records *files)
{
    json_t *a = json_array();
    for (size_t i = 0; i < files->count && a; i++) {
        char hex[33];
        hash_hex(files->items[i].hash, hex);
        json_array_append_new(a, json_pack("{s:s, s:I, s:s}", "path", files->items[i].name, "size",
                                           (json_int_t)files->items[i].size, "xxh3_128", hex));
    }
    return a;
}

const char *quant_role_name(ckpt_quant_role role)
{
    switch (role) {
    case CKPT_QUANT_ROLE_WEIGHT: return "weight";
    case CKPT_QUANT_ROLE_SCALE: return "scale";
    case CKPT_QUANT_ROLE_OFFSET: return "offset";
    default: return "none";
    }
}

static json_t *tensor_json(const struct ckpt_plan *plan, size_t i, const struct tensor_record *rec)
{
    const ckpt_plan_entry *e = &plan->items[i].pub;
    json_t *o = json_pack("{s:s, s:s, s:o, s:s, s:o, s:b, s:{s:s, s:s}}", "name", e->name, "dtype",
                          ckpt_dtype_name(e->dtype), "shape", shape_json(e->shape, e->rank), "layout",
                          layout_name(e->layout), "nd_shape", shape_json(e->nd_shape, e->nd_rank), "transposed",
                          e->transposed, "source", "name", e->source_name, "dtype", ckpt_dtype_name(e->source_dtype));
    if (!o)
        return NULL;
    if (e->rows.groups)
        json_object_set_new(json_object_get(o, "source"), "rows",
                            json_pack("{s:I, s:I, s:I, s:I}", "groups", (json_int_t)e->rows.groups, "group_rows",
                                      (json_int_t)e->rows.group_rows, "offset", (json_int_t)e->rows.offset, "count",
                                      (json_int_t)e->rows.count));
    if (e->quant_role != CKPT_QUANT_ROLE_NONE)
        json_object_set_new(o, "quant", json_pack("{s:s, s:s, s:s}", "type", ckpt_quant_name(e->quant), "role",
                                                  quant_role_name(e->quant_role), "load_dtype",
                                                  ckpt_dtype_name(e->load_dtype)));
    if (e->layout == CKPT_LAYOUT_FRACTAL_NZ)
        json_object_set_new(o, "device", device_json(e));
    if (e->alias_of) {
        json_object_set_new(o, "alias_of", json_string(e->alias_of));
        return o;
    }
    char hex[33];
    hash_hex(rec->hash, hex);
    json_object_set_new(o, "file", json_string(plan->shards[e->shard].name));
    json_object_set_new(o, "offset", json_integer((json_int_t)e->offset));
    json_object_set_new(o, "nbytes", json_integer((json_int_t)e->nbytes));
    json_object_set_new(o, "xxh3_128", json_string(hex));
    json_object_set_new(o, "counts", json_pack("{s:I, s:I, s:I}", "overflowed", (json_int_t)rec->counts.overflowed,
                                               "subnormal", (json_int_t)rec->counts.subnormal, "flushed",
                                               (json_int_t)rec->counts.flushed));
    if (e->scale_name)
        json_object_set_new(o, "scale", json_string(e->scale_name));
    return o;
}

static const char *overflow_name(ckpt_overflow o)
{
    return o == CKPT_OVERFLOW_INF ? "inf" : o == CKPT_OVERFLOW_ERROR ? "error" : "saturate";
}

static const char *nz_name(ckpt_nz_mode m)
{
    return m == CKPT_NZ_ALL ? "all" : m == CKPT_NZ_NONE ? "none" : "auto";
}

/*
 * A source path as the manifest records it: relative to the folder that
 * holds the source ("llama-7b/model-00001-of-00002.safetensors"), never the
 * converting machine's absolute path; a name outside it keeps its base name.
 */
static const char *portable_name(const char *name, const char *parent, size_t parent_len)
{
    if (parent_len && strncmp(name, parent, parent_len) == 0 && name[parent_len] == '/')
        return name + parent_len + 1;
    if (!parent_len && name[0] != '/')
        return name;
    const char *slash = strrchr(name, '/');
    return slash && slash[1] ? slash + 1 : name;
}

static json_t *source_json(const struct ckpt_plan *plan, const struct file_records *files)
{
    const char *root = ckpt_source_path(plan->src);
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/')
        n--;
    size_t parent_len = n;   /* the folder holding the source: root up to its last slash */
    while (parent_len > 0 && root[parent_len - 1] != '/')
        parent_len--;
    char *parent = strndup(root, parent_len ? parent_len - 1 : 0);
    char *shown = strndup(root + parent_len, n - parent_len);
    json_t *list = json_array();
    for (size_t i = 0; parent && list && i < files->count; i++) {
        char hex[33];
        hash_hex(files->items[i].hash, hex);
        json_array_append_new(list, json_pack("{s:s, s:I, s:s}", "path",
                                              portable_name(files->items[i].name, parent, strlen(parent)), "size",
                                              (json_int_t)files->items[i].size, "xxh3_128", hex));
    }
    json_t *o = parent && shown && list ? json_pack("{s:s, s:s, s:o}", "path", *shown ? shown : "/", "format",
                                                    ckpt_source_format(plan->src), "files", list)
                                        : NULL;
    if (!o)
        json_decref(list);
    free(parent);
    free(shown);
    return o;
}

int manifest_write(struct outdir *o, const struct ckpt_plan *plan, const struct file_records *source_files,
                   const struct file_records *output_files, const struct tensor_record *tensors, double seconds,
                   ckpt_error *err)
{
    (void)seconds;   /* left out on purpose: the same conversion gives the same manifest */
    json_t *tensor_list = json_array(), *dropped = json_array();
    for (size_t i = 0; i < plan->item_count && tensor_list; i++)
        json_array_append_new(tensor_list, tensor_json(plan, i, &tensors[i]));
    for (size_t i = 0; i < plan->dropped_count && dropped; i++)
        json_array_append_new(dropped, json_string(plan->dropped[i]));
    const ckpt_convert_options *opt = &plan->opts;
    json_t *doc = json_pack(
        "{s:i, s:s, s:o, s:s, s:{s:s?, s:s, s:s, s:I, s:s?, s:s?, s:[I, I], s:s, s:i}, s:o, s:o, s:o}",
        "manifest_version", MANIFEST_VERSION, "tool", "libckpt " CKPT_VERSION_STRING, "source",
        source_json(plan, source_files), "target", ckpt_target_name(opt->target), "options", "dtype",
        opt->dtype == CKPT_FLOAT_TARGET ? NULL : ckpt_float_type_name(opt->dtype), "nz", nz_name(opt->nz), "overflow",
        overflow_name(opt->overflow), "max_shard_bytes", (json_int_t)opt->max_shard_bytes, "rules", opt->rules,
        "rename", opt->rename, "fp8_block", (json_int_t)plan->fp8_block[0], (json_int_t)plan->fp8_block[1], "quant",
        rules_quant_word(opt->quant), "nz_fp32_c0", (int)opt->nz_fp32_c0, "files",
        files_json(output_files), "dropped", dropped, "tensors", tensor_list);
    /* how a DeepSpeed source was opened decides its tensors: verify --against opens it the same way */
    if (doc && strcmp(ckpt_source_format(plan->src), "deepspeed") == 0)
        json_object_set_new(json_object_get(doc, "source"), "deepspeed_weights",
                            json_string(plan->src->deepspeed_weights == CKPT_DEEPSPEED_MODULE ? "module" : "fp32"));
    return outdir_write_json(o, MANIFEST_NAME, doc, JSON_INDENT(1), NULL, NULL, err);
}
