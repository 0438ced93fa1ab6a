/*
 * folder_rules.h: what plain `verify` holds a converted folder to beyond
 * its manifest's hashes, which whoever edits the folder can rewrite too
 * (docs/verify.md, "Integrity"): each shard obeys every rule a source
 * shard must, and the index maps exactly the manifest's stored tensors.
 */
#ifndef CKPT_FOLDER_RULES_H
#define CKPT_FOLDER_RULES_H

#include "report.h"

#include "libckpt/manifest/manifest_read.h"

/* Opens DIR/NAME as a source would be opened (header rules, spans, no trailing bytes); a finding either way. */
void check_shard_rules(const char *dir, const char *name, const ckpt_open_options *open, struct reporter *r);

/* The shard index's weight_map and total_size against the manifest's tensors; findings for each difference. */
void check_index(const char *dir, const struct manifest *m, struct reporter *r);

#endif
