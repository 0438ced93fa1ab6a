/* fs.c: folder questions answered from disk or from an archive's member table; see fs.h. */
#include "fs.h"

#include "libckpt/common/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *inside(const struct ckpt_fs *fs, const char *path)
{
    if (!fs)
        return NULL;
    size_t n = strlen(fs->root);
    if (strncmp(path, fs->root, n) != 0)
        return NULL;
    if (path[n] == '\0')
        return path + n;
    if (path[n] != '/')
        return NULL;
    while (path[n] == '/')
        n++;
    return path + n;
}

bool fs_inside(const struct ckpt_fs *fs, const char *path)
{
    return inside(fs, path) != NULL;
}

static int by_name(const void *key, const void *member)
{
    return strcmp((const char *)key, ((const struct fs_member *)member)->name);
}

const struct fs_member *fs_member(const struct ckpt_fs *fs, const char *path)
{
    const char *rel = inside(fs, path);
    if (!rel || !*rel)
        return NULL;
    char name[4096];
    size_t n = strlen(rel);
    while (n > 0 && rel[n - 1] == '/')
        n--;
    if (n == 0 || n >= sizeof name)
        return NULL;
    memcpy(name, rel, n);
    name[n] = '\0';
    return bsearch(name, fs->members, fs->count, sizeof *fs->members, by_name);
}

/* True when some member's name starts with folder `rel` and a '/': a folder the archive names only implicitly. */
static bool holds_members(const struct ckpt_fs *fs, const char *rel)
{
    size_t n = strlen(rel);
    while (n > 0 && rel[n - 1] == '/')
        n--;
    for (size_t i = 0; i < fs->count; i++)
        if (strncmp(fs->members[i].name, rel, n) == 0 && fs->members[i].name[n] == '/')
            return true;
    return false;
}

bool fs_is_dir(const struct ckpt_fs *fs, const char *path)
{
    const char *rel = inside(fs, path);
    if (rel) {
        if (!*rel)
            return true;
        const struct fs_member *m = fs_member(fs, path);
        return m ? m->is_dir : holds_members(fs, rel);
    }
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool fs_is_file(const struct ckpt_fs *fs, const char *path)
{
    if (inside(fs, path)) {
        const struct fs_member *m = fs_member(fs, path);
        return m && !m->is_dir;
    }
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool fs_has(const struct ckpt_fs *fs, const char *dir, const char *name)
{
    char full[4096];
    if (snprintf(full, sizeof full, "%s/%s", dir, name) >= (int)sizeof full)
        return false;
    return fs_is_file(fs, full);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int by_string(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends "dir/name" to a growing list. */
static int list_push(char ***paths, size_t *count, size_t *cap, const char *dir, const char *name, ckpt_error *err)
{
    if (*count == *cap) {
        size_t cap2 = *cap ? *cap * 2 : 16;
        char **grown = realloc(*paths, cap2 * sizeof *grown);
        if (!grown)
            return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", dir);
        *paths = grown;
        *cap = cap2;
    }
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (!p)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", dir);
    snprintf(p, n, "%s/%s", dir, name);
    (*paths)[(*count)++] = p;
    return CKPT_OK;
}

static void list_drop(char **paths, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(paths[i]);
    free(paths);
}

/* Members directly inside folder `rel` ("" = the archive's top) that are files ending in `suffix`. */
static int list_members(const struct ckpt_fs *fs, const char *dir, const char *rel, const char *suffix,
                        char ***paths, size_t *count, size_t *cap, ckpt_error *err)
{
    size_t n = strlen(rel);
    while (n > 0 && rel[n - 1] == '/')
        n--;
    for (size_t i = 0; i < fs->count; i++) {
        const struct fs_member *m = &fs->members[i];
        if (m->is_dir || (n && (strncmp(m->name, rel, n) != 0 || m->name[n] != '/')))
            continue;
        const char *base = m->name + (n ? n + 1 : 0);
        if (strchr(base, '/') || base[0] == '.' || !ends_with(base, suffix))
            continue;
        int rc = list_push(paths, count, cap, dir, base, err);
        if (rc)
            return rc;
    }
    return CKPT_OK;
}

static int list_disk(const char *dir, const char *suffix, char ***paths, size_t *count, size_t *cap,
                     ckpt_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return ckpt_fail(err, CKPT_ERR_READ, "%s: cannot list: %s", dir, strerror(errno));
    int rc = CKPT_OK;
    struct dirent *e;
    while (!rc && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !ends_with(e->d_name, suffix))
            continue;
        char full[4096];
        struct stat st;
        if (snprintf(full, sizeof full, "%s/%s", dir, e->d_name) >= (int)sizeof full || stat(full, &st) != 0 ||
            !S_ISREG(st.st_mode))
            continue;
        rc = list_push(paths, count, cap, dir, e->d_name, err);
    }
    closedir(d);
    return rc;
}

/* Sorts a finished listing, or drops it when listing failed with `rc`. */
static int list_done(int rc, char ***paths, size_t *count)
{
    if (rc) {
        list_drop(*paths, *count);
        *paths = NULL;
        *count = 0;
        return rc;
    }
    if (*count)
        qsort(*paths, *count, sizeof **paths, by_string);
    return CKPT_OK;
}

int fs_list_suffix(const struct ckpt_fs *fs, const char *dir, const char *suffix, char ***paths, size_t *count,
                   ckpt_error *err)
{
    *paths = NULL;
    *count = 0;
    size_t cap = 0;
    const char *rel = inside(fs, dir);
    int rc = rel ? list_members(fs, dir, rel, suffix, paths, count, &cap, err)
                 : list_disk(dir, suffix, paths, count, &cap, err);
    return list_done(rc, paths, count);
}

/* The folders directly inside `rel`: named by a folder member, or as the first step of a deeper name. */
static int list_member_folders(const struct ckpt_fs *fs, const char *dir, const char *rel, char ***paths,
                               size_t *count, size_t *cap, ckpt_error *err)
{
    size_t n = strlen(rel);
    while (n > 0 && rel[n - 1] == '/')
        n--;
    char name[4096];
    for (size_t i = 0; i < fs->count; i++) {
        const struct fs_member *m = &fs->members[i];
        if (n && (strncmp(m->name, rel, n) != 0 || m->name[n] != '/'))
            continue;
        const char *child = m->name + (n ? n + 1 : 0);
        size_t len = strcspn(child, "/");
        if ((!child[len] && !m->is_dir) || child[0] == '.' || len >= sizeof name)
            continue;
        memcpy(name, child, len);
        name[len] = '\0';
        bool seen = false;   /* members are sorted, so a folder's names are adjacent: compare with the last */
        if (*count) {
            const char *last = strrchr((*paths)[*count - 1], '/');
            seen = last && strcmp(last + 1, name) == 0;
        }
        int rc = seen ? CKPT_OK : list_push(paths, count, cap, dir, name, err);
        if (rc)
            return rc;
    }
    return CKPT_OK;
}

static int list_disk_folders(const char *dir, char ***paths, size_t *count, size_t *cap, ckpt_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return ckpt_fail(err, CKPT_ERR_READ, "%s: cannot list: %s", dir, strerror(errno));
    int rc = CKPT_OK;
    struct dirent *e;
    while (!rc && (e = readdir(d)) != NULL) {
        char full[4096];
        struct stat st;
        if (e->d_name[0] == '.' || snprintf(full, sizeof full, "%s/%s", dir, e->d_name) >= (int)sizeof full ||
            stat(full, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        rc = list_push(paths, count, cap, dir, e->d_name, err);
    }
    closedir(d);
    return rc;
}

int fs_list_folders(const struct ckpt_fs *fs, const char *dir, char ***paths, size_t *count, ckpt_error *err)
{
    *paths = NULL;
    *count = 0;
    size_t cap = 0;
    const char *rel = inside(fs, dir);
    int rc = rel ? list_member_folders(fs, dir, rel, paths, count, &cap, err)
                 : list_disk_folders(dir, paths, count, &cap, err);
    return list_done(rc, paths, count);
}

static int read_disk(const char *path, uint64_t max, char **data, size_t *len, ckpt_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ckpt_fail(err, errno == ENOENT ? CKPT_ERR_NOT_FOUND : CKPT_ERR_READ, "%s: cannot open: %s", path,
                         strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return ckpt_fail(err, CKPT_ERR_READ, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max) {
        fclose(f);
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: %llu bytes is over the header limit of %llu (max_header_bytes)",
                         path, (unsigned long long)st.st_size, (unsigned long long)max);
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        fclose(f);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    if (got != (size_t)st.st_size) {
        free(buf);
        return ckpt_fail(err, CKPT_ERR_READ, "%s: short read", path);
    }
    buf[got] = '\0';
    *data = buf;
    *len = got;
    return CKPT_OK;
}

/*
 * Copies the first `n` bytes of member `m`: through the archive's backing
 * when it has one (the archive read in place, where a file shrinking under a
 * mapping would raise SIGBUS; a bundle's frames), else from the inflated
 * copy, which nothing else can change.
 */
static int member_bytes(const struct ckpt_fs *fs, const struct fs_member *m, void *buf, size_t n, ckpt_error *err)
{
    if (!fs->backing) {
        if (n)
            memcpy(buf, fs->data + m->offset, n);
        return CKPT_OK;
    }
    struct vfile_reader r = VFILE_READER_INIT;
    int rc = vfile_read(&r, fs->backing, m->offset, buf, n, fs->root, "reading a member", err);
    vfile_reader_close(&r);
    return rc;
}

int fs_map_member(struct ckpt_fs *fs, const struct fs_member *m, ckpt_error *err)
{
    return fs->map_member ? fs->map_member(fs, m, err) : CKPT_OK;
}

int fs_read_small(const struct ckpt_fs *fs, const char *path, uint64_t max, char **data, size_t *len,
                  ckpt_error *err)
{
    if (!inside(fs, path))
        return read_disk(path, max, data, len, err);
    const struct fs_member *m = fs_member(fs, path);
    if (!m || m->is_dir)
        return ckpt_fail(err, CKPT_ERR_NOT_FOUND, "%s: no such file in the archive", path);
    if (m->size > max)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: %llu bytes is over the header limit of %llu (max_header_bytes)",
                         path, (unsigned long long)m->size, (unsigned long long)max);
    char *buf = malloc((size_t)m->size + 1);
    if (!buf)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    ckpt_error why;
    if (member_bytes(fs, m, buf, (size_t)m->size, &why) != CKPT_OK) {
        free(buf);
        return ckpt_fail(err, why.code, "%s: cannot read it from the archive: %s", path, why.message);
    }
    buf[m->size] = '\0';
    *data = buf;
    *len = (size_t)m->size;
    return CKPT_OK;
}

long fs_read_head(const struct ckpt_fs *fs, const char *path, void *buf, size_t cap)
{
    if (inside(fs, path)) {
        const struct fs_member *m = fs_member(fs, path);
        if (!m || m->is_dir)
            return -1;
        size_t n = m->size < cap ? (size_t)m->size : cap;
        return member_bytes(fs, m, buf, n, NULL) == CKPT_OK ? (long)n : -1;
    }
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return (long)n;
}

void fs_free(struct ckpt_fs *fs)
{
    if (!fs)
        return;
    vfile_release(fs->backing);
    if (fs->release)
        fs->release(fs);
    for (size_t i = 0; i < fs->count; i++)
        free(fs->members[i].name);
    free(fs->members);
    free(fs->root);
    free(fs);
}
