/*
 * rule_sets.c: the built-in rules, written in the language users write
 * (docs/rules.md): the targets, and rename sets that map one naming scheme
 * onto another.
 */
#include "rules.h"

#include "libckpt/common/error.h"
#include "rename_hf.h"

#include <string.h>

static const struct {
    const char *name;
    const char *rules;
} targets[] = {
    {"nd", ""},
    {"ascend-310p",
     "# 310P computes in fp16 only; matmul weights are tiled FRACTAL_NZ as stored ([out, in])\n"
     "*               dtype=f16\n"
     "*.weight        layout=nz\n"
     "*embed*         layout=nd\n"
     "*norm*          layout=nd\n"
     "*lm_head*       layout=nd\n"
     "*output_layer*  layout=nd\n"},
    {"ascend-910b",
     "# 910B computes in bf16 and fp16; wider and fp8 types become bf16\n"
     "* from=f32      dtype=bf16\n"
     "* from=f8_e4m3  dtype=bf16\n"
     "* from=f8_e5m2  dtype=bf16\n"},
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

int ruleset_add_target(struct ruleset *rs, const char *target, ckpt_error *err)
{
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++)
        if (strcmp(targets[i].name, target) == 0)
            return ruleset_parse(rs, targets[i].rules, target, err);
    return ckpt_fail(err, CKPT_ERR_ARG, "unknown target '%s' (ascend-310p, ascend-910b, nd)", target);
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
