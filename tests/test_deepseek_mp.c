/*
 * test_deepseek_mp.c: DeepSeek-V3's own inference shards (testdata/moe/make_hf_sources.py:
 * the tiny DeepSeek-V3-like model's fp8 release through DeepSeek's inference/convert.py with
 * --model-parallel 2).  The merge is checked against the original by test_moe_sources.c; here,
 * how it is presented and what is refused.
 */
#include "helpers.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define COUNT(a) (sizeof a / sizeof a[0])

/* Cut tensors whole again, routed experts from the file of their range, names DeepSeek's. */
START_TEST(merged_under_deepseek_names)
{
    static const struct {
        const char *name, *file;
        uint64_t shape[2];
    } want[] = {
        {"embed.weight", "model0-mp2.safetensors", {100, 48}},              /* dim 0, 50 rows each */
        {"layers.0.attn.wo.weight", "model0-mp2.safetensors", {48, 32}},    /* dim 1 */
        {"layers.0.attn.wo.scale", "model0-mp2.safetensors", {12, 8}},      /* in whole 4 x 4 blocks */
        {"layers.0.attn.wkv_a.weight", "model0-mp2.safetensors", {16, 48}}, /* copied into both */
        {"layers.3.ffn.experts.6.w2.weight", "model1-mp2.safetensors", {48, 20}},
        {"layers.3.ffn.shared_experts.w1.weight", "model0-mp2.safetensors", {40, 48}},
    };
    char *path = test_testdata("moe/deepseek_v3_mp");
    ckpt_source *src = test_open(path);
    ck_assert_str_eq(ckpt_source_format(src), "deepseek-mp");
    ck_assert_str_eq(ckpt_source_metadata_value(src, "deepseek.model_parallel"), "2");
    ck_assert_str_eq(ckpt_source_metadata_value(src, "deepseek.n_routed_experts"), "8");
    for (size_t i = 0; i < COUNT(want); i++) {
        size_t at;
        ck_assert_msg(ckpt_source_find(src, want[i].name, &at) == CKPT_OK, "no %s", want[i].name);
        const ckpt_tensor *t = ckpt_source_tensor(src, at);
        ck_assert_mem_eq(t->shape, want[i].shape, sizeof want[i].shape);
        ck_assert_msg(strstr(ckpt_source_file_path(src, t->file), want[i].file), "%s: %s", want[i].name,
                      ckpt_source_file_path(src, t->file));
    }
    size_t at;
    ck_assert_int_ne(ckpt_source_find(src, "layers.5.attn_norm.weight", &at), CKPT_OK);   /* MTP: dropped */
    ckpt_source_free(src);
    free(path);
}
END_TEST

START_TEST(damaged_shards_refused)
{
    static const struct {
        const char *damage, *needles[2];
    } cases[] = {
        {"rm model1-mp2.safetensors", {"model1-mp2.safetensors: missing", NULL}},
        {"cp model1-mp2.safetensors model0-mp2.safetensors",
         {"model0-mp2.safetensors: routed expert tensor", "file 0 holds experts [0, 4) of 8"}},
        {"cp model1-mp2.safetensors model2-mp3.safetensors", {"model2-mp3.safetensors: not one of 2", NULL}},
    };
    char *tmp = test_tmpdir(), *good = test_testdata("moe/deepseek_v3_mp");
    for (size_t i = 0; i < COUNT(cases); i++) {
        char cmd[4096], *copy = test_join(tmp, "mp"), *err = NULL;
        snprintf(cmd, sizeof cmd, "cp -r '%s' '%s' && cd '%s' && %s", good, copy, copy, cases[i].damage);
        ck_assert_int_eq(system(cmd), 0);
        ck_assert_int_eq(test_ckpt(NULL, &err, "inspect '%s'", copy), 3);
        for (size_t k = 0; k < 2 && cases[i].needles[k]; k++)
            ck_assert_msg(strstr(err, cases[i].needles[k]), "'%s' not in: %s", cases[i].needles[k], err);
        free(err);
        test_rmtree(copy);
        free(copy);
    }
    test_rmtree(tmp);
    free(good);
    free(tmp);
}
END_TEST

/* A safetensors file of bf16 tensors whose data is a hole (zeros, no disk): `count` names and shapes. */
static void write_sparse(const char *path, const char *const *names, const uint64_t (*shapes)[2], size_t count)
{
    char header[4096];
    size_t n = 1;
    uint64_t offset = 0;
    header[0] = '{';
    for (size_t i = 0; i < count; i++) {
        uint64_t bytes = shapes[i][0] * shapes[i][1] * 2;
        n += (size_t)snprintf(header + n, sizeof header - n,
                              "%s\"%s\":{\"dtype\":\"BF16\",\"shape\":[%llu,%llu],\"data_offsets\":[%llu,%llu]}",
                              i ? "," : "", names[i], (unsigned long long)shapes[i][0],
                              (unsigned long long)shapes[i][1], (unsigned long long)offset,
                              (unsigned long long)(offset + bytes));
        offset += bytes;
    }
    header[n++] = '}';
    while (n % 8)
        header[n++] = ' ';
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    uint64_t len = n;   /* little-endian on the machines this runs on, as the format wants */
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, &len, 8), 8);
    ck_assert_int_eq(write(fd, header, n), (ssize_t)n);
    ck_assert_int_eq(ftruncate(fd, (off_t)(8 + n + offset)), 0);
    close(fd);
}

/*
 * Converting mp=2 shards of 128 MiB, whose largest merged tensor (the embedding, cut on dim 0)
 * is 64 MiB, peaks below that tensor's size: nothing is merged in memory, each output streams
 * from the parts (the peak RSS of ckpt, the largest child this test waits for).
 */
START_TEST(memory_bounded_by_the_largest_merged_tensor)
{
    const uint64_t half_rows = 8192, hidden = 2048, largest = 2 * half_rows * hidden * 2;
    char *tmp = test_tmpdir(), *src = test_join(tmp, "mp"), *out = test_join(tmp, "out");
    ck_assert_int_eq(mkdir(src, 0755), 0);
    for (int i = 0; i < 2; i++) {
        char e0[64], e1[64], path[4096];
        snprintf(e0, sizeof e0, "layers.0.ffn.experts.%d.w1.weight", 2 * i);
        snprintf(e1, sizeof e1, "layers.0.ffn.experts.%d.w1.weight", 2 * i + 1);
        const char *const names[] = {"embed.weight", "norm.weight", "layers.0.ffn.gate.weight", e0, e1};
        const uint64_t shapes[][2] = {{half_rows, hidden}, {1, hidden}, {4, hidden}, {4096, hidden}, {4096, hidden}};
        snprintf(path, sizeof path, "%s/model%d-mp2.safetensors", src, i);
        write_sparse(path, names, shapes, COUNT(names));
    }
    char *err = NULL;
    ck_assert_msg(test_ckpt(NULL, &err, "convert '%s' '%s' --quiet --target ascend-910b --rename hf", src, out) == 0,
                  "%s", err);
    free(err);
    struct rusage ru;
    ck_assert_int_eq(getrusage(RUSAGE_CHILDREN, &ru), 0);
    const char *sanitized = getenv("SANITIZE");   /* AddressSanitizer's shadow memory is no measure of ckpt's */
    ck_assert_msg((sanitized && strcmp(sanitized, "1") == 0) || (uint64_t)ru.ru_maxrss * 1024 < largest,
                  "peak RSS %ld KiB, the largest merged tensor %llu KiB", ru.ru_maxrss,
                  (unsigned long long)(largest / 1024));
    test_rmtree(tmp);
    free(out);
    free(src);
    free(tmp);
}
END_TEST

/* Folders no convert.py writes, made as sparse files: each refused naming the file and the tensor. */
START_TEST(inconsistent_shards_refused)
{
    static const struct {
        const char *names[2][3];
        uint64_t shapes[2][3][2];
        const char *needles[2];
    } cases[] = {
        {{{"embed.weight", NULL}, {"embed.weight", NULL}}, {{{50, 8}}, {{49, 8}}},
         {"model1-mp2.safetensors: tensor embed.weight is not of the type and shape", NULL}},
        {{{"norm.weight", NULL}, {"norm.weight", "layers.0.attn.wo.weight"}}, {{{1, 8}}, {{1, 8}, {8, 4}}},
         {"model1-mp2.safetensors: tensor layers.0.attn.wo.weight, which", "does not hold"}},
        {{{"layers.1.ffn.gate.weight", "layers.1.ffn.experts.0.w1.weight"},
          {"layers.1.ffn.gate.weight", "layers.1.ffn.experts.2.w1.weight"}},
         {{{4, 8}, {2, 8}}, {{4, 8}, {2, 8}}}, {"no tensor layers.1.ffn.experts.1.w1.weight", "expert 1 of 4"}},
        {{{"layers.1.ffn.gate.weight", "layers.1.ffn.experts.3.w1.weight"}, {"layers.1.ffn.gate.weight", NULL}},
         {{{4, 8}, {2, 8}}, {{4, 8}}}, {"model0-mp2.safetensors: routed expert tensor", "experts [0, 2) of 4"}},
    };
    char *tmp = test_tmpdir();
    for (size_t c = 0; c < COUNT(cases); c++) {
        char *dir = test_join(tmp, "mp"), *err = NULL;
        ck_assert_int_eq(mkdir(dir, 0755), 0);
        for (int i = 0; i < 2; i++) {
            char path[4096];
            size_t n = 0;
            while (n < 3 && cases[c].names[i][n])
                n++;
            snprintf(path, sizeof path, "%s/model%d-mp2.safetensors", dir, i);
            write_sparse(path, cases[c].names[i], cases[c].shapes[i], n);
        }
        ck_assert_int_eq(test_ckpt(NULL, &err, "inspect '%s'", dir), 3);
        for (size_t k = 0; k < 2 && cases[c].needles[k]; k++)
            ck_assert_msg(strstr(err, cases[c].needles[k]), "'%s' not in: %s", cases[c].needles[k], err);
        free(err);
        test_rmtree(dir);
        free(dir);
    }
    test_rmtree(tmp);
    free(tmp);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("deepseek_mp");
    TCase *tc = tcase_create("deepseek_mp");
    tcase_add_test(tc, merged_under_deepseek_names);
    tcase_add_test(tc, damaged_shards_refused);
    tcase_add_test(tc, memory_bounded_by_the_largest_merged_tensor);
    tcase_add_test(tc, inconsistent_shards_refused);
    suite_add_tcase(s, tc);
    return test_main(s);
}
