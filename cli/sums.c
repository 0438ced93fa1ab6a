/*
 * sums.c: `ckpt manifest sums DIR`, the lines `sha256sum -c` and `xxhsum -c` check, and
 * `ckpt manifest create SRC`, the manifest of a source before it travels.
 */
#include "cli.h"
#include "report_file.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char sums_help[] =
    "Usage: ckpt manifest sums DIR [--format xxh128|sha256] [options]\n"
    "Prints one checksum line per regular file under DIR (or for DIR, a file), paths\n"
    "relative to DIR, sorted; names starting with '.' are skipped and links to files\n"
    "followed.  `xxhsum -c` (xxh128) and `sha256sum -c` (sha256) check the list from\n"
    "inside DIR; so does `ckpt verify DIR --sums FILE` from anywhere.\n\n"
    "  --format F           xxh128 (XXH3-128, as `xxhsum -H2`; default) or sha256\n"
    CLI_GLOBAL_HELP
    "The lines are the output: -q leaves them and drops the progress line only.\n";

struct printer {
    struct cli_progress progress;
    int write_failed;
};

static int print_line(void *payload, const char *path, const char *hex, const char *line)
{
    struct printer *p = payload;
    (void)path;
    (void)hex;
    cli_progress_clear(&p->progress);
    p->write_failed = fputs(line, stdout) < 0;
    return p->write_failed;
}

int cmd_manifest_sums(int argc, char **argv)
{
    static const struct option options[] = {
        {"format", required_argument, NULL, 'F'}, CLI_GLOBAL_OPTIONS, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char *const formats[] = {"xxh128", "sha256", NULL};
    ckpt_sums_options opts;
    ckpt_sums_options_default(&opts);
    int c, status;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h" CLI_GLOBAL_SHORT, options, NULL)) != -1) {
        switch (c) {
        case 'F':
            if (strcmp(optarg, "xxh128") == 0)
                opts.format = CKPT_SUMS_XXH128;
            else if (strcmp(optarg, "sha256") == 0)
                opts.format = CKPT_SUMS_SHA256;
            else
                return cli_choice_error("manifest sums", "--format", optarg, formats);
            break;
        CLI_GLOBAL_CASES:
            if ((status = cli_parse_global_option("manifest sums", c, optarg)))
                return status;
            break;
        case 'h': fputs(sums_help, stdout); return EXIT_OK;
        default: return cli_unknown_option("manifest sums", argv[optind - 1], options);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("manifest sums", "expects one folder or file, got %d paths", argc - optind);
    struct printer p = {.write_failed = 0};
    opts.jobs = cli_global.jobs;
    cli_progress_start(&p.progress, cli_want_progress(0));
    opts.progress = cli_progress_show;
    opts.progress_payload = &p.progress;
    cli_cancellable(NULL);
    ckpt_error err = {0};
    int rc = ckpt_sums(argv[optind], &opts, print_line, &p, &err);
    cli_progress_clear(&p.progress);
    if (p.write_failed) {
        fprintf(stderr, "ckpt manifest sums: cannot write to standard output\n");
        return EXIT_OUTPUT;
    }
    if (rc)
        return cli_fail("manifest sums", &err);
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_OUTPUT;
}

static const char create_help[] =
    "Usage: ckpt manifest create SRC [-o FILE] [options]\n"
    "Writes the manifest of the checkpoint SRC as it is, converting nothing: every\n"
    "file under SRC with its size and XXH3-128, every tensor with the XXH3-128 of its\n"
    "logical bytes (docs/manifest.md).  Made before a checkpoint travels; where it\n"
    "arrives, `ckpt verify DIR --sums FILE` checks the copy against it.\n\n"
    "  -o, --output FILE    write to FILE instead of standard output (a device or\n"
    "                       FIFO is written in place, a regular file replaced\n"
    "                       atomically)\n"
    CLI_OPEN_HELP
    CLI_GLOBAL_HELP;

/* Writes `text` and a newline to `path` (report_file.h: "-" is standard output, a device written in place). */
static int write_output(const char *path, const char *text)
{
    struct report_file r;
    int status = report_file_open(&r, "manifest create", path);
    if (status)
        return status;
    fputs(text, r.out);
    fputc('\n', r.out);   /* a failed write leaves the stream's error set: commit reports it */
    return report_file_commit(&r, "manifest create", path);
}

int cmd_manifest_create(int argc, char **argv)
{
    static const struct option options[] = {
        {"output", required_argument, NULL, 'o'}, CLI_GLOBAL_OPTIONS, CLI_OPEN_OPTIONS,
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    ckpt_manifest_options opts;
    ckpt_manifest_options_default(&opts);
    ckpt_open_options open;
    cli_open_options_default(&open);
    opts.open = &open;
    const char *output = NULL;
    int c, status;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "ho:" CLI_GLOBAL_SHORT, options, NULL)) != -1) {
        switch (c) {
        case 'o': output = optarg; break;
        CLI_GLOBAL_CASES:
            if ((status = cli_parse_global_option("manifest create", c, optarg)))
                return status;
            break;
        CLI_OPEN_CASES:
            if ((status = cli_parse_open_option("manifest create", c, optarg, &open)))
                return status;
            break;
        case 'h': fputs(create_help, stdout); return EXIT_OK;
        default: return cli_unknown_option("manifest create", argv[optind - 1], options);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("manifest create", "expects one checkpoint, got %d paths", argc - optind);
    opts.jobs = cli_global.jobs;
    struct cli_progress progress;
    cli_progress_start(&progress, cli_want_progress(0));
    opts.progress = cli_progress_show;
    opts.progress_payload = &progress;
    cli_cancellable(NULL);
    char *json = NULL;
    ckpt_error err = {0};
    int rc = ckpt_manifest_create(argv[optind], &opts, &json, &err);
    cli_progress_clear(&progress);
    if (rc)
        return cli_fail("manifest create", &err);
    status = write_output(output ? output : "-", json);
    ckpt_free(json);
    return status;
}
