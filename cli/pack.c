/* pack.c: `ckpt pack` and `ckpt unpack`: bundles for moving a checkpoint between sites (docs/bundle.md). */
#include "cli.h"
#include "findings.h"

#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char pack_help[] =
    "Usage: ckpt pack SRC BUNDLE [options]\n"
    "       ckpt pack --merge BUNDLE [--force]\n"
    "Compresses the checkpoint SRC (a folder, every file in it, or one file) into the\n"
    "bundle BUNDLE: tensors in frames compressed on their own (floating-point values\n"
    "split into byte planes first), with a seek table and the XXH3-128 of every file\n"
    "and tensor. Every command that opens a checkpoint reads a bundle in place.\n\n"
    "  --frame-size N       bytes of a file per frame, the unit read at random\n"
    "                       (default 1MiB; 64KiB to 16MiB)\n"
    "  --volume-size N      frames in volumes BUNDLE.001, ... of at most N bytes, so\n"
    "                       that a failed copy resends one volume (BUNDLE: the index)\n"
    "  --level N            zstd level for bytes that are not floating-point tensor\n"
    "                       data (default 1; 1 to 19)\n"
    "  --jobs N             compressing threads (default: one per core)\n"
    "  --part K/N           pack only part K of N of the files, into BUNDLE.part-K-of-N\n"
    "                       and its volumes; `ckpt pack --merge BUNDLE` then joins them\n"
    "  --merge              join the N parts into BUNDLE (nothing is copied)\n"
    "  --force              replace an existing bundle\n"
    CLI_OPEN_HELP
    "  --json               machine-readable summary\n"
    "  --quiet              no progress line\n"
    "  -h, --help           show this help\n";

static const char unpack_help[] =
    "Usage: ckpt unpack BUNDLE DST [options]\n"
    "Writes the files the bundle holds into DST (a new folder, or the one file a file\n"
    "was packed from), byte for byte, each checked against its XXH3-128. A file with a\n"
    "damaged or missing frame is left out and named, with the tensor it lost; every\n"
    "intact file is still written (exit status 3).\n\n"
    "  --jobs N             decompressing threads (default: one per core)\n"
    "  --force              replace an existing DST\n"
    "  --json               machine-readable summary\n"
    "  --quiet              no progress line\n"
    "  -h, --help           show this help\n";

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* The progress callback: draws the line when asked to, and cancels on Ctrl-C. */
struct progress {
    struct cli_progress line;
    int show;
};

static int progress(void *payload, uint64_t done, uint64_t total)
{
    struct progress *p = payload;
    if (p->show)
        cli_progress_show(&p->line, done, total);
    return interrupted;
}

static int parse_jobs(const char *command, const char *text, unsigned *jobs)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (*end || v < 1 || v > 256)
        return cli_usage_error(command, "--jobs takes 1 to 256, not '%s'", text);
    *jobs = (unsigned)v;
    return EXIT_OK;
}

static void catch_signals(void)
{
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
}

static int print_pack_summary(const ckpt_pack_stats *s, const char *bundle, int json)
{
    double ratio = s->bytes_out ? (double)s->bytes_in / (double)s->bytes_out : 0;
    if (json)
        return cli_print_json(json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:f, s:f}", "bundle", bundle, "files",
                                        (json_int_t)s->files, "bytes_in", (json_int_t)s->bytes_in, "bytes_out",
                                        (json_int_t)s->bytes_out, "tensor_bytes", (json_int_t)s->tensor_bytes,
                                        "volumes", (json_int_t)s->volumes, "ratio", ratio, "seconds", s->seconds));
    char in[32], out[32];
    cli_format_bytes(in, sizeof in, s->bytes_in);
    cli_format_bytes(out, sizeof out, s->bytes_out);
    printf("packed %llu files, %s into %s (%.3fx) in %.2fs: %s", (unsigned long long)s->files, in, out, ratio,
           s->seconds, bundle);
    if (s->volumes)
        printf(" and %llu volume%s", (unsigned long long)s->volumes, s->volumes == 1 ? "" : "s");
    printf("\n");
    return EXIT_OK;
}

int cmd_pack(int argc, char **argv)
{
    static const struct option options[] = {{"frame-size", required_argument, NULL, 'F'},
                                            {"volume-size", required_argument, NULL, 'V'},
                                            {"level", required_argument, NULL, 'L'},
                                            {"jobs", required_argument, NULL, 'j'},
                                            {"part", required_argument, NULL, 'P'},
                                            {"merge", no_argument, NULL, 'M'},
                                            {"force", no_argument, NULL, 'f'},
                                            {"json", no_argument, NULL, 'J'},
                                            {"quiet", no_argument, NULL, 'q'},
                                            {"help", no_argument, NULL, 'h'},
                                            CLI_OPEN_OPTIONS,
                                            {NULL, 0, NULL, 0}};
    ckpt_pack_options opts;
    ckpt_pack_options_default(&opts);
    ckpt_open_options open;
    ckpt_open_options_default(&open);
    opts.open = &open;
    int c, status, json = 0, quiet = 0, merge = 0;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hqj:", options, NULL)) != -1) {
        switch (c) {
        case 'F':
            if (cli_parse_size(optarg, &opts.frame_bytes))
                return cli_usage_error("pack", "bad --frame-size '%s'", optarg);
            break;
        case 'V':
            if (cli_parse_size(optarg, &opts.volume_bytes) || opts.volume_bytes == 0)
                return cli_usage_error("pack", "bad --volume-size '%s'", optarg);
            break;
        case 'L': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 19)
                return cli_usage_error("pack", "--level takes 1 to 19, not '%s'", optarg);
            opts.level = (int)v;
            break;
        }
        case 'j':
            if ((status = parse_jobs("pack", optarg, &opts.jobs)))
                return status;
            break;
        case 'P':
            if ((status = cli_parse_part("pack", optarg, &opts.part, &opts.parts)))
                return status;
            break;
        case 'M': merge = 1; break;
        case 'f': opts.force = 1; break;
        case 'J': json = 1; break;
        case 'q': quiet = 1; break;
        CLI_OPEN_CASES:
            if ((status = cli_parse_open_option("pack", c, optarg, &open)))
                return status;
            break;
        case 'h': fputs(pack_help, stdout); return EXIT_OK;
        default: return cli_usage_error("pack", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (merge && (argc - optind != 1 || opts.parts))
        return cli_usage_error("pack", "--merge expects BUNDLE alone, without --part");
    if (!merge && argc - optind != 2)
        return cli_usage_error("pack", "expects SRC and BUNDLE, got %d paths", argc - optind);
    ckpt_error err = {0};
    ckpt_pack_stats stats;
    const char *bundle = argv[argc - 1];
    if (merge) {
        if (ckpt_pack_merge(bundle, opts.force, &stats, &err) != CKPT_OK)
            return cli_fail("pack", &err);
        return print_pack_summary(&stats, bundle, json);
    }
    struct progress p = {{0}, !quiet && isatty(STDERR_FILENO)};
    cli_progress_start(&p.line);
    opts.progress = progress;
    opts.progress_payload = &p;
    catch_signals();
    int rc = ckpt_pack(argv[optind], bundle, &opts, &stats, &err);
    cli_progress_clear(&p.line);
    if (rc != CKPT_OK)
        return cli_fail("pack", &err);
    char part[4200];
    snprintf(part, sizeof part, "%s.part-%u-of-%u", bundle, opts.part, opts.parts);
    return print_pack_summary(&stats, opts.parts ? part : bundle, json);
}

int cmd_unpack(int argc, char **argv)
{
    static const struct option options[] = {{"jobs", required_argument, NULL, 'j'},
                                            {"force", no_argument, NULL, 'f'},
                                            {"json", no_argument, NULL, 'J'},
                                            {"quiet", no_argument, NULL, 'q'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    ckpt_unpack_options opts;
    ckpt_unpack_options_default(&opts);
    int c, status, json = 0, quiet = 0;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hqj:", options, NULL)) != -1) {
        switch (c) {
        case 'j':
            if ((status = parse_jobs("unpack", optarg, &opts.jobs)))
                return status;
            break;
        case 'f': opts.force = 1; break;
        case 'J': json = 1; break;
        case 'q': quiet = 1; break;
        case 'h': fputs(unpack_help, stdout); return EXIT_OK;
        default: return cli_usage_error("unpack", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 2)
        return cli_usage_error("unpack", "expects BUNDLE and DST, got %d paths", argc - optind);
    const char *bundle = argv[optind], *dst = argv[optind + 1];
    struct progress p = {{0}, !quiet && isatty(STDERR_FILENO)};
    cli_progress_start(&p.line);
    opts.progress = progress;
    opts.progress_payload = &p;
    struct findings fs = {.quiet_text = json, .progress = &p.line};
    catch_signals();
    ckpt_error err = {0};
    ckpt_unpack_stats stats = {0};
    int rc = ckpt_unpack(bundle, dst, &opts, findings_collect, &fs, &stats, &err);
    cli_progress_clear(&p.line);
    status = rc == CKPT_OK ? EXIT_OK : cli_fail("unpack", &err);
    if (rc == CKPT_OK || stats.files) {
        if (json) {
            json_t *damaged = json_array();
            for (size_t i = 0; i < fs.count; i++)
                json_array_append_new(damaged, json_pack("{s:s?, s:s?, s:s}", "file", fs.items[i].file, "tensor",
                                                         fs.items[i].tensor, "message", fs.items[i].message));
            int out = cli_print_json(json_pack("{s:s, s:s, s:I, s:I, s:I, s:f, s:o}", "bundle", bundle, "dst", dst,
                                               "files", (json_int_t)stats.files, "damaged", (json_int_t)stats.damaged,
                                               "bytes", (json_int_t)stats.bytes, "seconds", stats.seconds, "lost",
                                               damaged));
            status = status ? status : out;
        } else {
            char b[32];
            cli_format_bytes(b, sizeof b, stats.bytes);
            printf("unpacked %llu files, %s, each checked, in %.2fs: %s", (unsigned long long)stats.files, b,
                   stats.seconds, dst);
            if (stats.damaged)
                printf(" (%llu damaged file%s left out)", (unsigned long long)stats.damaged,
                       stats.damaged == 1 ? "" : "s");
            printf("\n");
        }
    }
    findings_free(&fs);
    return status;
}
