/* cli.c: messages, exit statuses and formatting shared by the subcommands. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int cli_exit_for(int status)
{
    if (status == CKPT_OK)
        return EXIT_OK;
    if (status == CKPT_ERR_MISMATCH)
        return EXIT_DIFFERENCE;
    if (status == CKPT_ERR_ARG)
        return EXIT_USAGE;
    if (ckpt_status_is_input_error(status))
        return EXIT_INPUT;
    return EXIT_OUTPUT;
}

int cli_fail(const char *command, const ckpt_error *err)
{
    /* a refusal by a limit says which option raises it */
    static const char *const limits[][2] = {{"max_header_bytes", "--max-header-size"},
                                            {"max_pickle_bytes", "--max-pickle-memory"},
                                            {"max_tensors", "--max-tensors"},
                                            {"max_rank", "--max-rank"},
                                            {"max_archive_bytes", "--max-archive-size"},
                                            {"max_bundle_header_bytes", "--max-bundle-headers"},
                                            {"max_expansion", "--max-expansion"}};
    /* the library names no flag (ckpt.h): the options that answer other refusals */
    static const struct {
        int code;
        const char *words, *hint;
    } hints[] = {{CKPT_ERR_EXISTS, "already exists", "use --force to replace it"},
                 {CKPT_ERR_ARG, "nz_fp32_c0", "--nz-fp32-c0 16|8 names one"},
                 {CKPT_ERR_UNSUPPORTED, "has no name for", "--rules FILE can rename or drop it"},
                 {CKPT_ERR_UNSUPPORTED, "found no linear to quantize", "see --rename and --rules"},
                 {CKPT_ERR_FORMAT, "ckpt_pack_merge", "ckpt pack --merge joins them"},
                 {CKPT_ERR_UNSUPPORTED, "deepspeed_weights module", "--deepspeed-weights module reads them"},
                 {CKPT_ERR_UNSUPPORTED, "the sha256 format escapes it", "--format sha256"},
                 {CKPT_ERR_FORMAT, "the manifest of a source", "ckpt verify DIR --sums MANIFEST checks a copy"}};
    const char *option = NULL, *hint = NULL;
    for (size_t i = 0; i < sizeof limits / sizeof limits[0] && err->code == CKPT_ERR_LIMIT; i++)
        if (strstr(err->message, limits[i][0]))
            option = limits[i][1];
    for (size_t i = 0; i < sizeof hints / sizeof hints[0]; i++)
        if (err->code == hints[i].code && strstr(err->message, hints[i].words))
            hint = hints[i].hint;
    if (option)
        fprintf(stderr, "ckpt %s: %s; raise it with %s\n", command, err->message, option);
    else if (hint)
        fprintf(stderr, "ckpt %s: %s (%s)\n", command, err->message, hint);
    else
        fprintf(stderr, "ckpt %s: %s\n", command, err->message);
    return cli_exit_for(err->code);
}

int cli_usage_error(const char *command, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ckpt%s%s: ", *command ? " " : "", command);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'ckpt%s%s --help'.\n", *command ? " " : "", command);
    va_end(ap);
    return EXIT_USAGE;
}

int cli_parse_size(const char *text, uint64_t *out)
{
    static const struct {
        const char *suffix;
        uint64_t factor;
    } units[] = {{"", 1},
                 {"B", 1},
                 {"K", 1000},
                 {"KB", 1000},
                 {"KiB", 1024},
                 {"M", 1000000},
                 {"MB", 1000000},
                 {"MiB", 1 << 20},
                 {"G", 1000000000},
                 {"GB", 1000000000},
                 {"GiB", 1 << 30},
                 {"T", 1000000000000ull},
                 {"TB", 1000000000000ull},
                 {"TiB", 1ull << 40}};
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || text[0] == '-')
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            if (v > UINT64_MAX / units[i].factor)
                return -1;
            *out = v * units[i].factor;
            return 0;
        }
    }
    return -1;
}

int cli_parse_part(const char *command, const char *text, unsigned *part, unsigned *parts)
{
    unsigned k, n;
    int used = 0;
    if (sscanf(text, "%u/%u%n", &k, &n, &used) != 2 || text[used] || text[0] == '-' || k < 1 || n > 65536 || k > n)
        return cli_usage_error(command, "--part takes K/N with 1 <= K <= N <= 65536, not '%s'", text);
    *part = k;
    *parts = n;
    return EXIT_OK;
}

int cli_parse_open_option(const char *command, int code, const char *value, ckpt_open_options *opts)
{
    ckpt_limits *l = &opts->limits;
    uint64_t v;
    switch (code) {
    case 'D':
        if (strcmp(value, "fp32") == 0)
            opts->deepspeed_weights = CKPT_DEEPSPEED_FP32;
        else if (strcmp(value, "module") == 0)
            opts->deepspeed_weights = CKPT_DEEPSPEED_MODULE;
        else
            return cli_usage_error(command, "--deepspeed-weights takes fp32 or module, not '%s'", value);
        return EXIT_OK;
    case CLI_OPT_MAX_HEADER:
        if (cli_parse_size(value, &l->max_header_bytes) || l->max_header_bytes == 0)
            return cli_usage_error(command, "bad --max-header-size '%s'", value);
        return EXIT_OK;
    case CLI_OPT_MAX_PICKLE:
        if (cli_parse_size(value, &l->max_pickle_bytes) || l->max_pickle_bytes == 0)
            return cli_usage_error(command, "bad --max-pickle-memory '%s'", value);
        return EXIT_OK;
    case CLI_OPT_MAX_TENSORS:
        if (cli_parse_size(value, &l->max_tensors) || l->max_tensors == 0)
            return cli_usage_error(command, "bad --max-tensors '%s'", value);
        return EXIT_OK;
    case CLI_OPT_MAX_ARCHIVE:
        if (cli_parse_size(value, &l->max_archive_bytes) || l->max_archive_bytes == 0)
            return cli_usage_error(command, "bad --max-archive-size '%s'", value);
        return EXIT_OK;
    case CLI_OPT_MAX_BUNDLE_HEADERS:
        if (cli_parse_size(value, &l->max_bundle_header_bytes) || l->max_bundle_header_bytes == 0)
            return cli_usage_error(command, "bad --max-bundle-headers '%s'", value);
        return EXIT_OK;
    case CLI_OPT_MAX_EXPANSION:
        if (cli_parse_size(value, &l->max_expansion) || l->max_expansion == 0)
            return cli_usage_error(command, "bad --max-expansion '%s'", value);
        return EXIT_OK;
    case CLI_OPT_MAX_RANK:
        if (cli_parse_size(value, &v) || v == 0 || v > 64)
            return cli_usage_error(command, "--max-rank takes 1 to 64, not '%s'", value);
        l->max_rank = (uint32_t)v;
        return EXIT_OK;
    default:
        return cli_usage_error(command, "unknown source option");
    }
}

void cli_format_shape(char *buf, size_t size, const ckpt_tensor *t)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (uint32_t d = 0; d < t->rank && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, "%s%llu", d ? ", " : "",
                                 (unsigned long long)t->shape[d]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
}

void cli_format_bytes(char *buf, size_t size, uint64_t bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 6) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, size, "%llu B", (unsigned long long)bytes);
    else
        snprintf(buf, size, "%.1f %s", v, units[u]);
}

int cli_print_json(json_t *root)
{
    int rc = root ? json_dumpf(root, stdout, JSON_INDENT(2)) : -1;
    json_decref(root);
    if (rc != 0 || fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
        fprintf(stderr, "ckpt: cannot write JSON output\n");
        return EXIT_OUTPUT;
    }
    return EXIT_OK;
}

struct stale_note {
    const char *command;
};

static int note_stale(void *payload, const ckpt_stale_output *s)
{
    const struct stale_note *n = payload;
    char bytes[32];
    cli_format_bytes(bytes, sizeof bytes, s->bytes);
    if (s->same_dst)
        fprintf(stderr, "ckpt %s: removing %s (%s), left by an interrupted run into %s\n", n->command, s->path, bytes,
                s->dst);
    else
        fprintf(stderr, "ckpt %s: %s (%s) was left by an interrupted run into %s; remove it with: rm -rf '%s'\n",
                n->command, s->path, bytes, s->dst, s->path);
    return 0;
}

void cli_note_stale(const char *command, const char *dst)
{
    struct stale_note n = {command};
    if (!cli_global.quiet)
        ckpt_stale_outputs(dst, note_stale, &n, NULL);
}
