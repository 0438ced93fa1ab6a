/*
 * hf_arch.h: which Hugging Face architecture a Megatron checkpoint is, from
 * the megatron.* metadata its reader recorded (its training arguments), for
 * `--rename hf`: the rules it needs (rule_sets.c) and the config.json that
 * describes it (libckpt/sink/hf_config.c).
 */
#ifndef CKPT_HF_ARCH_H
#define CKPT_HF_ARCH_H

#include "ckpt.h"

#include <stdbool.h>

enum hf_arch {
    HF_ARCH_NONE,         /* not a Megatron source: nothing to rename */
    HF_ARCH_LLAMA,        /* Llama, or Qwen2 when only q/k/v have biases (decided by the biases written) */
    HF_ARCH_QWEN3,        /* grouped-query attention with per-head q/k norms */
    HF_ARCH_QWEN3_MOE,    /* the same with routed experts and no shared expert */
    HF_ARCH_DEEPSEEK_V3,  /* multi-latent attention, routed and shared experts, MTP layers */
    HF_ARCH_DEEPSEEK_MP,  /* DeepSeek-V3's own inference shards (deepseek.* metadata): renamed only */
};

/*
 * The architecture of `src`: DeepSeek-V3's inference shards give
 * HF_ARCH_DEEPSEEK_MP; of a Megatron source, multi_latent_attention gives DeepSeek-V3;
 * routed experts with q/k norms and no shared expert Qwen3-MoE; q/k norms
 * alone Qwen3; otherwise Llama.  MoE layouts none of them has (a shared
 * expert beside grouped-query attention, as Qwen2-MoE; experts without q/k
 * norms, as Mixtral) are refused, naming the source.
 */
int hf_arch_of(const ckpt_source *src, enum hf_arch *out, ckpt_error *err);

/* "Llama", "Qwen3", "Qwen3-MoE", "DeepSeek-V3" (for messages). */
const char *hf_arch_name(enum hf_arch arch);

/* The metadata value `key` as a positive integer, or 0 when absent or not one. */
long long hf_metadata_int(const ckpt_source *src, const char *key);

/* True when the metadata value `key` is "true". */
bool hf_metadata_flag(const ckpt_source *src, const char *key);

#endif
