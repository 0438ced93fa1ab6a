/*
 * source_config.h: what a plan needs from the source folder's config.json:
 * the fp8 block size, the type the weights load in, and the number of
 * decoder layers.  The file is input like any other: a field of the wrong
 * type or out of range is refused, naming the file.
 */
#ifndef CKPT_PLAN_SOURCE_CONFIG_H
#define CKPT_PLAN_SOURCE_CONFIG_H

#include "ckpt.h"

#include <stdbool.h>

struct source_config {
    uint64_t fp8_block[2];     /* quantization_config.weight_block_size, else 128 x 128 */
    ckpt_dtype torch_dtype;    /* torch_dtype (or dtype): F16, BF16 or F32; CKPT_DTYPE_INVALID when absent */
    uint64_t hidden_layers;    /* num_hidden_layers (a Megatron source's megatron.num_layers); 0 when absent */
};

/* The folder's config.json when the source is a folder holding one as a regular file (not a link). */
int source_config_read(const ckpt_source *src, struct source_config *cfg, ckpt_error *err);

#endif
