/* fuzz_safetensors.c: any bytes as a safetensors file: open, list, read every tensor. */
#include "ckpt.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_memfile(data, size, path, sizeof path);
    if (fd < 0)
        return 0;
    ckpt_source *src;
    ckpt_limits limits;
    ckpt_limits_default(&limits);
    limits.max_header_bytes = 1 << 20;
    if (ckpt_source_open(&src, path, &limits, NULL) == CKPT_OK) {
        fuzz_read_tensors(src);
        ckpt_source_free(src);
    }
    close(fd);
    return 0;
}
