/* stream.c: see stream.h. */
#include "stream.h"

#include "libckpt/common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Source bytes per block at most, whatever the budget: a block is read,
 * converted and written while it is still in the core's cache.  Blocks of
 * 8 MiB went through memory three times; at 256 MiB bf16 -> f16 they cost
 * 468 ms of CPU against 263 ms for blocks of 1 MiB (perf stat, 4 runs).
 */
#define CACHE_BLOCK ((uint64_t)1 << 20)

struct job {
    const struct ckpt_plan *plan;
    const struct plan_item *it;
    const struct tensor_entry *te;
    uint64_t lines;           /* lines of the item, in source orientation (its selected rows) */
    uint64_t row_lines;       /* lines per row of dim 0, for row selections */
    struct transform tf;
    size_t out_esize;
    uint64_t out_line_elems;  /* stored elements per line: line_elems, or 1 for a quantized linear's scale */
    uint64_t budget;
    struct stream_buffers *b;
    struct stream_sink *sink;
    ckpt_cast_counts *counts;
    bool again;               /* lines read once more for another NZ panel: already observed */
};

static int ensure(uint8_t **buf, size_t *cap, uint64_t need, ckpt_error *err)
{
    if (need <= *cap)
        return CKPT_OK;
    if (need > SIZE_MAX)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "a block of %llu bytes does not fit in memory", (unsigned long long)need);
    free(*buf);
    *cap = 0;
    if (!(*buf = malloc((size_t)need)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory for a %llu-byte block", (unsigned long long)need);
    *cap = (size_t)need;
    return CKPT_OK;
}

void stream_buffers_free(struct stream_buffers *b)
{
    free(b->in);
    free(b->out);
    free(b->tiles);
    free(b->load);
    free(b->stage);
    free(b->ref);
    free(b->scales);
    *b = (struct stream_buffers){0};
}

/*
 * The source line that item line `line` comes from, and in *run how many
 * item lines from there on follow it in the source (to the end of its group).
 */
static uint64_t source_line(const struct job *j, uint64_t line, uint64_t *run)
{
    const ckpt_row_select *s = &j->it->pub.rows;
    if (!s->groups) {
        *run = j->lines - line;
        return line;
    }
    uint64_t row = line / j->row_lines, within = line % j->row_lines;
    uint64_t group = row / s->count, k = row % s->count;
    *run = (s->count - k) * j->row_lines - within;
    return (group * s->group_rows + s->offset + k) * j->row_lines + within;
}

/* The buffers a block of `count` lines needs besides the source lines and the output. */
static int ensure_work(struct job *j, uint64_t count, bool want_ref, ckpt_error *err)
{
    struct stream_buffers *b = j->b;
    const struct transform *t = &j->tf;
    uint64_t elems = count * t->line_elems;
    int rc = CKPT_OK;
    if (t->role != CKPT_QUANT_ROLE_NONE) {
        if (t->scales || t->from != t->load)
            rc = ensure(&b->load, &b->load_cap, elems * ckpt_dtype_size(t->load), err);
        if (!rc && t->scales && t->load != CKPT_DTYPE_BF16)
            rc = ensure(&b->stage, &b->stage_cap, elems * 2, err);
        if (!rc && t->role == CKPT_QUANT_ROLE_WEIGHT)
            rc = ensure(&b->scales, &b->scales_cap, count * sizeof(float), err);
    }
    if (!rc && want_ref && t->scales)
        rc = ensure(&b->ref, &b->ref_cap, elems * sizeof(float), err);
    return rc;
}

/* Converts one run of lines read into `in`: cast, dequantize, or load and quantize. */
static int convert_run(struct job *j, const uint8_t *in, uint8_t *out, uint64_t done, uint64_t src, uint64_t row0,
                       uint64_t run, bool want_ref, ckpt_error *err)
{
    struct stream_buffers *b = j->b;
    const struct transform *t = &j->tf;
    uint64_t elems = t->line_elems;
    int rc = CKPT_OK;
    if (t->role == CKPT_QUANT_ROLE_NONE) {
        rc = transform_lines(t, in, out, row0, run, j->counts, err);
    } else {
        const void *loaded;
        uint64_t bad;
        /* no load buffer when the weight is quantized from its source type as read */
        uint8_t *load = b->load ? b->load + done * elems * ckpt_dtype_size(t->load) : NULL;
        rc = transform_load(t, in, b->stage, load, row0, run, &loaded, j->counts, err);
        if (!rc && transform_quant(t, loaded, out, (float *)b->scales + done, run, &bad) != CKPT_OK)
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: row %llu holds a NaN or an infinity, which no int8 "
                           "scale represents", ckpt_source_path(j->plan->src), j->te->pub.name,
                           (unsigned long long)(src + bad));
    }
    if (!rc && want_ref && t->scales)   /* the exact source values, for measuring errors */
        rc = ckpt_fp8_dequant(t->from, in, run, elems, row0, t->scales, t->scale_rows, t->scale_cols, t->block_rows,
                              t->block_cols, CKPT_DTYPE_F32, b->ref + done * elems * sizeof(float),
                              CKPT_OVERFLOW_INF, NULL, err);
    return rc;
}

/*
 * Reads item lines [first, first + count), gathered from their source lines,
 * and converts them; *out points at the converted bytes.  `row0` is the
 * first line's row within its matrix (for fp8 scales); a selected run's rows
 * are its source lines (fp8 weights are 2-D).
 */
static int read_converted(struct job *j, uint64_t first, uint64_t count, uint64_t row0, uint8_t **out,
                          ckpt_error *err)
{
    struct stream_buffers *b = j->b;
    uint64_t in_line = view_line_bytes(&j->te->pub), out_line = j->out_line_elems * j->out_esize;
    uint64_t elems = count * j->tf.line_elems;
    bool copy = j->tf.from == j->tf.to && !j->tf.scales && j->tf.role == CKPT_QUANT_ROLE_NONE;
    bool want_ref = j->sink->observe && j->tf.role <= CKPT_QUANT_ROLE_WEIGHT && !j->again;
    int rc = ensure(&b->in, &b->in_cap, count * in_line, err);
    if (!rc && !copy)
        rc = ensure(&b->out, &b->out_cap, count * out_line, err);
    if (!rc)
        rc = ensure_work(j, count, want_ref, err);
    for (uint64_t done = 0, run; done < count && !rc; done += run) {
        uint64_t src = source_line(j, first + done, &run);
        if (run > count - done)
            run = count - done;
        rc = view_read_lines(j->plan->src, j->te, src, run, b->in + done * in_line, err);
        if (!rc && !copy)
            rc = convert_run(j, b->in + done * in_line, b->out + done * out_line, done, src,
                             j->it->pub.rows.groups ? src : row0 + done, run, want_ref, err);
    }
    if (rc)
        return rc;
    *out = copy ? b->in : b->out;
    if (j->tf.role == CKPT_QUANT_ROLE_WEIGHT && j->sink->scales && !j->again)
        j->sink->scales(j->sink, (const float *)b->scales, first, count);
    if (want_ref) {
        struct stream_values v = {j->tf.scales ? CKPT_DTYPE_F32 : j->tf.from, j->tf.scales ? b->ref : b->in,
                                  j->tf.to, *out, elems, j->tf.line_elems,
                                  j->tf.role == CKPT_QUANT_ROLE_WEIGHT ? (const float *)b->scales : NULL};
        j->sink->observe(j->sink, &v);
    }
    return CKPT_OK;
}

/* A quantized linear's offset: zeros (msModelSlim's symmetric weight_offset), nothing read. */
static int stream_zeros(struct job *j, ckpt_error *err)
{
    uint64_t total = j->it->pub.nbytes, chunk = total < j->budget ? total : j->budget;
    int rc = ensure(&j->b->out, &j->b->out_cap, chunk ? chunk : 1, err);
    if (!rc)
        memset(j->b->out, 0, chunk);
    for (uint64_t at = 0; at < total && !rc; at += chunk) {
        uint64_t n = total - at < chunk ? total - at : chunk;
        rc = j->sink->put(j->sink, j->b->out, n, at, err);
    }
    if (!rc && !j->sink->progress(j->sink, 0))
        rc = CKPT_ERR_CANCELLED;
    return rc;
}

static int stream_nd(struct job *j, ckpt_error *err)
{
    uint64_t lines = j->lines, in_line = view_line_bytes(&j->te->pub);
    uint64_t out_line = j->out_line_elems * j->out_esize;
    uint64_t work = j->tf.role == CKPT_QUANT_ROLE_NONE ? 0 : j->tf.line_elems * ckpt_dtype_size(j->tf.load);
    uint64_t per = j->budget / (in_line + out_line + work + 1);
    if (per > CACHE_BLOCK / (in_line + 1))
        per = CACHE_BLOCK / (in_line + 1);
    if (per == 0)
        per = 1;
    int rc = CKPT_OK;
    for (uint64_t l0 = 0; l0 < lines && !rc; l0 += per) {
        uint64_t k = lines - l0 < per ? lines - l0 : per;
        uint8_t *out;
        rc = read_converted(j, l0, k, l0, &out, err);
        if (!rc)
            rc = j->sink->put(j->sink, out, k * out_line, l0 * out_line, err);
        if (!rc && !j->sink->progress(j->sink, k * in_line))
            rc = CKPT_ERR_CANCELLED;
    }
    return rc;
}

/*
 * NZ, transposed: the source rows are stored columns, so each matrix is read,
 * converted and tiled whole, and written as one piece.
 */
static int stream_nz_transposed(struct job *j, uint64_t src_rows, uint64_t batches, uint64_t n1, uint64_t mp,
                                ckpt_error *err)
{
    uint64_t c0 = j->it->pub.nz_c0, in_line = view_line_bytes(&j->te->pub), bytes = n1 * mp * c0 * j->out_esize;
    int rc = CKPT_OK;
    for (uint64_t bt = 0; bt < batches && !rc; bt++) {
        uint8_t *rows;
        rc = read_converted(j, bt * src_rows, src_rows, 0, &rows, err);
        if (!rc)
            rc = ensure(&j->b->tiles, &j->b->tiles_cap, bytes, err);
        if (!rc)
            rc = transform_nz(rows, j->b->tiles, src_rows, j->tf.line_elems, j->tf.to, c0, 1, err);
        if (!rc)
            rc = j->sink->put(j->sink, j->b->tiles, bytes, bt * bytes, err);
        if (!rc && !j->sink->progress(j->sink, src_rows * in_line))
            rc = CKPT_ERR_CANCELLED;
    }
    return rc;
}

/*
 * NZ: a matrix (..., M, N) is stored as ceil(N/C0) column blocks, each of
 * all its rows padded to a multiple of 16, one after the other.  The stored
 * matrix is built in memory one panel of column blocks at a time, as wide as
 * the budget allows (the whole matrix when it fits), from row blocks read in
 * order (nz_tile_block places each), then written as one piece: large writes,
 * in order, which the sink can hash on the way.  Each panel narrower than the
 * matrix costs one more read of the matrix's rows.
 */
static int stream_nz(struct job *j, ckpt_error *err)
{
    const uint64_t *nd = j->it->pub.nd_shape;
    uint32_t r = j->it->pub.nd_rank;
    uint64_t m = nd[r - 2], n = nd[r - 1], c0 = j->it->pub.nz_c0, es = j->out_esize;
    uint64_t n1 = (n + c0 - 1) / c0, mp = (m + 15) / 16 * 16, column = mp * c0 * es;
    /* rows of each source matrix: the selected ones when dim 0 is the rows */
    uint64_t src_rows = r == 2 && j->it->pub.rows.groups ? j->lines : j->te->pub.shape[r - 2];
    uint64_t batches = src_rows ? j->lines / src_rows : 0;
    if (j->it->pub.transposed)
        return stream_nz_transposed(j, src_rows, batches, n1, mp, err);
    if (!column || !batches)
        return CKPT_OK;
    if (src_rows > mp)   /* the plan gives the stored matrix the rows read; never more, or tiles would overrun */
        return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "tensor %s: %llu rows to tile into %llu", j->te->pub.name,
                         (unsigned long long)src_rows, (unsigned long long)mp);
    uint64_t in_line = view_line_bytes(&j->te->pub);
    uint64_t work = j->tf.role == CKPT_QUANT_ROLE_NONE ? 0 : j->tf.line_elems * ckpt_dtype_size(j->tf.load);
    uint64_t line = in_line + j->out_line_elems * es + work;   /* what one row in flight costs */
    uint64_t width = j->budget > 16 * line ? (j->budget - 16 * line) / column : 0;
    if (width < 1)
        width = 1;
    if (width > n1)
        width = n1;
    uint64_t per = j->budget > width * column ? (j->budget - width * column) / line / 16 * 16 : 0;
    if (per > CACHE_BLOCK / (in_line + 1) / 16 * 16)
        per = CACHE_BLOCK / (in_line + 1) / 16 * 16;
    if (per < 16)
        per = 16;
    /* a later panel's pass converts the same rows again: its cast counts and values were already taken */
    ckpt_cast_counts *counts = j->counts, again = {0};
    int rc = ensure(&j->b->tiles, &j->b->tiles_cap, width * column, err);
    for (uint64_t bt = 0; bt < batches && !rc; bt++) {
        for (uint64_t p = 0; p < n1 && !rc; p += width) {
            uint64_t w = n1 - p < width ? n1 - p : width;
            j->again = p > 0;
            j->counts = p ? &again : counts;
            for (uint64_t r0 = 0; r0 < src_rows && !rc; r0 += per) {
                uint64_t k = src_rows - r0 < per ? src_rows - r0 : per;
                uint8_t *rows;
                rc = read_converted(j, bt * src_rows + r0, k, r0, &rows, err);
                if (!rc)
                    transform_nz_rows(rows, j->b->tiles, r0, k, m, n, j->tf.to, c0, p, p + w);
                if (!rc && !j->sink->progress(j->sink, p ? 0 : k * in_line))
                    rc = CKPT_ERR_CANCELLED;
            }
            if (!rc)
                rc = j->sink->put(j->sink, j->b->tiles, w * column, (bt * n1 + p) * column, err);
        }
    }
    j->again = false;
    j->counts = counts;
    return rc;
}

static int read_scales(struct job *j, float **scales, ckpt_error *err)
{
    const ckpt_tensor *s = ckpt_source_tensor(j->plan->src, j->it->scale_index);
    *scales = malloc(s->nbytes ? s->nbytes : 1);
    if (!*scales)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory reading %s", s->name);
    j->tf.scales = *scales;
    j->tf.scale_rows = s->shape[0];
    j->tf.scale_cols = s->shape[1];
    j->tf.block_rows = j->plan->fp8_block[0];
    j->tf.block_cols = j->plan->fp8_block[1];
    return ckpt_source_read(j->plan->src, j->it->scale_index, 0, s->shape[0], *scales, s->nbytes, err);
}

int stream_tensor(const struct ckpt_plan *plan, const struct plan_item *it, uint64_t budget,
                  struct stream_buffers *b, struct stream_sink *sink, ckpt_cast_counts *counts, ckpt_error *err)
{
    const struct tensor_entry *te = &plan->src->tensors[it->source_index];
    bool column = it->pub.quant_role == CKPT_QUANT_ROLE_SCALE || it->pub.quant_role == CKPT_QUANT_ROLE_OFFSET;
    struct job j = {plan, it, te, view_line_count(&te->pub), 0, {0}, ckpt_dtype_size(it->pub.dtype), 0, budget, b,
                    sink, counts, false};
    if (it->pub.rows.groups) {   /* the plan checked rank >= 1 and rows inside the tensor */
        j.row_lines = j.lines / te->pub.shape[0];
        j.lines = j.row_lines * it->pub.rows.groups * it->pub.rows.count;
    }
    j.tf = (struct transform){te->pub.dtype, it->pub.dtype, plan->opts.overflow,
                              te->pub.rank >= 2 ? te->pub.shape[te->pub.rank - 1] : 1, NULL, 0, 0, 0, 0,
                              it->pub.quant_role, it->pub.load_dtype};
    j.out_line_elems = column ? 1 : j.tf.line_elems;
    if (it->pub.quant_role == CKPT_QUANT_ROLE_OFFSET)
        return stream_zeros(&j, err);
    float *scales = NULL;
    int rc = it->scale_index != SIZE_MAX ? read_scales(&j, &scales, err) : CKPT_OK;
    if (!rc)
        rc = it->pub.layout == CKPT_LAYOUT_FRACTAL_NZ ? stream_nz(&j, err) : stream_nd(&j, err);
    free(scales);
    if (rc == CKPT_ERR_LIMIT && err) {   /* the cast refused an overflow: say which tensor, of which file */
        char why[CKPT_ERROR_MESSAGE_MAX];
        snprintf(why, sizeof why, "%s", err->message);
        rc = ckpt_fail(err, rc, "%s: tensor %s: %s (overflow policy error)", plan->src->files[te->pub.file].path,
                       te->pub.name, why);
    }
    return rc;
}
