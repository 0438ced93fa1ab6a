/*
 * shard_header.h: the safetensors header convert writes at the start of
 * each output shard, built from the plan alone, so that verify --against
 * can demand the same bytes (docs/verify.md).
 */
#ifndef CKPT_SHARD_HEADER_H
#define CKPT_SHARD_HEADER_H

#include "libckpt/plan/plan.h"

/*
 * The JSON header of shard `s` (malloc'd, *len bytes, padded; the 8-byte
 * length before it is not included) and the size of the data buffer after it.
 */
int shard_header_build(const struct ckpt_plan *plan, size_t s, char **header, size_t *len, uint64_t *data_bytes,
                       ckpt_error *err);

#endif
