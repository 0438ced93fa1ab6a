/* fidelity.h: verify --against, a converted folder proven against its source (fidelity.c). */
#ifndef CKPT_FIDELITY_H
#define CKPT_FIDELITY_H

#include "report.h"

#include "libckpt/manifest/manifest_read.h"

/* Proves every tensor of the manifest against converting `source`. */
int verify_fidelity(const char *dst, const struct manifest *m, const ckpt_verify_options *opts, struct reporter *r,
                    ckpt_error *err);

#endif
