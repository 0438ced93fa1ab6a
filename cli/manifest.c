/*
 * manifest.c: `ckpt manifest merge DST`: join the parts of `convert --part K/N` into DST;
 * `ckpt manifest sums` and `ckpt manifest create` (sums.c) are dispatched from here.
 */
#include "cli.h"

#include <getopt.h>
#include <string.h>

static const char manifest_help[] =
    "Usage: ckpt manifest merge DST [--force] [--json]\n"
    "       ckpt manifest create SRC [-o FILE]   a source's manifest (own --help)\n"
    "       ckpt manifest sums DIR [--format F]  checksum lists (own --help)\n"
    "Joins the parts that `ckpt convert SRC DST --part K/N` wrote into\n"
    "DST.ckpt-parts/ into DST: the same bytes a single `ckpt convert SRC DST` writes\n"
    "(shards, index, config.json, side files, ckpt-manifest.json).  Refuses (exit 3)\n"
    "when a part is missing or duplicated, or was made from another source, options\n"
    "or ckpt version.  Reopens SRC (the path the parts recorded) to rebuild the plan.\n\n"
    "  --force              replace an existing DST\n"
    "  --json               machine-readable summary\n"
    CLI_GLOBAL_HELP;

int cmd_manifest(int argc, char **argv)
{
    static const struct option options[] = {
        {"force", no_argument, NULL, 'f'},
        {"json", no_argument, NULL, 'J'},
        CLI_GLOBAL_OPTIONS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    if (argc >= 2 && strcmp(argv[1], "sums") == 0)
        return cmd_manifest_sums(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "create") == 0)
        return cmd_manifest_create(argc - 1, argv + 1);
    int force = 0, json = 0, c, status;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h" CLI_GLOBAL_SHORT, options, NULL)) != -1) {
        switch (c) {
        CLI_GLOBAL_CASES:
            if ((status = cli_parse_global_option("manifest", c, optarg)))
                return status;
            break;
        case 'f': force = 1; break;
        case 'J': json = 1; break;
        case 'h': fputs(manifest_help, stdout); return EXIT_OK;
        default: return cli_unknown_option("manifest", argv[optind - 1], options);
        }
    }
    if (argc - optind != 2 || strcmp(argv[optind], "merge") != 0)
        return cli_usage_error("manifest", "expects: merge DST");
    const char *dst = argv[optind + 1];
    ckpt_error err = {0};
    ckpt_convert_stats s;
    cli_note_stale("manifest merge", dst);
    if (ckpt_parts_merge(dst, force, &s, &err) != CKPT_OK)
        return cli_fail("manifest merge", &err);
    if (json)
        return cli_print_json(json_pack("{s:s, s:I, s:I, s:I, s:f}", "destination", dst, "tensors",
                                        (json_int_t)s.tensors, "bytes_in", (json_int_t)s.bytes_in, "bytes_out",
                                        (json_int_t)s.bytes_out, "seconds", s.seconds));
    if (cli_global.quiet)
        return EXIT_OK;
    printf("merged %llu tensor%s in %.2fs -> %s\n", (unsigned long long)s.tensors, s.tensors == 1 ? "" : "s",
           s.seconds, dst);
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_OUTPUT;
}
