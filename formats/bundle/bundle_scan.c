/*
 * bundle_scan.c: a bundle whose table is lost, opened by walking its frames;
 * see bundle_open_lost_table in bundle.h.
 *
 * The plan at the front says which frame comes next (frames are written in
 * plan order) and how many bytes it holds; each zstd frame says where it
 * ends, and the trailer after it which file and offset it holds.  So frames
 * can be found one after the other without the table, until the copy was
 * cut (or a frame is damaged: the walk cannot know where the next begins).
 */
#include "bundle.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

static bool read_at(int fd, void *buf, size_t len, uint64_t offset)
{
    for (size_t done = 0; done < len;) {
        ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, (off_t)(offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        done += (size_t)n;
    }
    return true;
}

/* Header and plan of the index file, which must be whole; the file's size in *size. */
static int read_front(int fd, const char *path, const ckpt_limits *limits, struct bundle_index *ix,
                      uint64_t *frames_start, uint64_t *size, ckpt_error *err)
{
    struct stat st;
    uint8_t head[BUNDLE_HEADER_BYTES];
    struct bundle_header h;
    if (fstat(fd, &st) != 0 || !read_at(fd, head, sizeof head, 0))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: truncated: no bundle header", path);
    *size = (uint64_t)st.st_size;
    int rc = bundle_header_parse(head, &h, path, err);
    if (!rc && h.kind != BUNDLE_KIND_BUNDLE)
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: not a bundle's index file", path);
    if (!rc && (h.plan_bytes > limits->max_header_bytes || h.plan_bytes > *size - BUNDLE_HEADER_BYTES))
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: truncated within the bundle's plan: nothing can be recovered", path);
    uint8_t *plan = rc ? NULL : malloc((size_t)h.plan_bytes);
    if (!rc && !plan)
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    if (!rc && (!read_at(fd, plan, (size_t)h.plan_bytes, BUNDLE_HEADER_BYTES) ||
                XXH3_64bits(plan, (size_t)h.plan_bytes) != h.set_id))
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: the bundle's plan is damaged: nothing can be recovered", path);
    if (!rc)
        rc = bundle_plan_parse(ix, plan, (size_t)h.plan_bytes, limits, path, err);
    free(plan);
    *frames_start = BUNDLE_HEADER_BYTES + h.plan_bytes;
    return rc;
}

/* Places the frames found one after the other from `at`; the others stay absent. */
static int walk(int fd, struct bundle_index *ix, uint64_t at, uint64_t size, const char *path, ckpt_error *err)
{
    size_t cap = ZSTD_compressBound((size_t)ix->frame_bytes) + BUNDLE_TRAILER_BYTES;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < ix->frame_count && at < size; i++) {
        struct bundle_frame *fr = &ix->frames[i];
        size_t want = ZSTD_compressBound(fr->length) + BUNDLE_TRAILER_BYTES;
        size_t n = size - at < want ? (size_t)(size - at) : want;
        if (!read_at(fd, buf, n, at))
            break;
        size_t zsize = ZSTD_findFrameCompressedSize(buf, n);
        uint32_t file;
        uint64_t file_offset, hash;
        if (ZSTD_isError(zsize) || zsize + BUNDLE_TRAILER_BYTES > n ||
            !bundle_trailer_parse(buf + zsize, &file, &file_offset, &hash) ||
            file != ix->segments[fr->segment].file || file_offset != fr->file_offset)
            break;
        fr->volume = 0;
        fr->offset = at;
        fr->csize = (uint32_t)(zsize + BUNDLE_TRAILER_BYTES);
        at += fr->csize;
    }
    free(buf);
    return CKPT_OK;
}

/* True when the footer places a table whose checksum holds. */
static bool table_intact(int fd, uint64_t size, const ckpt_limits *limits, const char *path)
{
    uint8_t foot[BUNDLE_FOOTER_BYTES];
    uint64_t offset, bytes, hash;
    if (size < BUNDLE_FOOTER_BYTES || !read_at(fd, foot, sizeof foot, size - BUNDLE_FOOTER_BYTES) ||
        bundle_footer_parse(foot, size, &offset, &bytes, &hash, path, NULL) != CKPT_OK ||
        bytes > limits->max_header_bytes)
        return false;
    uint8_t *table = malloc(bytes ? (size_t)bytes : 1);
    bool intact = table && read_at(fd, table, (size_t)bytes, offset) && XXH3_64bits(table, (size_t)bytes) == hash;
    free(table);
    return intact;
}

int bundle_open_lost_table(const char *path, const ckpt_limits *limits, struct bundle **out, ckpt_error *err)
{
    *out = NULL;
    ckpt_limits defaults;
    if (!limits) {
        ckpt_limits_default(&defaults);
        limits = &defaults;
    }
    struct bundle_index ix = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ckpt_fail(err, CKPT_ERR_READ, "%s: cannot open: %s", path, strerror(errno));
    uint64_t start = 0, size = 0;
    int rc = read_front(fd, path, limits, &ix, &start, &size, err);
    if (!rc && table_intact(fd, size, limits, path))
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: the bundle's table is whole: not a lost table", path);
    if (!rc && !(ix.volumes = calloc(1, sizeof *ix.volumes)))
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    if (!rc) {
        ix.volume_count = 1;
        ix.volumes[0].size = size;
        rc = walk(fd, &ix, start, size, path, err);
    }
    close(fd);
    if (rc) {
        bundle_index_free(&ix);
        return rc;
    }
    return bundle_adopt(path, &ix, false, out, err);
}
