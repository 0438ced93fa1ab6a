/*
 * gen_torch.c: writes synthetic torch.save checkpoints for benchmarks.
 *
 *   gen_torch bin DIR MIB SHARDS
 *       The checkpoint gen_checkpoint writes (same names, shapes and bytes:
 *       synthetic.h), as torch.save .bin shards with a
 *       pytorch_model.bin.index.json.
 *   gen_torch megatron DIR MIB TP
 *       A Megatron-LM legacy layout (latest_checkpointed_iteration.txt,
 *       iter_0000001/mp_rank_0R/model_optim_rng.pt) of a Llama-like GQA
 *       SwiGLU model split over TP tensor-parallel ranks, about MIB mebibytes.
 *       Prints the model's largest full (merged) tensor in bytes.
 */
#include "synthetic.h"
#include "torch_save.h"

#include <sys/stat.h>

/* Streams `rows` synthetic rows of `cols` bf16 values as the next data entry. */
static void write_rows(struct zip_out *z, unsigned key, uint64_t rows, uint64_t cols, uint64_t *seed, uint16_t *row)
{
    char name[32];
    snprintf(name, sizeof name, "archive/data/%u", key);
    zo_begin(z, name);
    for (uint64_t r = 0; r < rows; r++) {
        synthetic_row(row, cols, seed);
        zo_data(z, row, cols * 2);
    }
    zo_end(z);
}

static int gen_bin(const char *dir, uint64_t total, int shards)
{
    const uint64_t rows = 4096, cols = 4096;   /* as gen_checkpoint's defaults */
    size_t matrices = (size_t)(total / (rows * cols * 2)), per_shard = (matrices + (size_t)shards - 1) / (size_t)shards;
    mkdir(dir, 0755);
    uint16_t *row = malloc(cols * 2);
    uint64_t seed = SYNTHETIC_SEED;
    char path[4096];
    snprintf(path, sizeof path, "%s/pytorch_model.bin.index.json", dir);
    FILE *index = fopen(path, "w");
    if (!row || !index)
        return 1;
    fprintf(index, "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {");
    size_t m = 0;
    for (int s = 0; s < shards; s++) {
        size_t count = matrices - m < per_shard ? matrices - m : per_shard;
        char file[64], name[96];
        snprintf(file, sizeof file, "pytorch_model-%05d-of-%05d.bin", s + 1, shards);
        struct pickle p = {0};
        pk_op(&p, (char)0x80);
        pk_op(&p, 2);
        pk_op(&p, '}');
        pk_op(&p, '(');
        for (size_t i = 0; i < count; i++) {
            uint64_t shape[2] = {rows, cols};
            snprintf(name, sizeof name, "model.layers.%zu.mlp.down_proj.weight", m + i);
            pk_str(&p, name);
            pk_tensor(&p, (unsigned)(2 * i), shape, 2);
            fprintf(index, "%s\"%s\": \"%s\"", m + i ? ", " : "", name, file);
            snprintf(name, sizeof name, "model.layers.%zu.input_layernorm.weight", m + i);
            pk_str(&p, name);
            pk_tensor(&p, (unsigned)(2 * i + 1), &shape[1], 1);
            fprintf(index, ", \"%s\": \"%s\"", name, file);
        }
        pk_op(&p, 'u');
        pk_op(&p, '.');
        struct zip_out *z = malloc(sizeof *z);
        snprintf(path, sizeof path, "%s/%s", dir, file);
        zo_open(z, path, &p);
        for (size_t i = 0; i < count; i++) {
            write_rows(z, (unsigned)(2 * i), rows, cols, &seed, row);   /* the matrix, then its norm vector */
            write_rows(z, (unsigned)(2 * i + 1), 1, cols, &seed, row);
        }
        zo_close(z);
        free(z);
        free(p.bytes);
        m += count;
    }
    fprintf(index, "}}\n");
    fclose(index);
    free(row);
    return 0;
}

/* A Llama-like model: hidden 2048, 16 heads of 128 in 4 query groups, SwiGLU 5632, vocabulary 16000 padded to 16384. */
enum { HIDDEN = 2048, HEADS = 16, GROUPS = 4, HEAD_DIM = 128, FFN = 5632, VOCAB = 16000, PADDED_VOCAB = 16384 };

struct mtensor {
    const char *suffix;   /* after "decoder.layers.N." (layer tensors) or the whole name */
    uint64_t rows, cols;  /* full shape; cols 0: a vector of `rows` */
    int split;            /* 0 column-parallel (dim 0), 1 row-parallel (dim 1), -1 replicated */
};

static const struct mtensor layer_tensors[] = {
    {"self_attention.linear_qkv.layer_norm_weight", HIDDEN, 0, -1},
    {"self_attention.linear_qkv.weight", (HEADS + 2 * GROUPS) * HEAD_DIM, HIDDEN, 0},
    {"self_attention.linear_proj.weight", HIDDEN, HEADS * HEAD_DIM, 1},
    {"mlp.linear_fc1.layer_norm_weight", HIDDEN, 0, -1},
    {"mlp.linear_fc1.weight", 2 * FFN, HIDDEN, 0},
    {"mlp.linear_fc2.weight", HIDDEN, FFN, 1},
};
static const struct mtensor model_tensors[] = {
    {"embedding.word_embeddings.weight", PADDED_VOCAB, HIDDEN, 0},
    {"decoder.final_layernorm.weight", HIDDEN, 0, -1},
    {"output_layer.weight", PADDED_VOCAB, HIDDEN, 0},
};

static void put_args(struct pickle *p, int layers, int tp)
{
    pk_args_begin(p);
    pk_arg_int(p, "num_layers", (uint64_t)layers);
    pk_arg_int(p, "hidden_size", HIDDEN);
    pk_arg_int(p, "ffn_hidden_size", FFN);
    pk_arg_int(p, "num_attention_heads", HEADS);
    pk_arg_int(p, "num_query_groups", GROUPS);
    pk_arg_int(p, "kv_channels", HEAD_DIM);
    pk_arg_int(p, "padded_vocab_size", PADDED_VOCAB);
    pk_arg_int(p, "vocab_size", VOCAB);
    pk_arg_int(p, "tensor_model_parallel_size", (uint64_t)tp);
    pk_arg_int(p, "pipeline_model_parallel_size", 1);
    pk_arg_int(p, "max_position_embeddings", 4096);
    pk_str(p, "group_query_attention");
    pk_op(p, (char)0x88);
    pk_str(p, "swiglu");
    pk_op(p, (char)0x88);
    pk_str(p, "norm_epsilon");
    pk_float(p, 1e-5);
    pk_args_end(p);
}

/* Rank `rank`'s part of tensor `t`: its rows and columns. */
static void part_shape(const struct mtensor *t, int tp, uint64_t *rows, uint64_t *cols)
{
    *rows = t->split == 0 ? t->rows / (uint64_t)tp : t->rows;
    *cols = t->split == 1 ? t->cols / (uint64_t)tp : t->cols;
}

static void add_tensor(struct pickle *p, const char *name, const struct mtensor *t, int tp, unsigned key)
{
    uint64_t shape[2];
    part_shape(t, tp, &shape[0], &shape[1]);
    pk_str(p, name);
    pk_tensor(p, key, shape, t->cols ? 2 : 1);
}

static int gen_megatron(const char *dir, uint64_t total, int tp)
{
    uint64_t layer_bytes = 0, model_bytes = 0, largest = 0;
    for (size_t i = 0; i < sizeof layer_tensors / sizeof layer_tensors[0]; i++)
        layer_bytes += layer_tensors[i].rows * (layer_tensors[i].cols ? layer_tensors[i].cols : 1) * 2;
    for (size_t i = 0; i < sizeof model_tensors / sizeof model_tensors[0]; i++)
        model_bytes += model_tensors[i].rows * (model_tensors[i].cols ? model_tensors[i].cols : 1) * 2;
    for (size_t i = 0; i < sizeof layer_tensors / sizeof layer_tensors[0]; i++)
        if (layer_tensors[i].rows * layer_tensors[i].cols * 2 > largest)
            largest = layer_tensors[i].rows * layer_tensors[i].cols * 2;
    if ((uint64_t)PADDED_VOCAB * HIDDEN * 2 > largest)
        largest = (uint64_t)PADDED_VOCAB * HIDDEN * 2;
    int layers = total > model_bytes + layer_bytes ? (int)((total - model_bytes) / layer_bytes) : 1;
    char path[4096];
    if (megatron_folder(dir))
        return 1;
    uint16_t *row = malloc((size_t)2 * FFN * 2);
    for (int r = 0; r < tp; r++) {
        struct pickle p = {0};
        char name[128];
        unsigned key = 0;
        pk_op(&p, (char)0x80);
        pk_op(&p, 2);
        pk_op(&p, '}');
        pk_op(&p, '(');
        put_args(&p, layers, tp);
        pk_str(&p, "checkpoint_version");
        pk_float(&p, 3.0);
        pk_str(&p, "iteration");
        pk_int(&p, 1);
        pk_str(&p, "model");
        pk_op(&p, '}');
        pk_op(&p, '(');
        for (int l = 0; l < layers; l++)
            for (size_t i = 0; i < sizeof layer_tensors / sizeof layer_tensors[0]; i++) {
                snprintf(name, sizeof name, "decoder.layers.%d.%s", l, layer_tensors[i].suffix);
                add_tensor(&p, name, &layer_tensors[i], tp, key++);
            }
        for (size_t i = 0; i < sizeof model_tensors / sizeof model_tensors[0]; i++)
            add_tensor(&p, model_tensors[i].suffix, &model_tensors[i], tp, key++);
        pk_op(&p, 'u');   /* model's items */
        pk_op(&p, 'u');   /* the top dict's */
        pk_op(&p, '.');
        snprintf(path, sizeof path, "%s/iter_0000001/mp_rank_%02d", dir, r);
        mkdir(path, 0755);
        snprintf(path, sizeof path, "%s/iter_0000001/mp_rank_%02d/model_optim_rng.pt", dir, r);
        struct zip_out *z = malloc(sizeof *z);
        zo_open(z, path, &p);
        key = 0;
        for (int l = 0; l <= layers; l++) {
            const struct mtensor *set = l < layers ? layer_tensors : model_tensors;
            size_t count = l < layers ? sizeof layer_tensors / sizeof layer_tensors[0]
                                      : sizeof model_tensors / sizeof model_tensors[0];
            for (size_t i = 0; i < count; i++) {
                uint64_t rows, cols;
                part_shape(&set[i], tp, &rows, &cols);
                /* replicated tensors must be equal on every rank: their values depend on the layer only */
                uint64_t seed = SYNTHETIC_SEED + (uint64_t)l * 64 + i + (set[i].split < 0 ? 0 : (uint64_t)(r + 1) << 32);
                write_rows(z, key++, cols ? rows : 1, cols ? cols : rows, &seed, row);
            }
        }
        zo_close(z);
        free(z);
        free(p.bytes);
    }
    free(row);
    printf("%d layers, %d tensors, largest full tensor %llu bytes\n", layers,
           layers * (int)(sizeof layer_tensors / sizeof layer_tensors[0]) +
               (int)(sizeof model_tensors / sizeof model_tensors[0]),
           (unsigned long long)largest);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 5 || (strcmp(argv[1], "bin") != 0 && strcmp(argv[1], "megatron") != 0)) {
        fprintf(stderr, "usage: gen_torch bin DIR MIB SHARDS | gen_torch megatron DIR MIB TP\n");
        return 2;
    }
    uint64_t total = strtoull(argv[3], NULL, 10) << 20;
    int n = atoi(argv[4]);
    if (n < 1 || n > 64) {
        fprintf(stderr, "gen_torch: SHARDS/TP must be 1..64\n");
        return 2;
    }
    return strcmp(argv[1], "bin") == 0 ? gen_bin(argv[2], total, n) : gen_megatron(argv[2], total, n);
}
