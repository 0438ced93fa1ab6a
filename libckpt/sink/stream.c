/* stream.c: see stream.h. */
#include "stream.h"

#include "libckpt/common/error.h"

#include <stdlib.h>

struct job {
    const struct ckpt_plan *plan;
    const struct plan_item *it;
    const struct tensor_entry *te;
    uint64_t lines;           /* lines of the item, in source orientation (its selected rows) */
    uint64_t row_lines;       /* lines per row of dim 0, for row selections */
    struct transform tf;
    size_t out_esize;
    uint64_t budget;
    struct stream_buffers *b;
    struct stream_sink *sink;
    ckpt_cast_counts *counts;
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
    uint64_t in_line = view_line_bytes(&j->te->pub), out_line = j->tf.line_elems * j->out_esize;
    uint64_t elems = count * j->tf.line_elems;
    bool copy = j->tf.from == j->tf.to && !j->tf.scales;
    int rc = ensure(&b->in, &b->in_cap, count * in_line, err);
    if (!rc && !copy)
        rc = ensure(&b->out, &b->out_cap, elems * j->out_esize, err);
    for (uint64_t done = 0, run; done < count && !rc; done += run) {
        uint64_t src = source_line(j, first + done, &run);
        if (run > count - done)
            run = count - done;
        rc = view_read_lines(j->plan->src, j->te, src, run, b->in + done * in_line, err);
        if (!rc && !copy)
            rc = transform_lines(&j->tf, b->in + done * in_line, b->out + done * out_line,
                                 j->it->pub.rows.groups ? src : row0 + done, run, j->counts, err);
    }
    if (rc)
        return rc;
    *out = copy ? b->in : b->out;
    if (j->sink->observe)
        j->sink->observe(j->sink, b->in, *out, elems);
    return CKPT_OK;
}

static int stream_nd(struct job *j, ckpt_error *err)
{
    uint64_t lines = j->lines, in_line = view_line_bytes(&j->te->pub);
    uint64_t out_line = j->tf.line_elems * j->out_esize;
    uint64_t per = j->budget / (in_line + out_line + 1);
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
 * NZ in row blocks: a block of R rows (R a multiple of 16) tiles into
 * ceil(N/C0) column chunks of R*C0 elements, each contiguous in the stored
 * tensor.  With a transposed layout the source rows are stored columns, so
 * each matrix is converted whole instead.
 */
static int stream_nz(struct job *j, ckpt_error *err)
{
    const uint64_t *nd = j->it->pub.nd_shape;
    uint32_t r = j->it->pub.nd_rank;
    uint64_t m = nd[r - 2], n = nd[r - 1], c0 = ckpt_nz_c0((unsigned)j->out_esize * 8);
    uint64_t n1 = (n + c0 - 1) / c0, mp = (m + 15) / 16 * 16;
    /* rows of each source matrix: the selected ones when dim 0 is the rows */
    uint64_t src_rows = r == 2 && j->it->pub.rows.groups ? j->lines : j->te->pub.shape[r - 2];
    uint64_t batches = j->lines / src_rows;
    uint64_t in_line = view_line_bytes(&j->te->pub), tile_row = n1 * c0 * j->out_esize;
    bool whole = j->it->pub.transposed;
    uint64_t per = whole ? src_rows : j->budget / (in_line + 2 * tile_row + 1) / 16 * 16;
    if (per < 16)
        per = 16;
    int rc = CKPT_OK;
    for (uint64_t bt = 0; bt < batches && !rc; bt++) {
        for (uint64_t r0 = 0; r0 < src_rows && !rc; r0 += per) {
            uint64_t k = src_rows - r0 < per ? src_rows - r0 : per;
            uint64_t rp = whole ? mp : (k + 15) / 16 * 16;
            uint64_t chunk = rp * c0 * j->out_esize;
            uint8_t *rows;
            rc = read_converted(j, bt * src_rows + r0, k, r0, &rows, err);
            if (!rc)
                rc = ensure(&j->b->tiles, &j->b->tiles_cap, n1 * chunk, err);
            if (!rc)
                rc = transform_nz(rows, j->b->tiles, k, j->tf.line_elems, j->tf.to, whole, err);
            for (uint64_t col = 0; col < n1 && !rc; col++)
                rc = j->sink->put(j->sink, j->b->tiles + col * chunk, chunk,
                                  ((bt * n1 + col) * mp + r0) * c0 * j->out_esize, err);
            if (!rc && !j->sink->progress(j->sink, k * in_line))
                rc = CKPT_ERR_CANCELLED;
        }
    }
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
    struct job j = {plan, it, te, view_line_count(&te->pub), 0, {0}, ckpt_dtype_size(it->pub.dtype), budget, b, sink,
                    counts};
    if (it->pub.rows.groups) {   /* the plan checked rank >= 1 and rows inside the tensor */
        j.row_lines = j.lines / te->pub.shape[0];
        j.lines = j.row_lines * it->pub.rows.groups * it->pub.rows.count;
    }
    j.tf = (struct transform){te->pub.dtype, it->pub.dtype, plan->opts.overflow,
                              te->pub.rank >= 2 ? te->pub.shape[te->pub.rank - 1] : 1, NULL, 0, 0, 0, 0};
    float *scales = NULL;
    int rc = it->scale_index != SIZE_MAX ? read_scales(&j, &scales, err) : CKPT_OK;
    if (!rc)
        rc = it->pub.layout == CKPT_LAYOUT_FRACTAL_NZ ? stream_nz(&j, err) : stream_nd(&j, err);
    free(scales);
    return rc;
}
