/*
 * fuzz_pickle.c: any bytes as a pickle: the pickle machine, then the torch
 * state walker on its tree, with every storage placed in one 4 KiB buffer.
 */
#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"
#include "fuzz_file.h"
#include "formats/torch/pickle.h"
#include "formats/torch/torch_state.h"
#include "libckpt/catalog/source.h"

#define STORAGE_BYTES 4096

static int locate(void *ctx, const struct torch_storage_ref *ref, ckpt_dtype dtype, struct tensor_view *view,
                  ckpt_error *err)
{
    (void)ctx;
    uint64_t bytes;
    if (!ckpt_mul_u64(ref->numel, ref->dtype == CKPT_DTYPE_INVALID ? 1 : ckpt_dtype_size(dtype), &bytes) ||
        bytes > STORAGE_BYTES)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "fuzz: storage %s too large", ref->key);
    view->file = 0;
    view->storage_offset = 0;
    view->storage_bytes = bytes;
    return CKPT_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pickle p;
    if (pickle_load(&p, data, size, "fuzz", 64u << 20, NULL) != CKPT_OK)
        return 0;
    struct ckpt_source *src = source_new("fuzz", NULL);
    uint8_t *storage = calloc(1, STORAGE_BYTES);
    uint32_t file;
    /* source_add_buffer owns the storage from the call on, even when it fails */
    if (src && storage && source_add_buffer(src, "fuzz-storage", storage, STORAGE_BYTES, &file, NULL) == CKPT_OK &&
        torch_state_declare(src, p.root, "fuzz", locate, NULL, NULL) == CKPT_OK)
        fuzz_read_tensors(src);
    else if (!src)
        free(storage);
    ckpt_source_free(src);
    pickle_free(&p);
    return 0;
}
