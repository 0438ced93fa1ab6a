/*
 * fused_experts.c: Hugging Face routed experts fused as transformers >= 5
 * holds them, presented per expert when the source is opened with
 * CKPT_EXPERTS_SPLIT (what `--rename hf` asks for).
 *
 * transformers reads these models' per-expert checkpoints into fused
 * parameters by MergeModulelist(dim=0) then Concatenate(dim=1)
 * (src/transformers/conversion_mapping.py @ 000c33fd, the qwen2_moe entry
 * and its copies), so that `mlp.experts.gate_up_proj` is [E, 2F, H], expert
 * e's gate_proj rows then its up_proj rows (the forward's
 * linear(x, gate_up_proj[e]).chunk(2, dim=-1), src/transformers/integrations/moe.py
 * @ 0261a467 lines 25-62; models that set experts_are_transposed store
 * [E, H, 2F] and are not in the list below), and `mlp.experts.down_proj`
 * [E, H, F] is each expert's down_proj.  Both are contiguous, so expert e's
 * gate, up and down are contiguous runs of the stored bytes: views, nothing
 * copied.  fp8 experts' block scales come apart alike.  Other models
 * (Mixtral's w1/w3 names, gpt-oss's [E, H, 2F] interleaved layout) stay as
 * stored.
 */
#include "safetensors.h"

#include "libckpt/common/error.h"
#include "libckpt/io/fs.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_MAX_BYTES ((uint64_t)64 << 20)
#define MAX_EXPERTS 65536

/* conversion_mapping.py: qwen2_moe and the model types given its mapping. */
static const char *const per_expert_models[] = {
    "qwen2_moe", "deepseek_v2", "deepseek_v3", "dots1", "ernie4_5_moe", "glm4_moe", "glm4v_moe",
    "longcat_flash", "qwen3_moe", "qwen3_omni_moe", "qwen3_next", "qwen3_vl_moe", "hunyuan_v1_moe",
    "flex_olmo", "olmoe",
};

bool fused_experts_model(const struct ckpt_source *src, const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path || !fs_is_file(src->fs, path))
        return false;
    char *text;
    size_t len;
    if (fs_read_small(src->fs, path, CONFIG_MAX_BYTES, &text, &len, NULL) != CKPT_OK)
        return false;   /* the plan reads config.json too, and reports what is wrong with it */
    json_error_t jerr;
    json_t *config = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    const char *type = json_string_value(json_object_get(config, "model_type"));
    bool found = false;
    for (size_t i = 0; type && i < sizeof per_expert_models / sizeof per_expert_models[0] && !found; i++)
        found = strcmp(type, per_expert_models[i]) == 0;
    json_decref(config);
    return found;
}

static bool ends_with(const char *s, const char *suffix, size_t *head)
{
    size_t n = strlen(s), k = strlen(suffix);
    *head = n - k;
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/*
 * The fused tensors: gate_up_proj / down_proj, or their fp8 block scales
 * (`gate_up_proj_scale_inv` [E, 2F/B, H/B], transformers' FP8 experts), which
 * come apart the same way, each expert's `..._proj.weight_scale_inv`.
 */
static const struct {
    const char *suffix;
    bool gate_up;
    const char *tail;   /* after the projection's name */
} fused[] = {
    {".experts.gate_up_proj", true, ".weight"},
    {".experts.down_proj", false, ".weight"},
    {".experts.gate_up_proj_scale_inv", true, ".weight_scale_inv"},
    {".experts.down_proj_scale_inv", false, ".weight_scale_inv"},
};

int fused_experts_declare(struct ckpt_source *src, const char *name, ckpt_dtype dtype, uint32_t rank,
                          const uint64_t *shape, const struct tensor_view *view, bool *split, ckpt_error *err)
{
    size_t head = 0, f = 0;
    while (f < sizeof fused / sizeof fused[0] && !ends_with(name, fused[f].suffix, &head))
        f++;
    if (f == sizeof fused / sizeof fused[0])
        return CKPT_OK;
    bool gate_up = fused[f].gate_up;
    if (rank != 3 || shape[0] == 0 || shape[0] > MAX_EXPERTS || (gate_up && shape[1] % 2 != 0))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "tensor %s: fused experts are [experts, %s], not this shape%s", name,
                         gate_up ? "2 x intermediate, hidden" : "hidden, intermediate",
                         gate_up ? " (an odd count of rows or blocks puts gate and up in one)" : "");
    *split = true;
    const char *const parts[2][2] = {{"down_proj", NULL}, {"gate_proj", "up_proj"}};
    uint64_t rows = gate_up ? shape[1] / 2 : shape[1], part[2] = {rows, shape[2]};
    size_t esize = ckpt_dtype_size(dtype);
    int rc = CKPT_OK;
    for (uint64_t e = 0; e < shape[0] && !rc; e++) {
        for (int k = 0; k < (gate_up ? 2 : 1) && !rc; k++) {
            char out[1024];
            if (snprintf(out, sizeof out, "%.*s.experts.%llu.%s%s", (int)head, name, (unsigned long long)e,
                         parts[gate_up][k], fused[f].tail) >= (int)sizeof out)
                return ckpt_fail(err, CKPT_ERR_FORMAT, "tensor %s: its name is too long", name);
            struct tensor_view v = *view;
            uint64_t first = (e * (gate_up ? 2 : 1) + (uint64_t)k) * rows * shape[2];   /* < the tensor's count */
            v.storage_offset += first * esize;
            v.storage_bytes = rows * shape[2] * esize;
            rc = source_add_tensor(src, out, dtype, 2, part, &v, err);
        }
    }
    return rc;
}
