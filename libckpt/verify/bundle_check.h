/* bundle_check.h: `ckpt verify BUNDLE`: a bundle's volumes, frames, tensors and files checked. */
#ifndef CKPT_BUNDLE_CHECK_H
#define CKPT_BUNDLE_CHECK_H

#include "ckpt.h"
#include "report.h"

/*
 * Checks the bundle at `path` (its index file): every volume against its
 * XXH3-128, every frame decompressed and against its trailer, every tensor
 * and file against its XXH3-128; with opts->against, every file against the
 * file of the same name in that folder (or that file).  Findings go to `fn`
 * as ckpt_verify's do; returns as ckpt_verify does.
 */
int verify_bundle(const char *path, const ckpt_verify_options *opts, ckpt_finding_fn fn, void *payload,
                  ckpt_verify_summary *summary, ckpt_error *err);

#endif
