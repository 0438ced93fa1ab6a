/* findings.c: see findings.h; the JSON schema is documented in docs/verify.md. */
#include "findings.h"

#include "report_file.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *check_name(ckpt_check check)
{
    switch (check) {
    case CKPT_CHECK_FILE: return "file";
    case CKPT_CHECK_EXTRA_FILE: return "extra_file";
    case CKPT_CHECK_HEADER: return "header";
    case CKPT_CHECK_TENSOR: return "tensor";
    case CKPT_CHECK_FIDELITY: return "fidelity";
    case CKPT_CHECK_DIFF: return "diff";
    case CKPT_CHECK_OPTION: return "option";
    }
    return "unknown";
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Where an option verify --against proved with came from, as a CI log should say it. */
static const char *option_origin(const struct findings *fs, const ckpt_finding *f)
{
    if (!f->origin || strcmp(f->origin, "manifest") == 0)
        return "manifest";
    return !fs->conv || !f->option || cli_convert_option_given(fs->conv, f->option) ? "command line" : "default";
}

/* An option's line: always printed, since it says what was proved; a rules text shown on one line. */
static void print_option(const struct findings *fs, const ckpt_finding *f)
{
    printf("%s option     %s = ", f->ok ? "ok  " : "FAIL", f->option ? f->option : "?");
    const char *v = f->value ? f->value : "none";
    size_t len = strlen(v);
    for (size_t i = 0; i < len && i < 120; i++) {
        if (v[i] == '\n')
            fputs("; ", stdout);
        else
            putchar((unsigned char)v[i] < 0x20 ? '?' : v[i]);
    }
    printf("%s (%s)%s%s\n", len > 120 ? "..." : "", option_origin(fs, f), f->ok ? "" : ": ",
           f->ok ? "" : f->message);
}

int findings_collect(void *payload, const ckpt_finding *f)
{
    struct findings *fs = payload;
    if (!fs->quiet_text && f->check == CKPT_CHECK_OPTION) {
        cli_progress_clear(fs->progress);
        print_option(fs, f);
        fflush(stdout);
    } else if (!fs->quiet_text && (!f->ok || fs->verbose)) {
        cli_progress_clear(fs->progress);
        printf("%s %-10s %s\n", f->ok ? "ok  " : "FAIL", check_name(f->check), f->message);
        fflush(stdout);
    }
    if (fs->count == fs->cap) {
        size_t cap = fs->cap ? fs->cap * 2 : 64;
        struct finding_copy *grown = realloc(fs->items, cap * sizeof *grown);
        if (!grown) {
            fs->oom = 1;
            return 1;
        }
        fs->items = grown;
        fs->cap = cap;
    }
    struct finding_copy *c = &fs->items[fs->count++];
    c->error = NULL;
    c->f = *f;
    c->file = dup_or_null(f->file);
    c->tensor = dup_or_null(f->tensor);
    c->message = dup_or_null(f->message);
    c->option = dup_or_null(f->option);
    c->value = dup_or_null(f->value);
    c->origin = f->check == CKPT_CHECK_OPTION ? option_origin(fs, f) : NULL;
    c->f.file = c->file;
    c->f.tensor = c->tensor;
    c->f.message = c->message;
    c->f.option = c->option;
    c->f.value = c->value;
    c->f.origin = c->origin;
    return 0;
}

void findings_add_error(struct findings *fs, const ckpt_error *err, ckpt_verify_summary *s)
{
    int quiet = fs->quiet_text;
    fs->quiet_text = 1;   /* stderr has the message already */
    ckpt_finding f = {.ok = 0, .message = err->message};
    if (findings_collect(fs, &f) == 0)
        fs->items[fs->count - 1].error = ckpt_status_name(err->code);
    fs->quiet_text = quiet;
    s->checks++;
    s->failures++;
}

void findings_free(struct findings *fs)
{
    for (size_t i = 0; i < fs->count; i++) {
        free(fs->items[i].file);
        free(fs->items[i].tensor);
        free(fs->items[i].message);
        free(fs->items[i].option);
        free(fs->items[i].value);
    }
    free(fs->items);
}

static json_t *finding_json(const struct finding_copy *c)
{
    const ckpt_finding *f = &c->f;
    if (c->error)
        return json_pack("{s:s, s:b, s:s, s:s?}", "check", "error", "ok", 0, "status", c->error, "message",
                         f->message);
    json_t *o = json_pack("{s:s, s:b, s:s?, s:s?, s:s?}", "check", check_name(f->check), "ok", f->ok, "file", f->file,
                          "tensor", f->tensor, "message", f->message);
    if (o && (f->check == CKPT_CHECK_FIDELITY || f->check == CKPT_CHECK_DIFF)) {
        json_object_set_new(o, "max_abs_error", json_real(f->max_abs_error));
        json_object_set_new(o, "max_rel_error", json_real(f->max_rel_error));
        json_object_set_new(o, "mismatched", json_integer((json_int_t)f->mismatched));
    }
    if (o && f->check == CKPT_CHECK_OPTION)
        json_object_update_new(o, json_pack("{s:s?, s:s?, s:s?}", "option", f->option, "value", f->value, "origin",
                                            f->origin));
    /* an int8 weight, measured dequantized; an exact one has no finite SQNR */
    if (o && f->quant != CKPT_QUANT_NONE) {
        json_object_set_new(o, "quant", json_string(ckpt_quant_name(f->quant)));
        json_object_set_new(o, "sqnr_db", isfinite(f->sqnr_db) ? json_real(f->sqnr_db) : json_null());
    }
    if (o && f->check == CKPT_CHECK_FIDELITY)
        json_object_set_new(o, "counts", json_pack("{s:I, s:I, s:I}", "overflowed", (json_int_t)f->counts.overflowed,
                                                   "subnormal", (json_int_t)f->counts.subnormal, "flushed",
                                                   (json_int_t)f->counts.flushed));
    return o;
}

int findings_print(const struct findings *fs, const char *command, const ckpt_verify_summary *s, int json)
{
    if (json) {
        json_t *list = json_array(), *options = json_object();
        for (size_t i = 0; i < fs->count; i++) {
            const ckpt_finding *f = &fs->items[i].f;
            json_array_append_new(list, finding_json(&fs->items[i]));
            if (f->check == CKPT_CHECK_OPTION && f->option)
                json_object_set_new(options, f->option, json_pack("{s:s?, s:s?, s:b}", "value", f->value, "origin",
                                                                  f->origin, "ok", f->ok));
        }
        json_t *doc = json_pack("{s:s, s:b, s:I, s:I, s:I, s:f, s:o}", "command", command, "ok", s->failures == 0,
                                "checks", (json_int_t)s->checks, "failures", (json_int_t)s->failures, "bytes",
                                (json_int_t)s->bytes, "seconds", s->seconds, "findings", list);
        /* what --against proved with, at the top where a CI job looks first */
        if (doc && json_object_size(options))
            json_object_set(doc, "options", options);
        json_decref(options);
        return cli_print_json(doc);
    }
    if (cli_global.quiet)   /* -q: the failures printed as they came, and the exit status */
        return fflush(stdout) == 0 ? EXIT_OK : EXIT_OUTPUT;
    char bytes[32];
    cli_format_bytes(bytes, sizeof bytes, s->bytes);
    printf("%s: %llu check%s, %llu failed (%s in %.2fs)\n", command, (unsigned long long)s->checks,
           s->checks == 1 ? "" : "s", (unsigned long long)s->failures, bytes, s->seconds);
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_OUTPUT;
}

static void xml_escaped(FILE *out, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        case '\'': fputs("&apos;", out); break;
        default:
            /* XML 1.0 has no place for most control characters, even escaped */
            if ((unsigned char)*s >= 0x20 || *s == '\t' || *s == '\n')
                fputc(*s, out);
            else
                fputc('?', out);
        }
    }
}

int findings_write_junit(const struct findings *fs, const char *suite, const ckpt_verify_summary *s,
                         const char *path)
{
    struct report_file r;
    int status = report_file_open(&r, suite, path);
    if (status)
        return status;
    FILE *out = r.out;
    fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    fprintf(out, "  <testsuite name=\"ckpt %s\" tests=\"%llu\" failures=\"%llu\" errors=\"0\" time=\"%.3f\">\n", suite,
            (unsigned long long)s->checks, (unsigned long long)s->failures, s->seconds);
    for (size_t i = 0; i < fs->count; i++) {
        const ckpt_finding *f = &fs->items[i].f;
        if (fs->items[i].error) {   /* the command could not run: one failing case that says why */
            fprintf(out, "    <testcase classname=\"error\" name=\"ckpt %s: %s\">\n      <failure message=\"", suite,
                    fs->items[i].error);
            xml_escaped(out, f->message);
            fputs("\"/>\n    </testcase>\n", out);
            continue;
        }
        fprintf(out, "    <testcase classname=\"%s\" name=\"", check_name(f->check));
        xml_escaped(out, f->check == CKPT_CHECK_OPTION ? f->option : f->tensor ? f->tensor : f->file);
        if (f->tensor && f->file) {
            fputs(" (", out);
            xml_escaped(out, f->file);
            fputc(')', out);
        }
        fputc('"', out);
        if (f->ok && f->quant == CKPT_QUANT_NONE && f->check != CKPT_CHECK_OPTION) {
            fputs("/>\n", out);
            continue;
        }
        fputs(">\n", out);
        if (f->check == CKPT_CHECK_OPTION) {   /* what was proved with, and where it came from */
            fputs("      <properties><property name=\"value\" value=\"", out);
            xml_escaped(out, f->value ? f->value : "none");
            fputs("\"/><property name=\"origin\" value=\"", out);
            xml_escaped(out, f->origin);
            fputs("\"/></properties>\n", out);
        }
        if (f->quant != CKPT_QUANT_NONE)
            fprintf(out, "      <properties><property name=\"quant\" value=\"%s\"/><property name=\"max_abs_error\" "
                         "value=\"%.6g\"/><property name=\"sqnr_db\" value=\"%.4f\"/></properties>\n",
                    ckpt_quant_name(f->quant), f->max_abs_error, f->sqnr_db);
        if (!f->ok) {
            fputs("      <failure message=\"", out);
            xml_escaped(out, f->message);
            fputs("\"/>\n", out);
        }
        fputs("    </testcase>\n", out);
    }
    fprintf(out, "  </testsuite>\n</testsuites>\n");
    return report_file_commit(&r, suite, path);
}
