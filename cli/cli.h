/* cli.h: what the ckpt subcommands share: exit statuses, messages, formatting. */
#ifndef CKPT_CLI_H
#define CKPT_CLI_H

#include "ckpt.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

/* Exit statuses, the same for every command. */
enum {
    EXIT_OK = 0,
    EXIT_DIFFERENCE = 1, /* a check found a difference */
    EXIT_USAGE = 2,      /* the command line is wrong */
    EXIT_INPUT = 3,      /* bad or unreadable input */
    EXIT_OUTPUT = 4      /* output or system error */
};

/* The exit status for a library failure. */
int cli_exit_for(int status);

/* Prints "ckpt COMMAND: MESSAGE" to stderr and returns the exit status for `err`. */
int cli_fail(const char *command, const ckpt_error *err);

/* Prints "ckpt COMMAND: MESSAGE" and a pointer to --help; returns EXIT_USAGE. */
int cli_usage_error(const char *command, const char *fmt, ...);

/* The help lines of the source options every command that opens a source shares. */
#define CLI_OPEN_HELP                                                                                   \
    "  --deepspeed-weights W  DeepSpeed ZeRO folders: fp32 (rebuilt from the optimizer, default) or module\n" \
    "  --max-header-size N    largest JSON header or index file read (default 100MB)\n"                  \
    "  --max-pickle-memory N  memory one pickle may take, and compressed zip entries may\n"             \
    "                         inflate to (default 1GiB)\n"                                             \
    "  --max-tensors N        tensors (and stored pieces) in one source (default 10000000)\n"          \
    "  --max-rank N           dimensions of one tensor (default and ceiling 64)\n"                   \
    "  --max-archive-size N   bytes a compressed archive may inflate to (default 256GiB)\n"        \
    "  --max-bundle-headers N bytes of a bundle's headers and pickles held in memory (default 1GiB)\n"   \
    "  --max-expansion N      times its storage's bytes one expanded (stride-0) view may present\n"      \
    "                         (default 1024)\n"

/* getopt_long codes of those options, and their table entries and case labels. */
enum {
    CLI_OPT_MAX_HEADER = 0x100,
    CLI_OPT_MAX_PICKLE,
    CLI_OPT_MAX_TENSORS,
    CLI_OPT_MAX_RANK,
    CLI_OPT_MAX_ARCHIVE,
    CLI_OPT_MAX_BUNDLE_HEADERS,
    CLI_OPT_MAX_EXPANSION
};
#define CLI_OPEN_OPTIONS                                                                                \
    {"deepspeed-weights", required_argument, NULL, 'D'},                                                \
        {"max-header-size", required_argument, NULL, CLI_OPT_MAX_HEADER},                               \
        {"max-pickle-memory", required_argument, NULL, CLI_OPT_MAX_PICKLE},                             \
        {"max-tensors", required_argument, NULL, CLI_OPT_MAX_TENSORS},                                  \
        {"max-rank", required_argument, NULL, CLI_OPT_MAX_RANK},                                        \
        {"max-archive-size", required_argument, NULL, CLI_OPT_MAX_ARCHIVE},                             \
        {"max-bundle-headers", required_argument, NULL, CLI_OPT_MAX_BUNDLE_HEADERS},                    \
        {"max-expansion", required_argument, NULL, CLI_OPT_MAX_EXPANSION}
#define CLI_OPEN_CASES                                                                                  \
    case 'D':                                                                                           \
    case CLI_OPT_MAX_HEADER:                                                                            \
    case CLI_OPT_MAX_PICKLE:                                                                            \
    case CLI_OPT_MAX_TENSORS:                                                                           \
    case CLI_OPT_MAX_RANK:                                                                              \
    case CLI_OPT_MAX_ARCHIVE:                                                                           \
    case CLI_OPT_MAX_BUNDLE_HEADERS:                                                                    \
    case CLI_OPT_MAX_EXPANSION

/* Applies source option `code` (one of CLI_OPEN_CASES) with `value` to `opts`; EXIT_OK or a usage status. */
int cli_parse_open_option(const char *command, int code, const char *value, ckpt_open_options *opts);

/* "--part K/N" with 1 <= K <= N <= 65536 into *part and *parts; EXIT_OK or a usage status. */
int cli_parse_part(const char *command, const char *text, unsigned *part, unsigned *parts);

/* "5GB", "512MiB", "1000" -> bytes; 0 on success, -1 when malformed or over 64 bits. */
int cli_parse_size(const char *text, uint64_t *out);

/* "[4096, 11008]" into buf. */
void cli_format_shape(char *buf, size_t size, const ckpt_tensor *t);

/* "1.5 GiB" into buf. */
void cli_format_bytes(char *buf, size_t size, uint64_t bytes);

/*
 * A progress line on stderr (percent, bytes, rate, time left), redrawn at
 * most five times a second and ended when done reaches total.
 */
struct cli_progress {
    double start, last;
    int drawn;   /* a line is on the screen and not ended */
};
void cli_progress_start(struct cli_progress *p);
int cli_progress_show(void *payload, uint64_t done, uint64_t total);   /* a ckpt_progress_fn */
void cli_progress_clear(struct cli_progress *p);   /* erases a drawn line, before other output */

/* Writes `root` to stdout as indented JSON and drops the reference; EXIT_OUTPUT on failure. */
int cli_print_json(json_t *root);

/* Subcommands: each parses its own arguments (argv[0] is the command name). */
int cmd_inspect(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_manifest(int argc, char **argv);
int cmd_manifest_sums(int argc, char **argv);     /* argv[0] is "sums" */
int cmd_manifest_create(int argc, char **argv);   /* argv[0] is "create" */
int cmd_pack(int argc, char **argv);
int cmd_unpack(int argc, char **argv);

#endif
