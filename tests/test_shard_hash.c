/*
 * test_shard_hash.c: a shard's checksum taken from its pieces as they are
 * written (libckpt/sink/shard_hash.c) must be XXH3-128 of the file as it
 * ends up on disk, computed here by libxxhash in one call over the whole
 * file, whatever order the pieces come in and whatever no piece covers.
 */
#include "helpers.h"

#include "libckpt/sink/shard_hash.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { SIZE = 300000, PIECES = 40 };

static uint64_t next_random(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Writes `bytes` into a fresh file in PIECES pieces, in a shuffled order, skipping piece `gap` (if < PIECES). */
static void check_order(uint64_t seed, size_t gap)
{
    char *dir = test_tmpdir(), *path = test_join(dir, "shard");
    uint8_t *bytes = malloc(SIZE);
    for (size_t i = 0; i < SIZE; i++)
        bytes[i] = (uint8_t)next_random(&seed);
    size_t cut[PIECES + 1], order[PIECES];
    for (size_t k = 0; k <= PIECES; k++)
        cut[k] = k * (SIZE / PIECES);
    cut[PIECES] = SIZE;
    for (size_t k = 0; k < PIECES; k++)
        order[k] = k;
    for (size_t k = PIECES - 1; k > 0; k--) {   /* a shuffle, with runs left in order now and then */
        size_t j = (size_t)(next_random(&seed) % (k + 1));
        if (next_random(&seed) % 3) {
            size_t t = order[k];
            order[k] = order[j];
            order[j] = t;
        }
    }
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, SIZE), 0);   /* a skipped piece reads back as zeros, as a hole would */
    if (gap < PIECES)
        memset(bytes + cut[gap], 0, cut[gap + 1] - cut[gap]);
    struct shard_hash h;
    ckpt_error err;
    ck_assert_int_eq(shard_hash_init(&h, &err), CKPT_OK);
    for (size_t k = 0; k < PIECES; k++) {
        size_t p = order[k];
        if (p == gap)
            continue;
        size_t len = cut[p + 1] - cut[p];
        ck_assert_int_eq(pwrite(fd, bytes + cut[p], len, (off_t)cut[p]), (ssize_t)len);
        ck_assert_int_eq(shard_hash_written(&h, fd, bytes + cut[p], len, cut[p], "shard", &err), CKPT_OK);
    }
    XXH128_hash_t got, want = XXH3_128bits(bytes, SIZE);
    ck_assert_int_eq(shard_hash_finish(&h, fd, SIZE, "shard", &got, &err), CKPT_OK);
    ck_assert_msg(XXH128_isEqual(got, want), "seed %llu, gap %zu", (unsigned long long)seed, gap);
    shard_hash_free(&h);
    close(fd);
    test_rmtree(dir);
    free(path);
    free(dir);
    free(bytes);
}

START_TEST(any_order_gives_the_file_hash)
{
    for (uint64_t seed = 1; seed <= 20; seed++)
        check_order(seed * 0x9e3779b97f4a7c15ull, PIECES);
}
END_TEST

START_TEST(bytes_no_piece_wrote_are_read_back)
{
    for (size_t gap = 0; gap < PIECES; gap += 7)
        check_order(gap + 77, gap);
}
END_TEST

static Suite *shard_hash_suite(void)
{
    Suite *s = suite_create("shard_hash");
    TCase *tc = tcase_create("shard_hash");
    tcase_add_test(tc, any_order_gives_the_file_hash);
    tcase_add_test(tc, bytes_no_piece_wrote_are_read_back);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_main(shard_hash_suite());
}
