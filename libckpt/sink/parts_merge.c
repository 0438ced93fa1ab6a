/*
 * parts_merge.c: ckpt_parts_merge, joining the parts of a partitioned
 * conversion into the folder a single run would have written.
 *
 * Every check runs before anything is written: all N parts present once,
 * each made by the plan that the recorded source and options give now (same
 * digest), each holding exactly its shards and tensors, the parts agreeing on
 * the hash of every source file two of them read.  The staging folder and
 * each part's folder must be the running user's alone (parts.h,
 * staging_check).  The shards, each re-hashed against its record and owned
 * by that user, are then
 * hard-linked (not copied) into a locked temporary folder beside DST, the
 * side files and manifest written by the single-run code, and the folder
 * renamed into place; only then is the staging folder removed.
 */
#include "parts.h"

#include "libckpt/common/clock.h"
#include "libckpt/common/error.h"
#include "libckpt/manifest/manifest.h"
#include "side_files.h"
#include "libckpt/catalog/source.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PART_RECORD_MAX ((off_t)1 << 30)   /* about 150 bytes per tensor: far beyond any model */

struct part {
    char *folder;
    json_t *doc;
    unsigned part, parts;
};

struct merge {
    const char *dst;
    char *staging;
    struct part *parts;      /* sorted by part number once all are read */
    size_t count, cap;
    ckpt_source *src;
    ckpt_plan *plan;
    struct part_map map;
    struct file_records source_files, output_files;
    struct tensor_record *tensors;
};

static int load_part(struct merge *m, const char *name, ckpt_error *err)
{
    unsigned k, n;
    int used = 0;
    char canonical[64];
    if (sscanf(name, "part-%u-of-%u%n", &k, &n, &used) != 2 || name[used] ||
        snprintf(canonical, sizeof canonical, "part-%u-of-%u", k, n) >= (int)sizeof canonical ||
        strcmp(canonical, name) != 0)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s/%s: not a part folder (part-K-of-N); remove it", m->staging, name);
    if (m->count == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 16;
        struct part *grown = cap <= MAX_PARTS * 2 ? realloc(m->parts, cap * sizeof *grown) : NULL;
        if (!grown)
            return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: too many part folders", m->staging);
        m->parts = grown;
        m->cap = cap;
    }
    struct part *p = &m->parts[m->count];
    *p = (struct part){NULL, NULL, k, n};
    size_t len = strlen(m->staging) + strlen(name) + sizeof PART_RECORD_NAME + 2;
    if (!(p->folder = malloc(len)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    m->count++;
    snprintf(p->folder, len, "%s/%s", m->staging, name);
    int rc = staging_check(p->folder, err);
    if (rc)
        return rc;
    snprintf(p->folder, len, "%s/%s/" PART_RECORD_NAME, m->staging, name);
    struct stat st;
    if (lstat(p->folder, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > PART_RECORD_MAX)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: missing or not a plain file of at most 1 GiB", p->folder);
    json_error_t jerr;
    p->doc = json_load_file(p->folder, JSON_REJECT_DUPLICATES, &jerr);
    json_int_t version = json_integer_value(json_object_get(p->doc, "part_record_version"));
    json_int_t rk = json_integer_value(json_object_get(p->doc, "part")),
               rn = json_integer_value(json_object_get(p->doc, "parts"));
    if (!p->doc || version != PART_RECORD_VERSION || rk != (json_int_t)k || rn != (json_int_t)n ||
        !json_is_string(json_object_get(p->doc, "plan_digest")))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: not a part record of part %u of %u%s%s", p->folder, k, n,
                         p->doc ? "" : ": ", p->doc ? "" : jerr.text);
    p->folder[len - sizeof PART_RECORD_NAME - 1] = '\0';   /* keep the folder */
    return CKPT_OK;
}

static int by_part(const void *a, const void *b)
{
    const struct part *x = a, *y = b;
    return x->part < y->part ? -1 : x->part > y->part;
}

/* Reads every finished part; refuses missing, duplicated or mixed partitions. */
static int load_parts(struct merge *m, ckpt_error *err)
{
    char *unused;
    int rc = staging_paths(m->dst, 0, 0, &m->staging, &unused, err);
    free(unused);
    if (rc)
        return rc;
    if ((rc = staging_check(m->staging, err)) != CKPT_OK)
        return rc;
    DIR *d = opendir(m->staging);
    if (!d)
        return ckpt_fail(err, CKPT_ERR_NOT_FOUND, "%s: cannot open the staging folder of a partitioned conversion: %s",
                         m->staging, strerror(errno));
    struct dirent *e;
    while (!rc && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')   /* temporary folders of parts still running, or killed */
            rc = load_part(m, e->d_name, err);
    closedir(d);
    if (rc)
        return rc;
    if (!m->count)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: no finished part", m->staging);
    qsort(m->parts, m->count, sizeof *m->parts, by_part);
    unsigned n = m->parts[0].parts;
    for (size_t i = 0; i < m->count; i++) {
        const struct part *p = &m->parts[i];
        if (p->parts != n)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: parts of different partitions (part-%u-of-%u, part-%u-of-%u)",
                             m->staging, m->parts[0].part, n, p->part, p->parts);
        if (i && p->part == m->parts[i - 1].part)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: part %u of %u is there twice", m->staging, p->part, n);
    }
    for (unsigned k = 1; k <= n; k++)
        if (k > m->count || m->parts[k - 1].part != k)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: part %u of %u is missing (not run, still running, or failed)",
                             m->staging, k, n);
    return CKPT_OK;
}

/* Reopens the source and rebuilds the plan from part 1's record, then checks every part's digest. */
static int rebuild_plan(struct merge *m, ckpt_error *err)
{
    json_t *doc = m->parts[0].doc, *o = json_object_get(doc, "options");
    const char *source = json_string_value(json_object_get(doc, "source"));
    ckpt_open_options open;
    ckpt_open_options_default(&open);
    ckpt_convert_options opts;
    ckpt_convert_options_default(&opts);
    json_int_t shard_bytes = 0, nz = 0, overflow = 0, ds = 0, quant = 0, c0 = 0;
    const char *target = NULL;
    json_t *dtype = NULL, *rules = NULL, *origin = NULL, *rename = NULL;   /* strings or null */
    if (!source || json_unpack(o, "{s:s, s:o, s:I, s:I, s:o, s:o, s:o, s:I, s:I, s:I, s:I}", "target", &target, "dtype",
                               &dtype, "nz", &nz, "overflow", &overflow, "rules", &rules, "rules_origin", &origin,
                               "rename", &rename, "max_shard_bytes", &shard_bytes, "deepspeed_weights", &ds, "quant",
                               &quant, "nz_fp32_c0", &c0) != 0 ||
        shard_bytes <= 0 || nz < 0 || nz > CKPT_NZ_NONE || overflow < 0 || overflow > CKPT_OVERFLOW_ERROR || ds < 0 ||
        ds > 16 || quant < CKPT_QUANT_NONE || quant > CKPT_QUANT_W8A16 || (c0 != 0 && c0 != 8 && c0 != 16) ||
        (opts.target = ckpt_target_from_name(target)) == CKPT_TARGET_NONE ||
        (json_is_string(dtype) && ckpt_float_type_parse(json_string_value(dtype), &opts.dtype) != CKPT_OK))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: the part record's source or options are malformed",
                         m->parts[0].folder);
    open.deepspeed_weights = (ckpt_deepspeed_weights)ds;
    ckpt_open_options_for_rename(&open, json_string_value(rename));
    opts.nz = (ckpt_nz_mode)nz;
    opts.overflow = (ckpt_overflow)overflow;
    opts.rules = json_string_value(rules);
    opts.rules_origin = json_string_value(origin);
    opts.rename = json_string_value(rename);
    opts.max_shard_bytes = (uint64_t)shard_bytes;
    opts.quant = (ckpt_quant)quant;
    opts.nz_fp32_c0 = (unsigned)c0;
    opts.parts = m->parts[0].parts;
    int rc = ckpt_source_open_ext(&m->src, source, &open, err);
    if (!rc)
        rc = ckpt_plan_build(&m->plan, m->src, m->dst, &opts, err);
    char digest[33];
    if (!rc)
        rc = plan_digest(m->plan, digest, err);
    for (size_t i = 0; i < m->count && !rc; i++)
        if (strcmp(json_string_value(json_object_get(m->parts[i].doc, "plan_digest")), digest) != 0)
            rc = ckpt_fail(err, CKPT_ERR_FORMAT,
                           "%s: made from another plan than part 1 (the source, options or ckpt version differ); "
                           "rerun it",
                           m->parts[i].folder);
    if (!rc)
        rc = part_map_build(m->plan, 0, opts.parts, &m->map, err);
    return rc;
}

/* Appends the next record of `list` (cursor *at) to `out`, checking that it is `name`. */
static int take_record(json_t *list, size_t *at, const char *name, const char *folder, struct file_records *out,
                       ckpt_error *err)
{
    const char *path = NULL, *hex = NULL;
    json_int_t size = -1;
    XXH128_hash_t h;
    if (json_unpack(json_array_get(list, (*at)++), "{s:s, s:I, s:s}", "path", &path, "size", &size, "xxh3_128",
                    &hex) != 0 ||
        strcmp(path, name) != 0 || size < 0 || !hex_hash(hex, &h))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: the part record does not list %s where the plan puts it", folder,
                         name);
    return file_records_add(out, name, (uint64_t)size, h, err);
}

/*
 * The source file records, in the source's order.  Each part hashed the
 * files its shards read (parts.c, assign_files): two parts that read one
 * file must have seen the same bytes, or they were made from different
 * sources (same names and sizes, other contents) and must not be joined.
 */
static int gather_source_records(struct merge *m, ckpt_error *err)
{
    const struct ckpt_source *src = m->src;
    struct file_record *recs = calloc(src->file_count + 1, sizeof *recs);
    unsigned *by = calloc(src->file_count + 1, sizeof *by);   /* which part recorded it first, plus one */
    json_t *index = json_object();
    int rc = recs && by && index ? CKPT_OK : ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < src->file_count && !rc; i++)
        if (!src->files[i].borrowed && json_object_set_new(index, src->files[i].path, json_integer((json_int_t)i)))
            rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    for (size_t p = 0; p < m->count && !rc; p++) {
        json_t *list = json_object_get(m->parts[p].doc, "source_files"), *e;
        size_t k;
        if (!json_is_array(list))
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: the part record has no source_files", m->parts[p].folder);
        json_array_foreach(list, k, e) {
            const char *path = NULL, *hex = NULL;
            json_int_t size = -1;
            XXH128_hash_t h;
            json_t *at = NULL;
            if (rc || json_unpack(e, "{s:s, s:I, s:s}", "path", &path, "size", &size, "xxh3_128", &hex) != 0 ||
                size < 0 || !hex_hash(hex, &h) || !(at = json_object_get(index, path))) {
                if (!rc)
                    rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: source_files[%zu] is malformed or not a file of %s",
                                   m->parts[p].folder, k, ckpt_source_path(src));
                break;
            }
            size_t i = (size_t)json_integer_value(at);
            if (!by[i]) {
                recs[i] = (struct file_record){src->files[i].path, (uint64_t)size, h};
                by[i] = (unsigned)p + 1;
            } else if (recs[i].size != (uint64_t)size || !XXH128_isEqual(recs[i].hash, h)) {
                rc = ckpt_fail(err, CKPT_ERR_FORMAT,
                               "%s and %s were made from different sources: they read other bytes of %s; rerun them "
                               "from one source",
                               m->parts[by[i] - 1].folder, m->parts[p].folder, src->files[i].path);
                break;
            }
        }
    }
    for (size_t i = 0; i < src->file_count && !rc; i++) {
        if (src->files[i].borrowed)
            continue;
        if (!by[i])
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: no part record holds the hash of %s", m->staging,
                           src->files[i].path);
        else if (recs[i].size != src->files[i].size)
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: %s recorded %llu bytes of %s, which has %llu now",
                           m->staging, m->parts[by[i] - 1].folder, (unsigned long long)recs[i].size,
                           src->files[i].path, (unsigned long long)src->files[i].size);
    }
    /*
     * Then SRC as it is now, hashed once more (the manifest's record of it):
     * parts that read disjoint files cannot be compared with each other, only
     * with one reference, and a part made from bytes SRC no longer holds is
     * refused too.
     */
    atomic_int never = 0;   /* a named object: clang refuses a compound literal of atomic type */
    if (!rc)
        rc = hash_source_files(src, NULL, &m->source_files, &never, err);
    for (size_t i = 0, k = 0; i < src->file_count && !rc; i++) {
        if (src->files[i].borrowed)
            continue;
        const struct file_record *now = &m->source_files.items[k++];
        if (!XXH128_isEqual(now->hash, recs[i].hash))
            rc = ckpt_fail(err, CKPT_ERR_FORMAT,
                           "%s read other bytes of %s than it holds now (SRC changed, or the parts were made from "
                           "different sources); rerun them from one source",
                           m->parts[by[i] - 1].folder, src->files[i].path);
    }
    json_decref(index);
    free(recs);
    free(by);
    return rc;
}

/* Collects, in plan order, the source file and tensor records the parts made. */
static int gather_records(struct merge *m, ckpt_error *err)
{
    const struct ckpt_plan *plan = m->plan;
    bool *seen = calloc(plan->item_count + 1, sizeof *seen);
    m->tensors = calloc(plan->item_count + 1, sizeof *m->tensors);
    int rc = (!seen || !m->tensors) ? ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory") : CKPT_OK;
    if (!rc)
        rc = gather_source_records(m, err);
    for (size_t p = 0; p < m->count && !rc; p++) {
        json_t *list = json_object_get(m->parts[p].doc, "tensors"), *t;
        size_t k;
        json_array_foreach(list, k, t) {
            json_int_t index = -1, c[3] = {-1, -1, -1};
            const char *hex = NULL;
            XXH128_hash_t h;
            size_t i = 0;
            bool ok = json_unpack(t, "{s:I, s:s, s:[I, I, I]}", "index", &index, "xxh3_128", &hex, "counts", &c[0],
                                  &c[1], &c[2]) == 0 &&
                      index >= 0 && (uint64_t)index < plan->item_count && c[0] >= 0 && c[1] >= 0 && c[2] >= 0 &&
                      hex_hash(hex, &h);
            if (ok) {
                i = (size_t)index;
                ok = !seen[i] && !plan->items[i].pub.alias_of && m->map.shard_part[plan->items[i].pub.shard] == p;
            }
            if (!ok) {
                rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensors[%zu] is malformed or not one of this part's",
                               m->parts[p].folder, k);
                break;
            }
            seen[i] = true;
            m->tensors[i] = (struct tensor_record){h, {(uint64_t)c[0], (uint64_t)c[1], (uint64_t)c[2]}};
        }
    }
    for (size_t i = 0; i < plan->item_count && !rc; i++)
        if (!plan->items[i].pub.alias_of && !seen[i])
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s is in no part record",
                           m->parts[m->map.shard_part[plan->items[i].pub.shard]].folder, plan->items[i].pub.name);
    free(seen);
    return rc;
}

/*
 * Checks one part shard before it joins DST: a regular file of ours that no
 * one else may write, the size and XXH3-128 its part recorded (re-hashed: a
 * record says what was written, the bytes may have changed since), then
 * hard-links it and checks that the name now in DST is that same file.
 */
static int link_shard(const char *from, const char *to, const struct file_record *want, const char *dst,
                      ckpt_error *err)
{
    int fd = open(from, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: missing, or not a plain file: %s", from, strerror(errno));
    struct stat st, linked;
    XXH128_hash_t h;
    int rc = fstat(fd, &st) != 0 ? ckpt_fail(err, CKPT_ERR_READ, "%s: %s", from, strerror(errno)) : CKPT_OK;
    if (!rc && (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != want->size))
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: not a plain file of the size its part recorded", from);
    if (!rc && st.st_uid != geteuid())
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: owned by another user (uid %u); refusing to link it into %s", from,
                       (unsigned)st.st_uid, dst);
    if (!rc && (st.st_mode & (S_IWGRP | S_IWOTH)))
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: writable by its group or others; refusing to link it into %s", from,
                       dst);
    if (!rc)
        rc = hash_file_range(fd, 0, want->size, from, &h, err);
    if (!rc && !XXH128_isEqual(h, want->hash))
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: its bytes are not those its part recorded (changed after the part "
                       "finished); rerun that part", from);
    if (!rc && link(from, to) != 0)
        rc = ckpt_fail(err, CKPT_ERR_WRITE, "%s: cannot link into %s: %s", from, dst, strerror(errno));
    if (!rc && (lstat(to, &linked) != 0 || linked.st_ino != st.st_ino || linked.st_dev != st.st_dev))
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: replaced while it was checked; rerun the merge", from);
    close(fd);
    return rc;
}

/* Links every shard into the temporary folder, in plan order, recording it as the part did. */
static int link_shards(struct merge *m, struct outdir *out, ckpt_error *err)
{
    size_t *at = calloc(m->count, sizeof *at);
    int rc = at ? CKPT_OK : ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    for (size_t s = 0; s < m->plan->shard_count && !rc; s++) {
        unsigned p = m->map.shard_part[s];
        const char *name = m->plan->shards[s].name;
        rc = take_record(json_object_get(m->parts[p].doc, "files"), &at[p], name, m->parts[p].folder,
                         &m->output_files, err);
        size_t len = strlen(m->parts[p].folder) + strlen(name) + 2;
        char *from = rc ? NULL : malloc(len), *to = rc ? NULL : outdir_path(out, name);
        if (!rc && (!from || !to))
            rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
        if (!rc) {
            snprintf(from, len, "%s/%s", m->parts[p].folder, name);
            rc = link_shard(from, to, &m->output_files.items[m->output_files.count - 1], m->dst, err);
        }
        free(from);
        free(to);
    }
    free(at);
    return rc;
}

int ckpt_parts_merge(const char *dst, int force, ckpt_convert_stats *stats, ckpt_error *err)
{
    ckpt_error_clear(err);
    if (!dst)
        return ckpt_fail(err, CKPT_ERR_ARG, "ckpt_parts_merge: no destination");
    double start = now_seconds();
    struct merge m = {.dst = dst};
    struct outdir out = {.lock_fd = -1};
    int rc = load_parts(&m, err);
    if (!rc)
        rc = rebuild_plan(&m, err);
    if (!rc)
        rc = gather_records(&m, err);
    if (!rc)
        rc = outdir_check_spares(dst, ckpt_source_path(m.src), err);
    if (!rc)
        rc = outdir_begin(&out, dst, force, err);
    if (!rc)
        rc = link_shards(&m, &out, err);
    if (!rc)
        rc = write_side_files(&out, m.plan, &m.output_files, err);
    if (!rc)
        rc = manifest_write(&out, m.plan, &m.source_files, &m.output_files, m.tensors, 0, err);
    if (!rc)
        rc = outdir_commit(&out, err);
    outdir_end(&out);
    if (!rc)
        remove_tree(m.staging);   /* DST is complete; a leftover staging folder is only litter */
    if (!rc && stats) {
        *stats = (ckpt_convert_stats){0, m.plan->bytes_in, m.plan->bytes_out, now_seconds() - start, {0, 0, 0}};
        for (size_t i = 0; i < m.plan->item_count; i++) {
            if (m.plan->items[i].pub.alias_of)
                continue;
            stats->tensors++;
            stats->counts.overflowed += m.tensors[i].counts.overflowed;
            stats->counts.subnormal += m.tensors[i].counts.subnormal;
            stats->counts.flushed += m.tensors[i].counts.flushed;
        }
    }
    for (size_t i = 0; i < m.count; i++) {
        free(m.parts[i].folder);
        json_decref(m.parts[i].doc);
    }
    free(m.parts);
    free(m.staging);
    part_map_free(&m.map);
    file_records_free(&m.source_files);
    file_records_free(&m.output_files);
    free(m.tensors);
    ckpt_plan_free(m.plan);
    ckpt_source_free(m.src);
    return rc;
}
