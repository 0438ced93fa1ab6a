/*
 * pack_merge.c: ckpt_pack_merge, the parts of `pack --part K/N` joined into
 * one bundle.
 *
 * Every part holds the same plan (it is made from SRC, deterministically),
 * so each knows which files are its own (bundle_assign_parts) without
 * talking to the others, and packs their frames into its own volumes.  The
 * merge reads the N part files, checks that they are all there, of one plan
 * and one N, and that each holds exactly its own files, then writes the
 * bundle's index file naming every part's volumes: nothing is copied.  The
 * result is opened as a bundle before the part files are removed.
 */
#include "pack.h"

#include "formats/bundle/bundle.h"
#include "libckpt/common/clock.h"
#include "libckpt/common/error.h"
#include "libckpt/io/atomic_file.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

struct part {
    struct bundle_index ix;
    struct bundle_header h;
    char *path;
    uint8_t *plan;
    size_t plan_bytes;
};

/* The N of the first BUNDLE.part-K-of-N beside the bundle, or 0 when there is none. */
static unsigned count_parts(const char *bundle)
{
    char *dir = strdup(bundle), *slash = dir ? strrchr(dir, '/') : NULL;
    const char *base = slash ? slash + 1 : bundle;
    if (slash)
        *slash = '\0';
    DIR *d = dir ? opendir(slash ? (*dir ? dir : "/") : ".") : NULL;
    unsigned parts = 0;
    struct dirent *e;
    size_t n = strlen(base);
    while (d && !parts && (e = readdir(d)) != NULL) {
        unsigned k, count;
        int used = 0;
        if (strncmp(e->d_name, base, n) == 0 &&
            sscanf(e->d_name + n, ".part-%u-of-%u%n", &k, &count, &used) == 2 && !e->d_name[n + (size_t)used])
            parts = count;
    }
    if (d)
        closedir(d);
    free(dir);
    return parts;
}

/*
 * A part's file (its index, a volume) must be the running user's alone: the
 * merged index names the volumes as they are, so another user who could
 * write one could swap its frames (with their checksums) after the merge.
 */
static int check_owned(const char *path, ckpt_error *err)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return ckpt_fail(err, CKPT_ERR_NOT_FOUND, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: not a regular file (a link?); refusing to merge it", path);
    if (st.st_uid != geteuid())
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: owned by another user (uid %u); refusing to merge it", path,
                         (unsigned)st.st_uid);
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: writable by its group or others; refusing to merge it", path);
    return CKPT_OK;
}

/* Reads part K's index file and its plan bytes. */
static int read_part(struct part *p, const char *bundle, unsigned k, unsigned parts, ckpt_error *err)
{
    if (!(p->path = pack_index_path(bundle, k, parts)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    if (access(p->path, F_OK) != 0)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: part %u of %u is missing (not packed yet, or failed)", p->path, k,
                         parts);
    uint64_t start, end;
    int rc = check_owned(p->path, err);
    if (!rc)
        rc = bundle_read_index(p->path, NULL, true, &p->ix, &p->h, &start, &end, err);
    if (!rc && (p->h.part != k || p->h.parts != parts))
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: holds part %u of %u, not %u of %u", p->path, p->h.part, p->h.parts,
                       k, parts);
    if (!rc && start != end)
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: a part's index holds frames of its own", p->path);
    if (rc)
        return rc;
    /* the plan again, as bytes, for the merged index file (its checksum is the set id every part shares) */
    FILE *f = fopen(p->path, "rb");
    p->plan_bytes = (size_t)p->h.plan_bytes;
    p->plan = malloc(p->plan_bytes);
    if (!f || !p->plan || fseek(f, BUNDLE_HEADER_BYTES, SEEK_SET) != 0 || fread(p->plan, 1, p->plan_bytes, f) != p->plan_bytes ||
        XXH3_64bits(p->plan, p->plan_bytes) != p->h.set_id)
        rc = ckpt_fail(err, CKPT_ERR_READ, "%s: cannot read its plan again", p->path);
    if (f)
        fclose(f);
    return rc;
}

/* Moves part `p`'s volumes into `out`, its frames and hashes for the files it owns. */
static int take_part(struct bundle_index *out, struct part *p, const unsigned *owner, unsigned k, ckpt_error *err)
{
    size_t base = out->volume_count - 1;   /* the part's volume v becomes base + v */
    struct bundle_volume *grown = reallocarray(out->volumes, out->volume_count + p->ix.volume_count - 1, sizeof *grown);
    if (!grown)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    out->volumes = grown;
    for (size_t v = 1; v < p->ix.volume_count; v++) {
        out->volumes[out->volume_count++] = p->ix.volumes[v];
        p->ix.volumes[v].name = NULL;
    }
    for (size_t i = 0; i < out->file_count; i++) {
        const struct bundle_file *f = &p->ix.files[i];
        bool mine = owner[i] + 1 == k;
        for (size_t fr = f->first_frame; fr < f->first_frame + f->frame_count; fr++) {
            const struct bundle_frame *in = &p->ix.frames[fr];
            if ((in->volume != BUNDLE_ABSENT) != mine || (mine && in->volume == 0))
                return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: %s frames of %.200s, which part %u %s", p->path,
                                 mine ? "lacks" : "holds", f->path, owner[i] + 1, mine ? "is to pack" : "packs");
            if (mine) {
                out->frames[fr] = *in;
                out->frames[fr].volume = (uint32_t)(base + in->volume);
            }
        }
        if (!mine)
            continue;
        memcpy(out->files[i].hash, f->hash, 16);
        for (size_t s = f->first_segment; s < f->first_segment + f->segment_count; s++)
            memcpy(out->segments[s].hash, p->ix.segments[s].hash, 16);
    }
    return CKPT_OK;
}

static int write_bundle(const char *bundle, const struct bundle_index *ix, const struct part *first, int force,
                        uint64_t *written, ckpt_error *err)
{
    struct atomic_file f;
    int rc = force ? atomic_file_create_over(&f, bundle, err) : atomic_file_create(&f, bundle, err);
    if (rc)
        return rc;
    uint8_t head[BUNDLE_HEADER_BYTES], foot[BUNDLE_FOOTER_BYTES];
    struct bundle_header h = {BUNDLE_VERSION, BUNDLE_KIND_BUNDLE, first->h.set_id, 0, 0, 0, first->plan_bytes};
    bundle_header_encode(head, &h);
    struct bundle_bytes table = {0};
    rc = atomic_file_write(&f, head, sizeof head, err);
    if (!rc)
        rc = atomic_file_write(&f, first->plan, first->plan_bytes, err);
    if (!rc)
        rc = bundle_table_encode(ix, &table, err);
    if (!rc) {
        bundle_footer_encode(foot, f.written, table.len, XXH3_64bits(table.data, table.len));
        rc = atomic_file_write(&f, table.data, table.len, err);
    }
    if (!rc)
        rc = atomic_file_write(&f, foot, sizeof foot, err);
    *written = f.written;
    if (!rc)
        rc = atomic_file_commit(&f, err);
    atomic_file_discard(&f);
    bundle_bytes_free(&table);
    return rc;
}

int ckpt_pack_merge(const char *bundle, int force, ckpt_pack_stats *stats, ckpt_error *err)
{
    ckpt_error_clear(err);
    if (!bundle)
        return ckpt_fail(err, CKPT_ERR_ARG, "ckpt_pack_merge: NULL argument");
    double begun = now_seconds();
    if (!force && access(bundle, F_OK) == 0)
        return ckpt_fail(err, CKPT_ERR_EXISTS, "%s: already exists", bundle);
    unsigned parts = count_parts(bundle);
    if (!parts)
        return ckpt_fail(err, CKPT_ERR_NOT_FOUND, "%s: no parts (%s.part-K-of-N) to merge", bundle, bundle);
    if (parts > 65536)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: parts of %u: at most 65536", bundle, parts);
    struct part *p = calloc(parts, sizeof *p);
    unsigned *owner = NULL;
    struct bundle_index out = {0};
    int rc = p ? CKPT_OK : ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    for (unsigned k = 1; !rc && k <= parts; k++)
        rc = read_part(&p[k - 1], bundle, k, parts, err);
    for (unsigned k = 2; !rc && k <= parts; k++)
        if (p[k - 1].h.set_id != p[0].h.set_id)
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: made from another plan than %s (another source or options)",
                           p[k - 1].path, p[0].path);
    /* the merged index: the plan once more, every frame then placed from the part that owns its file */
    if (!rc)
        rc = bundle_plan_parse(&out, p[0].plan, p[0].plan_bytes, NULL, p[0].path, err);
    if (!rc && (!(owner = calloc(out.file_count, sizeof *owner)) || !(out.volumes = calloc(1, sizeof *out.volumes))))
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    if (!rc) {
        out.volume_count = 1;
        if (bundle_assign_parts(&out, parts, owner) != CKPT_OK)
            rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    }
    for (unsigned k = 1; !rc && k <= parts; k++)
        rc = take_part(&out, &p[k - 1], owner, k, err);
    uint64_t written = 0;
    if (!rc)
        rc = write_bundle(bundle, &out, &p[0], force, &written, err);
    bool committed = !rc;
    struct bundle *check = NULL;
    if (!rc)
        rc = bundle_open(bundle, NULL, &check, err);
    for (size_t v = 1; !rc && v < out.volume_count; v++)
        rc = check_owned(bundle_volume_path(check, v), err);
    if (rc && committed)
        unlink(bundle);   /* a part's volume is missing, damaged or not ours alone: no bundle */
    bundle_close(check);
    for (unsigned k = 1; !rc && k <= parts; k++)
        unlink(p[k - 1].path);
    if (!rc && stats) {
        *stats = (ckpt_pack_stats){out.file_count, 0, out.data_bytes, written, out.volume_count - 1,
                                   now_seconds() - begun};
        for (size_t v = 1; v < out.volume_count; v++)
            stats->bytes_out += out.volumes[v].size;
        for (size_t s = 0; s < out.segment_count; s++)
            if (out.segments[s].kind == SEGMENT_TENSOR)
                stats->tensor_bytes += out.segments[s].length;
    }
    for (unsigned k = 0; p && k < parts; k++) {
        bundle_index_free(&p[k].ix);
        free(p[k].path);
        free(p[k].plan);
    }
    free(p);
    free(owner);
    bundle_index_free(&out);
    return rc;
}
