/* fuzz_archive.c: any bytes as an archive (tar, gzip/zstd tar, zip): member table, in-place check, checkpoint found. */
#include "formats/archive/archive_fs.h"
#include "fuzz_file.h"

#include <sys/mman.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_memfile(data, size, path, sizeof path);
    if (fd < 0)
        return 0;
    struct ckpt_fs *fs;
    if (archive_open_fs(path, (uint64_t)8 << 20, &fs, NULL) == CKPT_OK) {
        char *inner;
        if (archive_find_checkpoint(fs, &inner, NULL) == CKPT_OK)
            free(inner);
        if (fs->data)
            munmap((void *)fs->data, (size_t)fs->size);
        fs_free(fs);
    }
    close(fd);
    return 0;
}
