/* convert_options.c: see convert_options.h. */
#include "convert_options.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The library's name of each option (ckpt_finding.option), by code - CLI_OPT_TARGET. */
static const char *const library_names[] = {"target",     "dtype",  "quant", "nz",            "nz_fp32_c0",
                                            "overflow",   "rename", "rules", "max_shard_size"};

int cli_parse_convert_option(const char *command, int code, const char *value, struct cli_convert *c)
{
    static const char *const targets[] = {"ascend-310p", "ascend-910b", "nd", NULL};
    static const char *const dtypes[] = {"f16", "bf16", "f32", "keep", NULL};
    static const char *const nz[] = {"auto", "all", "none", NULL};
    static const char *const overflow[] = {"saturate", "inf", "error", NULL};
    static const char *const quant[] = {"w8a8-dynamic", "w8a16", NULL};
    static const char *const renames[] = {"hf", "hf-llama", NULL};
    const char *guess;
    ckpt_convert_options *o = &c->opts;
    c->given |= 1u << (code - CLI_OPT_TARGET);
    switch (code) {
    case CLI_OPT_TARGET:
        if ((o->target = ckpt_target_from_name(value)) != CKPT_TARGET_NONE)
            return EXIT_OK;
        if ((guess = cli_suggest(value, targets)))
            return cli_usage_error(command, "unknown target '%s' (ascend-310p, ascend-910b, nd); did you mean '%s'?",
                                   value, guess);
        return cli_usage_error(command, "unknown target '%s' (ascend-310p, ascend-910b, nd)", value);
    case CLI_OPT_DTYPE:
        if (ckpt_float_type_parse(value, &o->dtype) != CKPT_OK || o->dtype == CKPT_FLOAT_TARGET)
            return cli_choice_error(command, "--dtype", value, dtypes);
        return EXIT_OK;
    case CLI_OPT_NZ:
        if (strcmp(value, "auto") == 0)
            o->nz = CKPT_NZ_AUTO;
        else if (strcmp(value, "all") == 0)
            o->nz = CKPT_NZ_ALL;
        else if (strcmp(value, "none") == 0)
            o->nz = CKPT_NZ_NONE;
        else
            return cli_choice_error(command, "--nz", value, nz);
        return EXIT_OK;
    case CLI_OPT_OVERFLOW:
        if (strcmp(value, "saturate") == 0)
            o->overflow = CKPT_OVERFLOW_SATURATE;
        else if (strcmp(value, "inf") == 0)
            o->overflow = CKPT_OVERFLOW_INF;
        else if (strcmp(value, "error") == 0)
            o->overflow = CKPT_OVERFLOW_ERROR;
        else
            return cli_choice_error(command, "--overflow", value, overflow);
        return EXIT_OK;
    case CLI_OPT_RULES: c->rules_path = value; return EXIT_OK;
    case CLI_OPT_QUANT:
        if (ckpt_quant_parse(value, &o->quant) != CKPT_OK || o->quant == CKPT_QUANT_NONE)
            return cli_choice_error(command, "--quant", value, quant);
        return EXIT_OK;
    case CLI_OPT_NZ_FP32_C0:
        if (strcmp(value, "8") && strcmp(value, "16"))
            return cli_usage_error(command, "--nz-fp32-c0 takes 16 or 8, not '%s'", value);
        o->nz_fp32_c0 = (unsigned)atoi(value);
        return EXIT_OK;
    case CLI_OPT_RENAME:
        if (strcmp(value, "hf") && strcmp(value, "hf-llama"))
            return cli_choice_error(command, "--rename", value, renames);
        o->rename = value;
        return EXIT_OK;
    case CLI_OPT_MAX_SHARD:
        if (cli_parse_size(value, &o->max_shard_bytes) || o->max_shard_bytes == 0)
            return cli_usage_error(command, "bad --max-shard-size '%s'", value);
        return EXIT_OK;
    default:
        return cli_usage_error(command, "unknown conversion option");
    }
}

/* A rules file is a few lines; one over 16 MiB is refused rather than read. */
static char *read_rules(const char *path, char *why, size_t why_size)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, why_size, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap + 1);
    size_t n;
    while (text && (n = fread(text + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            if (cap >= (1u << 24)) {
                free(text);
                text = NULL;
                snprintf(why, why_size, "%s: rules file larger than 16 MiB", path);
                break;
            }
            char *grown = realloc(text, 2 * cap + 1);
            if (!grown)
                free(text);
            text = grown;
            cap *= 2;
        }
    }
    fclose(f);
    if (text)
        text[len] = '\0';
    else if (!*why)
        snprintf(why, why_size, "%s: out of memory", path);
    return text;
}

int cli_convert_finish(const char *command, struct cli_convert *c)
{
    if (c->opts.target == CKPT_TARGET_NONE)
        return cli_usage_error(command, "--target is required: ascend-310p (fp16), ascend-910b (bf16) or nd (no "
                               "change of type)");
    if (!c->rules_path)
        return EXIT_OK;
    char why[4200] = "";
    if (!(c->rules = read_rules(c->rules_path, why, sizeof why))) {
        fprintf(stderr, "ckpt %s: %s\n", command, why);
        return EXIT_INPUT;
    }
    c->opts.rules = c->rules;
    c->opts.rules_origin = c->rules_path;
    return EXIT_OK;
}

int cli_convert_option_given(const struct cli_convert *c, const char *option)
{
    if (strcmp(option, "deepspeed_weights") == 0)
        return c->deepspeed_given;
    for (size_t i = 0; i < sizeof library_names / sizeof library_names[0]; i++)
        if (strcmp(option, library_names[i]) == 0)
            return (c->given >> i) & 1;
    return 0;
}

void cli_convert_free(struct cli_convert *c)
{
    free(c->rules);
    c->rules = NULL;
}
