/*
 * gen_moe.c: writes a synthetic Megatron-LM legacy MoE checkpoint for
 * benchmarks, without Python.
 *
 *   gen_moe DIR MIB
 *       A Qwen3-MoE-like model (hidden 2048, 16 heads of 128 in 4 query
 *       groups with q/k norms, 16 routed experts of width 768 in every layer,
 *       vocabulary 16000 padded to 16384), about MIB mebibytes, as
 *       TEGroupedMLP rank files of TP=2 x EP=2 with the experts split over
 *       ETP=2 (iter_0000001/mp_rank_TT_EEE/model_optim_rng.pt).  Prints the
 *       model's largest full (merged) tensor in bytes.
 */
#include "synthetic.h"
#include "torch_save.h"

#include <sys/stat.h>

enum { HIDDEN = 2048, HEADS = 16, GROUPS = 4, HEAD_DIM = 128, EXPERTS = 16, WIDTH = 768, VOCAB = 16000,
       PADDED_VOCAB = 16384, TP = 2, EP = 2, LOCAL = EXPERTS / EP };

/* One tensor of a rank file: its part's shape, and whether its bytes are the same on every rank. */
struct part {
    char name[128];
    uint64_t rows, cols;   /* cols 0: a vector of `rows` */
    uint64_t seed;
};

static void put_arg_flag(struct pickle *p, const char *name, int v)
{
    pk_str(p, name);
    pk_op(p, v ? (char)0x88 : (char)0x89);
}

static void put_args(struct pickle *p, int layers)
{
    pk_args_begin(p);
    pk_arg_int(p, "num_layers", (uint64_t)layers);
    pk_arg_int(p, "hidden_size", HIDDEN);
    pk_arg_int(p, "ffn_hidden_size", 4 * WIDTH);
    pk_arg_int(p, "num_attention_heads", HEADS);
    pk_arg_int(p, "num_query_groups", GROUPS);
    pk_arg_int(p, "kv_channels", HEAD_DIM);
    pk_arg_int(p, "padded_vocab_size", PADDED_VOCAB);
    pk_arg_int(p, "vocab_size", VOCAB);
    pk_arg_int(p, "max_position_embeddings", 4096);
    pk_arg_int(p, "tensor_model_parallel_size", TP);
    pk_arg_int(p, "pipeline_model_parallel_size", 1);
    pk_arg_int(p, "expert_model_parallel_size", EP);
    pk_arg_int(p, "expert_tensor_parallel_size", TP);
    pk_arg_int(p, "num_experts", EXPERTS);
    pk_arg_int(p, "moe_ffn_hidden_size", WIDTH);
    pk_arg_int(p, "moe_router_topk", 8);
    pk_arg_int(p, "moe_layer_freq", 1);
    put_arg_flag(p, "group_query_attention", 1);
    put_arg_flag(p, "swiglu", 1);
    put_arg_flag(p, "qk_layernorm", 1);
    put_arg_flag(p, "moe_grouped_gemm", 1);
    pk_str(p, "norm_epsilon");
    pk_float(p, 1e-6);
    pk_args_end(p);
}

/* The parts rank (tp, ep) holds: dense shards of tp, the experts of ep, split over the expert-TP rank tp. */
static size_t rank_parts(struct part *out, int layers, int tp, int ep)
{
    size_t n = 0;
    uint64_t qkv = (HEADS + 2 * GROUPS) * HEAD_DIM;
    for (int l = 0; l < layers; l++) {
        const struct {
            const char *suffix;
            uint64_t rows, cols;
            int replicated;
        } dense[] = {
            {"self_attention.linear_qkv.layer_norm_weight", HIDDEN, 0, 1},
            {"self_attention.linear_qkv.weight", qkv / TP, HIDDEN, 0},
            {"self_attention.q_layernorm.weight", HEAD_DIM, 0, 1},
            {"self_attention.k_layernorm.weight", HEAD_DIM, 0, 1},
            {"self_attention.linear_proj.weight", HIDDEN, HEADS * HEAD_DIM / TP, 0},
            {"pre_mlp_layernorm.weight", HIDDEN, 0, 1},
            {"mlp.router.weight", EXPERTS, HIDDEN, 1},
        };
        for (size_t i = 0; i < sizeof dense / sizeof dense[0]; i++, n++) {
            snprintf(out[n].name, sizeof out[n].name, "decoder.layers.%d.%s", l, dense[i].suffix);
            out[n].rows = dense[i].rows;
            out[n].cols = dense[i].cols;
            out[n].seed = SYNTHETIC_SEED + (uint64_t)l * 64 + i + (dense[i].replicated ? 0 : (uint64_t)(tp + 1) << 32);
        }
        for (int e = 0; e < LOCAL; e++)
            for (int fc = 1; fc <= 2; fc++, n++) {
                snprintf(out[n].name, sizeof out[n].name, "decoder.layers.%d.mlp.experts.linear_fc%d.weight%d", l, fc,
                         e);
                out[n].rows = fc == 1 ? 2 * WIDTH / TP : HIDDEN;
                out[n].cols = fc == 1 ? HIDDEN : WIDTH / TP;
                out[n].seed = SYNTHETIC_SEED + ((uint64_t)l << 40) + ((uint64_t)(ep * LOCAL + e) << 20) +
                              ((uint64_t)fc << 8) + (uint64_t)tp;
            }
    }
    const char *const model[] = {"embedding.word_embeddings.weight", "decoder.final_layernorm.weight",
                                 "output_layer.weight"};
    for (int i = 0; i < 3; i++, n++) {
        snprintf(out[n].name, sizeof out[n].name, "%s", model[i]);
        out[n].rows = i == 1 ? HIDDEN : PADDED_VOCAB / TP;
        out[n].cols = i == 1 ? 0 : HIDDEN;
        out[n].seed = SYNTHETIC_SEED + ((uint64_t)1 << 60) + (uint64_t)i + (i == 1 ? 0 : (uint64_t)(tp + 1) << 32);
    }
    return n;
}

static void write_rank(const char *dir, int layers, int tp, int ep, struct part *parts, uint16_t *row)
{
    size_t n = rank_parts(parts, layers, tp, ep);
    struct pickle p = {0};
    pk_op(&p, (char)0x80);
    pk_op(&p, 2);
    pk_op(&p, '}');
    pk_op(&p, '(');
    put_args(&p, layers);
    pk_str(&p, "checkpoint_version");
    pk_float(&p, 3.0);
    pk_str(&p, "iteration");
    pk_int(&p, 1);
    pk_str(&p, "model");
    pk_op(&p, '}');
    pk_op(&p, '(');
    for (size_t i = 0; i < n; i++) {
        uint64_t shape[2] = {parts[i].rows, parts[i].cols};
        pk_str(&p, parts[i].name);
        pk_tensor(&p, (unsigned)i, shape, parts[i].cols ? 2 : 1);
    }
    pk_op(&p, 'u');
    pk_op(&p, 'u');
    pk_op(&p, '.');
    char path[4096];
    snprintf(path, sizeof path, "%s/iter_0000001/mp_rank_%02d_%03d", dir, tp, ep);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/iter_0000001/mp_rank_%02d_%03d/model_optim_rng.pt", dir, tp, ep);
    struct zip_out *z = malloc(sizeof *z);
    zo_open(z, path, &p);
    for (size_t i = 0; i < n; i++) {
        char name[32];
        uint64_t seed = parts[i].seed, rows = parts[i].cols ? parts[i].rows : 1;
        uint64_t cols = parts[i].cols ? parts[i].cols : parts[i].rows;
        snprintf(name, sizeof name, "archive/data/%zu", i);
        zo_begin(z, name);
        for (uint64_t r = 0; r < rows; r++) {
            synthetic_row(row, cols, &seed);
            zo_data(z, row, cols * 2);
        }
        zo_end(z);
    }
    zo_close(z);
    free(z);
    free(p.bytes);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: gen_moe DIR MIB\n");
        return 2;
    }
    const char *dir = argv[1];
    uint64_t total = strtoull(argv[2], NULL, 10) << 20;
    uint64_t qkv = (HEADS + 2 * GROUPS) * HEAD_DIM;
    uint64_t layer = 2 * ((qkv + HEADS * HEAD_DIM + EXPERTS) * HIDDEN + (uint64_t)EXPERTS * 3 * WIDTH * HIDDEN);
    uint64_t model = 2 * 2 * (uint64_t)PADDED_VOCAB * HIDDEN;
    int layers = total > model + layer ? (int)((total - model) / layer) : 1;
    if (megatron_folder(dir))
        return 1;
    struct part *parts = calloc((size_t)layers * (7 + 2 * LOCAL) + 3, sizeof *parts);
    uint16_t *row = malloc((size_t)PADDED_VOCAB * 2);
    for (int ep = 0; ep < EP; ep++)
        for (int tp = 0; tp < TP; tp++)
            write_rank(dir, layers, tp, ep, parts, row);
    printf("%d layers, %d tensors, largest full tensor %llu bytes\n", layers,
           layers * (7 + 2 * EXPERTS) + 3, (unsigned long long)PADDED_VOCAB * HIDDEN * 2);
    free(parts);
    free(row);
    return 0;
}
