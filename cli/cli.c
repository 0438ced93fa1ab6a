/* cli.c: messages, exit statuses and formatting shared by the subcommands. */
#include "cli.h"

#include <stdarg.h>
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
    fprintf(stderr, "ckpt %s: %s\n", command, err->message);
    return cli_exit_for(err->code);
}

int cli_usage_error(const char *command, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ckpt %s: ", command);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'ckpt %s --help'.\n", command);
    va_end(ap);
    return EXIT_USAGE;
}

int cli_parse_deepspeed_weights(const char *command, const char *value, ckpt_open_options *opts)
{
    if (strcmp(value, "fp32") == 0)
        opts->deepspeed_weights = CKPT_DEEPSPEED_FP32;
    else if (strcmp(value, "module") == 0)
        opts->deepspeed_weights = CKPT_DEEPSPEED_MODULE;
    else
        return cli_usage_error(command, "--deepspeed-weights takes fp32 or module, not '%s'", value);
    return EXIT_OK;
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
