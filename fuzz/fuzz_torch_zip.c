/* fuzz_torch_zip.c: any bytes as a torch.save zip archive (central directory, entries, data.pkl), read through. */
#include "fuzz_torch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_torch_reader(data, size, torch_load_zip);
    return 0;
}
