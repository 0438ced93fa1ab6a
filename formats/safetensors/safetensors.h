/* safetensors.h: calls shared by the safetensors reader's parts. */
#ifndef CKPT_SAFETENSORS_H
#define CKPT_SAFETENSORS_H

#include "libckpt/catalog/source.h"

/* Maps one .safetensors file, validates its header and declares its tensors. */
int safetensors_load_file(struct ckpt_source *src, const char *path, ckpt_error *err);

/*
 * The header for `tensors` in order, with `metadata` as __metadata__: JSON
 * padded with spaces to a multiple of 8 bytes (malloc'd, *out_len bytes), and
 * the data size it describes.  `path` names the file in messages.
 */
int safetensors_header_build(const char *path, const ckpt_tensor *tensors, size_t tensor_count,
                             const ckpt_kv *metadata, size_t metadata_count, char **out, size_t *out_len,
                             uint64_t *data_bytes, ckpt_error *err);

/*
 * Whether the safetensors folder `dir` holds a model whose fused experts
 * fused_experts_declare splits: config.json's model_type is one transformers
 * reads per expert (fused_experts.c).
 */
bool fused_experts_model(const struct ckpt_source *src, const char *dir);

/*
 * Declares tensor `name` (a plain view) as its experts when it is a fused
 * `*.experts.gate_up_proj` [E, 2F, H] or `*.experts.down_proj` [E, H, F],
 * or the fp8 block scales of one (setting *split); otherwise leaves it to
 * the caller.
 */
int fused_experts_declare(struct ckpt_source *src, const char *name, ckpt_dtype dtype, uint32_t rank,
                          const uint64_t *shape, const struct tensor_view *view, bool *split, ckpt_error *err);

#endif
