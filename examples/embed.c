/*
 * embed.c: the smallest program that links libckpt.  It opens a checkpoint
 * and prints each tensor's name, dtype, shape and first bytes.
 *
 *   cc embed.c $(pkg-config --cflags --libs libckpt) -o embed && ./embed CHECKPOINT
 */
#include <ckpt.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CHECKPOINT\n", argv[0]);
        return 2;
    }
    ckpt_source *src;
    ckpt_error err;
    if (ckpt_source_open(&src, argv[1], NULL, &err) != CKPT_OK) {
        fprintf(stderr, "embed: %s\n", err.message);
        return 3;
    }
    printf("%s: %s, %zu tensors (libckpt %s)\n", argv[1], ckpt_source_format(src), ckpt_source_tensor_count(src),
           ckpt_version());
    for (size_t i = 0; i < ckpt_source_tensor_count(src); i++) {
        const ckpt_tensor *t = ckpt_source_tensor(src, i);
        unsigned char first[4] = {0};
        uint64_t row_bytes = ckpt_tensor_row_bytes(t);
        unsigned char *row = malloc(row_bytes ? row_bytes : 1);
        if (row && row_bytes && ckpt_source_read(src, i, 0, 1, row, row_bytes, &err) == CKPT_OK)
            for (int k = 0; k < 4 && (uint64_t)k < row_bytes; k++)
                first[k] = row[k];
        free(row);
        printf("%s %s [", t->name, ckpt_dtype_name(t->dtype));
        for (uint32_t d = 0; d < t->rank; d++)
            printf("%s%llu", d ? ", " : "", (unsigned long long)t->shape[d]);
        printf("] %02x%02x%02x%02x\n", first[0], first[1], first[2], first[3]);
    }
    ckpt_source_free(src);
    return 0;
}
