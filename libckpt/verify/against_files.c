/* against_files.c: see against_files.h. */
#include "against_files.h"

#include "libckpt/common/error.h"
#include "libckpt/io/outdir.h"
#include "libckpt/manifest/manifest.h"
#include "libckpt/manifest/records.h"
#include "libckpt/sink/shard_header.h"
#include "libckpt/sink/side_files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define COMPARE_CHUNK ((size_t)1 << 16)

/* A regular file of the folder, opened without following a link; -1 when there is none. */
static int open_plain(const char *dir, const char *name, uint64_t *size)
{
    char path[4096];
    struct stat st;
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return -1;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
        close(fd);
        fd = -1;
    }
    if (fd >= 0)
        *size = (uint64_t)st.st_size;
    return fd;
}

static bool read_at(int fd, uint8_t *buf, size_t len, uint64_t at)
{
    for (size_t got = 0; got < len;) {
        ssize_t n = pread(fd, buf + got, len - got, (off_t)(at + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    return true;
}

/* The first bytes of a shard (length and header) and its size, against what convert writes. */
static void compare_shard(const char *dst, const char *name, const uint8_t *head, size_t head_len,
                          uint64_t size, struct reporter *r)
{
    uint64_t got_size;
    ckpt_finding f = {.check = CKPT_CHECK_HEADER, .file = name};
    int fd = open_plain(dst, name, &got_size);
    if (fd < 0) {
        report_finding(r, (ckpt_finding){.check = CKPT_CHECK_FILE, .file = name},
                       "%s: missing (or not a regular file), though converting the source writes it", name);
        return;
    }
    uint8_t *buf = got_size >= head_len ? malloc(head_len) : NULL;
    f.ok = buf && read_at(fd, buf, head_len, 0) && memcmp(buf, head, head_len) == 0;
    free(buf);
    close(fd);
    if (f.ok)
        report_finding(r, f, "%s: header is byte for byte what converting the source writes", name);
    else
        report_finding(r, f, "%s: header differs from what converting the source writes (tensors, offsets, "
                             "shapes or metadata)", name);
    f = (ckpt_finding){.check = CKPT_CHECK_FILE, .file = name, .ok = got_size == size};
    if (f.ok)
        report_finding(r, f, "%s: %llu bytes, as converting the source writes", name, (unsigned long long)size);
    else
        report_finding(r, f, "%s: %llu bytes, converting the source writes %llu%s", name,
                       (unsigned long long)got_size, (unsigned long long)size,
                       got_size > size ? " (bytes after the data buffer)" : "");
}

static int compare_shards(const char *dst, const struct ckpt_plan *plan, uint64_t *data_start, struct reporter *r,
                          ckpt_error *err)
{
    for (size_t s = 0; s < plan->shard_count; s++) {
        char *header = NULL;
        size_t len = 0;
        uint64_t data_bytes = 0;
        int rc = shard_header_build(plan, s, &header, &len, &data_bytes, err);
        uint8_t *head = rc ? NULL : malloc(8 + len);
        if (!rc && !head)
            rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
        if (!rc) {
            for (int k = 0; k < 8; k++)
                head[k] = (uint8_t)((uint64_t)len >> (8 * k));
            memcpy(head + 8, header, len);
            data_start[s] = 8 + len;
            compare_shard(dst, plan->shards[s].name, head, 8 + len, 8 + len + data_bytes, r);
        }
        free(head);
        free(header);
        if (rc)
            return rc;
    }
    return CKPT_OK;
}

/* DST/name against the bytes convert writes for it; a finding either way. */
static void compare_side_file(const char *dst, const struct outdir_kept *made, struct reporter *r)
{
    uint64_t size = 0;
    ckpt_finding f = {.check = CKPT_CHECK_FILE, .file = made->name};
    int fd = open_plain(dst, made->name, &size);
    uint8_t *a = malloc(COMPARE_CHUNK);
    f.ok = fd >= 0 && a && size == made->len;
    for (uint64_t at = 0; f.ok && at < size; at += COMPARE_CHUNK) {
        size_t n = size - at < COMPARE_CHUNK ? (size_t)(size - at) : COMPARE_CHUNK;
        f.ok = read_at(fd, a, n, at) && memcmp(a, made->data + at, n) == 0;
    }
    free(a);
    if (fd >= 0)
        close(fd);
    if (f.ok)
        report_finding(r, f, "%s: byte for byte what converting the source writes", made->name);
    else if (fd < 0)
        report_finding(r, f, "%s: missing (or not a regular file), though converting the source writes it",
                       made->name);
    else
        report_finding(r, f, "%s: differs from what converting the source writes", made->name);
}

static bool listed(char *const *names, size_t count, const char *name)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

/* Every file in the folder and in the manifest's list is one convert writes, and the reverse. */
static void compare_lists(const char *dst, char *const *names, size_t count, const struct manifest *m,
                          struct reporter *r)
{
    DIR *d = opendir(dst);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && !listed(names, count, e->d_name))
            report_finding(r, (ckpt_finding){.check = CKPT_CHECK_EXTRA_FILE, .file = e->d_name},
                           "%s: converting the source writes no such file", e->d_name);
    if (d)
        closedir(d);
    for (size_t i = 0; i < m->file_count; i++)
        if (!listed(names, count, m->files[i].path))
            report_finding(r, (ckpt_finding){.check = CKPT_CHECK_FILE, .file = m->files[i].path},
                           "%s: the manifest lists it, but converting the source writes no such file",
                           m->files[i].path);
    for (size_t i = 0; i < count; i++) {
        bool in = strcmp(names[i], MANIFEST_NAME) == 0;
        for (size_t k = 0; k < m->file_count && !in; k++)
            in = strcmp(m->files[k].path, names[i]) == 0;
        if (!in)
            report_finding(r, (ckpt_finding){.check = CKPT_CHECK_FILE, .file = names[i]},
                           "%s: converting the source writes it, but the manifest does not list it", names[i]);
    }
}

int against_files(const char *dst, const struct ckpt_plan *plan, const struct manifest *m, uint64_t *data_start,
                  struct reporter *r, ckpt_error *err)
{
    int rc = compare_shards(dst, plan, data_start, r, err);
    if (rc)
        return rc;
    /* the side files convert writes, kept in memory: DST may be read-only, and TMPDIR unusable */
    struct outdir o = {.dst = strdup("verify's copy of the side files"), .lock_fd = -1, .in_memory = true};
    struct file_records made = {0};
    if (!o.dst)
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    if (!rc)
        rc = write_side_files(&o, plan, &made, err);
    char **names = rc ? NULL : calloc(plan->shard_count + o.kept_count + 2, sizeof *names);
    if (!rc && !names)
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    if (!rc) {
        size_t count = 0;
        for (size_t s = 0; s < plan->shard_count; s++)
            names[count++] = plan->shards[s].name;
        for (size_t i = 0; i < o.kept_count; i++) {
            compare_side_file(dst, &o.kept[i], r);
            names[count++] = o.kept[i].name;
        }
        names[count++] = (char *)MANIFEST_NAME;
        compare_lists(dst, names, count, m, r);
    }
    free(names);
    file_records_free(&made);
    outdir_end(&o);
    return rc;
}
