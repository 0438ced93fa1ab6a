/*
 * convert_options.h: the conversion options, parsed by one table for the
 * two commands that take them: `convert` (to convert) and `verify --against`
 * (to prove a folder is what converting with them gives).
 */
#ifndef CKPT_CLI_CONVERT_OPTIONS_H
#define CKPT_CLI_CONVERT_OPTIONS_H

#include "cli.h"

/* The help lines of those options. */
#define CLI_CONVERT_HELP \
    "  --target T           ascend-310p: every float to f16; ascend-910b: to bf16;\n" \
    "                       both ND under Hugging Face names, the tensors the\n" \
    "                       runtimes keep in f32 kept f32; nd: no change of type\n" \
    "  --dtype D            f16, bf16, f32 or keep instead of the target's type\n" \
    "  --quant Q            w8a8-dynamic or w8a16: data-free int8 of every\n" \
    "                       decoder-layer projection in msModelSlim's layout\n" \
    "                       (docs/quantization.md)\n" \
    "  --nz MODE            all: a FRACTAL_NZ device image for AscendCL programs (no\n" \
    "                       Python runtime loads it); none or auto (default): ND\n" \
    "  --nz-fp32-c0 C       C0 of 4-byte NZ tiles: 16 (torch_npu, GE) or 8 (aclnn,\n" \
    "                       A2/A3)\n" \
    "  --overflow P         saturate (default), inf (as torch), error\n" \
    "  --rename SET         hf: Megatron-LM names, fused QKV / fc1 and experts to the\n" \
    "                       Hugging Face architecture the checkpoint's args give\n" \
    "                       (Llama, Qwen2 for q/k/v biases, Qwen3, Qwen3-MoE,\n" \
    "                       DeepSeek-V3) and its config.json; DeepSeek's own\n" \
    "                       inference names back to Hugging Face's; fused Hugging\n" \
    "                       Face experts read per expert; hf-llama: the same,\n" \
    "                       Llama/Qwen2 only (rules after the target's)\n" \
    "  --rules FILE         extra rules: name glob -> dtype / layout / quant /\n" \
    "                       rename / copy / rows / drop (docs/rules.md)\n" \
    "  --max-shard-size N   bytes per output shard (default 5GB; K, M, G, KiB...)\n"

/* getopt_long codes of those options (clear of every command's own), their table entries and case labels. */
enum {
    CLI_OPT_TARGET = 0x200,
    CLI_OPT_DTYPE,
    CLI_OPT_QUANT,
    CLI_OPT_NZ,
    CLI_OPT_NZ_FP32_C0,
    CLI_OPT_OVERFLOW,
    CLI_OPT_RENAME,
    CLI_OPT_RULES,
    CLI_OPT_MAX_SHARD
};
#define CLI_CONVERT_OPTIONS                                                                             \
    {"target", required_argument, NULL, CLI_OPT_TARGET}, {"dtype", required_argument, NULL, CLI_OPT_DTYPE}, \
        {"quant", required_argument, NULL, CLI_OPT_QUANT}, {"nz", required_argument, NULL, CLI_OPT_NZ},   \
        {"nz-fp32-c0", required_argument, NULL, CLI_OPT_NZ_FP32_C0},                                    \
        {"overflow", required_argument, NULL, CLI_OPT_OVERFLOW},                                        \
        {"rename", required_argument, NULL, CLI_OPT_RENAME}, {"rules", required_argument, NULL, CLI_OPT_RULES}, \
        {"max-shard-size", required_argument, NULL, CLI_OPT_MAX_SHARD}
#define CLI_CONVERT_CASES                                                                               \
    case CLI_OPT_TARGET:                                                                                \
    case CLI_OPT_DTYPE:                                                                                 \
    case CLI_OPT_QUANT:                                                                                 \
    case CLI_OPT_NZ:                                                                                    \
    case CLI_OPT_NZ_FP32_C0:                                                                            \
    case CLI_OPT_OVERFLOW:                                                                              \
    case CLI_OPT_RENAME:                                                                                \
    case CLI_OPT_RULES:                                                                                 \
    case CLI_OPT_MAX_SHARD

struct cli_convert {
    ckpt_convert_options opts;   /* ckpt_convert_options_default() first */
    const char *rules_path;
    unsigned given;              /* bit (code - CLI_OPT_TARGET) of each option given */
    int deepspeed_given;         /* --deepspeed-weights (a source option) was given: its origin is the command line */
    char *rules;                 /* the rules file's text, after cli_convert_finish */
};

/* Applies conversion option `code` (one of CLI_CONVERT_CASES) with `value`; EXIT_OK or a usage status. */
int cli_parse_convert_option(const char *command, int code, const char *value, struct cli_convert *c);

/* Requires --target and reads the rules file into opts.rules; EXIT_OK, a usage or an input status. */
int cli_convert_finish(const char *command, struct cli_convert *c);

/* Whether the option the library names `option` (a ckpt_finding's) was given on the command line. */
int cli_convert_option_given(const struct cli_convert *c, const char *option);

void cli_convert_free(struct cli_convert *c);

#endif
