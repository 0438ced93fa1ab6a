/* plan.h: the inside of a ckpt_plan, shared by plan.c (deciding) and execute.c (doing). */
#ifndef CKPT_PLAN_H
#define CKPT_PLAN_H

#include "ckpt.h"
#include "formats/safetensors/converted.h"
#include "source_config.h"

#include <stdatomic.h>
#include <stdbool.h>


struct plan_item {
    ckpt_plan_entry pub;
    size_t source_index;
    size_t scale_index;          /* SIZE_MAX unless fp8 block dequantization */
    uint64_t *shapes;            /* one allocation: stored shape, then ND shape */
    uint64_t in_bytes;           /* source bytes it is made of (its selected rows) */
};

struct plan_shard {
    char *name;
    uint64_t data_bytes;
    size_t first_item, item_count;   /* stored items, consecutive in `items` */
};

struct ckpt_plan {
    const ckpt_source *src;
    char *dst;
    ckpt_convert_options opts;       /* string fields point into owned copies below */
    char *rules, *rules_origin, *rename;
    struct plan_item *items;
    size_t item_count, item_cap;
    struct plan_shard *shards;
    size_t shard_count;
    char **dropped;
    size_t dropped_count;
    uint64_t bytes_in, bytes_out;
    struct source_config cfg;        /* what the source's config.json says */
    uint64_t fp8_block[2];           /* rows, columns of one scale block */
    bool fp8_dequantized;            /* some weight was dequantized: config loses quantization_config */
    bool quantizes;                  /* this plan quantizes some weight */
    bool quantized;                  /* some output tensor is quantized (by this plan, or in the source): the
                                        folder gets msModelSlim's file names and description */
    ckpt_dtype float_dtype;          /* the model's floating type, for config.json's torch_dtype */
    atomic_int cancelled;
};

#endif
