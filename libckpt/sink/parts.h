/*
 * parts.h: partitioned conversion (`convert --part K/N`, `manifest merge`).
 *
 * Every process builds the same plan, so each can compute the same
 * assignment of output shards (and of source files to hash) to N parts
 * without talking to the others.  Part K writes its shards and a record
 * (part.json: plan digest, file and tensor checksums) into
 * DST.ckpt-parts/part-K-of-N, built under a locked temporary name and renamed
 * into place like any output folder (outdir.h), so a killed part leaves
 * nothing that merge accepts.  docs/scale-out.md describes the whole scheme.
 */
#ifndef CKPT_PARTS_H
#define CKPT_PARTS_H

#include "libckpt/io/outdir.h"
#include "libckpt/manifest/records.h"
#include "libckpt/plan/plan.h"

#include <jansson.h>

#define PARTS_SUFFIX ".ckpt-parts"
#define PART_RECORD_NAME "part.json"
#define PART_RECORD_VERSION 1
#define MAX_PARTS 65536

/* Which part (0-based) each shard and each source file belongs to; malloc'd arrays. */
struct part_map {
    unsigned *shard_part;   /* plan->shard_count */
    unsigned *file_part;    /* one per source file: which part hashes it */
    bool *file_mine;        /* one per source file: hashed by this part */
    unsigned part, parts;   /* 1-based part, count */
};

int part_map_build(const struct ckpt_plan *plan, unsigned part, unsigned parts, struct part_map *map, ckpt_error *err);
void part_map_free(struct part_map *map);

static inline bool part_has_shard(const struct part_map *map, size_t shard)
{
    return !map->parts || map->shard_part[shard] + 1 == map->part;
}

/*
 * Refuses a staging folder (or a part's folder in it) that another user could
 * change: not a real folder, owned by someone else, or group/world-writable.
 * Merge trusts what it finds there only once it is ours alone.
 */
int staging_check(const char *path, ckpt_error *err);

/* Starts part K's folder inside DST.ckpt-parts (created if needed, and ours alone); refuses when DST exists. */
int part_begin(const struct ckpt_plan *plan, struct outdir *out, ckpt_error *err);

/* Writes part.json: the plan digest, options, and the part's file and tensor records. */
int part_record_write(struct outdir *out, const struct ckpt_plan *plan, const struct part_map *map,
                      const struct file_records *source_files, const struct file_records *output_files,
                      const struct tensor_record *tensors, ckpt_error *err);

/* The staging folder DST.ckpt-parts and part K's folder in it (malloc'd). */
int staging_paths(const char *dst, unsigned part, unsigned parts, char **staging, char **folder, ckpt_error *err);

/* The plan digest as 32 hex digits: source files, options, every entry and shard, N and the version. */
int plan_digest(const struct ckpt_plan *plan, char hex[33], ckpt_error *err);

/* The options a part record holds, as JSON. */
json_t *options_json(const struct ckpt_plan *plan);

#endif
