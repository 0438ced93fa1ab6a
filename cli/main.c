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
                 "  -h, --help     show this help\n"
                 "  -V, --version  show the version\n\n"
                 "Run 'ckpt COMMAND --help' for a command's options.\n"
                 "Exit status: 0 success, 1 a check found a difference, 2 usage error,\n"
                 "3 bad or unreadable input, 4 output or system error.\n");
}

int main(int argc, char **argv)
{
    /* past a file-size limit, writes should fail with EFBIG and be reported, not kill the process */
    signal(SIGXFSZ, SIG_IGN);
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
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        if (strcmp(first, commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "ckpt: unknown command '%s'\n", first);
    usage(stderr);
    return EXIT_USAGE;
}
