/*
 * fuzz_sums.c: any bytes as a checksum list (sha256sum / xxhsum lines, --tag lines, a
 * ckpt-manifest.json or a Hugging Face Hub listing), checked against a small folder with
 * `verify --sums`.  The folder is made once, in a temporary directory: two files, one in a
 * subfolder, so that listed paths can name real files as well as missing ones.
 */
#include "fuzz_file.h"

#include <string.h>
#include <sys/stat.h>

static char folder[256];

static void put(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", folder, name);
    FILE *f = fopen(path, "wb");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        abort();
}

static void make_folder(void)
{
    snprintf(folder, sizeof folder, "/tmp/ckpt-fuzz-sums-XXXXXX");
    if (!mkdtemp(folder))
        abort();
    char sub[512];
    snprintf(sub, sizeof sub, "%s/sub", folder);
    if (mkdir(sub, 0700) != 0)
        abort();
    put("config.json", "{}\n");
    put("sub/a.bin", "abc");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!folder[0])
        make_folder();
    char path[64];
    int fd = fuzz_memfile(data, size, path, sizeof path);
    if (fd < 0)
        return 0;
    ckpt_sums_options opts;
    ckpt_sums_options_default(&opts);
    opts.jobs = 1;
    ckpt_verify_sums(folder, path, &opts, NULL, NULL, NULL, NULL);
    close(fd);
    return 0;
}
