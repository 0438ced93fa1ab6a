/*
 * fuzz_bundle.c: any bytes as a bundle's index file: opened as a source (every
 * tensor read through its frames), walked as a bundle whose table is lost,
 * every frame decompressed and checked, and verified as `ckpt verify` does.
 * The checksums of the header, the plan and the table are made to match
 * first, so that mutations reach the parsers behind them.
 */
#include "formats/bundle/bundle.h"
#include "fuzz_file.h"
#include "libckpt/common/checked.h"

#include <string.h>
#include <xxhash.h>

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Rewrites the set id (the plan's XXH3-64), the header's and the table's checksums where they are found. */
static void fix_checksums(uint8_t *d, size_t size)
{
    if (size < BUNDLE_HEADER_BYTES + BUNDLE_FOOTER_BYTES || memcmp(d, BUNDLE_MAGIC, BUNDLE_MAGIC_BYTES) != 0)
        return;
    uint64_t plan = ckpt_load_le64(d + 40);
    if (plan <= size - BUNDLE_HEADER_BYTES)
        put64(d + 16, XXH3_64bits(d + BUNDLE_HEADER_BYTES, (size_t)plan));
    put64(d + 56, XXH3_64bits(d, 56));
    uint8_t *foot = d + size - BUNDLE_FOOTER_BYTES;
    uint64_t offset = ckpt_load_le64(foot), bytes = ckpt_load_le64(foot + 8);
    if (offset <= size && bytes <= size - offset)
        put64(foot + 16, XXH3_64bits(d + offset, (size_t)bytes));
}

/* Decompresses every frame (the first thousand) through one cursor. */
static void decode_all(struct bundle *b)
{
    const struct bundle_index *ix = bundle_index_of(b);
    struct bundle_cursor *c;
    uint8_t *buf = malloc((size_t)ix->frame_bytes);
    if (buf && bundle_cursor_take(b, &c, NULL) == CKPT_OK) {
        for (size_t i = 0; i < ix->frame_count && i < 1000; i++)
            bundle_decode_frame(b, c, i, buf, NULL);
        bundle_cursor_give(b, c);
    }
    free(buf);
    bundle_close(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    fix_checksums(copy, size);
    char path[64];
    int fd = fuzz_memfile(copy, size, path, sizeof path);
    free(copy);
    if (fd < 0)
        return 0;
    ckpt_open_options opts;
    ckpt_open_options_default(&opts);
    opts.limits.max_header_bytes = 1 << 20;
    opts.limits.max_bundle_header_bytes = 8 << 20;
    opts.limits.max_pickle_bytes = 8 << 20;
    ckpt_source *src;
    if (ckpt_source_open_ext(&src, path, &opts, NULL) == CKPT_OK) {
        fuzz_read_tensors(src);
        ckpt_source_free(src);
    }
    struct bundle *b;
    if (bundle_open(path, &opts.limits, &b, NULL) == CKPT_OK)
        decode_all(b);
    if (bundle_open_lost_table(path, &opts.limits, &b, NULL) == CKPT_OK)
        decode_all(b);
    ckpt_verify_options vopts;
    ckpt_verify_options_default(&vopts);
    vopts.open = &opts;
    vopts.jobs = 1;
    ckpt_verify(path, &vopts, NULL, NULL, NULL, NULL);
    close(fd);
    return 0;
}
