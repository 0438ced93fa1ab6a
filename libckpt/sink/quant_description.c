/* quant_description.c: see quant_description.h. */
#include "quant_description.h"

#include "libckpt/common/error.h"
#include "libckpt/plan/quant_select.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/*
 * msModelSlim's QUANT_TYPE_PRIORITY (ascendv1.py L167-181): the folder's
 * model_quant_type is the type of highest rank among its tensors.
 */
static int rank_of(const char *type)
{
    static const char *const priority[] = {"FLOAT", "W16A16S", "W8A16", "W8A8_DYNAMIC", "W8A8_MIX", "W8A8",
                                           "WFP8AFP8_DYNAMIC", "W8A8_MXFP8", "W4A8_MXFP", "W4A4_DYNAMIC",
                                           "W4A4_MXFP4", "W4A4_MXFP4_DUALSCALE", "W4A4_MXFP4_SVD"};
    for (size_t i = 0; i < sizeof priority / sizeof priority[0]; i++)
        if (strcmp(type, priority[i]) == 0)
            return (int)i;
    return -1;
}

/* group_size a quantized source's description gave (a per-group source keeps its groups), else 0. */
static json_int_t group_size_of(const struct ckpt_plan *plan)
{
    const char *v = ckpt_source_metadata_value(plan->src, "msmodelslim.group_size");
    return v ? strtoll(v, NULL, 10) : 0;   /* the reader checked it is a small integer */
}

int write_quant_description(struct outdir *o, const struct ckpt_plan *plan, struct file_records *files,
                            ckpt_error *err)
{
    json_t *doc = json_object();
    const char *model_type = "FLOAT";
    for (size_t i = 0; i < plan->item_count && doc; i++) {
        const char *type = quant_type_of(plan, &plan->items[i]);
        if (rank_of(type) > rank_of(model_type))
            model_type = type;
        if (json_object_set_new(doc, plan->items[i].pub.name, json_string(type)) != 0) {
            json_decref(doc);
            doc = NULL;
        }
    }
    /*
     * A model with tied embeddings has no lm_head.weight, but vLLM still builds
     * an lm_head module and vllm-ascend looks its type up (modelslim_config.py
     * L431-470 raises on a missing key); msModelSlim writes the tied copy.
     */
    if (doc && json_object_get(doc, "model.embed_tokens.weight") && !json_object_get(doc, "lm_head.weight") &&
        json_object_set_new(doc, "lm_head.weight", json_string("FLOAT")) != 0) {
        json_decref(doc);
        doc = NULL;
    }
    if (doc && (json_object_set_new(doc, "version", json_string("1.0.0")) ||
                json_object_set_new(doc, "model_quant_type", json_string(model_type)) ||
                json_object_set_new(doc, "metadata", json_object()) ||
                json_object_set_new(doc, "group_size", json_integer(group_size_of(plan))) ||
                json_object_set_new(doc, "optional", json_object()))) {
        json_decref(doc);
        doc = NULL;
    }
    if (!doc)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory writing %s", QUANT_DESCRIPTION_FILE);
    XXH128_hash_t hash;
    uint64_t size;
    int rc = outdir_write_json(o, QUANT_DESCRIPTION_FILE, doc, JSON_INDENT(2), &hash, &size, err);
    return rc ? rc : file_records_add(files, QUANT_DESCRIPTION_FILE, size, hash, err);
}
