/*
 * diff.c: `ckpt diff A B`: two checkpoints of any formats compared tensor by
 * tensor in their logical (row-major, original orientation) layout.  A
 * tensor that convert stored as FRACTAL_NZ is recognised by its shard
 * metadata and untiled first, so a source and its conversion compare by
 * value.  Tensors are compared whole, one at a time.
 */
#include "verify.h"

#include "checked.h"
#include "decode.h"
#include "error.h"
#include "manifest.h"
#include "plan.h"
#include "source.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A tensor as its logical layout: element type, original shape, row-major bytes. */
struct logical {
    ckpt_dtype dtype;
    uint32_t rank;
    uint64_t shape[SOURCE_MAX_RANK];
    bool nz, transposed;
    uint8_t *data;
    uint64_t nbytes;
};

/* Reads the layout convert recorded for tensor `name`, if any, into l. */
static void read_layout(const ckpt_source *src, const ckpt_tensor *t, struct logical *l)
{
    char key[1024];
    snprintf(key, sizeof key, "%s%s", LAYOUT_KEY_PREFIX, t->name);
    l->dtype = t->dtype;
    l->rank = t->rank;
    memcpy(l->shape, t->shape, t->rank * sizeof *t->shape);
    for (size_t i = 0; i < ckpt_source_metadata_count(src); i++) {
        const char *k, *v;
        ckpt_source_metadata(src, i, &k, &v);
        if (strcmp(k, key) != 0)
            continue;
        json_t *o = json_loads(v, 0, NULL);
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
            l->transposed = json_is_true(json_object_get(o, "transposed"));
            if (l->transposed) {
                uint64_t x = l->shape[rank - 1];
                l->shape[rank - 1] = l->shape[rank - 2];
                l->shape[rank - 2] = x;
            }
        }
        json_decref(o);
    }
}

static int load_logical(const ckpt_source *src, size_t i, struct logical *l, ckpt_error *err)
{
    const ckpt_tensor *t = ckpt_source_tensor(src, i);
    memset(l, 0, sizeof *l);
    read_layout(src, t, l);
    uint64_t count = 1;
    for (uint32_t d = 0; d < l->rank; d++)
        count *= l->shape[d];
    l->nbytes = count * ckpt_dtype_size(l->dtype);
    uint8_t *stored = malloc(t->nbytes ? t->nbytes : 1);
    if (!stored)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory reading %s", t->name);
    int rc = ckpt_source_read(src, i, 0, ckpt_tensor_rows(t), stored, t->nbytes, err);
    if (rc || !l->nz) {
        l->data = stored;
        l->nbytes = t->nbytes;
        return rc;
    }
    l->data = calloc(1, l->nbytes ? l->nbytes : 1);
    if (!l->data) {
        free(stored);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory untiling %s", t->name);
    }
    /* the shape tiled is the logical one, with the last two dims swapped when transposed */
    uint64_t tiled[SOURCE_MAX_RANK + 3];
    uint32_t nz_rank;
    unsigned bits = (unsigned)ckpt_dtype_size(l->dtype) * 8;
    rc = ckpt_nz_shape(l->shape, l->rank, bits, l->transposed, tiled, &nz_rank, err);
    uint64_t need = 0;
    if (!rc && (nz_rank != t->rank || memcmp(tiled, t->shape, nz_rank * sizeof *tiled) != 0 ||
                !ckpt_product_u64(tiled, nz_rank, &need) || need * (bits / 8) != t->nbytes))
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "tensor %s: its layout record does not match its stored shape", t->name);
    if (!rc)
        rc = ckpt_nz_to_nd(stored, l->data, l->shape, l->rank, bits, l->transposed, err);
    free(stored);
    return rc;
}

static void format_shape(char *buf, size_t size, const uint64_t *shape, uint32_t rank)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (uint32_t d = 0; d < rank && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, "%s%llu", d ? ", " : "", (unsigned long long)shape[d]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
}

static int compare_values(const struct logical *a, const struct logical *b, const ckpt_diff_options *o,
                          ckpt_finding *f, char *why, size_t why_size, ckpt_error *err)
{
    if (a->dtype == b->dtype && a->nbytes == b->nbytes && memcmp(a->data, b->data, a->nbytes) == 0) {
        f->ok = 1;
        snprintf(why, why_size, "identical");
        return CKPT_OK;
    }
    uint64_t count = a->nbytes / ckpt_dtype_size(a->dtype);
    double *x = malloc((count + 1) * sizeof *x), *y = malloc((count + 1) * sizeof *y);
    if (!x || !y) {
        free(x);
        free(y);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory comparing");
    }
    decode_f64(a->dtype, a->data, x, count);
    decode_f64(b->dtype, b->data, y, count);
    for (uint64_t k = 0; k < count; k++)
        f->mismatched += !(x[k] == y[k] || (isnan(x[k]) && isnan(y[k])));
    error_update(x, y, count, &f->max_abs_error, &f->max_rel_error);
    free(x);
    free(y);
    bool within = (o->max_abs_error > 0 || o->max_rel_error > 0) &&
                  (o->max_abs_error <= 0 || f->max_abs_error <= o->max_abs_error) &&
                  (o->max_rel_error <= 0 || f->max_rel_error <= o->max_rel_error);
    f->ok = f->mismatched == 0 ? a->dtype == b->dtype || within : within;
    int n = a->dtype == b->dtype ? 0
                                 : snprintf(why, why_size, "%s -> %s; ", ckpt_dtype_name(a->dtype),
                                            ckpt_dtype_name(b->dtype));
    snprintf(why + n, why_size - (size_t)n, "%llu of %llu values differ, max error %.3g abs, %.3g rel",
             (unsigned long long)f->mismatched, (unsigned long long)count, f->max_abs_error, f->max_rel_error);
    return CKPT_OK;
}

static int diff_tensor(const ckpt_source *sa, size_t ia, const ckpt_source *sb, size_t ib,
                       const ckpt_diff_options *o, struct reporter *r, ckpt_error *err)
{
    const char *name = ckpt_source_tensor(sa, ia)->name;
    ckpt_finding f = {.check = CKPT_CHECK_DIFF, .tensor = name};
    struct logical a, b;
    char sa_shape[256], sb_shape[256], why[512] = "";
    if (o->names_only) {
        read_layout(sa, ckpt_source_tensor(sa, ia), &a);
        read_layout(sb, ckpt_source_tensor(sb, ib), &b);
    }
    int rc = o->names_only ? CKPT_OK : load_logical(sa, ia, &a, err);
    if (!rc && !o->names_only && (rc = load_logical(sb, ib, &b, err)) != CKPT_OK)
        free(a.data);
    if (rc)
        return rc;
    format_shape(sa_shape, sizeof sa_shape, a.shape, a.rank);
    format_shape(sb_shape, sizeof sb_shape, b.shape, b.rank);
    if (a.rank != b.rank || memcmp(a.shape, b.shape, a.rank * sizeof *a.shape) != 0) {
        report_finding(r, f, "%s: shape %s -> %s", name, sa_shape, sb_shape);
    } else if (o->names_only) {
        f.ok = a.dtype == b.dtype;
        report_finding(r, f, "%s: %s %s -> %s", name, sa_shape, ckpt_dtype_name(a.dtype), ckpt_dtype_name(b.dtype));
    } else {
        rc = compare_values(&a, &b, o, &f, why, sizeof why, err);
        if (!rc)
            report_finding(r, f, "%s: %s", name, why);
    }
    if (!o->names_only) {
        free(a.data);
        free(b.data);
    }
    return rc;
}

int ckpt_diff(const char *a, const char *b, const ckpt_diff_options *opts, ckpt_finding_fn fn, void *payload,
              ckpt_verify_summary *summary, ckpt_error *err)
{
    ckpt_error_clear(err);
    ckpt_diff_options defaults = {0};
    if (!opts)
        opts = &defaults;
    ckpt_source *sa = NULL, *sb = NULL;
    int rc = ckpt_source_open(&sa, a, NULL, err);
    if (!rc)
        rc = ckpt_source_open(&sb, b, NULL, err);
    struct reporter r;
    reporter_init(&r, fn, payload);
    for (size_t i = 0; !rc && i < ckpt_source_tensor_count(sa) && !atomic_load(&r.stop); i++) {
        size_t j;
        const char *name = ckpt_source_tensor(sa, i)->name;
        if (ckpt_source_find(sb, name, &j) != CKPT_OK)
            report_finding(&r, (ckpt_finding){.check = CKPT_CHECK_DIFF, .tensor = name}, "%s: only in %s", name, a);
        else
            rc = diff_tensor(sa, i, sb, j, opts, &r, err);
    }
    for (size_t j = 0; !rc && j < ckpt_source_tensor_count(sb) && !atomic_load(&r.stop); j++) {
        size_t i;
        const char *name = ckpt_source_tensor(sb, j)->name;
        if (ckpt_source_find(sa, name, &i) != CKPT_OK)
            report_finding(&r, (ckpt_finding){.check = CKPT_CHECK_DIFF, .tensor = name}, "%s: only in %s", name, b);
    }
    if (summary)
        *summary = r.summary;
    if (!rc && r.summary.failures)
        rc = ckpt_fail(err, CKPT_ERR_MISMATCH, "%s and %s differ in %llu of %llu tensors", a, b,
                       (unsigned long long)r.summary.failures, (unsigned long long)r.summary.checks);
    reporter_free(&r);
    ckpt_source_free(sa);
    ckpt_source_free(sb);
    return rc;
}
