/* registry.c: which readers exist, and choosing one for a path. */
#include "format.h"

#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Most specific first: a folder may hold files that a later reader would also accept. */
static const struct format_reader *const readers[] = {
    &format_safetensors,
    &format_deepspeed,
    &format_torch,
    &format_megatron,
    &format_nemo2,
    &format_megatron_torch_dist,
    &format_dcp,
};

bool format_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool format_dir_has(const char *path, const char *name)
{
    char full[4096];
    struct stat st;
    if (snprintf(full, sizeof full, "%s/%s", path, name) >= (int)sizeof full)
        return false;
    return stat(full, &st) == 0 && S_ISREG(st.st_mode);
}

int format_detect(const char *path, const struct format_reader **reader, ckpt_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return ckpt_fail(err, errno == ENOENT ? CKPT_ERR_NOT_FOUND : CKPT_ERR_READ, "%s: %s", path,
                         strerror(errno));
    uint8_t head[FORMAT_PROBE_BYTES];
    struct format_probe probe = {path, S_ISDIR(st.st_mode), head, 0};
    if (!probe.is_dir) {
        if (!S_ISREG(st.st_mode))
            return ckpt_fail(err, CKPT_ERR_READ, "%s: not a file or folder", path);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return ckpt_fail(err, CKPT_ERR_READ, "%s: cannot open: %s", path, strerror(errno));
        ssize_t n = read(fd, head, sizeof head);
        close(fd);
        if (n < 0)
            return ckpt_fail(err, CKPT_ERR_READ, "%s: cannot read: %s", path, strerror(errno));
        probe.head_len = (size_t)n;
    }
    for (size_t i = 0; i < sizeof readers / sizeof readers[0]; i++) {
        if (readers[i]->probe(&probe)) {
            *reader = readers[i];
            return CKPT_OK;
        }
    }
    return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: not a checkpoint format libckpt recognises", path);
}
