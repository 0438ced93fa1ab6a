/*
 * bundle_read.c: opening a bundle and reading its files through their
 * frames; see bundle.h.
 */
#include "bundle.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"
#include "libckpt/kernels/byte_planes.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

/* Frames are at most 16 MiB: no frame needs a window larger than this. */
#define WINDOW_LOG_MAX 25

struct cache_slot {
    size_t frame;
    uint8_t *data;
    uint64_t used;            /* when it was last read, in reads of the cache */
    unsigned readers;         /* threads copying out of it: not to be replaced meanwhile */
    bool valid;
};

struct bundle_cursor {
    struct bundle_cursor *next;   /* in the pool */
    ZSTD_DCtx *dctx;
    uint8_t *packed;              /* one frame as stored */
    uint8_t *planes;              /* ... decompressed, before its planes are joined */
    uint8_t *frame;               /* ... decoded, for a read that wants part of it (swapped into the cache) */
    int fd;                       /* volume `fd_volume`, kept open between reads */
    size_t fd_volume;
};

struct space_file {
    struct vfile base;
    struct bundle *bundle;
};

struct bundle {
    char **volume_paths;          /* volume 0 is the index file */
    struct bundle_index ix;
    uint64_t *base;               /* file i's first byte in the files laid end to end */
    struct space_file space;
    pthread_mutex_t lock;         /* the cache and the cursor pool */
    struct cache_slot *slots;
    size_t slot_count;
    uint64_t clock;
    struct bundle_cursor *pool;
    bool hashes_known;            /* the table's file and segment checksums are there (not a lost table) */
};

bool bundle_probe(const char *path)
{
    uint8_t head[BUNDLE_MAGIC_BYTES];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, head, sizeof head);
    close(fd);
    return n == (ssize_t)sizeof head && memcmp(head, BUNDLE_MAGIC, BUNDLE_MAGIC_BYTES) == 0;
}

static int read_exact(int fd, void *buf, size_t len, uint64_t offset)
{
    uint8_t *p = buf;
    for (size_t done = 0; done < len;) {
        ssize_t n = pread(fd, p + done, len - done, (off_t)(offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -1 : 1;
        done += (size_t)n;
    }
    return 0;
}

/* Reads `len` bytes at `offset` of an index file into a new buffer (its plan or table). */
static int read_part(int fd, uint64_t offset, uint64_t len, uint8_t **out, const char *path, const char *what,
                     ckpt_error *err)
{
    if (!(*out = malloc(len ? (size_t)len : 1)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory reading the bundle's %s", path, what);
    int r = read_exact(fd, *out, (size_t)len, offset);
    if (r) {
        free(*out);
        *out = NULL;
        return ckpt_fail(err, CKPT_ERR_READ, "%s: cannot read the bundle's %s: %s", path, what,
                         r < 0 ? strerror(errno) : "the file is truncated");
    }
    return CKPT_OK;
}

/* Names the files whose frames lie in volume `v`, for a message about losing it. */
static void volume_holds(const struct bundle_index *ix, size_t v, char *out, size_t cap)
{
    size_t named = 0, more = 0, last = SIZE_MAX;
    int n = snprintf(out, cap, "it holds ");
    for (size_t i = 0; i < ix->frame_count; i++) {
        size_t file = ix->segments[ix->frames[i].segment].file;
        if (ix->frames[i].volume != v || file == last)
            continue;
        last = file;
        if (named < 3 && n > 0 && (size_t)n < cap)
            n += snprintf(out + n, cap - (size_t)n, "%s%.100s", named ? ", " : "", ix->files[file].path);
        else
            more++;
        named++;
    }
    if (more && n > 0 && (size_t)n < cap)
        snprintf(out + n, cap - (size_t)n, " and %zu more", more);
    if (!named)
        snprintf(out, cap, "it holds no frames");
}

/* Checks volume v's file: there, of the size the table says, from this bundle. */
static int check_volume(struct bundle *b, size_t v, uint64_t set_id, uint64_t *start, uint64_t *end, ckpt_error *err)
{
    const struct bundle_volume *vol = &b->ix.volumes[v];
    const char *path = b->volume_paths[v];
    start[v] = BUNDLE_HEADER_BYTES;
    end[v] = vol->size;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    uint8_t head[BUNDLE_HEADER_BYTES];
    struct bundle_header h;
    char why[200];
    if (fd < 0)
        snprintf(why, sizeof why, "is missing (%s)", strerror(errno));
    else if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        snprintf(why, sizeof why, "is not a regular file");
    else if ((uint64_t)st.st_size != vol->size)
        snprintf(why, sizeof why, "has %llu bytes, not %llu (%s)", (unsigned long long)st.st_size,
                 (unsigned long long)vol->size, (uint64_t)st.st_size < vol->size ? "truncated" : "not this bundle's");
    else if (vol->size < BUNDLE_HEADER_BYTES || read_exact(fd, head, sizeof head, 0) != 0 ||
             bundle_header_parse(head, &h, path, NULL) != CKPT_OK)
        snprintf(why, sizeof why, "has no volume header");
    else if (h.kind != BUNDLE_KIND_VOLUME || h.set_id != set_id)
        snprintf(why, sizeof why, "is from another bundle");
    else
        why[0] = '\0';
    if (fd >= 0)
        close(fd);
    if (!why[0])
        return CKPT_OK;
    char holds[400];
    volume_holds(&b->ix, v, holds, sizeof holds);
    return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: volume %zu of the bundle %s: %s", path, v, why, holds);
}

int bundle_read_index(const char *path, const ckpt_limits *limits, bool part, struct bundle_index *ix,
                      struct bundle_header *header, uint64_t *frames_start, uint64_t *frames_end, ckpt_error *err)
{
    ckpt_limits defaults;
    if (!limits) {
        ckpt_limits_default(&defaults);
        limits = &defaults;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ckpt_fail(err, errno == ENOENT ? CKPT_ERR_NOT_FOUND : CKPT_ERR_READ, "%s: cannot open: %s", path,
                         strerror(errno));
    struct stat st;
    uint8_t head[BUNDLE_HEADER_BYTES], foot[BUNDLE_FOOTER_BYTES];
    struct bundle_header h;
    uint8_t *plan = NULL, *table = NULL;
    uint64_t size = 0, table_offset = 0, table_bytes, table_hash, plan_end = 0;
    int rc = fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)
                 ? ckpt_fail(err, CKPT_ERR_READ, "%s: not a regular file", path)
                 : CKPT_OK;
    if (!rc) {
        size = (uint64_t)st.st_size;
        if (size < BUNDLE_HEADER_BYTES + BUNDLE_FOOTER_BYTES || read_exact(fd, head, sizeof head, 0) != 0)
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: truncated: %llu bytes cannot hold a bundle", path,
                           (unsigned long long)size);
    }
    if (!rc)
        rc = bundle_header_parse(head, &h, path, err);
    if (!rc && h.kind == BUNDLE_KIND_VOLUME)
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: a volume of a bundle: open the bundle's index file instead", path);
    else if (!rc && h.kind == BUNDLE_KIND_PART && !part)
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: part %u of %u of a bundle: join the parts first (ckpt_pack_merge)",
                       path, h.part, h.parts);
    else if (!rc && h.kind != BUNDLE_KIND_PART && part)
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: not a part of a partitioned pack", path);
    if (!rc && h.plan_bytes > limits->max_header_bytes)
        rc = ckpt_fail(err, CKPT_ERR_LIMIT, "%s: a bundle plan of %llu bytes is over the header limit of %llu "
                       "(max_header_bytes)", path, (unsigned long long)h.plan_bytes,
                       (unsigned long long)limits->max_header_bytes);
    if (!rc && (!ckpt_add_u64(BUNDLE_HEADER_BYTES, h.plan_bytes, &plan_end) || plan_end > size - BUNDLE_FOOTER_BYTES))
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: truncated: the bundle's plan needs %llu bytes", path,
                       (unsigned long long)h.plan_bytes);
    if (!rc)
        rc = read_part(fd, BUNDLE_HEADER_BYTES, h.plan_bytes, &plan, path, "plan", err);
    if (!rc && XXH3_64bits(plan, (size_t)h.plan_bytes) != h.set_id)
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: the bundle's plan is damaged (its checksum differs)", path);
    if (!rc)
        rc = bundle_plan_parse(ix, plan, (size_t)h.plan_bytes, limits, path, err);
    if (!rc && read_exact(fd, foot, sizeof foot, size - BUNDLE_FOOTER_BYTES) != 0)
        rc = ckpt_fail(err, CKPT_ERR_READ, "%s: cannot read the bundle's footer", path);
    if (!rc)
        rc = bundle_footer_parse(foot, size, &table_offset, &table_bytes, &table_hash, path, err);
    if (!rc && table_offset < plan_end)
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: the footer places the table inside the plan", path);
    if (!rc && table_bytes > limits->max_header_bytes)
        rc = ckpt_fail(err, CKPT_ERR_LIMIT, "%s: a bundle table of %llu bytes is over the header limit of %llu "
                       "(max_header_bytes)", path, (unsigned long long)table_bytes,
                       (unsigned long long)limits->max_header_bytes);
    if (!rc)
        rc = read_part(fd, table_offset, table_bytes, &table, path, "table", err);
    if (!rc && XXH3_64bits(table, (size_t)table_bytes) != table_hash)
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: the bundle's table is damaged (its checksum differs)", path);
    if (!rc)
        rc = bundle_table_parse(ix, table, (size_t)table_bytes, part, path, err);
    free(plan);
    free(table);
    close(fd);
    if (!rc) {
        *frames_start = plan_end;
        *frames_end = table_offset;
        ix->volumes[0].size = size;
        *header = h;
    }
    return rc;
}

/* "dir/name" for a volume beside the index file at `path`. */
static char *beside(const char *path, const char *name)
{
    const char *slash = strrchr(path, '/');
    size_t dir = slash ? (size_t)(slash - path) + 1 : 0, n = strlen(name) + 1;
    char *out = malloc(dir + n);
    if (out) {
        memcpy(out, path, dir);
        memcpy(out + dir, name, n);
    }
    return out;
}

/* Each volume's frames' span, and that each volume is there and of this bundle. */
static int check_volumes(struct bundle *b, uint64_t frames_start, uint64_t frames_end, uint64_t set_id, ckpt_error *err)
{
    size_t n = b->ix.volume_count;
    uint64_t *start = calloc(n, sizeof *start), *end = calloc(n, sizeof *end);
    int rc = start && end ? CKPT_OK : ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", b->volume_paths[0]);
    if (!rc) {
        start[0] = frames_start;
        end[0] = frames_end;
    }
    for (size_t v = 1; v < n && !rc; v++)
        rc = check_volume(b, v, set_id, start, end, err);
    if (!rc)
        rc = bundle_check_places(&b->ix, start, end, b->volume_paths[0], err);
    free(start);
    free(end);
    return rc;
}

static int space_open(const struct vfile *f, void **cursor, ckpt_error *err)
{
    struct bundle *b = ((const struct space_file *)f)->bundle;
    return bundle_cursor_take(b, (struct bundle_cursor **)cursor, err);
}

static int space_read(const struct vfile *f, void *cursor, uint64_t offset, void *dst, uint64_t len, const char *file,
                      const char *doing, ckpt_error *err)
{
    struct bundle *b = ((const struct space_file *)f)->bundle;
    uint8_t *out = dst;
    while (len > 0) {
        /* the file holding `offset`: the last whose base is at or before it (not an empty one) */
        size_t lo = 0, hi = b->ix.file_count;
        while (hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            if (b->base[mid] <= offset)
                lo = mid;
            else
                hi = mid;
        }
        uint64_t at = offset - b->base[lo], size = b->ix.files[lo].size;
        if (at >= size)
            return ckpt_fail(err, CKPT_ERR_READ, "%s: a read past the end of the bundle's files while %s", file, doing);
        uint64_t n = len < size - at ? len : size - at;
        ckpt_error why;
        int rc = bundle_read(b, cursor, lo, at, out, n, &why);
        if (rc)
            return ckpt_fail(err, rc, "%s: %s, while %s", file, why.message, doing);
        out += n;
        offset += n;
        len -= n;
    }
    return CKPT_OK;
}

static void space_close(const struct vfile *f, void *cursor)
{
    bundle_cursor_give(((const struct space_file *)f)->bundle, cursor);
}

static const struct vfile_ops space_ops = {space_open, space_read, space_close, NULL};

int bundle_adopt(const char *path, struct bundle_index *ix, bool hashes_known, struct bundle **out, ckpt_error *err)
{
    *out = NULL;
    struct bundle *b = calloc(1, sizeof *b);
    if (!b) {
        bundle_index_free(ix);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    }
    pthread_mutex_init(&b->lock, NULL);
    b->space = (struct space_file){{&space_ops}, b};
    b->ix = *ix;
    memset(ix, 0, sizeof *ix);
    b->hashes_known = hashes_known;
    size_t files = b->ix.file_count, n = b->ix.volume_count;
    b->slot_count = (size_t)(BUNDLE_CACHE_BYTES / b->ix.frame_bytes);
    b->base = malloc((files ? files : 1) * sizeof *b->base);
    b->slots = calloc(b->slot_count ? b->slot_count : 1, sizeof *b->slots);
    b->volume_paths = calloc(n, sizeof *b->volume_paths);
    int rc = b->base && b->slots && b->volume_paths && (b->volume_paths[0] = strdup(path))
                 ? CKPT_OK
                 : ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    uint64_t at = 0;
    for (size_t i = 0; !rc && i < files; at += b->ix.files[i++].size)
        b->base[i] = at;   /* the plan checked that the sizes add up without overflow */
    for (size_t v = 1; !rc && v < n; v++)
        if (!(b->volume_paths[v] = beside(path, b->ix.volumes[v].name)))
            rc = ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    if (rc) {
        bundle_close(b);
        return rc;
    }
    *out = b;
    return CKPT_OK;
}

int bundle_open(const char *path, const ckpt_limits *limits, struct bundle **out, ckpt_error *err)
{
    *out = NULL;
    struct bundle_index ix = {0};
    uint64_t frames_start = 0, frames_end = 0;
    struct bundle_header h = {0};
    struct bundle *b = NULL;
    int rc = bundle_read_index(path, limits, false, &ix, &h, &frames_start, &frames_end, err);
    if (rc) {
        bundle_index_free(&ix);
        return rc;
    }
    if (!rc)
        rc = bundle_adopt(path, &ix, true, &b, err);
    if (!rc)
        rc = check_volumes(b, frames_start, frames_end, h.set_id, err);
    if (rc) {
        bundle_close(b);
        return rc;
    }
    *out = b;
    return CKPT_OK;
}

bool bundle_hashes_known(const struct bundle *b)
{
    return b->hashes_known;
}

static void cursor_free(struct bundle_cursor *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    ZSTD_freeDCtx(c->dctx);
    free(c->packed);
    free(c->planes);
    free(c->frame);
    free(c);
}

void bundle_close(struct bundle *b)
{
    if (!b)
        return;
    while (b->pool) {
        struct bundle_cursor *next = b->pool->next;
        cursor_free(b->pool);
        b->pool = next;
    }
    for (size_t i = 0; i < b->slot_count && b->slots; i++)
        free(b->slots[i].data);
    for (size_t v = 0; v < b->ix.volume_count && b->volume_paths; v++)
        free(b->volume_paths[v]);
    free(b->volume_paths);
    free(b->slots);
    free(b->base);
    bundle_index_free(&b->ix);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

const struct bundle_index *bundle_index_of(const struct bundle *b)
{
    return &b->ix;
}

const char *bundle_volume_path(const struct bundle *b, size_t v)
{
    return b->volume_paths[v];
}

const struct vfile *bundle_vfile(struct bundle *b)
{
    return &b->space.base;
}

uint64_t bundle_file_base(const struct bundle *b, size_t file)
{
    return b->base[file];
}

int bundle_cursor_take(struct bundle *b, struct bundle_cursor **out, ckpt_error *err)
{
    pthread_mutex_lock(&b->lock);
    struct bundle_cursor *c = b->pool;
    if (c)
        b->pool = c->next;
    pthread_mutex_unlock(&b->lock);
    if (c) {
        *out = c;
        return CKPT_OK;
    }
    size_t frame = (size_t)b->ix.frame_bytes;
    c = calloc(1, sizeof *c);
    if (c) {
        c->fd = -1;
        c->dctx = ZSTD_createDCtx();
        c->packed = malloc(ZSTD_compressBound(frame) + BUNDLE_TRAILER_BYTES);
        c->planes = malloc(frame);
        c->frame = malloc(frame);
    }
    if (!c || !c->dctx || !c->packed || !c->planes || !c->frame ||
        ZSTD_isError(ZSTD_DCtx_setParameter(c->dctx, ZSTD_d_windowLogMax, WINDOW_LOG_MAX))) {
        cursor_free(c);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory for a frame reader", b->volume_paths[0]);
    }
    *out = c;
    return CKPT_OK;
}

void bundle_cursor_give(struct bundle *b, struct bundle_cursor *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&b->lock);
    c->next = b->pool;
    b->pool = c;
    pthread_mutex_unlock(&b->lock);
}

static int damaged(struct bundle *b, size_t frame, const char *why, ckpt_error *err)
{
    char what[600];
    bundle_describe_frame(&b->ix, frame, what, sizeof what);
    const struct bundle_frame *fr = &b->ix.frames[frame];
    const char *where = b->volume_paths[fr->volume == BUNDLE_ABSENT ? 0 : fr->volume];
    return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: frame %zu (%s) is damaged: %s", where, frame, what, why);
}

/* Reads frame `frame`'s stored bytes into c->packed. */
static int read_packed(struct bundle *b, struct bundle_cursor *c, size_t frame, ckpt_error *err)
{
    const struct bundle_frame *fr = &b->ix.frames[frame];
    if (fr->volume == BUNDLE_ABSENT)
        return damaged(b, frame, "it is lost (the copy ends before it, and the table with it)", err);
    if (c->fd < 0 || c->fd_volume != fr->volume) {
        if (c->fd >= 0)
            close(c->fd);
        c->fd = open(b->volume_paths[fr->volume], O_RDONLY | O_CLOEXEC);
        c->fd_volume = fr->volume;
        if (c->fd < 0)
            return ckpt_fail(err, CKPT_ERR_READ, "%s: cannot reopen: %s", b->volume_paths[fr->volume], strerror(errno));
    }
    int r = read_exact(c->fd, c->packed, fr->csize, fr->offset);
    if (r) {
        char what[600];
        bundle_describe_frame(&b->ix, frame, what, sizeof what);
        return ckpt_fail(err, CKPT_ERR_READ, "%s: cannot read frame %zu (%s): %s", b->volume_paths[fr->volume], frame,
                         what, r < 0 ? strerror(errno) : "the volume is truncated");
    }
    return CKPT_OK;
}

int bundle_decode_frame(struct bundle *b, struct bundle_cursor *c, size_t frame, uint8_t *dst, ckpt_error *err)
{
    int rc = read_packed(b, c, frame, err);
    if (rc)
        return rc;
    const struct bundle_frame *fr = &b->ix.frames[frame];
    const struct bundle_segment *g = &b->ix.segments[fr->segment];
    size_t zsize = fr->csize - BUNDLE_TRAILER_BYTES;
    uint32_t file;
    uint64_t file_offset, hash;
    if (!bundle_trailer_parse(c->packed + zsize, &file, &file_offset, &hash))
        return damaged(b, frame, "its trailer is not there", err);
    if (file != g->file || file_offset != fr->file_offset)
        return damaged(b, frame, "it holds other bytes than the table says (frames swapped or moved)", err);
    unsigned long long declared = ZSTD_getFrameContentSize(c->packed, zsize);
    if (declared != fr->length) {
        char why[160];
        if (declared == ZSTD_CONTENTSIZE_UNKNOWN || declared == ZSTD_CONTENTSIZE_ERROR)
            snprintf(why, sizeof why, "its zstd frame declares no size (the plan gives it %u bytes)", fr->length);
        else
            snprintf(why, sizeof why, "its zstd frame declares %llu bytes, the plan gives it %u", declared, fr->length);
        return damaged(b, frame, why, err);
    }
    if (ZSTD_findFrameCompressedSize(c->packed, zsize) != zsize)
        return damaged(b, frame, "its zstd frame does not end where its trailer begins", err);
    uint8_t *out = g->width ? c->planes : dst;
    size_t got = ZSTD_decompressDCtx(c->dctx, out, fr->length, c->packed, zsize);
    if (ZSTD_isError(got))
        return damaged(b, frame, ZSTD_getErrorName(got), err);
    if (got != fr->length)
        return damaged(b, frame, "it inflates to another size than its header says", err);
    if (g->width)
        planes_join(c->planes, dst, fr->length / g->width, g->width);
    if (XXH3_64bits(dst, fr->length) != hash)
        return damaged(b, frame, "its bytes differ from its checksum", err);
    return CKPT_OK;
}

/* Copies bytes [skip, skip + n) of frame `frame` to dst, from the cache or decoded into it. */
static int read_cached(struct bundle *b, struct bundle_cursor *c, size_t frame, uint64_t skip, uint64_t n, uint8_t *dst,
                       ckpt_error *err)
{
    pthread_mutex_lock(&b->lock);
    struct cache_slot *hit = NULL, *victim = NULL;
    for (size_t i = 0; i < b->slot_count && !hit; i++) {
        struct cache_slot *s = &b->slots[i];
        if (s->valid && s->frame == frame)
            hit = s;
        else if (!s->readers && (!victim || !s->valid || (victim->valid && s->used < victim->used)))
            victim = s;
    }
    if (hit) {
        hit->readers++;
        hit->used = ++b->clock;
    }
    pthread_mutex_unlock(&b->lock);
    if (hit) {
        memcpy(dst, hit->data + skip, n);
        pthread_mutex_lock(&b->lock);
        hit->readers--;
        pthread_mutex_unlock(&b->lock);
        return CKPT_OK;
    }
    int rc = bundle_decode_frame(b, c, frame, c->frame, err);
    if (rc)
        return rc;
    memcpy(dst, c->frame + skip, n);
    pthread_mutex_lock(&b->lock);
    if (victim && !victim->readers) {   /* hand the decoded frame over, take the slot's buffer in exchange */
        uint8_t *spare = victim->data;
        victim->data = c->frame;
        victim->frame = frame;
        victim->valid = true;
        victim->used = ++b->clock;
        c->frame = spare;
    }
    pthread_mutex_unlock(&b->lock);
    if (!c->frame && !(c->frame = malloc((size_t)b->ix.frame_bytes)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", b->volume_paths[0]);
    return CKPT_OK;
}

int bundle_read(struct bundle *b, struct bundle_cursor *c, size_t file, uint64_t offset, void *dst, uint64_t len,
                ckpt_error *err)
{
    uint8_t *out = dst;
    size_t frame = len ? bundle_frame_at(&b->ix, file, offset) : 0;
    for (; len > 0; frame++) {
        const struct bundle_frame *fr = &b->ix.frames[frame];
        uint64_t skip = offset - fr->file_offset, n = fr->length - skip < len ? fr->length - skip : len;
        int rc = skip == 0 && n == fr->length ? bundle_decode_frame(b, c, frame, out, err)
                                              : read_cached(b, c, frame, skip, n, out, err);
        if (rc)
            return rc;
        out += n;
        offset += n;
        len -= n;
    }
    return CKPT_OK;
}
