/* rename_hf.h: the `--rename hf` rules (rename_hf.c, rename_deepseek.c), which rule_sets.c offers as `hf` and `hf-llama`. */
#ifndef CKPT_RENAME_HF_H
#define CKPT_RENAME_HF_H

#include "rules.h"

#include <stdbool.h>

/*
 * Appends the rules that rename a Megatron source's tensors to the Hugging
 * Face architecture its metadata describes (hf_arch.h); with `llama_only`
 * (hf-llama) a source of any other architecture is refused.  `src` may be
 * NULL (the rules of every architecture but multi-latent attention).
 */
int rename_hf_add(struct ruleset *rs, const char *set, const ckpt_source *src, bool llama_only, ckpt_error *err);

/* Appends the rules that rename DeepSeek-V3's inference names (rename_deepseek.c) to Hugging Face's. */
int rename_deepseek_add(struct ruleset *rs, const char *set, ckpt_error *err);

#endif
