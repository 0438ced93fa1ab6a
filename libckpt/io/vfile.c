/* vfile.c: reading through the vfile interface, and its implementation for files on disk; see vfile.h. */
#include "vfile.h"

#include "libckpt/common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct disk_file {
    struct vfile base;
    char path[];
};

static int disk_open(const struct vfile *f, void **cursor, ckpt_error *err)
{
    const struct disk_file *d = (const struct disk_file *)f;
    int fd = open(d->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ckpt_fail(err, CKPT_ERR_READ, "%s: cannot reopen: %s", d->path, strerror(errno));
    *cursor = (void *)(intptr_t)fd;
    return CKPT_OK;
}

static int disk_read(const struct vfile *f, void *cursor, uint64_t offset, void *dst, uint64_t len, const char *file,
                     const char *doing, ckpt_error *err)
{
    (void)f;
    int fd = (int)(intptr_t)cursor;
    uint8_t *out = dst;
    for (uint64_t done = 0; done < len;) {
        ssize_t n = pread(fd, out + done, len - done, (off_t)(offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ckpt_fail(err, CKPT_ERR_READ, "%s: read failed while %s: %s", file, doing, strerror(errno));
        if (n == 0)
            return ckpt_fail(err, CKPT_ERR_READ, "%s: file truncated while %s (%llu of %llu bytes at offset %llu)",
                             file, doing, (unsigned long long)done, (unsigned long long)len,
                             (unsigned long long)offset);
        done += (uint64_t)n;
    }
    return CKPT_OK;
}

static void disk_close(const struct vfile *f, void *cursor)
{
    (void)f;
    close((int)(intptr_t)cursor);
}

static void disk_release(struct vfile *f)
{
    free(f);
}

static const struct vfile_ops disk_ops = {disk_open, disk_read, disk_close, disk_release};

bool vfile_is_disk(const struct vfile *f)
{
    return f && f->ops == &disk_ops;
}

struct vfile *vfile_disk_new(const char *path)
{
    size_t n = strlen(path) + 1;
    struct disk_file *d = malloc(sizeof *d + n);
    if (!d)
        return NULL;
    d->base.ops = &disk_ops;
    memcpy(d->path, path, n);
    return &d->base;
}

void vfile_release(struct vfile *f)
{
    if (f && f->ops->release)
        f->ops->release(f);
}

int vfile_read(struct vfile_reader *r, const struct vfile *f, uint64_t offset, void *dst, uint64_t len,
               const char *file, const char *doing, ckpt_error *err)
{
    if (r->file != f) {
        vfile_reader_close(r);
        int rc = f->ops->open(f, &r->cursor, err);
        if (rc)
            return rc;
        r->file = f;
    }
    return f->ops->read(f, r->cursor, offset, dst, len, file, doing, err);
}

void vfile_reader_close(struct vfile_reader *r)
{
    if (r->file)
        r->file->ops->close(r->file, r->cursor);
    r->file = NULL;
    r->cursor = NULL;
}
