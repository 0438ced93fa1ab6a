/* hf_config.h: config.json for `--rename hf` of a Megatron source without one. */
#ifndef CKPT_HF_CONFIG_H
#define CKPT_HF_CONFIG_H

#include "libckpt/plan/plan.h"

#include <jansson.h>

/*
 * The config of the Hugging Face architecture the source's megatron.*
 * metadata describes (Llama or Qwen2, Qwen3, Qwen3-MoE, DeepSeek-V3), with
 * `torch_dtype` (may be NULL); *out stays NULL when the source has no such
 * metadata.  A missing required key, or weights no config of that
 * architecture can describe, is refused naming the source.
 */
int hf_config(const struct ckpt_plan *plan, const char *torch_dtype, json_t **out, ckpt_error *err);

#endif
