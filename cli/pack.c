/* pack.c: `ckpt pack` and `ckpt unpack`: bundles for moving a checkpoint between sites (docs/bundle.md). */
#include "cli.h"
#include "findings.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char pack_help[] =
    "Usage: ckpt pack SRC BUNDLE [options]\n"
    "       ckpt pack --merge BUNDLE [--force]\n"
    "Compresses the checkpoint SRC (a folder, every file in it, or one file) into the\n"
    "bundle BUNDLE: tensors in frames compressed on their own (floating-point values\n"
    "split into byte planes first), with a seek table and the XXH3-128 of every file\n"
    "and tensor. Every command that opens a checkpoint reads a bundle in place.\n"
    "Missing parent folders of BUNDLE are made, as mkdir -p does.\n\n"
    "  --frame-size N       bytes of a file per frame, the unit read at random\n"
    "                       (default 1MiB; 64KiB to 16MiB)\n"
    "  --volume-size N      frames in volumes BUNDLE.001, ... of at most N bytes, so\n"
    "                       that a failed copy resends one volume (BUNDLE: the index)\n"
    "  --level N            zstd level for bytes that are not floating-point tensor\n"
    "                       data (default 1; 1 to 19)\n"
    "  --part K/N           pack only part K of N of the files, into\n"
    "                       BUNDLE.part-K-of-N and its volumes; `ckpt pack --merge\n"
    "                       BUNDLE` then joins them\n"
    "  --merge              join the N parts into BUNDLE (nothing is copied)\n"
    "  --force              replace an existing bundle\n"
    CLI_OPEN_HELP
    "  --json               machine-readable summary\n"
    CLI_GLOBAL_HELP;

static const char unpack_help[] =
    "Usage: ckpt unpack BUNDLE DST [options]\n"
    "Writes the files the bundle holds into DST (a new folder, or the one file a\n"
    "file was packed from), byte for byte, each checked against its XXH3-128. A file\n"
    "with a damaged or missing frame is left out and named, with the tensor it lost;\n"
    "every intact file is still written (exit status 3).  Missing parent folders of\n"
    "DST are made, as mkdir -p does.\n\n"
    "  --force              replace an existing DST\n"
    "  --json               machine-readable summary\n"
    CLI_GLOBAL_HELP;

static int print_pack_summary(const ckpt_pack_stats *s, const char *bundle, int json)
{
    if (cli_global.quiet && !json)
        return EXIT_OK;
    double ratio = s->bytes_out ? (double)s->bytes_in / (double)s->bytes_out : 0;
    if (json)
        return cli_print_json(json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:f, s:f}", "bundle", bundle, "files",
                                        (json_int_t)s->files, "bytes_in", (json_int_t)s->bytes_in, "bytes_out",
                                        (json_int_t)s->bytes_out, "tensor_bytes", (json_int_t)s->tensor_bytes,
                                        "volumes", (json_int_t)s->volumes, "ratio", ratio, "seconds", s->seconds));
    char in[32], out[32];
    cli_format_bytes(in, sizeof in, s->bytes_in);
    cli_format_bytes(out, sizeof out, s->bytes_out);
    printf("packed %llu file%s, %s into %s (%.3fx) in %.2fs: %s", (unsigned long long)s->files,
           s->files == 1 ? "" : "s", in, out, ratio, s->seconds, bundle);
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
                                            {"part", required_argument, NULL, 'P'},
                                            {"merge", no_argument, NULL, 'M'},
                                            {"force", no_argument, NULL, 'f'},
                                            {"json", no_argument, NULL, 'J'},
                                            CLI_GLOBAL_OPTIONS,
                                            {"help", no_argument, NULL, 'h'},
                                            CLI_OPEN_OPTIONS,
                                            {NULL, 0, NULL, 0}};
    ckpt_pack_options opts;
    ckpt_pack_options_default(&opts);
    ckpt_open_options open;
    cli_open_options_default(&open);
    opts.open = &open;
    int c, status, json = 0, merge = 0;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h" CLI_GLOBAL_SHORT, options, NULL)) != -1) {
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
        CLI_GLOBAL_CASES:
            if ((status = cli_parse_global_option("pack", c, optarg)))
                return status;
            break;
        case 'P':
            if ((status = cli_parse_part("pack", optarg, &opts.part, &opts.parts)))
                return status;
            break;
        case 'M': merge = 1; break;
        case 'f': opts.force = 1; break;
        case 'J': json = 1; break;
        CLI_OPEN_CASES:
            if ((status = cli_parse_open_option("pack", c, optarg, &open)))
                return status;
            break;
        case 'h': fputs(pack_help, stdout); return EXIT_OK;
        default: return cli_unknown_option("pack", argv[optind - 1], options);
        }
    }
    if (merge && (argc - optind != 1 || opts.parts))
        return cli_usage_error("pack", "--merge expects BUNDLE alone, without --part");
    if (!merge && argc - optind != 2)
        return cli_usage_error("pack", "expects SRC and BUNDLE, got %d paths", argc - optind);
    opts.jobs = cli_global.jobs;
    ckpt_error err = {0};
    ckpt_pack_stats stats;
    const char *bundle = argv[argc - 1];
    if (merge) {
        if (ckpt_pack_merge(bundle, opts.force, &stats, &err) != CKPT_OK)
            return cli_fail("pack", &err);
        return print_pack_summary(&stats, bundle, json);
    }
    struct cli_progress p;
    cli_progress_start(&p, cli_want_progress(json));
    opts.progress = cli_progress_show;
    opts.progress_payload = &p;
    cli_cancellable(NULL);
    int rc = ckpt_pack(argv[optind], bundle, &opts, &stats, &err);
    cli_progress_clear(&p);
    if (rc != CKPT_OK)
        return cli_fail("pack", &err);
    char part[4200];
    snprintf(part, sizeof part, "%s.part-%u-of-%u", bundle, opts.part, opts.parts);
    return print_pack_summary(&stats, opts.parts ? part : bundle, json);
}

int cmd_unpack(int argc, char **argv)
{
    static const struct option options[] = {{"force", no_argument, NULL, 'f'},
                                            {"json", no_argument, NULL, 'J'},
                                            CLI_GLOBAL_OPTIONS,
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    ckpt_unpack_options opts;
    ckpt_unpack_options_default(&opts);
    int c, status, json = 0;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h" CLI_GLOBAL_SHORT, options, NULL)) != -1) {
        switch (c) {
        CLI_GLOBAL_CASES:
            if ((status = cli_parse_global_option("unpack", c, optarg)))
                return status;
            break;
        case 'f': opts.force = 1; break;
        case 'J': json = 1; break;
        case 'h': fputs(unpack_help, stdout); return EXIT_OK;
        default: return cli_unknown_option("unpack", argv[optind - 1], options);
        }
    }
    if (argc - optind != 2)
        return cli_usage_error("unpack", "expects BUNDLE and DST, got %d paths", argc - optind);
    const char *bundle = argv[optind], *dst = argv[optind + 1];
    opts.jobs = cli_global.jobs;
    struct cli_progress p;
    cli_progress_start(&p, cli_want_progress(json));
    opts.progress = cli_progress_show;
    opts.progress_payload = &p;
    struct findings fs = {.quiet_text = json, .progress = &p};
    cli_note_stale("unpack", dst);
    cli_cancellable(NULL);
    ckpt_error err = {0};
    ckpt_unpack_stats stats = {0};
    int rc = ckpt_unpack(bundle, dst, &opts, findings_collect, &fs, &stats, &err);
    cli_progress_clear(&p);
    status = rc == CKPT_OK ? EXIT_OK : cli_fail("unpack", &err);
    if ((rc == CKPT_OK || stats.files) && (json || !cli_global.quiet)) {
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
            printf("unpacked %llu file%s, %s, each checked, in %.2fs: %s", (unsigned long long)stats.files,
                   stats.files == 1 ? "" : "s", b, stats.seconds, dst);
            if (stats.damaged)
                printf(" (%llu damaged file%s left out)", (unsigned long long)stats.damaged,
                       stats.damaged == 1 ? "" : "s");
            printf("\n");
        }
    }
    findings_free(&fs);
    return status;
}
