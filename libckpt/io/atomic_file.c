/* atomic_file.c: see atomic_file.h. */
#include "atomic_file.h"

#include "libckpt/common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ".NAME.tmp-XXXXXX" next to `path`, for mkstemp. */
static char *temp_name_for(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path + 1) : 0;
    const char *base = path + dir_len;
    size_t n = strlen(path) + sizeof ".tmp-XXXXXX" + 1;
    char *t = malloc(n);
    if (t)
        snprintf(t, n, "%.*s.%s.tmp-XXXXXX", (int)dir_len, path, base);
    return t;
}

static int create_temp(struct atomic_file *f, const char *path, ckpt_error *err)
{
    f->final_path = strdup(path);
    f->temp_path = temp_name_for(path);
    if (!f->final_path || !f->temp_path) {
        atomic_file_discard(f);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    }
    f->fd = mkostemp(f->temp_path, O_CLOEXEC);
    if (f->fd < 0) {
        int rc = ckpt_fail(err, CKPT_ERR_WRITE, "%s: cannot create: %s", path, strerror(errno));
        free(f->temp_path);
        f->temp_path = NULL;
        atomic_file_discard(f);
        return rc;
    }
    fchmod(f->fd, 0644);
    return CKPT_OK;
}

int atomic_file_create(struct atomic_file *f, const char *path, ckpt_error *err)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    struct stat st;
    if (lstat(path, &st) == 0)
        return ckpt_fail(err, CKPT_ERR_EXISTS, "%s: already exists", path);
    return create_temp(f, path, err);
}

int atomic_file_create_over(struct atomic_file *f, const char *path, ckpt_error *err)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    struct stat st;
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return ckpt_fail(err, CKPT_ERR_EXISTS, "%s: exists and is not a regular file: not replaced", path);
    f->replace = true;
    return create_temp(f, path, err);
}

int atomic_file_write(struct atomic_file *f, const void *data, size_t len, ckpt_error *err)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t n = write(f->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return ckpt_fail(err, CKPT_ERR_WRITE, "%s: write failed after %llu bytes: %s", f->final_path,
                             (unsigned long long)f->written, n < 0 ? strerror(errno) : "no progress");
        p += n;
        len -= (size_t)n;
        f->written += (uint64_t)n;
    }
    return CKPT_OK;
}

int sync_dir(const char *dir, ckpt_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        int rc = ckpt_fail(err, CKPT_ERR_WRITE, "%s: cannot sync folder: %s", dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return rc;
    }
    close(fd);
    return CKPT_OK;
}

int atomic_file_flush(struct atomic_file *f, ckpt_error *err)
{
    if (f->fd < 0)
        return CKPT_OK;
    if (fsync(f->fd) != 0)
        return ckpt_fail(err, CKPT_ERR_WRITE, "%s: cannot flush: %s", f->final_path, strerror(errno));
    int closed = close(f->fd);
    f->fd = -1;
    if (closed != 0)
        return ckpt_fail(err, CKPT_ERR_WRITE, "%s: cannot close: %s", f->final_path, strerror(errno));
    return CKPT_OK;
}

int atomic_file_commit(struct atomic_file *f, ckpt_error *err)
{
    int rc = atomic_file_flush(f, err);
    if (rc)
        return rc;
    /* link() fails with EEXIST instead of silently replacing a file created meanwhile */
    if (f->replace ? rename(f->temp_path, f->final_path) != 0 : link(f->temp_path, f->final_path) != 0)
        return ckpt_fail(err, errno == EEXIST ? CKPT_ERR_EXISTS : CKPT_ERR_WRITE, "%s: cannot create: %s",
                         f->final_path, strerror(errno));
    if (!f->replace)
        unlink(f->temp_path);
    free(f->temp_path);
    f->temp_path = NULL;
    char *copy = strdup(f->final_path);
    if (!copy)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", f->final_path);
    rc = sync_dir(dirname(copy), err);
    free(copy);
    return rc;
}

void atomic_file_discard(struct atomic_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    if (f->temp_path)
        unlink(f->temp_path);
    free(f->temp_path);
    free(f->final_path);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}
