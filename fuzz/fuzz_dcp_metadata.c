/*
 * fuzz_dcp_metadata.c: any bytes as a DCP `.metadata` pickle, through the
 * record parser; every record it accepts is walked, so that a chunk or path
 * it vouches for is touched.
 */
#include "formats/dcp/dcp.h"

#include <string.h>

static size_t text_len(const char *s)
{
    return s ? strlen(s) : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ckpt_limits limits;
    ckpt_limits_default(&limits);
    limits.max_pickle_bytes = 64u << 20;
    struct dcp_metadata md;
    if (dcp_metadata_parse(&md, data, size, "fuzz/.metadata", &limits, NULL) != CKPT_OK)
        return 0;
    size_t sink = 0;
    for (size_t i = 0; i < md.count; i++) {
        const struct dcp_entry *e = &md.entries[i];
        sink += text_len(e->name);
        if (!e->is_tensor) {
            sink += text_len(e->bytes.path);
            continue;
        }
        for (uint32_t d = 0; d < e->rank; d++)
            sink += e->shape[d];
        for (size_t c = 0; c < e->chunk_count; c++) {
            sink += text_len(e->chunks[c].storage.path);
            for (uint32_t d = 0; d < e->rank; d++)
                sink += e->chunks[c].offsets[d] + e->chunks[c].sizes[d];
        }
    }
    volatile size_t keep = sink;   /* the loads above must happen */
    (void)keep;
    dcp_metadata_free(&md);
    return 0;
}
