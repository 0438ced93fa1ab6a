/*
 * bundle_check.c: `ckpt verify BUNDLE`, every byte of a bundle proven.
 *
 * Each volume is hashed whole against the XXH3-128 the table holds for it
 * (so a receiver knows which one to fetch again); then every frame is
 * decompressed and checked against its trailer on worker threads, while the
 * calling thread hashes the bytes in order into each tensor's and each
 * file's XXH3-128 (bundle_each_frame).  With `against`, each file is also
 * compared with the file of that name in the source folder, and a file
 * there that the bundle lacks is a failure.
 */
#include "bundle_check.h"

#include "formats/bundle/bundle.h"
#include "libckpt/common/clock.h"
#include "libckpt/common/error.h"
#include "libckpt/manifest/records.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

struct check {
    struct bundle *b;
    const struct bundle_index *ix;
    struct reporter *r;
    XXH3_state_t *file_hash, *segment_hash;
    bool file_lost, segment_lost;   /* a frame of the file (segment) being hashed failed */
};

static void hex(const uint8_t digest[16], char out[33])
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

static bool same_hash(XXH3_state_t *s, const uint8_t want[16])
{
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits_digest(s));
    return memcmp(c.digest, want, 16) == 0;
}

/* Each volume beside the index file, hashed whole. */
static void check_volumes(struct check *c)
{
    for (size_t v = 1; v < c->ix->volume_count && !atomic_load(&c->r->stop); v++) {
        const struct bundle_volume *vol = &c->ix->volumes[v];
        const char *path = bundle_volume_path(c->b, v);
        ckpt_finding f = {.check = CKPT_CHECK_FILE, .ok = 1, .file = vol->name};
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        XXH128_hash_t h;
        ckpt_error err;
        int rc = fd < 0 ? ckpt_fail(&err, CKPT_ERR_READ, "%s: cannot open: %s", path, strerror(errno))
                        : hash_file_range(fd, 0, vol->size, path, &h, &err);
        if (fd >= 0)
            close(fd);
        XXH128_canonical_t got;
        if (!rc)
            XXH128_canonicalFromHash(&got, h);
        char want[33];
        hex(vol->hash, want);
        f.ok = !rc && memcmp(got.digest, vol->hash, 16) == 0;
        if (rc)
            report_finding(c->r, f, "%s", err.message);
        else if (!f.ok)
            report_finding(c->r, f, "volume %s: its bytes differ from the XXH3-128 %s the bundle holds (damaged, or "
                           "from another bundle): fetch it again", vol->name, want);
        else
            report_finding(c->r, f, "volume %s: %llu bytes, XXH3-128 %s", vol->name, (unsigned long long)vol->size,
                           want);
        reporter_add_bytes(c->r, vol->size);
    }
}

/* The check of a segment or file whose bytes are all hashed. */
static void report_hash(struct check *c, ckpt_check check, const char *file, const char *tensor, bool lost,
                        XXH3_state_t *state, const uint8_t want[16], uint64_t bytes)
{
    ckpt_finding f = {.check = check, .file = file, .tensor = tensor};
    const char *what = tensor ? tensor : file;
    char w[33];
    hex(want, w);
    if (lost) {
        report_finding(c->r, f, "%.300s: lost, a frame of it is damaged (above)", what);
        return;
    }
    f.ok = same_hash(state, want);
    if (f.ok)
        report_finding(c->r, f, "%.300s: %llu bytes, XXH3-128 %s", what, (unsigned long long)bytes, w);
    else
        report_finding(c->r, f, "%.300s: its bytes differ from the XXH3-128 %s the bundle holds for them", what, w);
}

/* Hashes one frame's bytes into its tensor's and file's checksums, in order (bundle_each_frame). */
static int use(void *ctx, size_t item, const uint8_t *bytes, const ckpt_error *damage, ckpt_error *err)
{
    struct check *c = ctx;
    const struct bundle_frame *fr = &c->ix->frames[item];
    const struct bundle_segment *g = &c->ix->segments[fr->segment];
    const struct bundle_file *file = &c->ix->files[g->file];
    if (item == file->first_frame) {
        XXH3_128bits_reset(c->file_hash);
        c->file_lost = false;
    }
    if (item == g->first_frame) {
        XXH3_128bits_reset(c->segment_hash);
        c->segment_lost = false;
    }
    if (damage) {
        ckpt_finding f = {.check = g->kind == SEGMENT_TENSOR ? CKPT_CHECK_TENSOR : CKPT_CHECK_FILE,
                          .file = file->path, .tensor = g->name_count ? g->names[0] : NULL};
        report_finding(c->r, f, "%s", damage->message);
        c->file_lost = c->segment_lost = true;
    } else {
        XXH3_128bits_update(c->file_hash, bytes, fr->length);
        XXH3_128bits_update(c->segment_hash, bytes, fr->length);
    }
    if (item + 1 == g->first_frame + g->frame_count && g->kind == SEGMENT_TENSOR) {
        char storage[4200];   /* tensor data no tensor is made of (optimizer state): named by where it is */
        snprintf(storage, sizeof storage, "%s, bytes %llu+%llu (storage)", file->path, (unsigned long long)g->offset,
                 (unsigned long long)g->length);
        report_hash(c, CKPT_CHECK_TENSOR, file->path, g->name_count ? g->names[0] : storage, c->segment_lost,
                    c->segment_hash, g->hash, g->length);
    }
    if (item + 1 == file->first_frame + file->frame_count)
        report_hash(c, CKPT_CHECK_FILE, file->path, NULL, c->file_lost, c->file_hash, file->hash, file->size);
    reporter_add_bytes(c->r, fr->length);
    return atomic_load(&c->r->stop) ? ckpt_fail(err, CKPT_ERR_CANCELLED, "cancelled") : CKPT_OK;
}

/* Every frame decompressed and checked, every tensor and file hashed. */
static int check_frames(struct check *c, unsigned jobs, ckpt_error *err)
{
    int rc = bundle_each_frame(c->b, jobs, use, c, &c->r->stop, err);
    for (size_t i = 0; !rc && i < c->ix->file_count; i++)   /* empty files have no frame to report them */
        if (!c->ix->files[i].frame_count) {
            XXH3_128bits_reset(c->file_hash);
            report_hash(c, CKPT_CHECK_FILE, c->ix->files[i].path, NULL, false, c->file_hash, c->ix->files[i].hash, 0);
        }
    return rc == CKPT_ERR_CANCELLED ? CKPT_OK : rc;
}

static int by_path(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Files under `dir` (relative to the source), each looked up among the bundle's sorted paths. */
static void walk_source(struct check *c, const char *root, const char *rel, char **sorted, unsigned depth)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = depth < 64 ? opendir(dir) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char sub[4096], path[8200];
        struct stat st;
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        snprintf(path, sizeof path, "%s/%s", root, sub);
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            walk_source(c, root, sub, sorted, depth + 1);
            continue;
        }
        const char *key = sub;
        if (!bsearch(&key, sorted, c->ix->file_count, sizeof *sorted, by_path)) {
            ckpt_finding f = {.check = CKPT_CHECK_EXTRA_FILE, .file = sub};
            report_finding(c->r, f, "%s: in %s but not in the bundle", sub, root);
        }
    }
    if (d)
        closedir(d);
}

/* With `against`: the source holds the same files, with the same bytes. */
static void check_against(struct check *c, const char *src)
{
    struct stat st;
    bool one_file = c->ix->flags & BUNDLE_SOURCE_IS_FILE;
    for (size_t i = 0; i < c->ix->file_count && !atomic_load(&c->r->stop); i++) {
        const struct bundle_file *file = &c->ix->files[i];
        char path[8200];
        snprintf(path, sizeof path, one_file ? "%s" : "%s/%s", src, file->path);
        ckpt_finding f = {.check = CKPT_CHECK_FILE, .file = file->path};
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        XXH128_hash_t h;
        ckpt_error err;
        int rc = fd < 0 || fstat(fd, &st) != 0 ? ckpt_fail(&err, CKPT_ERR_READ, "%s: cannot open: %s", path, strerror(errno))
                 : (uint64_t)st.st_size != file->size
                     ? ckpt_fail(&err, CKPT_ERR_MISMATCH, "%s: %llu bytes, the bundle holds %llu", path,
                                 (unsigned long long)st.st_size, (unsigned long long)file->size)
                     : hash_file_range(fd, 0, file->size, path, &h, &err);
        if (fd >= 0)
            close(fd);
        XXH128_canonical_t got;
        if (!rc)
            XXH128_canonicalFromHash(&got, h);
        f.ok = !rc && memcmp(got.digest, file->hash, 16) == 0;
        if (rc)
            report_finding(c->r, f, "%s", err.message);
        else
            report_finding(c->r, f, f.ok ? "%s: the same bytes as the bundle's" : "%s: other bytes than the bundle's",
                           path);
        reporter_add_bytes(c->r, file->size);
    }
    char **sorted = one_file ? NULL : malloc(c->ix->file_count * sizeof *sorted);
    for (size_t i = 0; sorted && i < c->ix->file_count; i++)
        sorted[i] = c->ix->files[i].path;
    if (sorted) {
        qsort(sorted, c->ix->file_count, sizeof *sorted, by_path);
        walk_source(c, src, "", sorted, 0);
    }
    free(sorted);
}

int verify_bundle(const char *path, const ckpt_verify_options *opts, ckpt_finding_fn fn, void *payload,
                  ckpt_verify_summary *summary, ckpt_error *err)
{
    double start = now_seconds();
    struct reporter r;
    reporter_init(&r, fn, payload);
    r.progress = opts->progress;
    r.progress_payload = opts->progress_payload;
    struct check c = {NULL, NULL, &r, XXH3_createState(), XXH3_createState(), false, false};
    int rc = c.file_hash && c.segment_hash ? CKPT_OK : ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    if (!rc)
        rc = bundle_open(path, opts->open ? &opts->open->limits : NULL, &c.b, err);
    if (!rc) {
        c.ix = bundle_index_of(c.b);
        r.total_bytes = c.ix->data_bytes;
        for (size_t v = 1; v < c.ix->volume_count; v++)
            reporter_add_total(&r, c.ix->volumes[v].size);
        if (opts->against)
            reporter_add_total(&r, c.ix->data_bytes);
        check_volumes(&c);
        rc = check_frames(&c, opts->jobs, err);
    }
    if (!rc && opts->against && !atomic_load(&r.stop))
        check_against(&c, opts->against);
    r.summary.seconds = now_seconds() - start;
    if (summary)
        *summary = r.summary;
    if (!rc && r.cancelled)
        rc = ckpt_fail(err, CKPT_ERR_CANCELLED, "%s: verification cancelled", path);
    if (!rc && r.summary.failures)
        rc = ckpt_fail(err, CKPT_ERR_MISMATCH, "%s: %llu of %llu checks failed", path,
                       (unsigned long long)r.summary.failures, (unsigned long long)r.summary.checks);
    bundle_close(c.b);
    XXH3_freeState(c.file_hash);
    XXH3_freeState(c.segment_hash);
    reporter_free(&r);
    return rc;
}
