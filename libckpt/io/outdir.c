/* outdir.c: see outdir.h. */
#include "outdir.h"

#include "atomic_file.h"
#include "libckpt/common/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP_TAG ".ckpt-tmp-"

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

int remove_tree(const char *path)
{
    return nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Splits dst into a malloc'd parent folder and base name. */
static int split_path(const char *dst, char **parent, char **base, ckpt_error *err)
{
    char *a = strdup(dst), *b = strdup(dst);
    if (!a || !b) {
        free(a);
        free(b);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", dst);
    }
    /* trailing slashes name the same folder */
    for (size_t n = strlen(b); n > 1 && b[n - 1] == '/'; n--)
        a[n - 1] = b[n - 1] = '\0';
    *parent = strdup(dirname(a));
    *base = strdup(basename(b));
    free(a);
    free(b);
    if (!*parent || !*base) {
        free(*parent);
        free(*base);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", dst);
    }
    return CKPT_OK;
}

int mkdir_parents(const char *path, ckpt_error *err)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return ckpt_fail(err, CKPT_ERR_ARG, "%.200s...: path longer than %zu bytes", path, sizeof buf);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/')   /* "a/b/" names b: its parents are a */
        buf[--n] = '\0';
    for (char *slash = strchr(buf + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        if (slash[-1] == '/')
            continue;
        *slash = '\0';
        struct stat st;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)   /* 0777 & umask, as mkdir -p */
            return ckpt_fail(err, CKPT_ERR_WRITE, "%s: cannot create: %s", buf, strerror(errno));
        if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
            return ckpt_fail(err, CKPT_ERR_WRITE, "%s: not a folder, cannot hold %s", buf, path);
        *slash = '/';
    }
    return CKPT_OK;
}

/* Bytes of the regular files under a folder (what a stale temporary holds up), links not followed. */
static uint64_t tree_bytes(const char *path, int depth)
{
    DIR *d = depth < 16 ? opendir(path) : NULL;
    if (!d)
        return 0;
    uint64_t sum = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char sub[4096];
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) >= (int)sizeof sub || lstat(sub, &st) != 0)
            continue;
        if (S_ISREG(st.st_mode))
            sum += (uint64_t)st.st_size;
        else if (S_ISDIR(st.st_mode))
            sum += tree_bytes(sub, depth + 1);
    }
    closedir(d);
    return sum;
}

/*
 * Calls `fn` for each `.B.ckpt-tmp-XXXXXX` folder in `parent` (of base `base`
 * only, when not NULL) whose lock it takes: one no live run holds, left by a
 * killed one.  The lock is held during the call.
 */
static void each_stale(const char *parent, const char *base,
                       void (*fn)(void *payload, const char *path, const char *name, size_t name_len), void *payload)
{
    DIR *d = opendir(parent);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *tag = e->d_name[0] == '.' ? strstr(e->d_name + 1, TMP_TAG) : NULL;
        size_t name_len = tag ? (size_t)(tag - e->d_name - 1) : 0;
        if (!tag || !name_len || strlen(tag) == sizeof TMP_TAG - 1)   /* mkdtemp's characters follow the tag */
            continue;
        if (base && (strlen(base) != name_len || strncmp(e->d_name + 1, base, name_len) != 0))
            continue;
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s", parent, e->d_name) >= (int)sizeof path)
            continue;
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            continue;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            fn(payload, path, e->d_name + 1, name_len);
        close(fd);
    }
    closedir(d);
}

static void remove_one(void *payload, const char *path, const char *name, size_t name_len)
{
    (void)payload;
    (void)name;
    (void)name_len;
    remove_tree(path);
}

struct stale_listing {
    const char *parent, *base;
    ckpt_stale_fn fn;
    void *payload;
    int stop;
};

static void tell_one(void *payload, const char *path, const char *name, size_t name_len)
{
    struct stale_listing *l = payload;
    if (l->stop)
        return;
    char dst[4096];
    snprintf(dst, sizeof dst, "%s/%.*s", l->parent, (int)name_len, name);
    const ckpt_stale_output s = {.path = path, .dst = dst, .bytes = tree_bytes(path, 0),
                                 .same_dst = strlen(l->base) == name_len && strncmp(l->base, name, name_len) == 0};
    l->stop = l->fn(l->payload, &s);
}

int ckpt_stale_outputs(const char *dst, ckpt_stale_fn fn, void *payload, ckpt_error *err)
{
    ckpt_error_clear(err);
    if (!dst || !fn)
        return ckpt_fail(err, CKPT_ERR_ARG, "ckpt_stale_outputs: NULL argument");
    char *parent = NULL, *base = NULL;
    int rc = split_path(dst, &parent, &base, err);
    if (rc)
        return rc;
    struct stale_listing l = {parent, base, fn, payload, 0};
    each_stale(parent, NULL, tell_one, &l);
    free(parent);
    free(base);
    return CKPT_OK;
}

int outdir_begin(struct outdir *o, const char *dst, bool replace, ckpt_error *err)
{
    *o = (struct outdir){.lock_fd = -1, .replace = replace};
    char *parent = NULL, *base = NULL;
    int rc = mkdir_parents(dst, err);
    if (!rc)
        rc = split_path(dst, &parent, &base, err);
    if (rc)
        return rc;
    each_stale(parent, base, remove_one, NULL);
    struct stat st;
    if (!replace && lstat(dst, &st) == 0)
        rc = ckpt_fail(err, CKPT_ERR_EXISTS, "%s: already exists", dst);
    else if (replace && lstat(dst, &st) == 0 && !S_ISDIR(st.st_mode))
        rc = ckpt_fail(err, CKPT_ERR_EXISTS, "%s: exists and is not a folder; not replacing it", dst);
    size_t n = strlen(parent) + strlen(base) + sizeof TMP_TAG + 16;
    if (!rc && (!(o->dst = strdup(dst)) || !(o->tmp = malloc(n))))
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", dst);
    if (!rc) {
        snprintf(o->tmp, n, "%s/.%s%sXXXXXX", parent, base, TMP_TAG);
        if (!mkdtemp(o->tmp)) {
            rc = ckpt_fail(err, CKPT_ERR_WRITE, "%s: cannot create a folder beside it: %s", dst, strerror(errno));
            free(o->tmp);
            o->tmp = NULL;
        }
    }
    if (!rc) {
        o->lock_fd = open(o->tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (o->lock_fd < 0 || flock(o->lock_fd, LOCK_EX) != 0)
            rc = ckpt_fail(err, CKPT_ERR_WRITE, "%s: cannot lock: %s", o->tmp, strerror(errno));
        chmod(o->tmp, 0755);
    }
    free(parent);
    free(base);
    if (rc)
        outdir_end(o);
    return rc;
}

char *outdir_path(const struct outdir *o, const char *name)
{
    size_t n = strlen(o->tmp) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", o->tmp, name);
    return p;
}

int outdir_create(struct outdir *o, const char *name, int *fd, ckpt_error *err)
{
    char *path = outdir_path(o, name);
    if (!path)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", name);
    *fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);   /* read back to hash */
    int rc = *fd < 0 ? ckpt_fail(err, CKPT_ERR_WRITE, "%s/%s: cannot create: %s", o->dst, name, strerror(errno))
                     : CKPT_OK;
    free(path);
    return rc;
}

int close_synced(int fd, const char *name, ckpt_error *err)
{
    int rc = CKPT_OK;
    if (fsync(fd) != 0)
        rc = ckpt_fail(err, CKPT_ERR_WRITE, "%s: cannot flush: %s", name, strerror(errno));
    if (close(fd) != 0 && !rc)
        rc = ckpt_fail(err, CKPT_ERR_WRITE, "%s: cannot close: %s", name, strerror(errno));
    return rc;
}

static int keep_file(struct outdir *o, const char *name, const void *data, size_t len, ckpt_error *err)
{
    struct outdir_kept *grown = reallocarray(o->kept, o->kept_count + 1, sizeof *grown);
    if (!grown)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s/%s: out of memory", o->dst, name);
    o->kept = grown;
    struct outdir_kept *k = &o->kept[o->kept_count];
    k->name = strdup(name);
    k->data = malloc(len ? len : 1);
    k->len = len;
    if (!k->name || !k->data) {
        free(k->name);
        free(k->data);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s/%s: out of memory", o->dst, name);
    }
    memcpy(k->data, data, len);
    o->kept_count++;
    return CKPT_OK;
}

int outdir_write_file(struct outdir *o, const char *name, const void *data, size_t len, XXH128_hash_t *hash,
                      ckpt_error *err)
{
    if (o->in_memory) {
        int rc = keep_file(o, name, data, len, err);
        if (!rc && hash)
            *hash = XXH3_128bits(data, len);
        return rc;
    }
    int fd;
    int rc = outdir_create(o, name, &fd, err);
    if (rc)
        return rc;
    const uint8_t *p = data;
    for (size_t left = len; left > 0 && !rc;) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = ckpt_fail(err, CKPT_ERR_WRITE, "%s/%s: write failed: %s", o->dst, name,
                           n < 0 ? strerror(errno) : "no progress");
        else
            p += n, left -= (size_t)n;
    }
    int closed = close_synced(fd, name, err);
    if (!rc)
        rc = closed;
    if (!rc && hash)
        *hash = XXH3_128bits(data, len);
    return rc;
}

/*
 * The fewest significant digits that write every real in `v` so that it
 * reads back exactly (1 to 17), and at least a whole number's digits, so that
 * 10000.0 is not written 1e4.
 */
static int real_digits(const json_t *v)
{
    int most = 1;
    if (json_is_real(v)) {
        double x = json_real_value(v);
        char buf[32];
        while (most < 17 && (snprintf(buf, sizeof buf, "%.*g", most, x), strtod(buf, NULL) != x))
            most++;
        int whole_digits = 1;
        for (double whole = x < 0 ? -x : x; whole >= 10 && whole < 1e17; whole /= 10)
            whole_digits++;
        most = whole_digits > most ? whole_digits : most;
    } else if (json_is_object(v)) {
        const char *key;
        const json_t *item;
        json_object_foreach((json_t *)v, key, item) {
            int d = real_digits(item);
            most = d > most ? d : most;
        }
    } else if (json_is_array(v)) {
        size_t i;
        const json_t *item;
        json_array_foreach(v, i, item) {
            int d = real_digits(item);
            most = d > most ? d : most;
        }
    }
    return most;
}

int outdir_write_json(struct outdir *o, const char *name, json_t *doc, size_t flags, XXH128_hash_t *hash,
                      uint64_t *size, ckpt_error *err)
{
    /* 1e-05 as written, not 1.0000000000000001e-05: no more digits than the values need */
    char *text = doc ? json_dumps(doc, flags | JSON_REAL_PRECISION(real_digits(doc))) : NULL;
    json_decref(doc);
    if (!text)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s/%s: out of memory building the file", o->dst, name);
    size_t len = strlen(text);
    text[len] = '\n';   /* the terminating NUL becomes the final newline */
    int rc = outdir_write_file(o, name, text, len + 1, hash, err);
    if (size)
        *size = len + 1;
    free(text);
    return rc;
}

int outdir_check_spares(const char *dst, const char *source, ckpt_error *err)
{
    char *d = realpath(dst, NULL), *s = d ? realpath(source, NULL) : NULL;
    size_t n = d ? strlen(d) : 0;
    bool holds = s && strncmp(s, d, n) == 0 && (s[n] == '\0' || s[n] == '/' || (n == 1 && d[0] == '/'));
    free(d);
    free(s);
    return holds ? ckpt_fail(err, CKPT_ERR_ARG, "%s: the destination holds the source %s: replacing it would "
                             "delete the source", dst, source)
                 : CKPT_OK;
}

int outdir_commit(struct outdir *o, ckpt_error *err)
{
    int rc = sync_dir(o->tmp, err);
    if (rc)
        return rc;
    if (rename(o->tmp, o->dst) == 0) {
        free(o->tmp);
        o->tmp = NULL;
    } else if ((errno == EEXIST || errno == ENOTEMPTY || errno == EISDIR) && o->replace) {
        /* swap atomically, then remove what used to be the destination (now at the temporary name) */
        if (renameat2(AT_FDCWD, o->tmp, AT_FDCWD, o->dst, RENAME_EXCHANGE) != 0)
            return ckpt_fail(err, CKPT_ERR_WRITE, "%s: cannot replace: %s", o->dst, strerror(errno));
    } else {
        return ckpt_fail(err, errno == EEXIST || errno == ENOTEMPTY ? CKPT_ERR_EXISTS : CKPT_ERR_WRITE,
                         "%s: cannot move the finished output into place: %s", o->dst, strerror(errno));
    }
    char *copy = strdup(o->dst);
    if (!copy)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", o->dst);
    rc = sync_dir(dirname(copy), err);
    free(copy);
    return rc;
}

void outdir_end(struct outdir *o)
{
    if (o->tmp)
        remove_tree(o->tmp);
    if (o->lock_fd >= 0)
        close(o->lock_fd);
    free(o->tmp);
    free(o->dst);
    for (size_t i = 0; i < o->kept_count; i++) {
        free(o->kept[i].name);
        free(o->kept[i].data);
    }
    free(o->kept);
    *o = (struct outdir){.lock_fd = -1};
}
