/*
 * megatron_args.h: a Megatron-LM model's shape, from the `args` namespace
 * its checkpoints pickle, recorded as the source metadata that rule sets
 * read (`${megatron.hidden_size}` ...).  Shared by every reader of a
 * Megatron checkpoint (legacy model_optim_rng.pt, torch_dist common.pt).
 */
#ifndef CKPT_MEGATRON_ARGS_H
#define CKPT_MEGATRON_ARGS_H

#include "libckpt/catalog/source.h"

/*
 * Reads `args.*` and `iteration` among the objects of `from` (a torch.save
 * file read by the torch reader, which flattens argparse.Namespace to
 * dotted names) and records on `src`, as decimal strings: megatron.num_layers,
 * hidden_size, ffn_hidden_size, num_attention_heads, num_query_groups (the
 * head count without grouped-query attention), kv_channels (hidden / heads
 * when absent), heads_per_group, padded_vocab_size, vocab_size (the padded
 * size when args lack it), max_position_embeddings, swiglu ("true" or
 * "false"), and when present norm_epsilon, rotary_base,
 * tensor_model_parallel_size, pipeline_model_parallel_size, iteration.
 * Records nothing when `from` has no args; refuses args whose shape is
 * inconsistent (heads not dividing the hidden size or the query groups),
 * naming `file`.
 */
int megatron_args_record(struct ckpt_source *src, const struct ckpt_source *from, const char *file,
                         ckpt_error *err);

/*
 * The same for args flattened under `prefix` ("0." for torch_dist's
 * common_state, a list of one dict).  Also recorded when present: the
 * expert-parallel sizes; num_experts, moe_ffn_hidden_size,
 * moe_shared_expert_intermediate_size, moe_router_topk,
 * moe_router_num_groups, moe_router_group_topk,
 * moe_router_topk_scaling_factor, moe_router_score_function,
 * moe_router_enable_expert_bias, moe_shared_expert_gate and moe_layers (a
 * 0 or 1 per layer from moe_layer_freq); multi_latent_attention,
 * q_lora_rank, kv_lora_rank, qk_head_dim, qk_pos_emb_head_dim, v_head_dim;
 * qk_layernorm, add_qkv_bias, add_bias_linear; mtp_num_layers; rope_type,
 * position_embedding_type, rotary_scaling_factor, mscale, mscale_all_dim,
 * original_max_position_embeddings, beta_fast, beta_slow (and their yarn_
 * spellings).
 */
int megatron_args_record_under(struct ckpt_source *src, const struct ckpt_source *from, const char *prefix,
                               const char *file, ckpt_error *err);

#endif
