/*
 * fuzz_manifest.c: any bytes as ckpt-manifest.json of a small converted
 * folder, then `verify`.  The folder is made once, in a temporary directory.
 */
#include "ckpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char folder[256];

static void make_folder(void)
{
    snprintf(folder, sizeof folder, "/tmp/ckpt-fuzz-manifest-XXXXXX");
    if (!mkdtemp(folder))
        abort();
    char path[512];
    snprintf(path, sizeof path, "%s/model-00001-of-00001.safetensors", folder);
    uint64_t shape[2] = {3, 5};
    ckpt_tensor t = {"w", CKPT_DTYPE_F16, 2, shape, 0, 0, NULL};
    ckpt_writer *w;
    uint8_t zeros[30] = {0};
    if (ckpt_writer_open(&w, path, &t, 1, NULL, 0, NULL) || ckpt_writer_write(w, zeros, 30, NULL) ||
        ckpt_writer_finish(w, NULL))
        abort();
    ckpt_writer_free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!folder[0])
        make_folder();
    char path[512];
    snprintf(path, sizeof path, "%s/ckpt-manifest.json", folder);
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    ckpt_verify_options opts;
    ckpt_verify_options_default(&opts);
    opts.jobs = 1;
    ckpt_verify(folder, &opts, NULL, NULL, NULL, NULL);
    return 0;
}
