/* registry.c: which readers exist, and choosing one for a path. */
#include "formats/common/format.h"

#include "libckpt/common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Most specific first: a folder may hold files that a later reader would also accept. */
static const struct format_reader *const readers[] = {
    &format_deepseek_mp,
    &format_safetensors,
    &format_deepspeed,
    &format_torch,
    &format_megatron,
    &format_nemo2,
    &format_megatron_torch_dist,
    &format_dcp,
};

static int choose(const struct format_probe *probe, const struct format_reader **reader, const char *path,
                  ckpt_error *err)
{
    for (size_t i = 0; i < sizeof readers / sizeof readers[0]; i++) {
        if (readers[i]->probe(probe)) {
            *reader = readers[i];
            return CKPT_OK;
        }
    }
    return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: not a checkpoint format libckpt recognises", path);
}

static int detect_on_disk(const char *path, const struct format_reader **reader, ckpt_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return ckpt_fail(err, errno == ENOENT ? CKPT_ERR_NOT_FOUND : CKPT_ERR_READ, "%s: %s", path,
                         strerror(errno));
    uint8_t head[FORMAT_PROBE_BYTES];
    struct format_probe probe = {NULL, path, S_ISDIR(st.st_mode), head, 0};
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
    return choose(&probe, reader, path, err);
}


int format_detect(const struct ckpt_fs *fs, const char *path, const struct format_reader **reader, ckpt_error *err)
{
    if (!fs || strncmp(path, fs->root, strlen(fs->root)) != 0)
        return detect_on_disk(path, reader, err);
    uint8_t head[FORMAT_PROBE_BYTES];
    struct format_probe probe = {fs, path, fs_is_dir(fs, path), head, 0};
    const struct fs_member *m = fs_member(fs, path);
    if (!probe.is_dir && !m)
        return ckpt_fail(err, CKPT_ERR_NOT_FOUND, "%s: no such member in the archive", path);
    long n = probe.is_dir ? 0 : fs_read_head(fs, path, head, sizeof head);
    if (n < 0)
        return ckpt_fail(err, CKPT_ERR_READ, "%s: cannot read it from the archive", path);
    probe.head_len = (size_t)n;
    return choose(&probe, reader, path, err);
}
