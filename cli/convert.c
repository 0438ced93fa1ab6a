/* convert.c: `ckpt convert`: plan, then stream a checkpoint into an Ascend-ready folder. */
#include "convert_options.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char convert_help[] =
    "Usage: ckpt convert SRC DST --target ascend-310p|ascend-910b|nd [options]\n"
    "Converts the checkpoint SRC into a new folder DST that Ascend inference loads as\n"
    "it is: safetensors shards, their index, config.json, small side files and\n"
    "ckpt-manifest.json (checksums of every file and tensor).  Missing parent\n"
    "folders of DST are made, as mkdir -p does.\n\n"
    "Conversion options (--target is required):\n"
    CLI_CONVERT_HELP
    "Other options:\n"
    "  --max-memory N       working memory for tensor data (default 16MiB per job)\n"
    "  --force              replace an existing DST\n"
    "  --part K/N           convert only part K of N of the output shards, into\n"
    "                       DST.ckpt-parts/; `ckpt manifest merge DST` then joins\n"
    "                       the N parts (docs/scale-out.md)\n"
    CLI_OPEN_HELP
    "  --dry-run            print the plan and write nothing\n"
    "  --json               machine-readable plan (--dry-run) or final summary\n"
    CLI_GLOBAL_HELP
    "Ctrl-C stops, leaves no DST and exits 130.  A temporary folder a killed run left\n"
    "beside DST is removed by the next run into DST; others beside it are named.\n";

static ckpt_plan *running_plan;

/* Called from the signal handler: ckpt_plan_cancel is safe there. */
static void cancel_plan(void)
{
    if (running_plan)
        ckpt_plan_cancel(running_plan);
}

/* ---- printing ---- */

static void format_dims(char *buf, size_t size, const uint64_t *shape, uint32_t rank)
{
    ckpt_tensor t = {.rank = rank, .shape = shape};
    cli_format_shape(buf, size, &t);
}

static json_t *dims_json(const uint64_t *shape, uint32_t rank)
{
    json_t *a = json_array();
    for (uint32_t d = 0; d < rank; d++)
        json_array_append_new(a, json_integer((json_int_t)shape[d]));
    return a;
}

static int print_plan_json(const ckpt_plan *plan)
{
    json_t *entries = json_array(), *dropped = json_array(), *shards = json_array();
    for (size_t i = 0; i < ckpt_plan_entry_count(plan); i++) {
        const ckpt_plan_entry *e = ckpt_plan_entry_at(plan, i);
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:b, s:I}", "name", e->name, "source",
                              e->source_name, "source_dtype", ckpt_dtype_name(e->source_dtype), "dtype",
                              ckpt_dtype_name(e->dtype), "layout",
                              e->layout == CKPT_LAYOUT_FRACTAL_NZ ? "FRACTAL_NZ" : "ND", "shape",
                              dims_json(e->shape, e->rank), "nd_shape", dims_json(e->nd_shape, e->nd_rank),
                              "transposed", e->transposed, "nbytes", (json_int_t)e->nbytes);
        if (e->alias_of)
            json_object_set_new(o, "alias_of", json_string(e->alias_of));
        else {
            json_object_set_new(o, "file", json_string(ckpt_plan_shard_name(plan, e->shard)));
            json_object_set_new(o, "offset", json_integer((json_int_t)e->offset));
        }
        if (e->scale_name)
            json_object_set_new(o, "scale", json_string(e->scale_name));
        static const char *const roles[] = {"none", "weight", "scale", "offset"};
        if (e->quant_role != CKPT_QUANT_ROLE_NONE)
            json_object_set_new(o, "quant", json_pack("{s:s, s:s, s:s}", "type", ckpt_quant_name(e->quant), "role",
                                                      roles[e->quant_role], "load_dtype",
                                                      ckpt_dtype_name(e->load_dtype)));
        if (e->layout == CKPT_LAYOUT_FRACTAL_NZ)
            json_object_set_new(o, "c0", json_integer((json_int_t)e->nz_c0));
        const ckpt_row_select *r = &e->rows;
        if (r->groups)
            json_object_set_new(o, "source_rows",
                                json_pack("{s:I, s:I, s:I, s:I}", "groups", (json_int_t)r->groups, "group_rows",
                                          (json_int_t)r->group_rows, "offset", (json_int_t)r->offset, "count",
                                          (json_int_t)r->count));
        json_array_append_new(entries, o);
    }
    for (size_t i = 0; i < ckpt_plan_dropped_count(plan); i++)
        json_array_append_new(dropped, json_string(ckpt_plan_dropped(plan, i)));
    for (size_t i = 0; i < ckpt_plan_shard_count(plan); i++)
        json_array_append_new(shards, json_string(ckpt_plan_shard_name(plan, i)));
    return cli_print_json(json_pack("{s:I, s:I, s:o, s:o, s:o}", "bytes_in", (json_int_t)ckpt_plan_bytes_in(plan),
                                    "bytes_out", (json_int_t)ckpt_plan_bytes_out(plan), "shards", shards,
                                    "tensors", entries, "dropped", dropped));
}

/* "plan: 1 tensor, 2 shards, 1.5 GiB in, 768 MiB out" */
static void print_plan_totals(const ckpt_plan *plan)
{
    char in[32], out[32];
    size_t n = ckpt_plan_entry_count(plan), shards = ckpt_plan_shard_count(plan);
    cli_format_bytes(in, sizeof in, ckpt_plan_bytes_in(plan));
    cli_format_bytes(out, sizeof out, ckpt_plan_bytes_out(plan));
    printf("plan: %zu tensor%s, %zu shard%s, %s in, %s out\n", n, n == 1 ? "" : "s", shards, shards == 1 ? "" : "s",
           in, out);
}

static int print_plan_table(const ckpt_plan *plan)
{
    char shape[256], nd[256];
    print_plan_totals(plan);
    printf("\n");
    printf("%-48s %-7s %-7s %-10s %-22s %-14s %s\n", "NAME", "FROM", "TO", "LAYOUT", "STORED SHAPE", "ND SHAPE",
           "FILE");
    for (size_t i = 0; i < ckpt_plan_entry_count(plan); i++) {
        const ckpt_plan_entry *e = ckpt_plan_entry_at(plan, i);
        format_dims(shape, sizeof shape, e->shape, e->rank);
        format_dims(nd, sizeof nd, e->nd_shape, e->nd_rank);
        printf("%-48s %-7s %-7s %-10s %-22s %-14s %s\n", e->name, ckpt_dtype_name(e->source_dtype),
               ckpt_dtype_name(e->dtype), e->layout == CKPT_LAYOUT_FRACTAL_NZ ? "FRACTAL_NZ" : "ND", shape, nd,
               e->alias_of ? "(alias)" : ckpt_plan_shard_name(plan, e->shard));
    }
    for (size_t i = 0; i < ckpt_plan_dropped_count(plan); i++)
        printf("dropped: %s\n", ckpt_plan_dropped(plan, i));
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_OUTPUT;
}

static int print_summary(const ckpt_convert_stats *s, const char *dst, const ckpt_convert_options *o, int json)
{
    char where[4200];
    if (o->parts)   /* a part's output is not DST yet */
        snprintf(where, sizeof where, "part %u of %u of %s", o->part, o->parts, dst);
    dst = o->parts ? where : dst;
    if (json)
        return cli_print_json(json_pack("{s:s, s:I, s:I, s:I, s:f, s:{s:I, s:I, s:I}}", "destination", dst,
                                        "tensors", (json_int_t)s->tensors, "bytes_in", (json_int_t)s->bytes_in,
                                        "bytes_out", (json_int_t)s->bytes_out, "seconds", s->seconds, "counts",
                                        "overflowed", (json_int_t)s->counts.overflowed, "subnormal",
                                        (json_int_t)s->counts.subnormal, "flushed", (json_int_t)s->counts.flushed));
    char in[32], out[32];
    cli_format_bytes(in, sizeof in, s->bytes_in);
    cli_format_bytes(out, sizeof out, s->bytes_out);
    printf("converted %llu tensor%s, %s in, %s out, in %.2fs -> %s\n", (unsigned long long)s->tensors,
           s->tensors == 1 ? "" : "s", in, out, s->seconds, dst);
    if (s->counts.overflowed || s->counts.subnormal || s->counts.flushed)
        printf("cast cost: %llu overflowed, %llu subnormal, %llu flushed to zero\n",
               (unsigned long long)s->counts.overflowed, (unsigned long long)s->counts.subnormal,
               (unsigned long long)s->counts.flushed);
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_OUTPUT;
}

/* ---- options ---- */

struct convert_args {
    struct cli_convert conv;
    ckpt_open_options open;
    int dry_run, json;
};

static int parse_args(int argc, char **argv, struct convert_args *a)
{
    static const struct option options[] = {
        CLI_CONVERT_OPTIONS,
        {"max-memory", required_argument, NULL, 'm'},
        {"force", no_argument, NULL, 'f'},          {"dry-run", no_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'J'},           CLI_GLOBAL_OPTIONS,
        CLI_OPEN_OPTIONS, {"part", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    ckpt_convert_options_default(&a->conv.opts);
    cli_open_options_default(&a->open);
    ckpt_convert_options *o = &a->conv.opts;
    int c, status;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h" CLI_GLOBAL_SHORT, options, NULL)) != -1) {
        switch (c) {
        CLI_CONVERT_CASES:
            if ((status = cli_parse_convert_option("convert", c, optarg, &a->conv)))
                return status;
            break;
        case 'm':
            if (cli_parse_size(optarg, &o->max_memory) || o->max_memory == 0)
                return cli_usage_error("convert", "bad --max-memory '%s'", optarg);
            break;
        CLI_GLOBAL_CASES:
            if ((status = cli_parse_global_option("convert", c, optarg)))
                return status;
            break;
        case 'f': o->force = 1; break;
        case 'n': a->dry_run = 1; break;
        case 'J': a->json = 1; break;
        CLI_OPEN_CASES:
            if ((status = cli_parse_open_option("convert", c, optarg, &a->open)))
                return status;
            break;
        case 'P':
            if ((status = cli_parse_part("convert", optarg, &o->part, &o->parts)))
                return status;
            break;
        case 'h': fputs(convert_help, stdout); return -1;
        default: return cli_unknown_option("convert", argv[optind - 1], options);
        }
    }
    if (argc - optind != 2)
        return cli_usage_error("convert", "expects SRC and DST, got %d paths", argc - optind);
    o->jobs = cli_global.jobs;
    return cli_convert_finish("convert", &a->conv);
}

int cmd_convert(int argc, char **argv)
{
    struct convert_args a = {0};
    int status = parse_args(argc, argv, &a);
    if (status) {
        cli_convert_free(&a.conv);
        return status < 0 ? EXIT_OK : status;
    }
    const char *src_path = argv[optind], *dst = argv[optind + 1];
    ckpt_error err = {0};
    ckpt_source *src = NULL;
    ckpt_plan *plan = NULL;
    ckpt_open_options_for_rename(&a.open, a.conv.opts.rename);   /* hf reads fused experts split */
    /* a .bin's CRC checks ride on the conversion's one pass over the source; a dry run converts nothing */
    a.open.crc_when_converting = !a.dry_run;
    if (ckpt_source_open_ext(&src, src_path, &a.open, &err) != CKPT_OK ||
        ckpt_plan_build(&plan, src, dst, &a.conv.opts, &err) != CKPT_OK) {
        status = cli_fail("convert", &err);
        /* a rules file is the user's input: its mistakes are bad input, not usage */
        if (a.conv.rules && err.code == CKPT_ERR_FORMAT && strstr(err.message, a.conv.rules_path) == err.message)
            status = EXIT_INPUT;
    } else if (a.dry_run) {
        status = a.json ? print_plan_json(plan) : print_plan_table(plan);
    } else {
        if (!a.conv.opts.parts)
            cli_note_stale("convert", dst);
        if (cli_global.verbose)
            print_plan_totals(plan);
        struct cli_progress p;
        cli_progress_start(&p, cli_want_progress(a.json));
        ckpt_convert_stats stats;
        running_plan = plan;
        cli_cancellable(cancel_plan);
        if (ckpt_plan_execute(plan, cli_progress_show, &p, &stats, &err) != CKPT_OK)
            status = cli_fail("convert", &err);
        else if (cli_global.quiet && !a.json)
            status = EXIT_OK;
        else
            status = print_summary(&stats, dst, &a.conv.opts, a.json);
        running_plan = NULL;
    }
    ckpt_plan_free(plan);
    ckpt_source_free(src);
    cli_convert_free(&a.conv);
    return status;
}
