/*
 * sums.c: a folder's files listed and hashed, and the lines sha256sum and
 * xxhsum print for them (sums.h); ckpt_sums.
 *
 * SHA-256 comes from libcrypto (OpenSSL), not written here: it is the
 * digest of record for downloads and must be right on every byte.
 */
#include "sums.h"

#include "libckpt/common/error.h"
#include "libckpt/common/options.h"
#include "libckpt/common/workers.h"
#include "records.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define HASH_CHUNK ((size_t)1 << 20)
#define MAX_DEPTH 64

size_t sums_hex_len(ckpt_sums_format format)
{
    return format == CKPT_SUMS_SHA256 ? 64 : format == SUMS_GIT_BLOB ? 40 : 32;
}

const char *sums_format_name(ckpt_sums_format format)
{
    return format == CKPT_SUMS_SHA256 ? "sha256" : format == SUMS_GIT_BLOB ? "git blob" : "xxh128";
}

int sums_hash_file(const char *path, const char *name, ckpt_sums_format format, char hex[SUMS_HEX_MAX + 1],
                   sums_bytes_fn count, void *ctx, atomic_int *stop, ckpt_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ckpt_fail(err, errno == ENOENT ? CKPT_ERR_NOT_FOUND : CKPT_ERR_READ, "%s: cannot open: %s", name,
                         strerror(errno));
    uint8_t *buf = malloc(HASH_CHUNK);
    XXH3_state_t *xs = format == CKPT_SUMS_XXH128 ? XXH3_createState() : NULL;
    EVP_MD_CTX *md = format != CKPT_SUMS_XXH128 ? EVP_MD_CTX_new() : NULL;
    int rc = buf && (xs || md) ? CKPT_OK : ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory hashing", name);
    if (!rc && xs)
        XXH3_128bits_reset(xs);
    if (!rc && md && EVP_DigestInit_ex(md, format == SUMS_GIT_BLOB ? EVP_sha1() : EVP_sha256(), NULL) != 1)
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "%s: libcrypto cannot start %s", name, sums_format_name(format));
    struct stat st;
    if (!rc && format == SUMS_GIT_BLOB) {   /* git hashes its object header first: "blob SIZE\0" */
        char header[32];
        int n = fstat(fd, &st) == 0 ? snprintf(header, sizeof header, "blob %llu", (unsigned long long)st.st_size)
                                    : -1;
        if (n < 0 || EVP_DigestUpdate(md, header, (size_t)n + 1) != 1)
            rc = ckpt_fail(err, CKPT_ERR_READ, "%s: cannot stat: %s", name, strerror(errno));
    }
    while (!rc) {
        if (stop && atomic_load(stop)) {
            rc = ckpt_fail(err, CKPT_ERR_CANCELLED, "%s: hashing cancelled", name);
            break;
        }
        ssize_t n = read(fd, buf, HASH_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = ckpt_fail(err, CKPT_ERR_READ, "%s: read failed: %s", name, strerror(errno));
        if (n <= 0)
            break;
        if (xs)
            XXH3_128bits_update(xs, buf, (size_t)n);
        else if (EVP_DigestUpdate(md, buf, (size_t)n) != 1)
            rc = ckpt_fail(err, CKPT_ERR_READ, "%s: %s update failed", name, sums_format_name(format));
        if (!rc && count && count(ctx, (uint64_t)n) != 0)
            rc = ckpt_fail(err, CKPT_ERR_CANCELLED, "%s: hashing cancelled", name);
    }
    if (!rc && xs)
        hash_hex(XXH3_128bits_digest(xs), hex);
    if (!rc && md) {
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned len = 0;
        if (EVP_DigestFinal_ex(md, d, &len) != 1 || 2 * len != sums_hex_len(format))
            rc = ckpt_fail(err, CKPT_ERR_READ, "%s: %s failed", name, sums_format_name(format));
        for (unsigned i = 0; !rc && i < len; i++)
            snprintf(hex + 2 * i, 3, "%02x", d[i]);
    }
    XXH3_freeState(xs);
    EVP_MD_CTX_free(md);
    free(buf);
    close(fd);
    return rc;
}

/* ---- listing ---- */

static int files_add(struct sums_files *f, char *path, uint64_t size, ckpt_error *err)
{
    if (f->count >= SUMS_MAX_FILES) {
        free(path);
        return ckpt_fail(err, CKPT_ERR_LIMIT, "more than %d files to hash", SUMS_MAX_FILES);
    }
    if (f->count == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 64;
        struct sums_file *grown = reallocarray(f->items, cap, sizeof *grown);
        if (!grown) {
            free(path);
            return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory listing files");
        }
        f->items = grown;
        f->cap = cap;
    }
    f->items[f->count++] = (struct sums_file){path, size};
    return CKPT_OK;
}

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (!s)
        return NULL;
    memcpy(s, a, la);
    s[la] = '/';
    memcpy(s + la + 1, b, lb + 1);
    return s;
}

/* Adds the files under root/rel (rel "" for root itself). */
static int walk(const char *root, const char *rel, int depth, struct sums_files *out, ckpt_error *err)
{
    char *dir = *rel ? join(root, rel) : strdup(root);
    if (!dir)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory listing %s", root);
    if (depth > MAX_DEPTH) {
        int rc = ckpt_fail(err, CKPT_ERR_LIMIT, "%s: folders nested deeper than %d", dir, MAX_DEPTH);
        free(dir);
        return rc;
    }
    DIR *d = opendir(dir);
    if (!d) {
        int rc = ckpt_fail(err, CKPT_ERR_READ, "%s: cannot list: %s", dir, strerror(errno));
        free(dir);
        return rc;
    }
    int rc = CKPT_OK;
    struct dirent *e;
    while (!rc && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;   /* ".", "..", and hidden files (.git, .cache) as a shell glob skips them */
        char *full = join(dir, e->d_name), *name = *rel ? join(rel, e->d_name) : strdup(e->d_name);
        struct stat lst, st;
        if (!full || !name) {
            rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory listing %s", dir);
        } else if (lstat(full, &lst) != 0) {
            rc = ckpt_fail(err, CKPT_ERR_READ, "%s: %s", full, strerror(errno));
        } else if (S_ISDIR(lst.st_mode)) {
            rc = walk(root, name, depth + 1, out, err);
        } else if (stat(full, &st) == 0 && S_ISREG(st.st_mode)) {
            rc = files_add(out, name, (uint64_t)st.st_size, err);
            name = NULL;
        }
        free(full);
        free(name);
    }
    closedir(d);
    free(dir);
    return rc;
}

static int by_path(const void *a, const void *b)
{
    return strcmp(((const struct sums_file *)a)->path, ((const struct sums_file *)b)->path);
}

int sums_list_folder(const char *dir, struct sums_files *out, ckpt_error *err)
{
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(dir, &st) != 0)
        return ckpt_fail(err, errno == ENOENT ? CKPT_ERR_NOT_FOUND : CKPT_ERR_READ, "%s: %s", dir, strerror(errno));
    if (S_ISREG(st.st_mode)) {
        const char *slash = strrchr(dir, '/');
        char *name = strdup(slash ? slash + 1 : dir);
        return name ? files_add(out, name, (uint64_t)st.st_size, err)
                    : ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory listing %s", dir);
    }
    if (!S_ISDIR(st.st_mode))
        return ckpt_fail(err, CKPT_ERR_ARG, "%s: neither a file nor a folder", dir);
    int rc = walk(dir, "", 0, out, err);
    if (!rc && out->count)
        qsort(out->items, out->count, sizeof *out->items, by_path);
    return rc;
}

void sums_files_free(struct sums_files *f)
{
    for (size_t i = 0; i < f->count; i++)
        free(f->items[i].path);
    free(f->items);
    memset(f, 0, sizeof *f);
}

int sums_format_line(ckpt_sums_format format, const char *hex, const char *path, char **line, ckpt_error *err)
{
    bool escape = strpbrk(path, "\\\n\r") != NULL;
    /* xxhsum 0.8.1 reads no escapes: such a name cannot be written so that it checks it */
    if (escape && format == CKPT_SUMS_XXH128 && strpbrk(path, "\n\r")) {
        char shown[256];
        size_t n = 0;
        for (const char *p = path; *p && n + 3 < sizeof shown; p++)
            n += (size_t)snprintf(shown + n, sizeof shown - n, "%s",
                                  *p == '\n' ? "\\n" : *p == '\r' ? "\\r" : (char[2]){*p, 0});
        return ckpt_fail(err, CKPT_ERR_UNSUPPORTED,
                         "%s: a name with a line break cannot be listed for xxhsum (the sha256 format escapes it)", shown);
    }
    if (format == CKPT_SUMS_XXH128)
        escape = false;
    size_t len = strlen(path), cap = 2 * len + SUMS_HEX_MAX + 8;
    char *s = malloc(cap), *w = s;
    if (!s)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    if (escape)
        *w++ = '\\';
    w += sprintf(w, "%s  ", hex);
    for (const char *p = path; *p; p++) {
        if (escape && (*p == '\\' || *p == '\n' || *p == '\r')) {
            *w++ = '\\';
            *w++ = *p == '\\' ? '\\' : *p == '\n' ? 'n' : 'r';
        } else {
            *w++ = *p;
        }
    }
    *w++ = '\n';
    *w = '\0';
    *line = s;
    return CKPT_OK;
}

/* ---- ckpt_sums ---- */

void sums_progress_init(struct sums_progress *p, ckpt_progress_fn fn, void *payload)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    p->fn = fn;
    p->payload = payload;
}

int sums_progress_add(void *progress, uint64_t bytes)
{
    struct sums_progress *p = progress;
    pthread_mutex_lock(&p->lock);
    p->done += bytes;
    int stop = p->fn && p->fn(p->payload, p->done, p->total) != 0;
    pthread_mutex_unlock(&p->lock);
    if (stop)
        atomic_store(&p->stop, 1);
    return stop;
}

void sums_progress_fail(struct sums_progress *p, int rc, const ckpt_error *err)
{
    pthread_mutex_lock(&p->lock);
    if (!p->rc || (p->rc == CKPT_ERR_CANCELLED && rc != CKPT_ERR_CANCELLED)) {
        p->rc = rc;
        p->err = *err;
    }
    pthread_mutex_unlock(&p->lock);
    atomic_store(&p->stop, 1);
}

struct sums_run {
    const char *dir;
    bool single;                 /* dir is the one file */
    const struct sums_files *files;
    ckpt_sums_format format;
    char (*hex)[SUMS_HEX_MAX + 1];
    atomic_size_t next;
    struct sums_progress p;
};

static void *sums_worker(void *arg)
{
    struct sums_run *r = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&r->next, 1);
        if (i >= r->files->count || atomic_load(&r->p.stop))
            break;
        char *path = r->single ? strdup(r->dir) : join(r->dir, r->files->items[i].path);
        ckpt_error err;
        int rc = path ? sums_hash_file(path, path, r->format, r->hex[i], sums_progress_add, &r->p, &r->p.stop, &err)
                      : ckpt_fail(&err, CKPT_ERR_NOMEM, "out of memory");
        free(path);
        if (rc)
            sums_progress_fail(&r->p, rc, &err);
    }
    return NULL;
}

void ckpt_sums_options_default(ckpt_sums_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
    opts->format = CKPT_SUMS_XXH128;
}

int ckpt_sums(const char *dir, const ckpt_sums_options *opts, ckpt_sum_fn fn, void *payload, ckpt_error *err)
{
    ckpt_error_clear(err);
    ckpt_sums_options taken;
    ckpt_sums_options_default(&taken);
    int taken_rc = options_take(&taken, sizeof taken, opts, "ckpt_sums_options", err);
    if (taken_rc)
        return taken_rc;
    opts = &taken;
    if (!dir || (opts->format != CKPT_SUMS_XXH128 && opts->format != CKPT_SUMS_SHA256))
        return ckpt_fail(err, CKPT_ERR_ARG, "ckpt_sums: no folder, or an unknown format");
    struct sums_files files;
    int rc = sums_list_folder(dir, &files, err);
    struct stat st;
    struct sums_run r = {.dir = dir, .single = stat(dir, &st) == 0 && S_ISREG(st.st_mode), .files = &files,
                         .format = opts->format};
    sums_progress_init(&r.p, opts->progress, opts->progress_payload);
    for (size_t i = 0; !rc && i < files.count; i++) {
        char *line;   /* a name the format cannot hold is refused before hours of hashing, not after */
        rc = sums_format_line(opts->format, "", files.items[i].path, &line, err);
        if (!rc)
            free(line);
    }
    if (!rc) {
        for (size_t i = 0; i < files.count; i++)
            r.p.total += files.items[i].size;
        r.hex = calloc(files.count + 1, sizeof *r.hex);
        if (!r.hex)
            rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    }
    if (!rc) {
        run_on_threads(worker_count(opts->jobs, files.count), sums_worker, &r);
        rc = r.p.rc;
        if (rc && err)
            *err = r.p.err;
    }
    for (size_t i = 0; !rc && i < files.count; i++) {
        char *line;
        rc = sums_format_line(opts->format, r.hex[i], files.items[i].path, &line, err);
        if (rc)
            break;
        if (fn && fn(payload, files.items[i].path, r.hex[i], line) != 0)
            rc = ckpt_fail(err, CKPT_ERR_CANCELLED, "%s: stopped by the caller", dir);
        free(line);
    }
    free(r.hex);
    pthread_mutex_destroy(&r.p.lock);
    sums_files_free(&files);
    return rc;
}
