/* main.c: the ckpt program: global options and dispatch to subcommands. */
#include "cli.h"

#include <signal.h>
#include <string.h>

static const struct command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} commands[] = {
    {"inspect", "list a checkpoint's format, files and tensors", cmd_inspect},
    {"convert", "convert a checkpoint for Ascend inference, with a manifest", cmd_convert},
    {"verify", "prove a converted folder intact (and faithful to its source)", cmd_verify},
    {"diff", "compare two checkpoints of any formats and layouts", cmd_diff},
    {"manifest", "a source's manifest (create), checksum lists (sums), merge parts", cmd_manifest},
    {"pack", "compress a checkpoint into a bundle, readable in place", cmd_pack},
    {"unpack", "write the files a bundle holds, byte for byte, checked", cmd_unpack},
};

#define COMMAND_COUNT (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out, "Usage: ckpt COMMAND [OPTIONS] ...\n"
                 "Moves large-model checkpoints from training formats to Ascend inference.\n\nCommands:\n");
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nOptions:\n"
                 "  -q, --quiet          errors only: no progress line, no summary\n"
                 "  -v, --verbose        more detail (verify, diff: passing checks too)\n"
                 "  --progress WHEN      the progress line: auto (on a terminal), always, never\n"
                 "  -j, --jobs N         worker threads, 1 to 256 (default: one per core)\n"
                 "  -h, --help           show this help\n"
                 "  -V, --version        show the version\n"
                 "The global options -q, -v, --progress and -j go before or after the command.\n\n"
                 "Run 'ckpt COMMAND --help' for a command's options.\n"
                 "Exit status: 0 success, 1 a check found a difference, 2 usage error,\n"
                 "3 bad or unreadable input, 4 output or system error, 130 interrupted (Ctrl-C).\n");
}

int main(int argc, char **argv)
{
    /* past a file-size limit, writes should fail with EFBIG and be reported, not kill the process */
    signal(SIGXFSZ, SIG_IGN);
    cli_catch_interrupts();
    int at = cli_parse_leading_globals(argc, argv);
    if (at < 0)
        return -at;
    argc -= at - 1;   /* the globals taken, argv[1] is the command */
    argv += at - 1;
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *first = argv[1];
    if (strcmp(first, "-h") == 0 || strcmp(first, "--help") == 0 || strcmp(first, "help") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    if (strcmp(first, "-V") == 0 || strcmp(first, "--version") == 0) {
        printf("ckpt %s (libckpt %s)\n", CKPT_VERSION_STRING, ckpt_version());
        return EXIT_OK;
    }
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        if (strcmp(first, commands[i].name) == 0) {
            int status = commands[i].run(argc - 1, argv + 1);
            return cli_exit_signal() ? cli_exit_signal() : status;
        }
    }
    const char *names[COMMAND_COUNT + 1] = {NULL};
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        names[i] = commands[i].name;
    const char *guess = first[0] == '-' ? NULL : cli_suggest(first, names);
    if (guess)
        fprintf(stderr, "ckpt: unknown %s '%s'; did you mean '%s'?\n", "command", first, guess);
    else
        fprintf(stderr, "ckpt: unknown %s '%s'\n", first[0] == '-' ? "option" : "command", first);
    usage(stderr);
    return EXIT_USAGE;
}
