/* fuzz_file.h: fuzz inputs as files, without touching the disk (memfd). */
#ifndef CKPT_FUZZ_FILE_H
#define CKPT_FUZZ_FILE_H

#include "ckpt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Writes data into an anonymous in-memory file; fills `path` with a name for it. Returns the fd or -1. */
static inline int fuzz_memfile(const uint8_t *data, size_t size, char *path, size_t path_size)
{
    int fd = memfd_create("fuzz", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    for (size_t done = 0; done < size;) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        done += (size_t)n;
    }
    snprintf(path, path_size, "/proc/self/fd/%d", fd);
    return fd;
}

/* Reads every tensor of an opened source (up to 16 MiB each), so the views are exercised too. */
static inline void fuzz_read_tensors(ckpt_source *src)
{
    for (size_t i = 0; i < ckpt_source_tensor_count(src); i++) {
        const ckpt_tensor *t = ckpt_source_tensor(src, i);
        if (t->nbytes > (1u << 24))
            continue;
        void *buf = malloc(t->nbytes ? t->nbytes : 1);
        if (buf)
            ckpt_source_read(src, i, 0, ckpt_tensor_rows(t), buf, t->nbytes, NULL);
        free(buf);
    }
}

#endif
