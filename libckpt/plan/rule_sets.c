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
    const char *name;
    const char *dtype;   /* every floating tensor's type, unless --dtype says otherwise; NULL: unchanged */
} targets[] = {
    {"nd", NULL},
    {"ascend-310p", "f16"},
    {"ascend-910b", "bf16"},
};

/* The rename sets: Megatron-LM to Hugging Face (rename_hf.c), as a whole or for Llama alone. */
static const struct {
    const char *name;
    bool llama_only;
    const char *key, *value;   /* refused when the source metadata gives `key` another value */
} renames[] = {
    {"hf", false, "megatron.swiglu", "true"},   /* every architecture it writes has a gated MLP: fc1 = [gate; up] */
    {"hf-llama", true, "megatron.swiglu", "true"},
};

int ruleset_add_target(struct ruleset *rs, const char *target, const char *dtype, ckpt_error *err)
{
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        if (strcmp(targets[i].name, target) != 0)
            continue;
        const char *base = dtype ? dtype : targets[i].dtype;
        char line[64];
        int rc = CKPT_OK;
        if (base) {
            snprintf(line, sizeof line, "* dtype=%s", base);
            rc = ruleset_parse(rs, line, dtype ? "--dtype" : target, err);
        }
        if (!rc && targets[i].dtype)
            rc = ruleset_parse(rs, keep_f32, target, err);
        return rc;
    }
    return ckpt_fail(err, CKPT_ERR_ARG, "unknown target '%s' (ascend-310p, ascend-910b, nd)", target);
}

const char *ruleset_target_dtype(const char *target)
{
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++)
        if (strcmp(targets[i].name, target) == 0)
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
