/* llama_config.h: config.json for `--rename hf-llama` of a Megatron source without one. */
#ifndef CKPT_LLAMA_CONFIG_H
#define CKPT_LLAMA_CONFIG_H

#include "libckpt/plan/plan.h"

#include <jansson.h>

/*
 * A LlamaForCausalLM (or, for q/k/v biases alone, Qwen2ForCausalLM) config
 * from the source's megatron.* metadata, with
 * `torch_dtype` (may be NULL); *out stays NULL when the source has no such
 * metadata.  A missing or malformed required key is a format error.
 */
int llama_config(const struct ckpt_plan *plan, const char *torch_dtype, json_t **out, ckpt_error *err);

/* config[name] = the positive integer metadata `key` (required: a format error names the key otherwise). */
int config_set_int(json_t *config, const char *name, const ckpt_source *src, const char *key, ckpt_error *err);

/* config[name] = the positive real metadata `key`, when the source records it. */
int config_set_real(json_t *config, const char *name, const ckpt_source *src, const char *key, ckpt_error *err);

/* True when the plan writes a tensor called `name`. */
bool config_has_output(const struct ckpt_plan *plan, const char *name);

#endif
