/* fuzz_torch.h: the fuzz input as the one file of a source, loaded by one torch.save reader. */
#ifndef CKPT_FUZZ_TORCH_H
#define CKPT_FUZZ_TORCH_H

#include "fuzz_file.h"
#include "formats/torch/torch.h"
#include "libckpt/catalog/source.h"

typedef int (*fuzz_torch_load_fn)(struct ckpt_source *src, uint32_t file, ckpt_error *err);

/* Loads the input with `load` (pickle memory capped at 64 MiB), then reads every tensor. */
static inline void fuzz_torch_reader(const uint8_t *data, size_t size, fuzz_torch_load_fn load)
{
    char path[64];
    int fd = fuzz_memfile(data, size, path, sizeof path);
    if (fd < 0)
        return;
    ckpt_limits limits;
    ckpt_limits_default(&limits);
    limits.max_pickle_bytes = 64u << 20;
    struct ckpt_source *src = source_new(path, &limits);
    uint32_t file;
    if (src && source_add_file(src, path, &file, NULL) == CKPT_OK && load(src, file, NULL) == CKPT_OK)
        fuzz_read_tensors(src);
    ckpt_source_free(src);
    close(fd);
}

#endif
