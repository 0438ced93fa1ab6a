/*
 * quant_select.h: which output tensors `--quant` quantizes, and the rule
 * the runtimes impose on fused linears (docs/quantization.md).
 *
 * The built-in selection is every decoder-layer projection by its Hugging
 * Face name: attention q/k/v/o, DeepSeek's MLA projections, the MLP's
 * gate/up/down, routed and shared experts.  Embeddings, norms, the MoE
 * router (`mlp.gate.weight`) and `lm_head` are not in it, nor the layers
 * past config.json's num_hidden_layers (DeepSeek's multi-token-prediction
 * layer, which vllm-ascend loads unquantized).
 */
#ifndef CKPT_PLAN_QUANT_SELECT_H
#define CKPT_PLAN_QUANT_SELECT_H

#include "plan.h"
#include "source_config.h"

/* True when the built-in selection quantizes the output tensor `name`. */
bool quant_selects(const char *name, const struct source_config *cfg);

/*
 * The msModelSlim type an output tensor is described with: the one this
 * plan quantizes it to, else the one a quantized source's description gives
 * it, else "FLOAT".
 */
const char *quant_type_of(const struct ckpt_plan *plan, const struct plan_item *it);

/*
 * Refuses (CKPT_ERR_ARG) a plan where linears that vllm-ascend fuses into
 * one (q/k/v; gate/up; MLA's q_a/kv_a; all routed experts of a layer) do not
 * share one type, naming two that differ.
 */
int quant_check_fused(const struct ckpt_plan *plan, ckpt_error *err);

#endif
