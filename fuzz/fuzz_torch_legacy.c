/* fuzz_torch_legacy.c: any bytes as a legacy torch.save file (torch 0.4-1.5: magic, pickles, storages), read through. */
#include "fuzz_torch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_torch_reader(data, size, torch_load_legacy);
    return 0;
}
