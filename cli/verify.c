/* verify.c: `ckpt verify` and `ckpt diff`: CI-friendly checks with text, JSON and JUnit output. */
#include "convert_options.h"
#include "findings.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char verify_help[] =
    "Usage: ckpt verify DST [--against SRC [conversion options] | --sums FILE] [options]\n"
    "Checks the folder DST that ckpt convert wrote against its ckpt-manifest.json: every\n"
    "file's size and checksum, every tensor's checksum, every shard header entry, and no\n"
    "unlisted files (integrity; the manifest is trusted).  With --against, proves DST is\n"
    "what `ckpt convert SRC DST` with the conversion options gives, whatever the manifest\n"
    "says: every tensor recomputed bit for bit (with each cast's error and overflow counts),\n"
    "every shard header, index, config and side file byte for byte, no file or tensor more\n"
    "or less.  Without conversion options it uses those the manifest records, and says so\n"
    "(docs/verify.md).\n\n"
    "  --against SRC     the source checkpoint to prove fidelity against\n"
    "  --sums FILE       instead, check the files that FILE lists: sha256sum or xxhsum\n"
    "                    lines (ckpt manifest sums), or a ckpt-manifest.json\n"
    "  --max-abs-error X fail a tensor whose largest absolute error exceeds X (with --against)\n"
    "  --max-rel-error X the same for the relative error\n"
    "  --jobs N          worker threads (default: one per core)\n"
    CLI_OPEN_HELP
    "Conversion options (with --against; --target is then required, the others default as\n"
    "for convert; options that change bytes and differ from the manifest's fail):\n"
    CLI_CONVERT_HELP
    "Output:\n"
    "  --json            one JSON document (schema: docs/verify.md)\n"
    "  --junit FILE      also write JUnit XML, one test case per check (- for standard\n"
    "                    output; a device or FIFO is written in place, a file replaced)\n"
    "  -v, --verbose     print passing checks too\n"
    "  --quiet           no progress line (one is drawn on a terminal)\n"
    "  -h, --help        show this help\n"
    "Exit status: 0 intact, 1 a difference was found, 3 the manifest or input is unreadable.\n";

static const char diff_help[] =
    "Usage: ckpt diff A B [options]\n"
    "Compares two checkpoints of any formats and layouts: tensors only in one, changed\n"
    "element types or shapes, and values (exactly equal, or the largest error).  Tensors\n"
    "that ckpt convert stored as FRACTAL_NZ are compared in their logical layout.\n\n"
    "  --names-only      compare names, dtypes and shapes only (fast)\n"
    "  --max-abs-error X values within X count as equal\n"
    "  --max-rel-error X the same for the relative error\n"
    CLI_OPEN_HELP
    "  --json, --junit FILE, -v, -h   as for verify\n"
    "Exit status: 0 the same, 1 they differ, 3 an input is unreadable.\n";

struct check_args {
    const char *against, *junit, *sums;
    double max_abs, max_rel;
    unsigned jobs;
    int json, verbose, names_only, quiet;
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
        {"max-rel-error", required_argument, NULL, 'R'}, {"jobs", required_argument, NULL, 'j'},
        {"json", no_argument, NULL, 'J'},          {"junit", required_argument, NULL, 'U'},
        {"quiet", no_argument, NULL, 'q'},          {"sums", required_argument, NULL, 'S'},
        {"verbose", no_argument, NULL, 'v'},       {"names-only", no_argument, NULL, 'n'},
        CLI_OPEN_OPTIONS,                          CLI_CONVERT_OPTIONS,
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    ckpt_open_options_default(&a->open);
    ckpt_convert_options_default(&a->conv.opts);
    int c, status;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "hvj:", options, NULL)) != -1) {
        switch (c) {
        case 'a': a->against = optarg; break;
        case 'S': a->sums = optarg; break;
        case 'A':
            if (parse_double(optarg, &a->max_abs))
                return cli_usage_error(command, "bad --max-abs-error '%s'", optarg);
            break;
        case 'R':
            if (parse_double(optarg, &a->max_rel))
                return cli_usage_error(command, "bad --max-rel-error '%s'", optarg);
            break;
        case 'j': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 64)
                return cli_usage_error(command, "--jobs takes 1 to 64, not '%s'", optarg);
            a->jobs = (unsigned)v;
            break;
        }
        case 'J': a->json = 1; break;
        case 'U': a->junit = optarg; break;
        case 'v': a->verbose = 1; break;
        case 'q': a->quiet = 1; break;
        case 'n': a->names_only = 1; break;
        CLI_OPEN_CASES:
            if ((status = cli_parse_open_option(command, c, optarg, &a->open)))
                return status;
            break;
        CLI_CONVERT_CASES:
            if (strcmp(command, "verify") != 0)
                return cli_usage_error(command, "'%s' is a conversion option, for verify --against",
                                       argv[optind - 1]);
            if ((status = cli_parse_convert_option(command, c, optarg, &a->conv)))
                return status;
            break;
        case 'h': fputs(help, stdout); return -1;
        default: return cli_usage_error(command, "unknown option '%s'", argv[optind - 1]);
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
    opts.jobs = a->jobs;
    struct cli_progress progress;
    cli_progress_start(&progress);
    struct findings fs = {.verbose = a->verbose, .quiet_text = a->json || junit_to_stdout(a), .progress = &progress};
    if (!a->quiet && !a->json && isatty(STDERR_FILENO)) {
        opts.progress = cli_progress_show;
        opts.progress_payload = &progress;
    }
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
    if (a.sums)
        return verify_sums(argv[optind], &a);
    if (a.conv.given && (status = cli_convert_finish("verify", &a.conv)))
        return status;
    ckpt_verify_options opts;
    ckpt_verify_options_default(&opts);
    opts.against = a.against;
    opts.max_abs_error = a.max_abs;
    opts.max_rel_error = a.max_rel;
    opts.jobs = a.jobs;
    opts.open = &a.open;
    opts.convert = a.conv.given ? &a.conv.opts : NULL;
    struct cli_progress progress;
    cli_progress_start(&progress);
    struct findings fs = {.verbose = a.verbose, .quiet_text = a.json || junit_to_stdout(&a), .progress = &progress, .conv = &a.conv};
    if (!a.quiet && !a.json && isatty(STDERR_FILENO)) {
        opts.progress = cli_progress_show;
        opts.progress_payload = &progress;
    }
    ckpt_verify_summary s = {0};
    ckpt_error err = {0};
    int rc = ckpt_verify(argv[optind], &opts, findings_collect, &fs, &s, &err);
    cli_progress_clear(&progress);
    status = finish("verify", rc, &err, &fs, &s, &a);
    findings_free(&fs);
    cli_convert_free(&a.conv);
    return status;
}

int cmd_diff(int argc, char **argv)
{
    struct check_args a = {0};
    int status = parse_args("diff", diff_help, argc, argv, &a);
    if (status)
        return status < 0 ? EXIT_OK : status;
    if (argc - optind != 2)
        return cli_usage_error("diff", "expects two checkpoints, got %d paths", argc - optind);
    if (a.against || a.sums)
        return cli_usage_error("diff", "--against and --sums are options of verify");
    ckpt_diff_options opts;
    ckpt_diff_options_default(&opts);
    opts.names_only = a.names_only;
    opts.max_abs_error = a.max_abs;
    opts.max_rel_error = a.max_rel;
    opts.open = &a.open;
    struct findings fs = {.verbose = a.verbose, .quiet_text = a.json || junit_to_stdout(&a)};
    ckpt_verify_summary s = {0};
    ckpt_error err = {0};
    int rc = ckpt_diff(argv[optind], argv[optind + 1], &opts, findings_collect, &fs, &s, &err);
    status = finish("diff", rc, &err, &fs, &s, &a);
    findings_free(&fs);
    return status;
}
