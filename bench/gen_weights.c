/*
 * gen_weights.c: writes a checkpoint of bell-curve weights for the bundle benchmark.
 *
 *   gen_weights DIR MIB SHARDS bf16|f32|widened
 *
 * DIR gets SHARDS safetensors shards holding 4096x4096 matrices (and a norm
 * vector per matrix) of normally distributed values, standard deviation
 * 0.02, the shape of trained transformer weights: what compresses as real
 * checkpoints do, where uniform random bytes would not compress at all and
 * bench/synthetic.h's values (8 exponents in turn) far too well.  bf16 and
 * f32 hold the values rounded to their type; widened is f32 holding bf16
 * values (low 16 bits zero), as a bf16 model saved in fp32.
 */
#include "ckpt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SIDE 4096

static uint64_t state = 0x2545F4914F6CDD1Dull;

static double uniform(void)
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return ((double)(state >> 11) + 0.5) / 9007199254740992.0;
}

static float weight(void)
{
    return (float)(0.02 * sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform()));
}

static uint16_t bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

/* One row of `n` values of the given kind into `out`. */
static void fill(uint8_t *out, size_t n, int kind)
{
    for (size_t i = 0; i < n; i++) {
        float w = weight();
        if (kind == 0) {
            uint16_t b = bf16(w);
            memcpy(out + 2 * i, &b, 2);
        } else {
            uint32_t v;
            if (kind == 2)
                v = (uint32_t)bf16(w) << 16;
            else
                memcpy(&v, &w, 4);
            memcpy(out + 4 * i, &v, 4);
        }
    }
}

int main(int argc, char **argv)
{
    int kind = argc == 5 ? (strcmp(argv[4], "bf16") == 0 ? 0 : strcmp(argv[4], "f32") == 0 ? 1
                                                          : strcmp(argv[4], "widened") == 0 ? 2 : -1)
                         : -1;
    if (kind < 0) {
        fprintf(stderr, "usage: gen_weights DIR MIB SHARDS bf16|f32|widened\n");
        return 2;
    }
    const char *dir = argv[1];
    size_t esize = kind == 0 ? 2 : 4;
    uint64_t matrix = (uint64_t)SIDE * SIDE * esize;
    size_t matrices = (size_t)((strtoull(argv[2], NULL, 10) << 20) / matrix), shards = (size_t)atoi(argv[3]);
    if (!matrices || !shards) {
        fprintf(stderr, "gen_weights: nothing to write\n");
        return 2;
    }
    mkdir(dir, 0755);
    ckpt_dtype dtype = kind == 0 ? CKPT_DTYPE_BF16 : CKPT_DTYPE_F32;
    uint8_t *row = malloc(SIDE * esize);
    size_t done = 0, per = (matrices + shards - 1) / shards;
    for (size_t s = 0; s < shards && done < matrices; s++) {
        size_t count = matrices - done < per ? matrices - done : per;
        ckpt_tensor *plan = calloc(2 * count, sizeof *plan);
        char (*names)[64] = calloc(2 * count, sizeof *names);
        uint64_t shape[2] = {SIDE, SIDE}, norm = SIDE;
        for (size_t i = 0; i < count; i++) {
            snprintf(names[2 * i], 64, "model.layers.%zu.mlp.down_proj.weight", done + i);
            snprintf(names[2 * i + 1], 64, "model.layers.%zu.input_layernorm.weight", done + i);
            plan[2 * i] = (ckpt_tensor){names[2 * i], dtype, 2, shape, 0, 0, NULL};
            plan[2 * i + 1] = (ckpt_tensor){names[2 * i + 1], dtype, 1, &norm, 0, 0, NULL};
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/model-%05zu-of-%05zu.safetensors", dir, s + 1, shards);
        ckpt_writer *w;
        ckpt_error err;
        if (ckpt_writer_open(&w, path, plan, 2 * count, NULL, 0, &err) != CKPT_OK) {
            fprintf(stderr, "gen_weights: %s\n", err.message);
            return 1;
        }
        for (size_t i = 0; i < count; i++) {
            for (int r = 0; r < SIDE; r++) {
                fill(row, SIDE, kind);
                ckpt_writer_write(w, row, SIDE * esize, &err);
            }
            fill(row, SIDE, kind);
            ckpt_writer_write(w, row, SIDE * esize, &err);
        }
        if (ckpt_writer_finish(w, &err) != CKPT_OK) {
            fprintf(stderr, "gen_weights: %s\n", err.message);
            return 1;
        }
        ckpt_writer_free(w);
        free(plan);
        free(names);
        done += count;
    }
    free(row);
    return 0;
}
