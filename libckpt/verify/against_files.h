/*
 * against_files.h: verify --against accounts for every file of the folder:
 * each is what converting the source writes, byte for byte, and no file is
 * more or less (docs/verify.md, "Fidelity").  Tensor data is proven
 * separately (fidelity.c) at the offsets these headers give.
 */
#ifndef CKPT_AGAINST_FILES_H
#define CKPT_AGAINST_FILES_H

#include "report.h"

#include "libckpt/manifest/manifest_read.h"
#include "libckpt/plan/plan.h"

/*
 * Compares each shard's header and size with the plan's, the index,
 * config.json and copied side files with those convert writes (made in
 * memory), and the folder's and the
 * manifest's file lists with the files convert writes.  data_start[s] is
 * set to where shard s's tensor data begins in what convert writes.
 */
int against_files(const char *dst, const struct ckpt_plan *plan, const struct manifest *m, uint64_t *data_start,
                  struct reporter *r, ckpt_error *err);

#endif
