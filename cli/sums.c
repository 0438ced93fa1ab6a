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
    "Usage: ckpt manifest sums DIR [--format xxh128|sha256] [--jobs N] [--quiet]\n"
    "Prints one checksum line per regular file under DIR (or for DIR, a file), paths\n"
    "relative to DIR, sorted; names starting with '.' are skipped and links to files\n"
    "followed.  `xxhsum -c` (xxh128) and `sha256sum -c` (sha256) check the list from\n"
    "inside DIR; so does `ckpt verify DIR --sums FILE` from anywhere.\n\n"
    "  --format F    xxh128 (XXH3-128, as `xxhsum -H2`; default) or sha256\n"
    "  --jobs N      hashing threads (default: one per core)\n"
    "  --quiet       no progress line (one is drawn on a terminal)\n"
    "  -h, --help    show this help\n";

static int parse_jobs(const char *command, const char *text, unsigned *jobs)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (*end || v < 1 || v > 64)
        return cli_usage_error(command, "--jobs takes 1 to 64, not '%s'", text);
    *jobs = (unsigned)v;
    return EXIT_OK;
}

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
        {"format", required_argument, NULL, 'F'}, {"jobs", required_argument, NULL, 'j'},
        {"quiet", no_argument, NULL, 'q'},        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    ckpt_sums_options opts;
    ckpt_sums_options_default(&opts);
    int quiet = 0, c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hqj:", options, NULL)) != -1) {
        switch (c) {
        case 'F':
            if (strcmp(optarg, "xxh128") == 0)
                opts.format = CKPT_SUMS_XXH128;
            else if (strcmp(optarg, "sha256") == 0)
                opts.format = CKPT_SUMS_SHA256;
            else
                return cli_usage_error("manifest sums", "--format takes xxh128 or sha256, not '%s'", optarg);
            break;
        case 'j':
            if (parse_jobs("manifest sums", optarg, &opts.jobs))
                return EXIT_USAGE;
            break;
        case 'q': quiet = 1; break;
        case 'h': fputs(sums_help, stdout); return EXIT_OK;
        default: return cli_usage_error("manifest sums", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("manifest sums", "expects one folder or file, got %d paths", argc - optind);
    struct printer p = {.write_failed = 0};
    cli_progress_start(&p.progress);
    if (!quiet && isatty(STDERR_FILENO)) {
        opts.progress = cli_progress_show;
        opts.progress_payload = &p.progress;
    }
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
    "Writes the manifest of the checkpoint SRC as it is, converting nothing: every file\n"
    "under SRC with its size and XXH3-128, every tensor with the XXH3-128 of its logical\n"
    "bytes (docs/manifest.md).  Made before a checkpoint travels; where it arrives,\n"
    "`ckpt verify DIR --sums FILE` checks the copy against it.\n\n"
    "  -o, --output FILE    write to FILE instead of standard output (a device or FIFO is\n"
    "                       written in place, a regular file replaced atomically)\n"
    "  --jobs N             hashing threads (default: one per core)\n"
    CLI_OPEN_HELP
    "  --quiet              no progress line (one is drawn on a terminal)\n"
    "  -h, --help           show this help\n";

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
        {"output", required_argument, NULL, 'o'}, {"jobs", required_argument, NULL, 'j'},
        {"quiet", no_argument, NULL, 'q'},         CLI_OPEN_OPTIONS,
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    ckpt_manifest_options opts;
    ckpt_manifest_options_default(&opts);
    ckpt_open_options open;
    ckpt_open_options_default(&open);
    opts.open = &open;
    const char *output = NULL;
    int quiet = 0, c, status;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "ho:qj:", options, NULL)) != -1) {
        switch (c) {
        case 'o': output = optarg; break;
        case 'j':
            if (parse_jobs("manifest create", optarg, &opts.jobs))
                return EXIT_USAGE;
            break;
        case 'q': quiet = 1; break;
        CLI_OPEN_CASES:
            if ((status = cli_parse_open_option("manifest create", c, optarg, &open)))
                return status;
            break;
        case 'h': fputs(create_help, stdout); return EXIT_OK;
        default: return cli_usage_error("manifest create", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("manifest create", "expects one checkpoint, got %d paths", argc - optind);
    struct cli_progress progress;
    cli_progress_start(&progress);
    if (!quiet && isatty(STDERR_FILENO)) {
        opts.progress = cli_progress_show;
        opts.progress_payload = &progress;
    }
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
