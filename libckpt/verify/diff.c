/*
 * diff.c: `ckpt diff A B`: two checkpoints of any formats compared tensor by
 * tensor in their logical (row-major, original orientation) layout.  A
 * folder convert wrote presents its FRACTAL_NZ tensors untiled (the
 * safetensors reader does), so a source and its conversion compare by
 * value; an int8 weight of a quantized folder is compared as the values it
 * stands for, its codes times its rows' scales.  Tensors are compared a
 * block of rows at a time, so memory stays small whatever their size.
 */
#include "report.h"

#include "libckpt/catalog/source.h"
#include "libckpt/common/checked.h"
#include "libckpt/common/clock.h"
#include "libckpt/common/error.h"
#include "libckpt/common/options.h"
#include "libckpt/kernels/decode.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of each side read per step when streaming rows (at least one row). */
#define DIFF_BLOCK_BYTES ((uint64_t)8 << 20)

/* Elements decoded to doubles per step when values differ. */
#define DIFF_DECODE_ELEMS 65536

/*
 * One side of a comparison.  A quantized folder's int8 weight (its
 * description's W8A8_DYNAMIC or W8A16, per channel) carries its rows' scales,
 * read whole: one value a row.
 */
struct side {
    const ckpt_source *src;
    size_t index;
    const ckpt_tensor *t;
    double *scales;          /* an int8 weight's row scales, or NULL */
    ckpt_quant quant;
    uint8_t *block;
};

/* The scale tensor of a per-channel int8 weight i (X.weight -> X.weight_scale [rows, 1]), or SIZE_MAX. */
static size_t scale_of(const ckpt_source *src, size_t i, ckpt_quant *quant)
{
    const ckpt_tensor *t = ckpt_source_tensor(src, i);
    const ckpt_tensor_storage *st = ckpt_source_tensor_storage(src, i);
    size_t n = strlen(t->name), j;
    char *name = NULL;   /* names go up to 64 KiB */
    if (!st->quant || ckpt_quant_parse(st->quant, quant) != CKPT_OK || *quant == CKPT_QUANT_NONE ||
        t->dtype != CKPT_DTYPE_I8 || t->rank != 2 || n < 7 || strcmp(t->name + n - 7, ".weight") != 0 ||
        asprintf(&name, "%s_scale", t->name) < 0)
        return SIZE_MAX;
    int found = ckpt_source_find(src, name, &j);
    free(name);
    if (found != CKPT_OK)
        return SIZE_MAX;
    const ckpt_tensor *s = ckpt_source_tensor(src, j);
    bool floating = s->dtype == CKPT_DTYPE_F32 || s->dtype == CKPT_DTYPE_BF16 || s->dtype == CKPT_DTYPE_F16;
    return floating && s->rank == 2 && s->shape[0] == t->shape[0] && s->shape[1] == 1 ? j : SIZE_MAX;
}

/* Prepares a side: the row scales of an int8 weight. */
static int side_open(struct side *s, ckpt_error *err)
{
    s->t = ckpt_source_tensor(s->src, s->index);
    size_t j = scale_of(s->src, s->index, &s->quant);
    if (j == SIZE_MAX) {
        s->quant = CKPT_QUANT_NONE;
        return CKPT_OK;
    }
    const ckpt_tensor *st = ckpt_source_tensor(s->src, j);
    uint8_t *raw = malloc(st->nbytes ? st->nbytes : 1);
    s->scales = malloc((st->shape[0] ? st->shape[0] : 1) * sizeof *s->scales);
    int rc = raw && s->scales ? ckpt_source_read(s->src, j, 0, st->shape[0], raw, st->nbytes, err)
                              : ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory reading %s", st->name);
    if (!rc)
        decode_f64(st->dtype, raw, s->scales, st->shape[0]);
    free(raw);
    return rc;
}

static int side_rows(struct side *s, uint64_t row, uint64_t rows, uint64_t row_bytes, const uint8_t **out,
                     ckpt_error *err)
{
    *out = s->block;
    return ckpt_source_read(s->src, s->index, row, rows, s->block, rows * row_bytes, err);
}

/* `n` values of a side starting at element `at` of the block whose first row is `row`, as doubles. */
static void side_values(const struct side *s, const uint8_t *p, uint64_t row, uint64_t at, uint64_t n, double *out)
{
    decode_f64(s->t->dtype, p + at * ckpt_dtype_size(s->t->dtype), out, n);
    if (!s->scales)
        return;
    uint64_t cols = s->t->shape[1];
    for (uint64_t k = 0; k < n; k++)
        out[k] *= s->scales[row + (at + k) / cols];
}

/*
 * How the differing values of a comparison differ.  Equality is decided on
 * bits when both sides store the same kind (a diff without tolerances is a
 * bit-for-bit comparison: -0.0 is not +0.0, a NaN's sign and payload count),
 * on values (and the sign of zeros and NaNs) across kinds.  A tolerance
 * relaxes finite values only: `hard` differences fail whatever it allows.
 */
struct differences {
    uint64_t values;         /* finite values that differ */
    uint64_t signed_zeros;   /* -0.0 against +0.0 */
    uint64_t nans;           /* two NaNs of another sign or payload */
    uint64_t hard;           /* an infinity or NaN against another value, or bits of a type not decoded */
};

/* Whether decode_f64 gives dtype's values (FNUZ and complex types are compared on bits only). */
static bool decodes(ckpt_dtype dtype)
{
    return dtype != CKPT_DTYPE_F8_E4M3FNUZ && dtype != CKPT_DTYPE_F8_E5M2FNUZ && dtype != CKPT_DTYPE_C64;
}

/* Classifies one pair whose bits (same kind) or values (across kinds) differ or may differ. */
static void classify(double x, double y, bool bitwise, bool decoded, struct differences *d)
{
    if (!decoded)
        d->hard++;
    else if (isnan(x) && isnan(y)) {
        if (bitwise || signbit(x) != signbit(y))   /* across kinds a payload cannot be compared */
            d->nans++;
    } else if (x == y) {
        if (x == 0 && signbit(x) != signbit(y))
            d->signed_zeros++;
        else if (bitwise)   /* two encodings of one value */
            d->values++;
    } else if (isfinite(x) && isfinite(y))
        d->values++;
    else
        d->hard++;
}

/* Counts differing values of one block and widens the error bounds, a slice of doubles at a time. */
static void compare_block(const struct side *a, const uint8_t *pa, const struct side *b, const uint8_t *pb,
                          uint64_t row, uint64_t count, bool bitwise, double *x, double *y, ckpt_finding *f,
                          struct differences *d, double energy[2])
{
    size_t esize = ckpt_dtype_size(a->t->dtype);
    bool decoded = decodes(a->t->dtype) && decodes(b->t->dtype);
    for (uint64_t at = 0; at < count; at += DIFF_DECODE_ELEMS) {
        uint64_t n = count - at < DIFF_DECODE_ELEMS ? count - at : DIFF_DECODE_ELEMS;
        side_values(a, pa, row, at, n, x);
        side_values(b, pb, row, at, n, y);
        for (uint64_t k = 0; k < n; k++) {
            if (bitwise ? memcmp(pa + (at + k) * esize, pb + (at + k) * esize, esize) == 0
                        : x[k] == y[k] && signbit(x[k]) == signbit(y[k]))
                continue;
            uint64_t before = d->values + d->signed_zeros + d->nans + d->hard;
            classify(x[k], y[k], bitwise, decoded, d);
            f->mismatched += d->values + d->signed_zeros + d->nans + d->hard - before;
        }
        error_update(x, y, n, &f->max_abs_error, &f->max_rel_error);
        energy_update(a->scales ? y : x, a->scales ? x : y, n, &energy[0], &energy[1]);
    }
}

/* "BF16" or "W8A8_DYNAMIC int8": what a side's values are. */
static const char *side_kind(const struct side *s, char *buf, size_t size)
{
    if (s->quant == CKPT_QUANT_NONE)
        return ckpt_dtype_name(s->t->dtype);
    snprintf(buf, size, "%s int8", ckpt_quant_name(s->quant));
    return buf;
}

/* Compares two tensors of the same logical shape; sets f and `why`. */
static int compare_values(struct side *a, struct side *b, const ckpt_diff_options *o, ckpt_finding *f, char *why,
                          size_t why_size, ckpt_error *err)
{
    uint64_t rows = a->t->rank ? a->t->shape[0] : 1, count = a->t->nbytes / ckpt_dtype_size(a->t->dtype);
    uint64_t ra = rows ? a->t->nbytes / rows : 0, rb = rows ? b->t->nbytes / rows : 0;
    uint64_t widest = ra > rb ? ra : rb, step = widest && DIFF_BLOCK_BYTES / widest ? DIFF_BLOCK_BYTES / widest : 1;
    if (step > rows)
        step = rows ? rows : 1;
    bool same_kind = a->t->dtype == b->t->dtype && a->quant == b->quant;
    bool same = same_kind && !a->scales && !b->scales, bitwise = same;
    struct differences d = {0};
    double energy[2] = {0, 0};
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
            compare_block(a, pa, b, pb, row, count / rows * n, bitwise, x, y, f, &d, energy);
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
    f->ok = (f->mismatched == 0 && same_kind) || (within && d.nans == 0 && d.hard == 0);
    char ka[48], kb[48];
    int n = same_kind ? 0
                      : snprintf(why, why_size, "%s -> %s; ", side_kind(a, ka, sizeof ka), side_kind(b, kb, sizeof kb));
    n += snprintf(why + n, why_size - (size_t)n, "%llu of %llu values differ", (unsigned long long)f->mismatched,
                  (unsigned long long)count);
    if (d.signed_zeros)
        n += snprintf(why + n, why_size - (size_t)n, ", %llu -0.0 against +0.0", (unsigned long long)d.signed_zeros);
    if (d.nans)
        n += snprintf(why + n, why_size - (size_t)n, ", %llu NaN of another sign or payload",
                      (unsigned long long)d.nans);
    if (d.hard)
        n += snprintf(why + n, why_size - (size_t)n, ", %llu infinite, NaN or undecoded against another value",
                      (unsigned long long)d.hard);
    n += snprintf(why + n, why_size - (size_t)n, ", max error %.3g abs, %.3g rel", f->max_abs_error,
                  f->max_rel_error);
    if ((a->scales != NULL) != (b->scales != NULL)) {   /* a quantized weight against what it quantizes */
        f->quant = a->scales ? a->quant : b->quant;
        f->sqnr_db = sqnr_db(energy[0], energy[1]);
        snprintf(why + n, why_size - (size_t)n, ", SQNR %.2f dB (dequantized)", f->sqnr_db);
    }
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

/* Compares one tensor both sides hold: shapes, then types (--names-only) or values. */
static int compare_tensor(struct side *a, struct side *b, const ckpt_diff_options *o, struct reporter *r,
                          ckpt_error *err)
{
    const char *name = a->t->name;
    ckpt_finding f = {.check = CKPT_CHECK_DIFF, .tensor = name};
    char sa_shape[256], sb_shape[256], ka[48], kb[48], why[512] = "";
    format_shape(sa_shape, sizeof sa_shape, a->t->shape, a->t->rank);
    format_shape(sb_shape, sizeof sb_shape, b->t->shape, b->t->rank);
    if (a->t->rank != b->t->rank || memcmp(a->t->shape, b->t->shape, a->t->rank * sizeof *a->t->shape) != 0) {
        report_finding(r, f, "%s: shape %s -> %s", name, sa_shape, sb_shape);
        return CKPT_OK;
    }
    if (o->names_only) {
        f.ok = a->t->dtype == b->t->dtype && a->quant == b->quant;
        report_finding(r, f, "%s: %s %s -> %s", name, sa_shape, side_kind(a, ka, sizeof ka),
                       side_kind(b, kb, sizeof kb));
        return CKPT_OK;
    }
    int rc = compare_values(a, b, o, &f, why, sizeof why, err);
    if (!rc) {
        reporter_add_bytes(r, a->t->nbytes + b->t->nbytes);
        report_finding(r, f, "%s: %s", name, why);
    }
    return rc;
}

static int diff_tensor(struct side *a, struct side *b, const ckpt_diff_options *o, struct reporter *r,
                       ckpt_error *err)
{
    int rc = side_open(a, err);
    if (!rc)
        rc = side_open(b, err);
    if (!rc)
        rc = compare_tensor(a, b, o, r, err);
    free(a->scales);
    free(b->scales);
    return rc;
}

/*
 * The int8 weight X.weight that tensor i is the scale or offset of, when
 * both sides have X.weight and this side stores it quantized; else NULL
 * (the name as `has` holds it).
 */
static const char *quant_param_of(const ckpt_source *has, size_t i, const ckpt_source *other)
{
    static const char *const suffixes[] = {"_scale", "_offset"};
    const char *name = ckpt_source_tensor(has, i)->name;
    size_t n = strlen(name), w, o;
    ckpt_quant q;
    for (size_t k = 0; k < 2; k++) {
        size_t m = strlen(suffixes[k]);
        char *weight;   /* names go up to 64 KiB */
        if (n <= m || strcmp(name + n - m, suffixes[k]) != 0 || !(weight = strndup(name, n - m)))
            continue;
        bool found = ckpt_source_find(has, weight, &w) == CKPT_OK && ckpt_source_find(other, weight, &o) == CKPT_OK &&
                     scale_of(has, w, &q) != SIZE_MAX;
        free(weight);
        if (found)
            return ckpt_source_tensor(has, w)->name;
    }
    return NULL;
}

/*
 * A tensor found on one side only: a failure, unless it is a tied weight (an
 * alias) of a tensor the other side has, which the main comparison checks
 * (safetensors stores tied weights once, so a conversion lists them once),
 * or the scale or offset of a quantized weight, compared dequantized.
 */
static void report_one_sided(struct reporter *r, const ckpt_source *has, size_t i, const char *has_path,
                             const ckpt_source *other, const char *other_path)
{
    const ckpt_tensor *t = ckpt_source_tensor(has, i);
    ckpt_finding f = {.check = CKPT_CHECK_DIFF, .tensor = t->name};
    size_t j;
    const char *weight = quant_param_of(has, i, other);
    if (t->alias_of && ckpt_source_find(other, t->alias_of, &j) == CKPT_OK) {
        f.ok = true;
        report_finding(r, f, "%s: tied to %s, stored once in %s", t->name, t->alias_of, other_path);
    } else if (weight) {
        f.ok = true;
        report_finding(r, f, "%s: quantization parameter of %.200s, compared dequantized", t->name, weight);
    } else {
        report_finding(r, f, "%s: only in %s", t->name, has_path);
    }
}

void ckpt_diff_options_default(ckpt_diff_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
}

int ckpt_diff(const char *a, const char *b, const ckpt_diff_options *given, ckpt_finding_fn fn, void *payload,
              ckpt_verify_summary *summary, ckpt_error *err)
{
    ckpt_error_clear(err);
    double start = now_seconds();
    ckpt_diff_options taken;
    ckpt_diff_options_default(&taken);
    const ckpt_diff_options *opts = &taken;
    ckpt_source *sa = NULL, *sb = NULL;
    int rc = options_take(&taken, sizeof taken, given, "ckpt_diff_options", err);
    if (!rc)
        rc = ckpt_source_open_ext(&sa, a, opts->open, err);
    if (!rc)
        rc = ckpt_source_open_ext(&sb, b, opts->open, err);
    struct reporter r;
    reporter_init(&r, fn, payload);
    uint64_t total = 0, done = 0;   /* the first checkpoint's bytes, for the events */
    for (size_t i = 0; !rc && i < ckpt_source_tensor_count(sa); i++)
        if (!ckpt_add_u64(total, ckpt_source_tensor(sa, i)->nbytes, &total))
            total = UINT64_MAX;
    for (size_t i = 0; !rc && i < ckpt_source_tensor_count(sa) && !atomic_load(&r.stop); i++) {
        struct side sides[2] = {{.src = sa, .index = i}, {.src = sb}};
        const ckpt_tensor *t = ckpt_source_tensor(sa, i);
        if (ckpt_source_find(sb, t->name, &sides[1].index) != CKPT_OK)
            report_one_sided(&r, sa, i, a, sb, b);
        else
            rc = diff_tensor(&sides[0], &sides[1], opts, &r, err);
        if (!ckpt_add_u64(done, t->nbytes, &done) || done > total)
            done = total;
        const ckpt_event ev = {.kind = CKPT_EVENT_TENSOR, .path = a, .tensor = t->name, .done = done, .total = total};
        if (!rc && opts->events && opts->events(opts->events_payload, &ev) != 0)
            rc = ckpt_fail(err, CKPT_ERR_CANCELLED, "%s and %s: comparison cancelled", a, b);
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
        rc = ckpt_fail(err, CKPT_ERR_MISMATCH, "%s and %s differ in %llu of %llu tensor%s", a, b,
                       (unsigned long long)r.summary.failures, (unsigned long long)r.summary.checks,
                       r.summary.checks == 1 ? "" : "s");
    reporter_free(&r);
    ckpt_source_free(sa);
    ckpt_source_free(sb);
    return rc;
}
