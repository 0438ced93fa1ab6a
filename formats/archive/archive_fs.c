/*
 * archive_fs.c: an archive's members as slices of one mapped file.
 *
 * An uncompressed tar holds each regular member as one contiguous run of its
 * own bytes: those members are read where they are, the archive mapped as it
 * is (nothing is unpacked).  Gzip and zstd tars and zips have no byte offsets
 * a mapping could use, and sparse tar members have holes: those archives are
 * read once, in order, into an unlinked temporary file (O_TMPFILE in $TMPDIR,
 * /tmp by default) that is then mapped.  One sequential pass costs one copy,
 * needs no memory beyond libarchive's buffers, and leaves nothing on disk
 * whatever happens: the file has no name, and its space returns when the
 * mapping goes.
 */
#include "archive_fs.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* An archive inflating beyond this many times its own size is a bomb, not a checkpoint. */
#define ARCHIVE_MAX_RATIO 200
/* Below this many inflated bytes the ratio is not checked (tiny files of zeros compress without bound). */
#define ARCHIVE_RATIO_FLOOR ((uint64_t)64 << 20)

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

bool archive_probe(const char *path)
{
    uint8_t head[512];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, head, sizeof head);
    close(fd);
    if (n < 4)
        return false;
    if ((head[0] == 0x1f && head[1] == 0x8b) || memcmp(head, "\x28\xb5\x2f\xfd", 4) == 0)
        return true;   /* gzip, zstd: torch.save writes neither */
    if (n == 512 && memcmp(head + 257, "ustar", 5) == 0)
        return true;
    /* torch.save files are zips too: only a name saying "archive" makes a zip one */
    return memcmp(head, "PK\x03\x04", 4) == 0 && (has_suffix(path, ".zip") || has_suffix(path, ".nemo"));
}

/* Checks a member's name and copies it without "./" and trailing '/'; NULL when refused. */
static char *normalise(const char *archive, const char *name, ckpt_error *err)
{
    if (name[0] == '/') {
        ckpt_fail(err, CKPT_ERR_FORMAT, "%s: member %s has an absolute path", archive, name);
        return NULL;
    }
    char *out = malloc(strlen(name) + 1);
    if (!out) {
        ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", archive);
        return NULL;
    }
    size_t len = 0;
    for (const char *p = name; *p;) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            free(out);
            ckpt_fail(err, CKPT_ERR_FORMAT, "%s: member %s climbs out of the archive (..)", archive, name);
            return NULL;
        }
        if (n > 0 && !(n == 1 && p[0] == '.')) {
            if (len)
                out[len++] = '/';
            memcpy(out + len, p, n);
            len += n;
        }
        p += n;
        while (*p == '/')
            p++;
    }
    out[len] = '\0';
    return out;
}

struct reading {
    const char *path;
    struct archive *a;
    int archive_fd;        /* the archive itself, to check members read in place */
    int fd;                /* the temporary file inflated members go to, or -1 before the first */
    uint64_t written, max_bytes, archive_bytes;
    bool in_place;         /* members are runs of the archive (an uncompressed tar) */
    bool copy_instead;     /* a member cannot be read in place: read the archive again, copying */
    struct fs_member *members;
    size_t count, cap;
};

static int temp_file(const char *path, int *fd, ckpt_error *err);

/* Copies the current member's bytes to the temporary file; refuses a size that lies or a bomb. */
static int copy_member(struct reading *r, const char *name, int64_t header_size, uint64_t *offset, uint64_t *size,
                       ckpt_error *err)
{
    if (r->fd < 0) {
        int rc = temp_file(r->path, &r->fd, err);
        if (rc)
            return rc;
    }
    *offset = r->written;
    uint64_t got = 0;
    for (;;) {
        const void *block;
        size_t n;
        la_int64_t at;
        int s = archive_read_data_block(r->a, &block, &n, &at);
        if (s == ARCHIVE_EOF)
            break;
        if (s != ARCHIVE_OK)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: member %s: %s", r->path, name, archive_error_string(r->a));
        uint64_t end;
        if (at < 0 || !ckpt_add_u64((uint64_t)at, n, &end) || (header_size >= 0 && end > (uint64_t)header_size))
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: member %s holds more bytes than its header's %lld", r->path,
                             name, (long long)header_size);
        uint64_t total;
        if (!ckpt_add_u64(*offset, end, &total) || total > r->max_bytes)
            return ckpt_fail(err, CKPT_ERR_LIMIT,
                             "%s: member %s inflates the archive past %llu bytes (limit max_archive_bytes)", r->path,
                             name, (unsigned long long)r->max_bytes);
        if (total > ARCHIVE_RATIO_FLOOR && total / ARCHIVE_MAX_RATIO > r->archive_bytes)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: member %s inflates over %d times the archive's size (a bomb)",
                             r->path, name, ARCHIVE_MAX_RATIO);
        for (size_t done = 0; done < n;) {
            ssize_t w = pwrite(r->fd, (const uint8_t *)block + done, n - done, (off_t)(*offset + (uint64_t)at + done));
            if (w < 0)
                return ckpt_fail(err, CKPT_ERR_WRITE,
                                 "%s: member %s: temporary file: %s", r->path, name, strerror(errno));
            done += (size_t)w;
        }
        if (end > got)
            got = end;
    }
    if (header_size >= 0 && got < (uint64_t)header_size) {
        /* sparse members leave holes; they read as zeros once the file is extended */
        got = (uint64_t)header_size;
    }
    if (got && ftruncate(r->fd, (off_t)(*offset + got)) != 0)
        return ckpt_fail(err, CKPT_ERR_WRITE, "%s: member %s: temporary file: %s", r->path, name, strerror(errno));
    *size = got;
    r->written = *offset + got;
    return CKPT_OK;
}

/*
 * Finds the current member's bytes in an uncompressed tar: they start where
 * the tar reader stopped consuming headers.  The first bytes libarchive reads
 * for the member must equal the archive's bytes there; a member that cannot
 * be placed so (sparse, no size, a disagreement) sets r->copy_instead.
 */
static int locate_member(struct reading *r, const char *name, struct archive_entry *e, uint64_t *offset,
                         uint64_t *size, ckpt_error *err)
{
    la_int64_t at = archive_filter_bytes(r->a, 0);
    if (at < 0 || !archive_entry_size_is_set(e) || archive_entry_size(e) < 0 || archive_entry_sparse_count(e) > 0) {
        r->copy_instead = true;
        return CKPT_OK;
    }
    uint64_t end;
    *offset = (uint64_t)at;
    *size = (uint64_t)archive_entry_size(e);
    if (!ckpt_add_u64(*offset, *size, &end) || end > r->archive_bytes)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: member %s claims %llu bytes, past the end of the archive", r->path,
                         name, (unsigned long long)*size);
    if (!*size)
        return CKPT_OK;
    const void *block;
    size_t n;
    la_int64_t block_at;
    if (archive_read_data_block(r->a, &block, &n, &block_at) != ARCHIVE_OK)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: member %s: %s", r->path, name, archive_error_string(r->a));
    uint8_t head[512];
    size_t want = n < sizeof head ? n : sizeof head;
    if (block_at != 0 || pread(r->archive_fd, head, want, (off_t)*offset) != (ssize_t)want ||
        memcmp(head, block, want) != 0)
        r->copy_instead = true;
    return CKPT_OK;
}

static int add_member(struct reading *r, char *name, bool is_dir, uint64_t offset, uint64_t size, ckpt_error *err)
{
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 32;
        struct fs_member *grown = realloc(r->members, cap * sizeof *grown);
        if (!grown) {
            free(name);
            return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", r->path);
        }
        r->members = grown;
        r->cap = cap;
    }
    r->members[r->count++] = (struct fs_member){name, offset, size, is_dir, false};
    return CKPT_OK;
}

static int read_entry(struct reading *r, struct archive_entry *e, ckpt_error *err)
{
    const char *raw = archive_entry_pathname(e);
    if (!raw)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: a member without a name", r->path);
    if (archive_entry_hardlink(e))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: member %s is a hard link (links are not followed)", r->path, raw);
    mode_t type = archive_entry_filetype(e);
    if (type == AE_IFLNK)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: member %s is a symbolic link (links are not followed)", r->path,
                         raw);
    if (type != AE_IFREG && type != AE_IFDIR)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: member %s is not a regular file or folder", r->path, raw);
    char *name = normalise(r->path, raw, err);
    if (!name)
        return err ? err->code : CKPT_ERR_FORMAT;
    if (!*name) {   /* "./" itself */
        free(name);
        return CKPT_OK;
    }
    uint64_t offset = 0, size = 0;
    if (type == AE_IFREG) {
        int rc = r->in_place
                     ? locate_member(r, name, e, &offset, &size, err)
                     : copy_member(r, name, archive_entry_size_is_set(e) ? archive_entry_size(e) : -1, &offset, &size,
                                   err);
        if (rc || r->copy_instead) {
            free(name);
            return rc;
        }
    }
    return add_member(r, name, type == AE_IFDIR, offset, size, err);
}

static int by_member_name(const void *a, const void *b)
{
    return strcmp(((const struct fs_member *)a)->name, ((const struct fs_member *)b)->name);
}

/* Sorts the table and refuses a name given twice (a folder may be named again by its files' paths only). */
static int check_unique(struct reading *r, ckpt_error *err)
{
    if (r->count)
        qsort(r->members, r->count, sizeof *r->members, by_member_name);
    for (size_t i = 1; i < r->count; i++)
        if (strcmp(r->members[i - 1].name, r->members[i].name) == 0)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: member %s appears twice", r->path, r->members[i].name);
    for (size_t i = 0; i < r->count; i++) {
        /* a file whose name is also a folder prefix of another member: "a" and "a/b" */
        if (r->members[i].is_dir)
            continue;
        size_t n = strlen(r->members[i].name);
        if (i + 1 < r->count && strncmp(r->members[i + 1].name, r->members[i].name, n) == 0 &&
            r->members[i + 1].name[n] == '/')
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: member %s is both a file and a folder", r->path,
                             r->members[i].name);
    }
    return CKPT_OK;
}

static int temp_file(const char *path, int *fd, ckpt_error *err)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    *fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (*fd >= 0)
        return CKPT_OK;
    char name[4096];
    if (snprintf(name, sizeof name, "%s/ckpt-archive-XXXXXX", dir) >= (int)sizeof name)
        return ckpt_fail(err, CKPT_ERR_ARG, "%s: TMPDIR too long", path);
    *fd = mkstemp(name);
    if (*fd < 0)
        return ckpt_fail(err, CKPT_ERR_WRITE, "%s: cannot create a temporary file in %s: %s", path, dir,
                         strerror(errno));
    unlink(name);
    return CKPT_OK;
}

/* Reads every member's header (and its bytes, unless in place); stops early when r->copy_instead is set. */
static int read_all(struct reading *r, bool try_in_place, ckpt_error *err)
{
    archive_read_support_filter_gzip(r->a);
    archive_read_support_filter_zstd(r->a);
    archive_read_support_format_tar(r->a);
    archive_read_support_format_gnutar(r->a);
    archive_read_support_format_zip(r->a);
    if (archive_read_open_filename(r->a, r->path, 1 << 16) != ARCHIVE_OK)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: %s", r->path, archive_error_string(r->a));
    for (;;) {
        struct archive_entry *e;
        int s = archive_read_next_header(r->a, &e);
        if (s == ARCHIVE_EOF)
            return CKPT_OK;
        if (s != ARCHIVE_OK)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: %s", r->path, archive_error_string(r->a));
        if (r->count == 0)   /* the format and filters are known once the first header is read */
            r->in_place = try_in_place && archive_filter_code(r->a, 0) == ARCHIVE_FILTER_NONE &&
                          (archive_format(r->a) & ARCHIVE_FORMAT_BASE_MASK) == ARCHIVE_FORMAT_TAR;
        int rc = read_entry(r, e, err);
        if (rc || r->copy_instead)
            return rc;
    }
}

static void drop_members(struct reading *r)
{
    for (size_t i = 0; i < r->count; i++)
        free(r->members[i].name);
    free(r->members);
    r->members = NULL;
    r->count = r->cap = 0;
}

/* Reads the archive in place where it can, else again copying every member. */
static int read_members(struct reading *r, ckpt_error *err)
{
    int rc = read_all(r, true, err);
    if (rc || !r->copy_instead)
        return rc;
    drop_members(r);
    archive_read_free(r->a);
    r->in_place = r->copy_instead = false;
    if (!(r->a = archive_read_new()))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", r->path);
    return read_all(r, false, err);
}

int archive_open_fs(const char *path, uint64_t max_bytes, struct ckpt_fs **out, ckpt_error *err)
{
    *out = NULL;
    struct reading r = {path, archive_read_new(), open(path, O_RDONLY | O_CLOEXEC), -1, 0, max_bytes, 0, false, false,
                        NULL, 0, 0};
    if (!r.a) {
        if (r.archive_fd >= 0)
            close(r.archive_fd);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    }
    off_t archive_size = r.archive_fd >= 0 ? lseek(r.archive_fd, 0, SEEK_END) : -1;
    r.archive_bytes = archive_size > 0 ? (uint64_t)archive_size : 0;
    int rc = r.archive_fd < 0 ? ckpt_fail(err, CKPT_ERR_READ, "%s: cannot open: %s", path, strerror(errno)) : CKPT_OK;
    if (!rc)
        rc = read_members(&r, err);
    if (!rc)
        rc = check_unique(&r, err);
    struct ckpt_fs *fs = rc ? NULL : calloc(1, sizeof *fs);
    if (!rc && (!fs || !(fs->root = strdup(path)) || (r.in_place && !(fs->backing = vfile_disk_new(path)))))
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    uint64_t mapped = r.in_place ? r.archive_bytes : r.written;
    if (!rc && mapped) {
        void *m = mmap(NULL, (size_t)mapped, PROT_READ, MAP_PRIVATE, r.in_place ? r.archive_fd : r.fd, 0);
        if (m == MAP_FAILED)
            rc = ckpt_fail(err, CKPT_ERR_READ, "%s: cannot map %llu bytes: %s", path, (unsigned long long)mapped,
                           strerror(errno));
        else
            fs->data = m;
    }
    archive_read_free(r.a);
    if (r.archive_fd >= 0)
        close(r.archive_fd);
    if (r.fd >= 0)
        close(r.fd);
    if (rc) {
        drop_members(&r);
        fs_free(fs);
        return rc;
    }
    fs->members = r.members;
    fs->count = r.count;
    fs->size = mapped;
    *out = fs;
    return CKPT_OK;
}

/* The one folder `dir` holds when it holds nothing else, or NULL. */
static char *only_folder(const struct ckpt_fs *fs, const char *dir)
{
    char **files;
    size_t count;
    if (fs_list_suffix(fs, dir, "", &files, &count, NULL) != CKPT_OK)
        return NULL;
    for (size_t i = 0; i < count; i++)
        free(files[i]);
    free(files);
    if (count)
        return NULL;
    const char *rel = dir + strlen(fs->root);
    size_t n = *rel == '/' ? strlen(rel + 1) : 0;
    const char *prefix = n ? rel + 1 : "";
    const char *found = NULL;
    size_t found_len = 0;
    for (size_t i = 0; i < fs->count; i++) {
        const char *name = fs->members[i].name;
        if (n && (strncmp(name, prefix, n) != 0 || name[n] != '/'))
            continue;
        const char *child = name + (n ? n + 1 : 0);
        size_t len = strcspn(child, "/");
        if (found && (len != found_len || strncmp(found, child, len) != 0))
            return NULL;
        found = child;
        found_len = len;
    }
    if (!found)
        return NULL;
    size_t size = strlen(dir) + found_len + 2;
    char *out = malloc(size);
    if (out)
        snprintf(out, size, "%s/%.*s", dir, (int)found_len, found);
    return out;
}

/* The one regular file `dir` holds when it holds nothing else, or NULL. */
static char *only_file(const struct ckpt_fs *fs, const char *dir)
{
    char **files = NULL, **folders = NULL;
    size_t file_count = 0, folder_count = 0;
    char *out = NULL;
    if (fs_list_suffix(fs, dir, "", &files, &file_count, NULL) == CKPT_OK &&
        fs_list_folders(fs, dir, &folders, &folder_count, NULL) == CKPT_OK && file_count == 1 && folder_count == 0) {
        out = files[0];
        files[0] = NULL;
    }
    for (size_t i = 0; i < file_count; i++)
        free(files[i]);
    for (size_t i = 0; i < folder_count; i++)
        free(folders[i]);
    free(files);
    free(folders);
    return out;
}

/* torch.save writes a zip whose top folder holds data.pkl (a bare data.pkl in hand-made ones): a file to read. */
static bool torch_zip(const struct ckpt_fs *fs)
{
    for (size_t i = 0; i < fs->count; i++) {
        const char *name = fs->members[i].name, *slash = strchr(name, '/');
        if (strcmp(slash ? slash + 1 : name, "data.pkl") == 0)
            return true;
    }
    return false;
}

int archive_find_checkpoint(const struct ckpt_fs *fs, char **inner, ckpt_error *err)
{
    *inner = NULL;
    if (!fs->count)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: the archive holds no files", fs->root);
    if (torch_zip(fs))
        return CKPT_OK;
    char *dir = strdup(fs->root);
    for (char *down; dir && (down = only_folder(fs, dir));) {
        const char *base = strrchr(down, '/') + 1;
        if (strncmp(base, "mp_rank_", 8) == 0 || strncmp(base, "tp_rank_", 8) == 0) {
            free(down);   /* a Megatron rank folder: its parent is the checkpoint */
            break;
        }
        free(dir);
        dir = down;
    }
    if (!dir)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", fs->root);
    if (fs_has(fs, dir, "pickle") && fs_has(fs, dir, "storages") && fs_has(fs, dir, "tensors")) {
        free(dir);
        return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: a torch.save tar of torch 0.3 or older, not read by libckpt",
                         fs->root);
    }
    /* NeMo 1: model_config.yaml beside model_weights.ckpt (one rank) or a model_weights/ torch_dist folder */
    static const char *const nemo_weights[] = {"model_weights.ckpt", "model_weights"};
    for (size_t i = 0; i < sizeof nemo_weights / sizeof nemo_weights[0]; i++) {
        size_t size = strlen(dir) + strlen(nemo_weights[i]) + 2;
        char *path = malloc(size);
        if (!path) {
            free(dir);
            return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", fs->root);
        }
        snprintf(path, size, "%s/%s", dir, nemo_weights[i]);
        if (fs_is_file(fs, path) || fs_is_dir(fs, path)) {
            free(dir);
            *inner = path;
            return CKPT_OK;
        }
        free(path);
    }
    *inner = only_file(fs, dir);   /* a tar of one model.pt is that file */
    if (*inner)
        free(dir);
    else
        *inner = dir;
    return CKPT_OK;
}
