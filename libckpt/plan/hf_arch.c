/* hf_arch.c: the Hugging Face architecture of a Megatron checkpoint; see hf_arch.h. */
#include "hf_arch.h"

#include "libckpt/common/error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

long long hf_metadata_int(const ckpt_source *src, const char *key)
{
    const char *v = ckpt_source_metadata_value(src, key);
    char *end;
    errno = 0;
    long long n = v ? strtoll(v, &end, 10) : 0;
    return v && !errno && end != v && !*end && n > 0 ? n : 0;
}

bool hf_metadata_flag(const ckpt_source *src, const char *key)
{
    const char *v = ckpt_source_metadata_value(src, key);
    return v && strcmp(v, "true") == 0;
}

int hf_arch_of(const ckpt_source *src, enum hf_arch *out, ckpt_error *err)
{
    *out = HF_ARCH_NONE;
    if (ckpt_source_metadata_value(src, "deepseek.model_parallel")) {
        *out = HF_ARCH_DEEPSEEK_MP;
        return CKPT_OK;
    }
    if (!ckpt_source_metadata_value(src, "megatron.hidden_size"))
        return CKPT_OK;
    bool experts = hf_metadata_int(src, "megatron.num_experts") > 0;
    bool shared = hf_metadata_int(src, "megatron.moe_shared_expert_intermediate_size") > 0;
    bool qk_norms = hf_metadata_flag(src, "megatron.qk_layernorm");
    if (hf_metadata_flag(src, "megatron.multi_latent_attention"))
        *out = HF_ARCH_DEEPSEEK_V3;
    else if (experts && shared)
        return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: routed experts with a shared expert beside grouped-query "
                         "attention (Qwen2-MoE) are not an architecture the rename set hf writes", ckpt_source_path(src));
    else if (experts && !qk_norms)
        return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: routed experts without q/k norms (Mixtral-like) are not an "
                         "architecture the rename set hf writes", ckpt_source_path(src));
    else
        *out = experts ? HF_ARCH_QWEN3_MOE : qk_norms ? HF_ARCH_QWEN3 : HF_ARCH_LLAMA;
    return CKPT_OK;
}

const char *hf_arch_name(enum hf_arch arch)
{
    switch (arch) {
    case HF_ARCH_LLAMA: return "Llama";
    case HF_ARCH_QWEN3: return "Qwen3";
    case HF_ARCH_QWEN3_MOE: return "Qwen3-MoE";
    case HF_ARCH_DEEPSEEK_V3: return "DeepSeek-V3";
    case HF_ARCH_DEEPSEEK_MP: return "DeepSeek-V3 (DeepSeek's inference shards)";
    default: return "none";
    }
}
