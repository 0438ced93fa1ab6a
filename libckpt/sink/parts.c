/* parts.c: partitioned conversion and the merge of its parts; see parts.h and docs/scale-out.md. */
#include "parts.h"

#include "libckpt/catalog/source.h"
#include "libckpt/common/error.h"
#include "libckpt/manifest/manifest.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Greedy balance in plan order: each item goes to the part with the fewest
 * bytes so far (the lowest-numbered on a tie).  Deterministic, so every
 * process computes the same answer.
 */
static void balance(const uint64_t *sizes, size_t n, unsigned parts, uint64_t *load, unsigned *out)
{
    memset(load, 0, parts * sizeof *load);
    for (size_t i = 0; i < n; i++) {
        unsigned best = 0;
        for (unsigned p = 1; p < parts; p++)
            if (load[p] < load[best])
                best = p;
        out[i] = best;
        load[best] += sizes[i];
    }
}

/* The file whose bytes file i's are: i itself, or for a borrowed slice the file it was cut from. */
static size_t owner_file(const struct ckpt_source *src, size_t i)
{
    const struct source_file *f = &src->files[i];
    for (size_t j = 0; f->borrowed && j < src->file_count; j++) {
        const struct source_file *g = &src->files[j];
        if (!g->borrowed && ((g->data && f->data >= g->data && f->data < g->data + g->size) ||
                             (f->backing && f->backing == g->backing)))
            return j;
    }
    return i;
}

/* Marks in `read` every source file a tensor's bytes come from: its own, its alias target's, its pieces'. */
static void mark_tensor_files(const struct ckpt_source *src, size_t index, const size_t *owner, bool *read)
{
    const struct tensor_entry *t = &src->tensors[index];
    if (t->alias_target != SIZE_MAX && t->alias_target < src->tensor_count)
        t = &src->tensors[t->alias_target];
    if (!t->part_count) {
        read[owner[t->view.file]] = true;
        return;
    }
    for (size_t k = 0; k < t->part_count; k++)
        read[owner[t->parts[k].entry.view.file]] = true;
}

/*
 * Which source files each part hashes for the manifest.  A part hashes every
 * file its shards read tensors from, so that its record commits to the bytes
 * it converted and merge can refuse parts made from different sources (two
 * parts that read one file must record the same hash); a file no tensor
 * reads is shared out by size.  Each file is still read about once in all:
 * only the files at the edge between two parts' shards are hashed twice.
 */
static int assign_files(const struct ckpt_plan *plan, struct part_map *map, const uint64_t *file_sizes,
                        uint64_t *load, ckpt_error *err)
{
    const struct ckpt_source *src = plan->src;
    size_t *owner = calloc(src->file_count + 1, sizeof *owner);
    bool *read_any = calloc(src->file_count + 1, sizeof *read_any);
    if (!owner || !read_any) {
        free(owner);
        free(read_any);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", plan->dst);
    }
    for (size_t i = 0; i < src->file_count; i++)
        owner[i] = owner_file(src, i);
    for (size_t s = 0; s < plan->shard_count; s++) {
        const struct plan_shard *sh = &plan->shards[s];
        bool mine = map->shard_part[s] + 1 == map->part;
        for (size_t i = sh->first_item; i < sh->first_item + sh->item_count; i++) {
            const struct plan_item *it = &plan->items[i];
            mark_tensor_files(src, it->source_index, owner, read_any);
            if (mine)
                mark_tensor_files(src, it->source_index, owner, map->file_mine);
            if (it->scale_index != SIZE_MAX) {
                mark_tensor_files(src, it->scale_index, owner, read_any);
                if (mine)
                    mark_tensor_files(src, it->scale_index, owner, map->file_mine);
            }
        }
    }
    balance(file_sizes, src->file_count, map->parts, load, map->file_part);
    for (size_t i = 0; i < src->file_count; i++)
        if (!read_any[i] && map->file_part[i] + 1 == map->part)
            map->file_mine[i] = true;
    free(owner);
    free(read_any);
    return CKPT_OK;
}

int part_map_build(const struct ckpt_plan *plan, unsigned part, unsigned parts, struct part_map *map, ckpt_error *err)
{
    const struct ckpt_source *src = plan->src;
    size_t n = plan->shard_count > src->file_count ? plan->shard_count : src->file_count;
    *map = (struct part_map){.part = part, .parts = parts};
    map->shard_part = calloc(plan->shard_count + 1, sizeof *map->shard_part);
    map->file_part = calloc(src->file_count + 1, sizeof *map->file_part);
    map->file_mine = calloc(src->file_count + 1, sizeof *map->file_mine);
    uint64_t *sizes = calloc(n + 1, sizeof *sizes), *load = calloc(parts, sizeof *load);
    int rc = (!map->shard_part || !map->file_part || !map->file_mine || !sizes || !load)
                 ? ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", plan->dst)
                 : CKPT_OK;
    if (!rc) {
        for (size_t s = 0; s < plan->shard_count; s++)
            sizes[s] = plan->shards[s].data_bytes;
        balance(sizes, plan->shard_count, parts, load, map->shard_part);
        for (size_t i = 0; i < src->file_count; i++)
            sizes[i] = src->files[i].borrowed ? 0 : src->files[i].size;
        rc = assign_files(plan, map, sizes, load, err);
    }
    free(sizes);
    free(load);
    if (rc)
        part_map_free(map);
    return rc;
}

void part_map_free(struct part_map *map)
{
    free(map->shard_part);
    free(map->file_part);
    free(map->file_mine);
    *map = (struct part_map){0};
}

/* ---- the plan digest: everything the parts must agree on ---- */

json_t *options_json(const struct ckpt_plan *plan)
{
    const ckpt_convert_options *o = &plan->opts;
    return json_pack("{s:s, s:s?, s:i, s:i, s:s?, s:s?, s:s?, s:I, s:i, s:i, s:i}", "target",
                     ckpt_target_name(o->target), "dtype",
                     o->dtype == CKPT_FLOAT_TARGET ? NULL : ckpt_float_type_name(o->dtype), "nz", (int)o->nz, "overflow", (int)o->overflow, "rules", o->rules, "rules_origin",
                     o->rules_origin, "rename", o->rename, "max_shard_bytes", (json_int_t)o->max_shard_bytes,
                     "deepspeed_weights", (int)plan->src->deepspeed_weights, "quant", (int)o->quant, "nz_fp32_c0",
                     (int)o->nz_fp32_c0);
}

static json_t *dims(const uint64_t *shape, uint32_t rank)
{
    json_t *a = json_array();
    for (uint32_t d = 0; d < rank && a; d++)
        json_array_append_new(a, json_integer((json_int_t)shape[d]));
    return a;
}

int plan_digest(const struct ckpt_plan *plan, char hex[33], ckpt_error *err)
{
    const struct ckpt_source *src = plan->src;
    json_t *files = json_array(), *shards = json_array(), *items = json_array(), *dropped = json_array();
    for (size_t i = 0; i < src->file_count && files; i++)
        json_array_append_new(files, json_pack("[s, I]", src->files[i].path, (json_int_t)src->files[i].size));
    for (size_t s = 0; s < plan->shard_count && shards; s++)
        json_array_append_new(shards, json_pack("[s, I]", plan->shards[s].name, (json_int_t)plan->shards[s].data_bytes));
    for (size_t i = 0; i < plan->item_count && items; i++) {
        const ckpt_plan_entry *e = &plan->items[i].pub;
        json_array_append_new(items, json_pack("[s, s, i, i, i, i, o, o, s?, s?, [I, I, I, I], i, I, I, [i, i, i, I]]",
                                               e->name, e->source_name, (int)e->source_dtype, (int)e->dtype,
                                               (int)e->layout, e->transposed, dims(e->shape, e->rank),
                                               dims(e->nd_shape, e->nd_rank), e->scale_name, e->alias_of,
                                               (json_int_t)e->rows.groups, (json_int_t)e->rows.group_rows,
                                               (json_int_t)e->rows.offset, (json_int_t)e->rows.count, (int)e->shard,
                                               (json_int_t)e->offset, (json_int_t)e->nbytes, (int)e->quant,
                                               (int)e->quant_role, (int)e->load_dtype, (json_int_t)e->nz_c0));
    }
    for (size_t i = 0; i < plan->dropped_count && dropped; i++)
        json_array_append_new(dropped, json_string(plan->dropped[i]));
    json_t *doc = json_pack("{s:s, s:I, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:[I, I]}", "tool",
                            "libckpt " CKPT_VERSION_STRING, "parts", (json_int_t)plan->opts.parts, "source",
                            ckpt_source_path(src), "format", ckpt_source_format(src), "files", files, "options",
                            options_json(plan), "shards", shards, "items", items, "dropped", dropped, "fp8_block",
                            (json_int_t)plan->fp8_block[0], (json_int_t)plan->fp8_block[1]);
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(doc);
    if (!text)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", plan->dst);
    hash_hex(XXH3_128bits(text, strlen(text)), hex);
    free(text);
    return CKPT_OK;
}

/* ---- one part ---- */

int staging_paths(const char *dst, unsigned part, unsigned parts, char **staging, char **folder, ckpt_error *err)
{
    size_t n = strlen(dst);
    while (n > 1 && dst[n - 1] == '/')
        n--;
    size_t size = n + sizeof PARTS_SUFFIX + 48;
    *staging = malloc(size);
    *folder = malloc(size);
    if (!*staging || !*folder) {
        free(*staging);
        free(*folder);
        *staging = *folder = NULL;
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", dst);
    }
    snprintf(*staging, size, "%.*s%s", (int)n, dst, PARTS_SUFFIX);
    snprintf(*folder, size, "%s/part-%u-of-%u", *staging, part, parts);
    return CKPT_OK;
}

int staging_check(const char *path, ckpt_error *err)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return ckpt_fail(err, CKPT_ERR_NOT_FOUND, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: not a folder (a symbolic link?); refusing to use it", path);
    if (st.st_uid != geteuid())
        return ckpt_fail(err, CKPT_ERR_FORMAT,
                         "%s: owned by another user (uid %u), who could swap its parts; refusing to use it", path,
                         (unsigned)st.st_uid);
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return ckpt_fail(err, CKPT_ERR_FORMAT,
                         "%s: writable by its group or others, who could swap its parts; refusing to use it "
                         "(chmod go-w)",
                         path);
    return CKPT_OK;
}

int part_begin(const struct ckpt_plan *plan, struct outdir *out, ckpt_error *err)
{
    unsigned part = plan->opts.part, parts = plan->opts.parts;
    if (parts > MAX_PARTS || part < 1 || part > parts)
        return ckpt_fail(err, CKPT_ERR_ARG, "part %u of %u: parts run from 1 to N, N at most %u", part, parts,
                         MAX_PARTS);
    struct stat st;
    if (!plan->opts.force && lstat(plan->dst, &st) == 0)
        return ckpt_fail(err, CKPT_ERR_EXISTS, "%s: already exists", plan->dst);
    char *staging, *folder;
    int rc = staging_paths(plan->dst, part, parts, &staging, &folder, err);
    if (rc)
        return rc;
    rc = mkdir_parents(staging, err);   /* DST's parents, as a single run makes them */
    if (!rc && mkdir(staging, 0755) != 0 && (errno != EEXIST || lstat(staging, &st) != 0 || !S_ISDIR(st.st_mode)))
        rc = ckpt_fail(err, CKPT_ERR_WRITE, "%s: cannot create the staging folder: %s", staging,
                       errno == EEXIST ? "exists and is not a folder" : strerror(errno));
    if (!rc)   /* one made by someone else, before us: a part written into it could be swapped before merge */
        rc = staging_check(staging, err);
    if (!rc)
        rc = outdir_begin(out, folder, plan->opts.force, err);
    free(staging);
    free(folder);
    return rc;
}

int part_record_write(struct outdir *out, const struct ckpt_plan *plan, const struct part_map *map,
                      const struct file_records *source_files, const struct file_records *output_files,
                      const struct tensor_record *tensors, ckpt_error *err)
{
    char digest[33];
    int rc = plan_digest(plan, digest, err);
    if (rc)
        return rc;
    json_t *list = json_array();
    for (size_t i = 0; i < plan->item_count && list; i++) {
        const ckpt_plan_entry *e = &plan->items[i].pub;
        if (e->alias_of || !part_has_shard(map, e->shard))
            continue;
        char hex[33];
        hash_hex(tensors[i].hash, hex);
        const ckpt_cast_counts *c = &tensors[i].counts;
        json_array_append_new(list, json_pack("{s:I, s:s, s:[I, I, I]}", "index", (json_int_t)i, "xxh3_128", hex,
                                              "counts", (json_int_t)c->overflowed, (json_int_t)c->subnormal,
                                              (json_int_t)c->flushed));
    }
    json_t *doc = json_pack("{s:i, s:s, s:i, s:i, s:s, s:s, s:o, s:o, s:o, s:o}", "part_record_version",
                            PART_RECORD_VERSION, "tool", "libckpt " CKPT_VERSION_STRING, "part", (int)map->part,
                            "parts", (int)map->parts, "plan_digest", digest, "source", ckpt_source_path(plan->src),
                            "options", options_json(plan), "source_files", files_json(source_files), "files",
                            files_json(output_files), "tensors", list);
    return outdir_write_json(out, PART_RECORD_NAME, doc, JSON_INDENT(1), NULL, NULL, err);
}
