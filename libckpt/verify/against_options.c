/*
 * against_options.c: see against_options.h.  The options are the ones the
 * manifest records (manifest.c writes them): each is compared in the form
 * it is recorded in, so that a folder converted with the same command line
 * agrees whatever spelling the command line used.
 */
#include "against_options.h"

#include "libckpt/common/error.h"
#include "libckpt/common/options.h"
#include "libckpt/plan/rules.h"

#include <stdio.h>
#include <string.h>

static const char *nz_word(ckpt_nz_mode m)
{
    return m == CKPT_NZ_ALL ? "all" : m == CKPT_NZ_NONE ? "none" : "auto";
}

static const char *overflow_word(ckpt_overflow o)
{
    return o == CKPT_OVERFLOW_INF ? "inf" : o == CKPT_OVERFLOW_ERROR ? "error" : "saturate";
}

/* Unset and empty are the same option: no rules, no rename set. */
static bool same_text(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

struct option_report {
    struct reporter *r;
    const char *origin;
    bool compare;   /* the options are the caller's: compare each with the manifest's */
};

static void report(const struct option_report *o, const char *name, const char *value, const char *recorded,
                   bool same)
{
    ckpt_finding f = {.check = CKPT_CHECK_OPTION, .ok = !o->compare || same, .option = name, .value = value,
                      .origin = o->origin};
    if (f.ok)
        report_finding(o->r, f, "option %s: %s (from the %s)", name, value ? value : "none",
                       o->compare ? "options given" : "manifest");
    else
        report_finding(o->r, f, "option %s: proving with %s, but the manifest records %s", name,
                       value ? value : "none", recorded ? recorded : "none");
}

static void report_all(const struct option_report *o, const ckpt_convert_options *c, const struct manifest *m,
                       const ckpt_open_options *open)
{
    char shard[32], recorded_shard[32], c0[16], recorded_c0[16];
    snprintf(shard, sizeof shard, "%llu", (unsigned long long)c->max_shard_bytes);
    snprintf(recorded_shard, sizeof recorded_shard, "%llu", (unsigned long long)m->max_shard_bytes);
    snprintf(c0, sizeof c0, "%u", c->nz_fp32_c0);
    snprintf(recorded_c0, sizeof recorded_c0, "%u", m->nz_fp32_c0);
    ckpt_quant recorded_quant = CKPT_QUANT_NONE;
    bool quant_known = !m->quant || rules_parse_quant(m->quant, &recorded_quant);
    ckpt_float_type recorded_dtype = CKPT_FLOAT_TARGET;
    bool dtype_known = !m->dtype || ckpt_float_type_parse(m->dtype, &recorded_dtype) == CKPT_OK;
    report(o, "target", ckpt_target_name(c->target), m->target, c->target == ckpt_target_from_name(m->target));
    report(o, "dtype", c->dtype == CKPT_FLOAT_TARGET ? "target's" : ckpt_float_type_name(c->dtype),
           m->dtype ? m->dtype : "target's", dtype_known && recorded_dtype == c->dtype);
    report(o, "quant", rules_quant_word(c->quant), m->quant ? m->quant : "none",
           quant_known && recorded_quant == c->quant);
    report(o, "nz", nz_word(c->nz), m->nz, same_text(nz_word(c->nz), m->nz));
    report(o, "nz_fp32_c0", c0, recorded_c0, c->nz_fp32_c0 == m->nz_fp32_c0);
    report(o, "overflow", overflow_word(c->overflow), m->overflow, same_text(overflow_word(c->overflow), m->overflow));
    report(o, "rename", c->rename, m->rename, same_text(c->rename, m->rename));
    report(o, "rules", c->rules, m->rules, same_text(c->rules, m->rules));
    report(o, "max_shard_size", shard, recorded_shard, c->max_shard_bytes == m->max_shard_bytes);
    if (m->deepspeed_weights) {
        const char *ds = open->deepspeed_weights == CKPT_DEEPSPEED_MODULE ? "module" : "fp32";
        report(o, "deepspeed_weights", ds, m->deepspeed_weights, strcmp(ds, m->deepspeed_weights) == 0);
    }
}

int against_options(const struct manifest *m, const ckpt_verify_options *opts, const char *dst,
                    ckpt_convert_options *convert, ckpt_open_options *open, struct reporter *r, ckpt_error *err)
{
    *open = *opts->open;   /* taken by ckpt_verify */
    struct option_report o = {r, opts->convert ? "options" : "manifest", opts->convert != NULL};
    if (opts->convert) {
        ckpt_convert_options_default(convert);
        int rc = options_take(convert, sizeof *convert, opts->convert, "ckpt_convert_options", err);
        if (rc)
            return rc;
        if (convert->target == CKPT_TARGET_NONE)
            return ckpt_fail(err, CKPT_ERR_ARG, "verify: the conversion options given have no target");
    } else {
        int rc = manifest_options(m, convert, dst, err);
        if (rc)
            return rc;
        if (m->deepspeed_weights)   /* the source is read as convert read it */
            open->deepspeed_weights =
                strcmp(m->deepspeed_weights, "module") == 0 ? CKPT_DEEPSPEED_MODULE : CKPT_DEEPSPEED_FP32;
    }
    /* what only decides how the proof runs, never which bytes are proven */
    convert->force = 0;
    convert->part = convert->parts = 0;
    convert->jobs = opts->jobs;
    convert->max_memory = opts->max_memory;
    ckpt_open_options_for_rename(open, convert->rename);   /* the source read as convert read it: hf splits experts */
    report_all(&o, convert, m, open);
    return CKPT_OK;
}
