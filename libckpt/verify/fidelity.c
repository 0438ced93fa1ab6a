/*
 * fidelity.c: `ckpt verify --against SRC`: proof that the folder is what
 * converting SRC gives (docs/verify.md, "Fidelity").
 *
 * The plan is rebuilt from SRC with the options given (or, without them,
 * the ones the manifest records: against_options.c says which), and the
 * plan, not the manifest, says what to look for: every shard header and
 * side file must be convert's bytes (against_files.c), every manifest
 * entry must be the plan's, one for one, and every stored tensor is
 * streamed through the same code convert used (stream.c) into a sink that
 * compares each piece with the bytes at the plan's offset instead of
 * writing it.  Equal bits prove the cast and the layout; the observer
 * measures, in row order, how far the stored values are from the source
 * values, which is the honest cost of a narrowing cast.
 */
#include "fidelity.h"
#include "against_files.h"
#include "against_options.h"
#include "report.h"

#include "libckpt/common/workers.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"
#include "libckpt/kernels/decode.h"
#include "libckpt/plan/plan.h"
#include "libckpt/sink/stream.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_BUDGET ((uint64_t)16 << 20)

struct compare_sink {
    struct stream_sink base;
    int fd;
    uint64_t tensor_base;
    size_t esize;
    uint8_t *stored;
    size_t stored_cap;
    uint64_t mismatched;
    double abs_err, rel_err;
    double signal, noise;     /* a quantized weight: energies of the source and of the quantization error */
    const char *path;
    int io_error;
};

static int compare_put(struct stream_sink *sink, const uint8_t *data, uint64_t len, uint64_t offset, ckpt_error *err)
{
    struct compare_sink *c = (struct compare_sink *)sink;
    if (len > c->stored_cap) {
        free(c->stored);
        c->stored_cap = 0;
        if (!(c->stored = malloc(len)))
            return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory comparing");
        c->stored_cap = len;
    }
    ssize_t n = pread(c->fd, c->stored, len, (off_t)(c->tensor_base + offset));
    if (n != (ssize_t)len)
        return ckpt_fail(err, CKPT_ERR_READ, "%s: cannot read stored bytes: %s", c->path,
                         n < 0 ? strerror(errno) : "file is too short");
    if (memcmp(c->stored, data, len) != 0)
        for (uint64_t i = 0; i < len; i += c->esize)
            c->mismatched += memcmp(c->stored + i, data + i, c->esize) != 0;
    return CKPT_OK;
}

#define OBSERVE_CHUNK 2048

/*
 * Decodes in small chunks on the stack, so measuring errors costs no memory.
 * A quantized weight's stored value is its int8 code times its row's scale,
 * exactly (in double).
 */
static void compare_observe(struct stream_sink *sink, const struct stream_values *v)
{
    struct compare_sink *c = (struct compare_sink *)sink;
    double a[OBSERVE_CHUNK], b[OBSERVE_CHUNK];
    size_t ref_size = ckpt_dtype_size(v->ref_dtype), out_size = ckpt_dtype_size(v->out_dtype);
    if (v->ref_dtype == v->out_dtype && !v->line_scales && memcmp(v->ref, v->out, v->elems * ref_size) == 0)
        return;   /* a copy, bit for bit: every error is zero, and zero is where the maxima start */
    for (uint64_t at = 0; at < v->elems; at += OBSERVE_CHUNK) {
        uint64_t n = v->elems - at < OBSERVE_CHUNK ? v->elems - at : OBSERVE_CHUNK;
        decode_f64(v->ref_dtype, v->ref + at * ref_size, a, n);
        if (v->line_scales) {
            uint64_t line = at / v->line_elems, left = v->line_elems - at % v->line_elems;   /* no division per value */
            for (uint64_t k = 0; k < n; k++) {
                b[k] = (double)(int8_t)v->out[at + k] * (double)v->line_scales[line];
                if (--left == 0) {
                    line++;
                    left = v->line_elems;
                }
            }
            energy_update(a, b, n, &c->signal, &c->noise);
        } else {
            decode_f64(v->out_dtype, v->out + at * out_size, b, n);
        }
        error_update(a, b, n, &c->abs_err, &c->rel_err);
    }
}

static bool keep_going(struct stream_sink *sink, uint64_t bytes)
{
    (void)sink;
    (void)bytes;
    return true;
}

struct fidelity {
    const struct manifest *m;
    const char *dst;
    const ckpt_verify_options *opts;
    struct reporter *r;
    const struct ckpt_plan *plan;
    const struct manifest_tensor **by_name;   /* the manifest's tensors sorted by name (load refused twins) */
    size_t *plan_order;                       /* plan item indices sorted by output name */
    uint64_t *data_start;                     /* per shard: where convert puts its tensor data */
    uint64_t budget;
    atomic_size_t next;
    pthread_mutex_t lock;
    int rc;
    ckpt_error err;
};

static int by_tensor_name(const void *a, const void *b)
{
    return strcmp((*(const struct manifest_tensor *const *)a)->name, (*(const struct manifest_tensor *const *)b)->name);
}

static const struct manifest_tensor *find_tensor(const struct fidelity *fd, const char *name)
{
    const struct manifest_tensor key = {.name = name}, *pk = &key;
    const struct manifest_tensor *const *t =
        bsearch(&pk, fd->by_name, fd->m->tensor_count, sizeof *fd->by_name, by_tensor_name);
    return t ? *t : NULL;
}

/* Where the plan and the manifest disagree about a tensor, or NULL. */
static const char *plan_disagreement(const struct ckpt_plan *plan, const ckpt_plan_entry *e,
                                     const struct manifest_tensor *t)
{
    if (e->dtype != t->dtype)
        return "another element type";
    if (e->layout != t->layout || (bool)e->transposed != t->transposed)
        return "another layout";
    if (e->rank != t->rank || memcmp(e->shape, t->shape, t->rank * sizeof *t->shape) != 0 || e->nd_rank != t->nd_rank ||
        memcmp(e->nd_shape, t->nd_shape, t->nd_rank * sizeof *t->nd_shape) != 0)
        return "another shape";
    if (strcmp(e->source_name, t->source_name) != 0 || e->source_dtype != t->source_dtype)
        return "another source tensor";
    if (e->rows.groups != t->rows.groups || e->rows.group_rows != t->rows.group_rows ||
        e->rows.offset != t->rows.offset || e->rows.count != t->rows.count)
        return "other source rows";
    if ((e->alias_of == NULL) != (t->alias_of == NULL) || (e->alias_of && strcmp(e->alias_of, t->alias_of) != 0))
        return "another alias";
    if (!e->alias_of && (strcmp(plan->shards[e->shard].name, t->file) != 0 || e->offset != t->offset ||
                         e->nbytes != t->nbytes))
        return "another place (file, offset or size)";
    if (e->quant != t->quant || e->quant_role != t->quant_role || e->load_dtype != t->load_dtype)
        return "another quantization";
    if (e->nz_c0 != t->nz_c0)
        return "another NZ tile width (C0)";
    return NULL;
}

/* The manifest's entries against the plan's, one for one, and its dropped list against the plan's. */
static void check_entries(struct fidelity *fd)
{
    const struct ckpt_plan *plan = fd->plan;
    for (size_t i = 0; i < plan->item_count; i++) {
        const ckpt_plan_entry *e = &plan->items[i].pub;
        const struct manifest_tensor *t = find_tensor(fd, e->name);
        ckpt_finding f = {.check = CKPT_CHECK_FIDELITY, .file = e->alias_of ? NULL : plan->shards[e->shard].name,
                          .tensor = e->name};
        const char *why = t ? plan_disagreement(plan, e, t) : NULL;
        if (!t)
            report_finding(fd->r, f, "tensor %s: converting %s gives it, but the manifest does not list it", e->name,
                           fd->opts->against);
        else if (why)
            report_finding(fd->r, f, "tensor %s: converting %s gives %s than the manifest records", e->name,
                           fd->opts->against, why);
        else if (e->alias_of) {
            f.ok = 1;
            report_finding(fd->r, f, "%s: alias of %s, as converting the source gives", e->name, e->alias_of);
        }
    }
    for (size_t i = 0; i < fd->m->tensor_count; i++) {
        const struct manifest_tensor *t = &fd->m->tensors[i];
        bool planned = false;
        for (size_t lo = 0, hi = plan->item_count; lo < hi && !planned;) {
            size_t mid = (lo + hi) / 2;
            int c = strcmp(plan->items[fd->plan_order[mid]].pub.name, t->name);
            planned = c == 0;
            if (c < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (!planned)
            report_finding(fd->r, (ckpt_finding){.check = CKPT_CHECK_FIDELITY, .file = t->file, .tensor = t->name},
                           "tensor %s: converting %s gives no such tensor", t->name, fd->opts->against);
    }
    const json_t *dropped = json_object_get(fd->m->root, "dropped");
    bool same = json_is_array(dropped) && json_array_size(dropped) == plan->dropped_count;
    for (size_t i = 0; same && i < plan->dropped_count; i++)
        same = json_is_string(json_array_get(dropped, i)) &&
               strcmp(json_string_value(json_array_get(dropped, i)), plan->dropped[i]) == 0;
    if (!same)
        report_finding(fd->r, (ckpt_finding){.check = CKPT_CHECK_FIDELITY},
                       "the manifest's dropped tensors are not those converting %s drops", fd->opts->against);
    /* not an option: the source's fp8 scale blocks, as the plan read them */
    const json_t *block = json_object_get(json_object_get(fd->m->root, "options"), "fp8_block");
    if (!json_is_array(block) || json_array_size(block) != 2 ||
        json_integer_value(json_array_get(block, 0)) != (json_int_t)plan->fp8_block[0] ||
        json_integer_value(json_array_get(block, 1)) != (json_int_t)plan->fp8_block[1] ||
        !json_is_integer(json_array_get(block, 0)) || !json_is_integer(json_array_get(block, 1)))
        report_finding(fd->r, (ckpt_finding){.check = CKPT_CHECK_FIDELITY},
                       "the manifest's options.fp8_block is not the one converting %s reads", fd->opts->against);
}

static int prove_item(struct fidelity *fd, const struct plan_item *it, struct stream_buffers *b, ckpt_error *err)
{
    const ckpt_plan_entry *e = &it->pub;
    const char *file = fd->plan->shards[e->shard].name;
    ckpt_finding f = {.check = CKPT_CHECK_FIDELITY, .file = file, .tensor = e->name};
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", fd->dst, file);
    struct compare_sink c = {{compare_put, compare_observe, keep_going, NULL}, -1, 0, ckpt_dtype_size(e->dtype), NULL,
                             0, 0, 0, 0, 0, 0, path, 0};
    c.fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (c.fd < 0) {
        report_finding(fd->r, f, "tensor %s: %s cannot be read", e->name, file);
        return CKPT_OK;
    }
    c.tensor_base = fd->data_start[e->shard] + e->offset;   /* where convert writes it, whatever the header says */
    ckpt_cast_counts counts = {0, 0, 0};
    int rc = stream_tensor(fd->plan, it, fd->budget, b, &c.base, &counts, err);
    close(c.fd);
    free(c.stored);
    if (rc == CKPT_ERR_READ && strncmp(err->message, path, strlen(path)) == 0) {
        report_finding(fd->r, f, "tensor %s: stored bytes cannot be read (truncated?)", e->name);
        return CKPT_OK;
    }
    if (rc)
        return rc;
    reporter_add_bytes(fd->r, e->nbytes);
    f.max_abs_error = c.abs_err;
    f.max_rel_error = c.rel_err;
    f.mismatched = c.mismatched;
    f.counts = counts;
    f.quant = e->quant_role == CKPT_QUANT_ROLE_WEIGHT ? e->quant : CKPT_QUANT_NONE;
    f.sqnr_db = f.quant ? sqnr_db(c.signal, c.noise) : 0;
    bool abs_ok = fd->opts->max_abs_error <= 0 || c.abs_err <= fd->opts->max_abs_error;
    bool rel_ok = fd->opts->max_rel_error <= 0 || c.rel_err <= fd->opts->max_rel_error;
    f.ok = c.mismatched == 0 && abs_ok && rel_ok;
    if (c.mismatched)
        report_finding(fd->r, f, "tensor %s: %llu elements differ from converting the source (wrong cast or layout)",
                       e->name, (unsigned long long)c.mismatched);
    else if (!f.ok)
        report_finding(fd->r, f, "tensor %s: error %.3g abs, %.3g rel exceeds the tolerance", e->name, c.abs_err,
                       c.rel_err);
    else if (f.quant)
        report_finding(fd->r, f, "%s: bit-exact %s int8 weight; max error %.3g abs, %.3g rel, SQNR %.2f dB", e->name,
                       ckpt_quant_name(f.quant), c.abs_err, c.rel_err, f.sqnr_db);
    else if (e->quant_role != CKPT_QUANT_ROLE_NONE)
        report_finding(fd->r, f, "%s: bit-exact %s %s", e->name, ckpt_quant_name(e->quant),
                       e->quant_role == CKPT_QUANT_ROLE_SCALE ? "per-channel scale" : "offset (zeros)");
    else
        report_finding(fd->r, f, "%s: bit-exact; max error %.3g abs, %.3g rel; %llu overflowed, %llu subnormal, "
                                 "%llu flushed",
                       e->name, c.abs_err, c.rel_err, (unsigned long long)counts.overflowed,
                       (unsigned long long)counts.subnormal, (unsigned long long)counts.flushed);
    return CKPT_OK;
}

static void *fidelity_worker(void *arg)
{
    struct fidelity *fd = arg;
    struct stream_buffers b = {0};
    for (;;) {
        size_t i = atomic_fetch_add(&fd->next, 1);
        if (i >= fd->plan->item_count || atomic_load(&fd->r->stop))
            break;
        ckpt_error err;
        reporter_unit_begin(fd->r, i);   /* findings in plan order, whichever worker proves which item */
        /* an alias is not stored: check_entries proved it */
        int rc = fd->plan->items[i].pub.alias_of ? CKPT_OK : prove_item(fd, &fd->plan->items[i], &b, &err);
        reporter_unit_end(fd->r, i);
        if (rc) {
            pthread_mutex_lock(&fd->lock);
            if (!fd->rc) {
                fd->rc = rc;
                fd->err = err;
            }
            pthread_mutex_unlock(&fd->lock);
            atomic_store(&fd->r->stop, 1);
        }
    }
    stream_buffers_free(&b);
    return NULL;
}

static int by_item_name(const void *a, const void *b, void *plan)
{
    const struct ckpt_plan *p = plan;
    return strcmp(p->items[*(const size_t *)a].pub.name, p->items[*(const size_t *)b].pub.name);
}

/* The plan for the options against_options settled on; a manifest's options that cannot plan are bad input. */
static int build_plan(const char *dst, const struct manifest *m, const ckpt_verify_options *opts, struct reporter *r,
                      ckpt_source **src, ckpt_plan **plan, ckpt_error *err)
{
    ckpt_convert_options copts;
    ckpt_open_options open;
    int rc = against_options(m, opts, dst, &copts, &open, r, err);
    if (!rc)
        rc = ckpt_source_open_ext(src, opts->against, &open, err);
    if (!rc && (rc = ckpt_plan_build(plan, *src, dst, &copts, err)) == CKPT_ERR_ARG && !opts->convert) {
        char why[sizeof err->message];
        snprintf(why, sizeof why, "%s", err->message);
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: the manifest's options cannot be converted with: %s", dst, why);
    }
    return rc;
}

int verify_fidelity(const char *dst, const struct manifest *m, const ckpt_verify_options *opts, struct reporter *r,
                    ckpt_error *err)
{
    ckpt_source *src = NULL;
    ckpt_plan *plan = NULL;
    int rc = build_plan(dst, m, opts, r, &src, &plan, err);
    struct fidelity fd = {m, dst, opts, r, plan, NULL, NULL, NULL, 0, 0, PTHREAD_MUTEX_INITIALIZER, CKPT_OK, {0}};
    if (!rc && (!(fd.by_name = malloc((m->tensor_count + 1) * sizeof *fd.by_name)) ||
                !(fd.plan_order = malloc((plan->item_count + 1) * sizeof *fd.plan_order)) ||
                !(fd.data_start = calloc(plan->shard_count + 1, sizeof *fd.data_start))))
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    if (!rc) {
        for (size_t i = 0; i < m->tensor_count; i++)
            fd.by_name[i] = &m->tensors[i];
        qsort(fd.by_name, m->tensor_count, sizeof *fd.by_name, by_tensor_name);
        for (size_t i = 0; i < plan->item_count; i++)
            fd.plan_order[i] = i;
        qsort_r(fd.plan_order, plan->item_count, sizeof *fd.plan_order, by_item_name, plan);
        check_entries(&fd);
        rc = against_files(dst, plan, m, fd.data_start, r, err);
    }
    if (!rc) {
        unsigned n = worker_count(opts->jobs, plan->item_count);
        uint64_t total = opts->max_memory ? opts->max_memory : DEFAULT_BUDGET * n;
        fd.budget = total / n ? total / n : 1;
        reporter_order(r, plan->item_count);
        run_on_threads(n, fidelity_worker, &fd);
        reporter_order_end(r);
        rc = fd.rc;
        if (rc && err)
            *err = fd.err;
    }
    pthread_mutex_destroy(&fd.lock);
    free(fd.by_name);
    free(fd.plan_order);
    free(fd.data_start);
    ckpt_plan_free(plan);
    ckpt_source_free(src);
    return rc;
}
