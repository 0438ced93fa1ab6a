/*
 * gen_checkpoint.c: writes a synthetic bf16 checkpoint for benchmarks.
 *
 *   gen_checkpoint DIR MIB SHARDS [ROWS COLS]
 *
 * DIR gets SHARDS safetensors shards with an index, holding ROWSxCOLS bf16
 * matmul weights (default 4096x4096, 32 MiB each) named like a Llama model's,
 * plus a norm vector per layer, until about MIB mebibytes are written.  Data
 * is pseudo-random but finite (no NaN or infinity), so casts do real work.
 */
#include "ckpt.h"
#include "synthetic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 6) {
        fprintf(stderr, "usage: gen_checkpoint DIR MIB SHARDS [ROWS COLS]\n");
        return 2;
    }
    const char *dir = argv[1];
    uint64_t total = strtoull(argv[2], NULL, 10) << 20;
    int shards = atoi(argv[3]);
    uint64_t rows = argc == 6 ? strtoull(argv[4], NULL, 10) : 4096, cols = argc == 6 ? strtoull(argv[5], NULL, 10) : 4096;
    uint64_t matrix_bytes = rows * cols * 2;
    size_t matrices = (size_t)(total / matrix_bytes), per_shard = (matrices + (size_t)shards - 1) / (size_t)shards;
    mkdir(dir, 0755);
    uint16_t *row = malloc(cols * 2);
    uint64_t seed = SYNTHETIC_SEED;
    char index_path[4096];
    snprintf(index_path, sizeof index_path, "%s/model.safetensors.index.json", dir);
    FILE *index = fopen(index_path, "w");
    fprintf(index, "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {");
    size_t m = 0;
    for (int s = 0; s < shards; s++) {
        size_t count = matrices - m < per_shard ? matrices - m : per_shard;
        ckpt_tensor *plan = calloc(2 * count, sizeof *plan);
        char (*names)[96] = calloc(2 * count, sizeof *names);
        uint64_t norm_shape = cols, shape[2] = {rows, cols};
        for (size_t i = 0; i < count; i++) {
            snprintf(names[2 * i], 96, "model.layers.%zu.mlp.down_proj.weight", m + i);
            snprintf(names[2 * i + 1], 96, "model.layers.%zu.input_layernorm.weight", m + i);
            plan[2 * i] = (ckpt_tensor){names[2 * i], CKPT_DTYPE_BF16, 2, shape, 0, 0, NULL};
            plan[2 * i + 1] = (ckpt_tensor){names[2 * i + 1], CKPT_DTYPE_BF16, 1, &norm_shape, 0, 0, NULL};
        }
        char path[4096], file[64];
        snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", s + 1, shards);
        snprintf(path, sizeof path, "%s/%s", dir, file);
        ckpt_writer *w;
        ckpt_error err;
        if (ckpt_writer_open(&w, path, plan, 2 * count, NULL, 0, &err) != CKPT_OK) {
            fprintf(stderr, "%s\n", err.message);
            return 1;
        }
        for (size_t i = 0; i < count; i++) {
            for (uint64_t r = 0; r < rows + 1; r++) {   /* the matrix, then its norm vector */
                synthetic_row(row, cols, &seed);
                ckpt_writer_write(w, row, cols * 2, &err);
            }
            fprintf(index, "%s\"%s\": \"%s\", \"%s\": \"%s\"", m + i ? ", " : "", names[2 * i], file,
                    names[2 * i + 1], file);
        }
        if (ckpt_writer_finish(w, &err) != CKPT_OK) {
            fprintf(stderr, "%s\n", err.message);
            return 1;
        }
        ckpt_writer_free(w);
        m += count;
        free(plan);
        free(names);
    }
    fprintf(index, "}}\n");
    fclose(index);
    free(row);
    return 0;
}
