/* cli.h: what the ckpt subcommands share: exit statuses, messages, formatting. */
#ifndef CKPT_CLI_H
#define CKPT_CLI_H

#include "ckpt.h"

#include <getopt.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

/* Exit statuses, the same for every command. */
enum {
    EXIT_OK = 0,
    EXIT_DIFFERENCE = 1, /* a check found a difference */
    EXIT_USAGE = 2,      /* the command line is wrong */
    EXIT_INPUT = 3,      /* bad or unreadable input */
    EXIT_OUTPUT = 4,     /* output or system error */
    EXIT_INTERRUPTED = 130 /* Ctrl-C (128 + SIGINT; 143 for SIGTERM), whatever the command */
};

/* The exit status for a library failure. */
int cli_exit_for(int status);

/* Prints "ckpt COMMAND: MESSAGE" to stderr and returns the exit status for `err`. */
int cli_fail(const char *command, const ckpt_error *err);

/* Prints "ckpt COMMAND: MESSAGE" and a pointer to --help; returns EXIT_USAGE.  COMMAND "" is ckpt itself. */
int cli_usage_error(const char *command, const char *fmt, ...);

/*
 * The choice among `choices` (NULL-terminated) closest to `given` as users
 * misspell it (fp16 for f16, 910b for ascend-910b, a typo or two), or NULL.
 */
const char *cli_suggest(const char *given, const char *const *choices);

/* "unknown option '--taget'; did you mean '--target'?" (or "--target needs a value") as a usage error. */
int cli_unknown_option(const char *command, const char *arg, const struct option *options);

/* "OPTION takes A, B or C, not 'X'; did you mean 'B'?" as a usage error. */
int cli_choice_error(const char *command, const char *option, const char *given, const char *const *choices);

/* ---- global options: the same for every command, before or after its name (global.c) ---- */

enum cli_progress_mode { CLI_PROGRESS_AUTO, CLI_PROGRESS_ALWAYS, CLI_PROGRESS_NEVER };

struct cli_global {
    int quiet;                       /* -q: errors only (no progress line, no summary) */
    int verbose;                     /* -v: more detail where a command has it */
    enum cli_progress_mode progress; /* --progress */
    unsigned jobs;                   /* -j N; 0: one per core */
};
extern struct cli_global cli_global;

enum { CLI_OPT_PROGRESS = 0x180 };
#define CLI_GLOBAL_SHORT "qvj:"
#define CLI_GLOBAL_OPTIONS                                                                              \
    {"quiet", no_argument, NULL, 'q'}, {"verbose", no_argument, NULL, 'v'},                             \
        {"progress", required_argument, NULL, CLI_OPT_PROGRESS}, {"jobs", required_argument, NULL, 'j'}
#define CLI_GLOBAL_CASES                                                                                \
    case 'q':                                                                                           \
    case 'v':                                                                                           \
    case 'j':                                                                                           \
    case CLI_OPT_PROGRESS
#define CLI_GLOBAL_HELP                                                                                 \
    "Global options (before or after the command):\n"                                                  \
    "  -q, --quiet          errors only: no progress line, no summary\n"                               \
    "  -v, --verbose        more detail (verify, diff: passing checks too)\n"                          \
    "  --progress WHEN      the progress line: auto (on a terminal), always, never\n"                  \
    "  -j, --jobs N         worker threads, 1 to 256 (default: one per core)\n"                        \
    "  -h, --help           show this help\n"

/* Applies global option `code` (one of CLI_GLOBAL_CASES); EXIT_OK or a usage status. */
int cli_parse_global_option(const char *command, int code, const char *value);

/* Takes the global options before the command name; the index of the command word, or minus a usage status. */
int cli_parse_leading_globals(int argc, char **argv);

/* Whether to draw a progress line (--progress, -q; auto: stderr is a terminal and no --json). */
int cli_want_progress(int json);

/*
 * Ctrl-C (and SIGTERM): caught from the start; a command whose run stops at
 * its callbacks says so with cli_cancellable (hook, if not NULL, is called
 * from the handler: ckpt_plan_cancel), and its callbacks return
 * cli_interrupted().  Without that the process ends at once.  Either way
 * the exit status is 128 + the signal (cli_exit_signal).  A second Ctrl-C
 * ends the process at once.  CKPT_TEST_INTERRUPT=N in the environment raises
 * SIGINT at the Nth callback, for tests.
 */
void cli_catch_interrupts(void);
void cli_cancellable(void (*hook)(void));
int cli_interrupted(void);
int cli_exit_signal(void);   /* 128 + the signal caught, or 0 */

/* ckpt_open_options_default, with events that stop the open on Ctrl-C. */
void cli_open_options_default(ckpt_open_options *opts);

/* The help lines of the source options every command that opens a source shares. */
#define CLI_OPEN_HELP \
    "  --deepspeed-weights W  DeepSpeed ZeRO folders: fp32 (rebuilt from the\n" \
    "                         optimizer, default) or module\n" \
    "  --max-header-size N    largest JSON header or index file read (default 100MB)\n" \
    "  --max-pickle-memory N  memory one pickle may take, and compressed zip entries\n" \
    "                         may inflate to (default 1GiB)\n" \
    "  --max-tensors N        tensors (and stored pieces) in one source\n" \
    "                         (default 10000000)\n" \
    "  --max-rank N           dimensions of one tensor (default and ceiling 64)\n" \
    "  --max-archive-size N   bytes a compressed archive may inflate to\n" \
    "                         (default 256GiB)\n" \
    "  --max-bundle-headers N bytes of a bundle's headers and pickles held in memory\n" \
    "                         (default 1GiB)\n" \
    "  --max-expansion N      times its storage's bytes one expanded (stride-0) view\n" \
    "                         may present (default 1024)\n"

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
    int show;    /* draw at all (cli_want_progress) */
};
void cli_progress_start(struct cli_progress *p, int show);
/* A ckpt_progress_fn: draws when `show`, and returns cli_interrupted() so that Ctrl-C stops the run. */
int cli_progress_show(void *payload, uint64_t done, uint64_t total);
void cli_progress_clear(struct cli_progress *p);   /* erases a drawn line, before other output */

/*
 * Tells on stderr (not under -q) of the temporary folders that killed runs
 * left beside `dst`: DST's own, which the run about to start removes, and
 * the others, named with the command that removes them.
 */
void cli_note_stale(const char *command, const char *dst);

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
