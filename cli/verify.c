/* verify.c: `ckpt verify` and `ckpt diff`: CI-friendly checks with text, JSON and JUnit output. */
#include "convert_options.h"
#include "findings.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char verify_help[] =
    "Usage: ckpt verify DST [--against SRC [conversion options] | --sums FILE]\n"
    "                       [options]\n"
    "Checks the folder DST that ckpt convert wrote against its ckpt-manifest.json:\n"
    "every file's size and checksum, every tensor's checksum, every shard header\n"
    "entry, and no unlisted files (integrity; the manifest is trusted).  With\n"
    "--against, proves DST is what `ckpt convert SRC DST` with the conversion options\n"
    "gives, whatever the manifest says: every tensor recomputed bit for bit (with\n"
    "each cast's error and overflow counts), every shard header, index, config and\n"
    "side file byte for byte, no file or tensor more or less.  Without conversion\n"
    "options it uses those the manifest records, and says so (docs/verify.md).\n\n"
    "  --against SRC     the source checkpoint to prove fidelity against\n"
    "  --sums FILE       instead, check the files that FILE lists: sha256sum or\n"
    "                    xxhsum lines (ckpt manifest sums), a ckpt-manifest.json,\n"
    "                    or a Hugging Face Hub listing of a repository's files\n"
    "  --ignore-missing  with --sums: a listed file DST lacks is no failure\n"
    "  --max-abs-error X fail a tensor whose largest absolute error exceeds X\n"
    "                    (with --against)\n"
    "  --max-rel-error X the same for the relative error\n"
    CLI_OPEN_HELP
    "Conversion options (with --against; --target is then required, the others\n"
    "default as for convert; options that change bytes and differ from the\n"
    "manifest's fail):\n"
    CLI_CONVERT_HELP
    "Output:\n"
    "  --json            one JSON document (schema: docs/verify.md)\n"
    "  --junit FILE      also write JUnit XML, one test case per check (- for\n"
    "                    standard output; a device or FIFO is written in place, a\n"
    "                    file replaced)\n"
    CLI_GLOBAL_HELP
    "Findings come in the same order every run.  With -q only failures are printed.\n"
    "Exit status: 0 intact, 1 a difference was found, 3 the manifest or input is\n"
    "unreadable, 130 interrupted.\n";

static const char diff_help[] =
    "Usage: ckpt diff A B [options]\n"
    "Compares two checkpoints of any formats and layouts: tensors only in one,\n"
    "changed element types or shapes, and values (exactly equal, or the largest\n"
    "error).  Tensors that ckpt convert stored as FRACTAL_NZ are compared in their\n"
    "logical layout.\n\n"
    "  --names-only      compare names, dtypes and shapes only (fast)\n"
    "  --max-abs-error X values within X count as equal\n"
    "  --max-rel-error X the same for the relative error\n"
    CLI_OPEN_HELP
    "  --json, --junit FILE as for verify\n"
    CLI_GLOBAL_HELP
    "Exit status: 0 the same, 1 they differ, 3 an input is unreadable, 130\n"
    "interrupted.\n";

struct check_args {
    const char *against, *junit, *sums;
    int ignore_missing;
    double max_abs, max_rel;
    int json, names_only;
    ckpt_open_options open;
    struct cli_convert conv;
};

static int parse_double(const char *s, double *out)
{
    char *end;
    *out = strtod(s, &end);
    return *end || *out < 0 ? -1 : 0;
}

/* --junit -: the XML alone on standard output, so the text report stays off it. */
static bool junit_to_stdout(const struct check_args *a)
{
    return a->junit && strcmp(a->junit, "-") == 0;
}

/* Returns EXIT_OK to go on, -1 after --help, or a usage status. */
static int parse_args(const char *command, const char *help, int argc, char **argv, struct check_args *a)
{
    static const struct option options[] = {
        {"against", required_argument, NULL, 'a'}, {"max-abs-error", required_argument, NULL, 'A'},
        {"max-rel-error", required_argument, NULL, 'R'},
        {"json", no_argument, NULL, 'J'},          {"junit", required_argument, NULL, 'U'},
        {"sums", required_argument, NULL, 'S'},    {"names-only", no_argument, NULL, 'n'},
        {"ignore-missing", no_argument, NULL, 'M'},
        CLI_GLOBAL_OPTIONS, CLI_OPEN_OPTIONS,      CLI_CONVERT_OPTIONS,
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    cli_open_options_default(&a->open);
    ckpt_convert_options_default(&a->conv.opts);
    int c, status;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h" CLI_GLOBAL_SHORT, options, NULL)) != -1) {
        switch (c) {
        case 'a': a->against = optarg; break;
        case 'S': a->sums = optarg; break;
        case 'M': a->ignore_missing = 1; break;
        case 'A':
            if (parse_double(optarg, &a->max_abs))
                return cli_usage_error(command, "bad --max-abs-error '%s'", optarg);
            break;
        case 'R':
            if (parse_double(optarg, &a->max_rel))
                return cli_usage_error(command, "bad --max-rel-error '%s'", optarg);
            break;
        CLI_GLOBAL_CASES:
            if ((status = cli_parse_global_option(command, c, optarg)))
                return status;
            break;
        case 'J': a->json = 1; break;
        case 'U': a->junit = optarg; break;
        case 'n': a->names_only = 1; break;
        CLI_OPEN_CASES:
            if ((status = cli_parse_open_option(command, c, optarg, &a->open)))
                return status;
            a->conv.deepspeed_given |= c == 'D';
            break;
        CLI_CONVERT_CASES:
            if (strcmp(command, "verify") != 0)
                return cli_usage_error(command, "'%s' is a conversion option, for verify --against",
                                       argv[optind - 1]);
            if ((status = cli_parse_convert_option(command, c, optarg, &a->conv)))
                return status;
            break;
        case 'h': fputs(help, stdout); return -1;
        default: return cli_unknown_option(command, argv[optind - 1], options);
        }
    }
    if (a->json && junit_to_stdout(a))
        return cli_usage_error(command, "--json and --junit - would both write to standard output: give one");
    return EXIT_OK;
}

/* Prints and writes the report, and turns the library's status into the exit status. */
static int finish(const char *command, int rc, const ckpt_error *err, struct findings *fs,
                  const ckpt_verify_summary *s, const struct check_args *a)
{
    if (fs->oom) {
        fprintf(stderr, "ckpt %s: out of memory collecting findings\n", command);
        return EXIT_OUTPUT;
    }
    if (rc != CKPT_OK && rc != CKPT_ERR_MISMATCH) {
        /* the check could not run: say so on stderr, and in the reports CI reads, which must not be missing */
        int failed = cli_fail(command, err);
        ckpt_verify_summary partial = *s;
        findings_add_error(fs, err, &partial);
        if (a->json)
            findings_print(fs, command, &partial, 1);
        if (a->junit)
            findings_write_junit(fs, command, &partial, a->junit);
        return failed;
    }
    int status = junit_to_stdout(a) ? EXIT_OK : findings_print(fs, command, s, a->json);
    if (!status && a->junit)
        status = findings_write_junit(fs, command, s, a->junit);
    if (status)
        return status;
    return rc == CKPT_ERR_MISMATCH ? EXIT_DIFFERENCE : EXIT_OK;
}

/* verify DIR --sums FILE: the folder against a checksum list. */
static int verify_sums(const char *dir, const struct check_args *a)
{
    ckpt_sums_options opts;
    ckpt_sums_options_default(&opts);
    opts.jobs = cli_global.jobs;
    opts.ignore_missing = a->ignore_missing;
    struct cli_progress progress;
    cli_progress_start(&progress, cli_want_progress(a->json));
    struct findings fs = {.verbose = cli_global.verbose, .quiet_text = a->json || junit_to_stdout(a),
                          .progress = &progress};
    opts.progress = cli_progress_show;
    opts.progress_payload = &progress;
    cli_cancellable(NULL);
    ckpt_verify_summary s = {0};
    ckpt_error err = {0};
    int rc = ckpt_verify_sums(dir, a->sums, &opts, findings_collect, &fs, &s, &err);
    cli_progress_clear(&progress);
    int status = finish("verify", rc, &err, &fs, &s, a);
    findings_free(&fs);
    return status;
}

int cmd_verify(int argc, char **argv)
{
    struct check_args a = {0};
    int status = parse_args("verify", verify_help, argc, argv, &a);
    if (status)
        return status < 0 ? EXIT_OK : status;
    if (argc - optind != 1)
        return cli_usage_error("verify", "expects one folder, got %d paths", argc - optind);
    if ((a.max_abs > 0 || a.max_rel > 0) && !a.against)
        return cli_usage_error("verify", "error bounds need --against SRC");
    if (a.sums && a.against)
        return cli_usage_error("verify", "--sums and --against are two different checks: give one");
    if (a.conv.given && !a.against)
        return cli_usage_error("verify", "conversion options need --against SRC");
    if (a.ignore_missing && !a.sums)
        return cli_usage_error("verify", "--ignore-missing goes with --sums FILE");
    if (a.sums)
        return verify_sums(argv[optind], &a);
    if (a.conv.given && (status = cli_convert_finish("verify", &a.conv)))
        return status;
    ckpt_verify_options opts;
    ckpt_verify_options_default(&opts);
    opts.against = a.against;
    opts.max_abs_error = a.max_abs;
    opts.max_rel_error = a.max_rel;
    opts.jobs = cli_global.jobs;
    opts.open = &a.open;
    opts.convert = a.conv.given ? &a.conv.opts : NULL;
    struct cli_progress progress;
    cli_progress_start(&progress, cli_want_progress(a.json));
    struct findings fs = {.verbose = cli_global.verbose, .quiet_text = a.json || junit_to_stdout(&a),
                          .progress = &progress, .conv = &a.conv};
    opts.progress = cli_progress_show;
    opts.progress_payload = &progress;
    cli_cancellable(NULL);
    ckpt_verify_summary s = {0};
    ckpt_error err = {0};
    int rc = ckpt_verify(argv[optind], &opts, findings_collect, &fs, &s, &err);
    cli_progress_clear(&progress);
    status = finish("verify", rc, &err, &fs, &s, &a);
    findings_free(&fs);
    cli_convert_free(&a.conv);
    return status;
}

/* diff's progress line: bytes of A's tensors compared; Ctrl-C stops it. */
static int diff_event(void *payload, const ckpt_event *ev)
{
    return cli_progress_show(payload, ev->done, ev->total);
}

int cmd_diff(int argc, char **argv)
{
    struct check_args a = {0};
    int status = parse_args("diff", diff_help, argc, argv, &a);
    if (status)
        return status < 0 ? EXIT_OK : status;
    if (argc - optind != 2)
        return cli_usage_error("diff", "expects two checkpoints, got %d paths", argc - optind);
    if (a.against || a.sums || a.ignore_missing)
        return cli_usage_error("diff", "--against and --sums are options of verify");
    ckpt_diff_options opts;
    ckpt_diff_options_default(&opts);
    opts.names_only = a.names_only;
    opts.max_abs_error = a.max_abs;
    opts.max_rel_error = a.max_rel;
    opts.open = &a.open;
    struct cli_progress progress;
    cli_progress_start(&progress, cli_want_progress(a.json));
    opts.events = diff_event;
    opts.events_payload = &progress;
    struct findings fs = {.verbose = cli_global.verbose, .quiet_text = a.json || junit_to_stdout(&a),
                          .progress = &progress};
    ckpt_verify_summary s = {0};
    ckpt_error err = {0};
    cli_cancellable(NULL);
    int rc = ckpt_diff(argv[optind], argv[optind + 1], &opts, findings_collect, &fs, &s, &err);
    cli_progress_clear(&progress);
    status = finish("diff", rc, &err, &fs, &s, &a);
    findings_free(&fs);
    return status;
}
