/*
 * against_options.h: the conversion verify --against proves a folder is,
 * and where each of its options came from (docs/verify.md, "Fidelity").
 */
#ifndef CKPT_AGAINST_OPTIONS_H
#define CKPT_AGAINST_OPTIONS_H

#include "report.h"

#include "libckpt/manifest/manifest_read.h"

/*
 * Fills *convert and *open for re-planning: the caller's options
 * (opts->convert) or, without them, the manifest's.  Reports each option
 * (CKPT_CHECK_OPTION) with its value and origin; a caller's option that
 * changes bytes and differs from the manifest's is a failing finding.
 */
int against_options(const struct manifest *m, const ckpt_verify_options *opts, const char *dst,
                    ckpt_convert_options *convert, ckpt_open_options *open, struct reporter *r, ckpt_error *err);

#endif
