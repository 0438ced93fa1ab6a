/*
 * stream.h: one tensor's way from source bytes to stored bytes, in bounded
 * row blocks: read lines, cast them (or dequantize fp8), tile them when NZ,
 * and hand each piece to a sink at its offset within the stored tensor.
 *
 * Convert's sink writes the pieces into the shard; verify's sink compares
 * them with what the shard holds.  Sharing this path is what lets
 * `verify --against` prove a conversion: it recomputes exactly what convert
 * computed.
 */
#ifndef CKPT_STREAM_H
#define CKPT_STREAM_H

#include "libckpt/catalog/source.h"
#include "libckpt/kernels/transform.h"
#include "libckpt/plan/plan.h"

struct stream_buffers {
    uint8_t *in, *out, *tiles;
    size_t in_cap, out_cap, tiles_cap;
};

struct stream_sink {
    /* Takes `len` stored bytes that belong at `offset` within the tensor. */
    int (*put)(struct stream_sink *sink, const uint8_t *data, uint64_t len, uint64_t offset, ckpt_error *err);
    /* Sees each block's source and converted values in row order; may be NULL. */
    void (*observe)(struct stream_sink *sink, const uint8_t *in, const uint8_t *out, uint64_t elems);
    /* Called with source bytes done after each block; returns false to stop. */
    bool (*progress)(struct stream_sink *sink, uint64_t bytes);
};

/*
 * Streams plan item `it` of `src` through `sink` with at most about `budget`
 * bytes of buffers.  ND pieces arrive in order; NZ pieces in row-block order.
 */
int stream_tensor(const struct ckpt_plan *plan, const struct plan_item *it, uint64_t budget,
                  struct stream_buffers *b, struct stream_sink *sink, ckpt_cast_counts *counts, ckpt_error *err);

void stream_buffers_free(struct stream_buffers *b);

#endif
