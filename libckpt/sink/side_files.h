/*
 * side_files.h: everything an output folder holds besides shards and the
 * manifest: the shard index, config.json with torch_dtype updated, and the
 * source folder's small non-weight files (tokenizer, generation config).
 */
#ifndef CKPT_SIDE_FILES_H
#define CKPT_SIDE_FILES_H

#include "libckpt/io/outdir.h"
#include "libckpt/manifest/records.h"
#include "libckpt/plan/plan.h"

#define INDEX_NAME "model.safetensors.index.json"

/* Files larger than this are not copied: they are weights under a name we do not know. */
#define SIDE_FILE_MAX_BYTES ((uint64_t)64 << 20)

int write_side_files(struct outdir *o, const struct ckpt_plan *plan, struct file_records *files, ckpt_error *err);

#endif
