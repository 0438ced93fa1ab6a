/*
 * rule_sets.c: the built-in rules, written in the language users write
 * (docs/rules.md): the targets, and rename sets that map one naming scheme
 * onto another.
 */
#include "rules.h"

#include "libckpt/common/error.h"
#include "rename_hf.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/*
 * The targets: the floating type every tensor gets (310P has no bf16: MindIE
 * refuses torch_dtype bfloat16 there), then the tensors the Ascend runtimes
 * keep in float32, then nothing else: both runtimes load ND tensors under
 * Hugging Face names and tile them to FRACTAL_NZ on the device themselves, so
 * no tensor is tiled unless asked (--nz, layout=).  docs/targets.md cites the
 * loader code behind each line.
 */
static const char keep_f32[] =
    "# kept in float32 by the runtimes: the MoE routing bias (vLLM, vllm-ascend, transformers)\n"
    "*.e_score_correction_bias  dtype=f32\n"
    "# quantization parameters (msModelSlim writes them as float32; fp8 block scales)\n"
    "*.weight_scale      dtype=f32\n"
    "*.weight_offset     dtype=f32\n"
    "*.weight_scale_inv  dtype=f32\n"
    "*.input_scale       dtype=f32\n"
    "*.input_offset      dtype=f32\n"
    "*.deq_scale         dtype=f32\n"
    "*.scale_bias        dtype=f32\n";

static const struct {
    ckpt_target target;
    const char *name;
    const char *dtype;   /* every floating tensor's type, unless the options say otherwise; NULL: unchanged */
} targets[] = {
    {CKPT_TARGET_ND, "nd", NULL},
    {CKPT_TARGET_ASCEND_310P, "ascend-310p", "f16"},
    {CKPT_TARGET_ASCEND_910B, "ascend-910b", "bf16"},
};

/* The option's words, in enum order. */
static const char *const float_types[] = {"target", "keep", "f16", "bf16", "f32"};

const char *ckpt_target_name(ckpt_target target)
{
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++)
        if (targets[i].target == target)
            return targets[i].name;
    return NULL;
}

ckpt_target ckpt_target_from_name(const char *name)
{
    for (size_t i = 0; name && i < sizeof targets / sizeof targets[0]; i++)
        if (strcmp(targets[i].name, name) == 0)
            return targets[i].target;
    return CKPT_TARGET_NONE;
}

const char *ckpt_float_type_name(ckpt_float_type type)
{
    return (unsigned)type < sizeof float_types / sizeof float_types[0] ? float_types[type] : NULL;
}

int ckpt_float_type_parse(const char *name, ckpt_float_type *out)
{
    for (size_t i = 0; name && i < sizeof float_types / sizeof float_types[0]; i++) {
        if (strcasecmp(float_types[i], name) == 0) {
            *out = (ckpt_float_type)i;
            return CKPT_OK;
        }
    }
    return CKPT_ERR_ARG;
}

/* The rename sets: Megatron-LM to Hugging Face (rename_hf.c), as a whole or for Llama alone. */
static const struct {
    const char *name;
    bool llama_only;
    const char *key, *value;   /* refused when the source metadata gives `key` another value */
} renames[] = {
    {"hf", false, "megatron.swiglu", "true"},   /* every architecture it writes has a gated MLP: fc1 = [gate; up] */
    {"hf-llama", true, "megatron.swiglu", "true"},
};

int ruleset_add_target(struct ruleset *rs, ckpt_target target, ckpt_float_type dtype, ckpt_error *err)
{
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        if (targets[i].target != target)
            continue;
        const char *base = dtype != CKPT_FLOAT_TARGET ? ckpt_float_type_name(dtype) : targets[i].dtype;
        char line[64];
        int rc = CKPT_OK;
        if (base) {
            snprintf(line, sizeof line, "* dtype=%s", base);
            rc = ruleset_parse(rs, line, dtype != CKPT_FLOAT_TARGET ? "the dtype option" : targets[i].name, err);
        }
        if (!rc && targets[i].dtype)
            rc = ruleset_parse(rs, keep_f32, targets[i].name, err);
        return rc;
    }
    return ckpt_fail(err, CKPT_ERR_ARG, "unknown target %d (ascend-310p, ascend-910b, nd)", (int)target);
}

const char *ruleset_target_dtype(ckpt_target target)
{
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++)
        if (targets[i].target == target)
            return targets[i].dtype;
    return NULL;
}

int ruleset_add_rename(struct ruleset *rs, const char *set, const ckpt_source *src, ckpt_error *err)
{
    for (size_t i = 0; i < sizeof renames / sizeof renames[0]; i++) {
        if (strcmp(renames[i].name, set) != 0)
            continue;
        const char *value = src ? ckpt_source_metadata_value(src, renames[i].key) : NULL;
        if (value && strcmp(value, renames[i].value) != 0)
            return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: rename set %s needs %s = %s, not %s",
                             ckpt_source_path(src), set, renames[i].key, renames[i].value, value);
        return rename_hf_add(rs, set, src, renames[i].llama_only, err);
    }
    return ckpt_fail(err, CKPT_ERR_ARG, "unknown rename set '%s' (hf, hf-llama)", set);
}
