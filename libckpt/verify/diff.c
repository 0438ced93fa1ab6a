/*
 * diff.c: `ckpt diff A B`: two checkpoints of any formats compared tensor by
 * tensor in their logical (row-major, original orientation) layout.  A
 * tensor that convert stored as FRACTAL_NZ is recognised by its shard
 * metadata and untiled first, so a source and its conversion compare by
 * value.  Row-major tensors are compared a block of rows at a time, so
 * memory stays small whatever the tensor's size; a tiled tensor is untiled
 * whole first (its rows are spread over every tile column).
 */
#include "report.h"


#include "libckpt/catalog/source.h"
#include "libckpt/common/checked.h"
#include "libckpt/common/clock.h"
#include "libckpt/common/error.h"
#include "libckpt/kernels/decode.h"
#include "libckpt/manifest/manifest.h"
#include "libckpt/plan/plan.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A tensor as its logical layout: element type, original shape; `data` holds it untiled when stored NZ. */
struct logical {
    ckpt_dtype dtype;
    uint32_t rank;
    uint64_t shape[SOURCE_MAX_RANK];
    bool nz, transposed;
    uint8_t *data;
    uint64_t nbytes;
};

/* Bytes of each side read per step when streaming rows (at least one row). */
#define DIFF_BLOCK_BYTES ((uint64_t)8 << 20)

/* Elements decoded to doubles per step when values differ. */
#define DIFF_DECODE_ELEMS 65536

/* The source's layout records (convert's shard metadata), sorted by key for lookups. */
struct layouts {
    const ckpt_kv **records;
    size_t count;
};

static int by_key(const void *a, const void *b)
{
    return strcmp((*(const ckpt_kv *const *)a)->key, (*(const ckpt_kv *const *)b)->key);
}

static int layouts_load(const ckpt_source *src, struct layouts *l, ckpt_error *err)
{
    size_t n = ckpt_source_metadata_count(src);
    l->count = 0;
    l->records = malloc((n ? n : 1) * sizeof *l->records);
    if (!l->records)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory indexing layout records");
    for (size_t i = 0; i < n; i++)
        if (strncmp(src->metadata[i].key, LAYOUT_KEY_PREFIX, strlen(LAYOUT_KEY_PREFIX)) == 0)
            l->records[l->count++] = &src->metadata[i];
    qsort(l->records, l->count, sizeof *l->records, by_key);
    return CKPT_OK;
}

static const char *layout_of(const struct layouts *l, const char *name)
{
    char key[1024];
    if (snprintf(key, sizeof key, "%s%s", LAYOUT_KEY_PREFIX, name) >= (int)sizeof key)
        return NULL;
    ckpt_kv probe = {key, NULL};
    const ckpt_kv *p = &probe, **hit = bsearch(&p, l->records, l->count, sizeof *l->records, by_key);
    return hit ? (*hit)->value : NULL;
}

/* Reads the layout convert recorded for tensor t, if any, into l. */
static void read_layout(const struct layouts *layouts, const ckpt_tensor *t, struct logical *l)
{
    memset(l, 0, sizeof *l);
    l->dtype = t->dtype;
    l->rank = t->rank;
    memcpy(l->shape, t->shape, t->rank * sizeof *t->shape);
    l->nbytes = t->nbytes;
    const char *v = layout_of(layouts, t->name);
    json_t *o = v ? json_loads(v, 0, NULL) : NULL;
    const json_t *nd = json_object_get(o, "nd_shape");
    size_t rank = json_array_size(nd);
    /* trust the record only when it fits the stored shape: (..., N1, Mp/16, 16, C0) */
    uint64_t nd_shape[SOURCE_MAX_RANK], count = 0;
    bool fits = o && rank >= 2 && rank + 2 == t->rank && rank <= SOURCE_MAX_RANK;
    for (size_t d = 0; fits && d < rank; d++) {
        json_int_t extent = json_integer_value(json_array_get(nd, d));
        fits = extent > 0;
        nd_shape[d] = (uint64_t)extent;
    }
    /* the logical bytes never exceed the stored (padded) ones */
    fits = fits && ckpt_product_u64(nd_shape, (uint32_t)rank, &count) && count <= t->nbytes;
    if (fits) {
        memcpy(l->shape, nd_shape, rank * sizeof *nd_shape);
        l->rank = (uint32_t)rank;
        l->nz = true;
        l->nbytes = count * ckpt_dtype_size(t->dtype);
        l->transposed = json_is_true(json_object_get(o, "transposed"));
        if (l->transposed) {
            uint64_t x = l->shape[rank - 1];
            l->shape[rank - 1] = l->shape[rank - 2];
            l->shape[rank - 2] = x;
        }
    }
    json_decref(o);
}

/* Untiles an NZ-stored tensor whole into l->data. */
static int load_untiled(const ckpt_source *src, size_t i, struct logical *l, ckpt_error *err)
{
    const ckpt_tensor *t = ckpt_source_tensor(src, i);
    uint8_t *stored = malloc(t->nbytes ? t->nbytes : 1);
    l->data = calloc(1, l->nbytes ? l->nbytes : 1);
    int rc = CKPT_OK;
    if (!stored || !l->data)
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory untiling %s", t->name);
    if (!rc)
        rc = ckpt_source_read(src, i, 0, ckpt_tensor_rows(t), stored, t->nbytes, err);
    /* the shape tiled is the logical one, with the last two dims swapped when transposed */
    uint64_t tiled[SOURCE_MAX_RANK + 3], need = 0;
    uint32_t nz_rank;
    unsigned bits = (unsigned)ckpt_dtype_size(l->dtype) * 8;
    if (!rc)
        rc = ckpt_nz_shape(l->shape, l->rank, bits, l->transposed, tiled, &nz_rank, err);
    if (!rc && (nz_rank != t->rank || memcmp(tiled, t->shape, nz_rank * sizeof *tiled) != 0 ||
                !ckpt_product_u64(tiled, nz_rank, &need) || need * (bits / 8) != t->nbytes))
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "tensor %s: its layout record does not match its stored shape", t->name);
    if (!rc)
        rc = ckpt_nz_to_nd(stored, l->data, l->shape, l->rank, bits, l->transposed, err);
    free(stored);
    return rc;
}

/* One side of a comparison: rows come from the untiled copy, or straight from the source. */
struct side {
    const ckpt_source *src;
    size_t index;
    struct logical l;
    uint8_t *block;
};

static int side_rows(struct side *s, uint64_t row, uint64_t rows, uint64_t row_bytes, const uint8_t **out,
                     ckpt_error *err)
{
    if (s->l.nz) {
        *out = s->l.data + row * row_bytes;
        return CKPT_OK;
    }
    *out = s->block;
    return ckpt_source_read(s->src, s->index, row, rows, s->block, rows * row_bytes, err);
}

/* Counts differing values of one block and widens the error bounds, a slice of doubles at a time. */
static void compare_block(const struct logical *a, const uint8_t *pa, const struct logical *b, const uint8_t *pb,
                          uint64_t count, double *x, double *y, ckpt_finding *f)
{
    size_t ea = ckpt_dtype_size(a->dtype), eb = ckpt_dtype_size(b->dtype);
    for (uint64_t at = 0; at < count; at += DIFF_DECODE_ELEMS) {
        uint64_t n = count - at < DIFF_DECODE_ELEMS ? count - at : DIFF_DECODE_ELEMS;
        decode_f64(a->dtype, pa + at * ea, x, n);
        decode_f64(b->dtype, pb + at * eb, y, n);
        for (uint64_t k = 0; k < n; k++)
            f->mismatched += !(x[k] == y[k] || (isnan(x[k]) && isnan(y[k])));
        error_update(x, y, n, &f->max_abs_error, &f->max_rel_error);
    }
}

/* Compares two tensors of the same logical shape; sets f and `why`. */
static int compare_values(struct side *a, struct side *b, const ckpt_diff_options *o, ckpt_finding *f, char *why,
                          size_t why_size, ckpt_error *err)
{
    uint64_t rows = a->l.rank ? a->l.shape[0] : 1, count = a->l.nbytes / ckpt_dtype_size(a->l.dtype);
    uint64_t ra = rows ? a->l.nbytes / rows : 0, rb = rows ? b->l.nbytes / rows : 0;
    uint64_t widest = ra > rb ? ra : rb, step = widest && DIFF_BLOCK_BYTES / widest ? DIFF_BLOCK_BYTES / widest : 1;
    if (step > rows)
        step = rows ? rows : 1;
    bool same = a->l.dtype == b->l.dtype;
    double *x = malloc(DIFF_DECODE_ELEMS * sizeof *x), *y = malloc(DIFF_DECODE_ELEMS * sizeof *y);
    a->block = malloc(step * ra + 1);
    b->block = malloc(step * rb + 1);
    int rc = CKPT_OK;
    if (!x || !y || !a->block || !b->block)
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory comparing %s", ckpt_source_tensor(a->src, a->index)->name);
    for (uint64_t row = 0; !rc && row < rows; row += step) {
        uint64_t n = rows - row < step ? rows - row : step;
        const uint8_t *pa, *pb;
        rc = side_rows(a, row, n, ra, &pa, err);
        if (!rc)
            rc = side_rows(b, row, n, rb, &pb, err);
        if (!rc && !(same && memcmp(pa, pb, n * ra) == 0)) {
            same = false;
            compare_block(&a->l, pa, &b->l, pb, count / rows * n, x, y, f);
        }
    }
    free(x);
    free(y);
    free(a->block);
    free(b->block);
    if (rc)
        return rc;
    if (same) {
        f->ok = 1;
        snprintf(why, why_size, "identical");
        return CKPT_OK;
    }
    bool within = (o->max_abs_error > 0 || o->max_rel_error > 0) &&
                  (o->max_abs_error <= 0 || f->max_abs_error <= o->max_abs_error) &&
                  (o->max_rel_error <= 0 || f->max_rel_error <= o->max_rel_error);
    f->ok = f->mismatched == 0 ? a->l.dtype == b->l.dtype || within : within;
    int n = a->l.dtype == b->l.dtype ? 0
                                     : snprintf(why, why_size, "%s -> %s; ", ckpt_dtype_name(a->l.dtype),
                                                ckpt_dtype_name(b->l.dtype));
    snprintf(why + n, why_size - (size_t)n, "%llu of %llu values differ, max error %.3g abs, %.3g rel",
             (unsigned long long)f->mismatched, (unsigned long long)count, f->max_abs_error, f->max_rel_error);
    return CKPT_OK;
}

static void format_shape(char *buf, size_t size, const uint64_t *shape, uint32_t rank)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (uint32_t d = 0; d < rank && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, "%s%llu", d ? ", " : "", (unsigned long long)shape[d]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
}

static int diff_tensor(struct side *a, const struct layouts *la, struct side *b, const struct layouts *lb,
                       const ckpt_diff_options *o, struct reporter *r, ckpt_error *err)
{
    const char *name = ckpt_source_tensor(a->src, a->index)->name;
    ckpt_finding f = {.check = CKPT_CHECK_DIFF, .tensor = name};
    char sa_shape[256], sb_shape[256], why[512] = "";
    read_layout(la, ckpt_source_tensor(a->src, a->index), &a->l);
    read_layout(lb, ckpt_source_tensor(b->src, b->index), &b->l);
    format_shape(sa_shape, sizeof sa_shape, a->l.shape, a->l.rank);
    format_shape(sb_shape, sizeof sb_shape, b->l.shape, b->l.rank);
    int rc = CKPT_OK;
    if (a->l.rank != b->l.rank || memcmp(a->l.shape, b->l.shape, a->l.rank * sizeof *a->l.shape) != 0) {
        report_finding(r, f, "%s: shape %s -> %s", name, sa_shape, sb_shape);
    } else if (o->names_only) {
        f.ok = a->l.dtype == b->l.dtype;
        report_finding(r, f, "%s: %s %s -> %s", name, sa_shape, ckpt_dtype_name(a->l.dtype),
                       ckpt_dtype_name(b->l.dtype));
    } else {
        if (a->l.nz)
            rc = load_untiled(a->src, a->index, &a->l, err);
        if (!rc && b->l.nz)
            rc = load_untiled(b->src, b->index, &b->l, err);
        if (!rc)
            rc = compare_values(a, b, o, &f, why, sizeof why, err);
        if (!rc) {
            reporter_add_bytes(r, a->l.nbytes + b->l.nbytes);
            report_finding(r, f, "%s: %s", name, why);
        }
    }
    free(a->l.data);
    free(b->l.data);
    return rc;
}

/*
 * A tensor found on one side only: a failure, unless it is a tied weight (an
 * alias) of a tensor the other side has, which the main comparison checks;
 * safetensors stores tied weights once, so a conversion lists them once.
 */
static void report_one_sided(struct reporter *r, const ckpt_source *has, size_t i, const char *has_path,
                             const ckpt_source *other, const char *other_path)
{
    const ckpt_tensor *t = ckpt_source_tensor(has, i);
    ckpt_finding f = {.check = CKPT_CHECK_DIFF, .tensor = t->name};
    size_t j;
    if (t->alias_of && ckpt_source_find(other, t->alias_of, &j) == CKPT_OK) {
        f.ok = true;
        report_finding(r, f, "%s: tied to %s, stored once in %s", t->name, t->alias_of, other_path);
    } else {
        report_finding(r, f, "%s: only in %s", t->name, has_path);
    }
}

int ckpt_diff(const char *a, const char *b, const ckpt_diff_options *opts, ckpt_finding_fn fn, void *payload,
              ckpt_verify_summary *summary, ckpt_error *err)
{
    ckpt_error_clear(err);
    double start = now_seconds();
    ckpt_diff_options defaults = {0};
    if (!opts)
        opts = &defaults;
    ckpt_source *sa = NULL, *sb = NULL;
    int rc = ckpt_source_open_ext(&sa, a, opts->open, err);
    if (!rc)
        rc = ckpt_source_open_ext(&sb, b, opts->open, err);
    struct layouts la = {0}, lb = {0};
    if (!rc)
        rc = layouts_load(sa, &la, err);
    if (!rc)
        rc = layouts_load(sb, &lb, err);
    struct reporter r;
    reporter_init(&r, fn, payload);
    for (size_t i = 0; !rc && i < ckpt_source_tensor_count(sa) && !atomic_load(&r.stop); i++) {
        struct side sides[2] = {{.src = sa, .index = i}, {.src = sb}};
        const char *name = ckpt_source_tensor(sa, i)->name;
        if (ckpt_source_find(sb, name, &sides[1].index) != CKPT_OK)
            report_one_sided(&r, sa, i, a, sb, b);
        else
            rc = diff_tensor(&sides[0], &la, &sides[1], &lb, opts, &r, err);
    }
    for (size_t j = 0; !rc && j < ckpt_source_tensor_count(sb) && !atomic_load(&r.stop); j++) {
        size_t i;
        if (ckpt_source_find(sa, ckpt_source_tensor(sb, j)->name, &i) != CKPT_OK)
            report_one_sided(&r, sb, j, b, sa, a);
    }
    r.summary.seconds = now_seconds() - start;
    if (summary)
        *summary = r.summary;
    if (!rc && r.summary.failures)
        rc = ckpt_fail(err, CKPT_ERR_MISMATCH, "%s and %s differ in %llu of %llu tensors", a, b,
                       (unsigned long long)r.summary.failures, (unsigned long long)r.summary.checks);
    reporter_free(&r);
    free(la.records);
    free(lb.records);
    ckpt_source_free(sa);
    ckpt_source_free(sb);
    return rc;
}
