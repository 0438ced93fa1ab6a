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

#endif
