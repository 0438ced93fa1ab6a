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
    uint8_t *in, *out, *tiles, *load, *stage, *ref, *scales;
    size_t in_cap, out_cap, tiles_cap, load_cap, stage_cap, ref_cap, scales_cap;
};

/* One block's values as an observer sees them, in row order. */
struct stream_values {
    ckpt_dtype ref_dtype;     /* the source values, exactly: its own type, F32 for block-scaled fp8 */
    const uint8_t *ref;
    ckpt_dtype out_dtype;     /* the stored values */
    const uint8_t *out;
    uint64_t elems, line_elems;
    const float *line_scales; /* a quantized weight: out holds int8 codes, value = code * its line's scale */
};

struct stream_sink {
    /* Takes `len` stored bytes that belong at `offset` within the tensor. */
    int (*put)(struct stream_sink *sink, const uint8_t *data, uint64_t len, uint64_t offset, ckpt_error *err);
    /* Sees each block's source and stored values (not a quantized linear's scale or offset); may be NULL. */
    void (*observe)(struct stream_sink *sink, const struct stream_values *v);
    /* Called with source bytes done after each block; returns false to stop. */
    bool (*progress)(struct stream_sink *sink, uint64_t bytes);
    /* A quantized weight's row scales, lines [first, first + count), as they are computed; may be NULL. */
    void (*scales)(struct stream_sink *sink, const float *scales, uint64_t first, uint64_t count);
};

/*
 * Streams plan item `it` of `src` through `sink` with at most about `budget`
 * bytes of buffers.  Pieces arrive in order: ND ones in row blocks, NZ ones
 * a whole matrix, or a panel of its column blocks, at a time.
 */
int stream_tensor(const struct ckpt_plan *plan, const struct plan_item *it, uint64_t budget,
                  struct stream_buffers *b, struct stream_sink *sink, ckpt_cast_counts *counts, ckpt_error *err);

void stream_buffers_free(struct stream_buffers *b);

#endif
