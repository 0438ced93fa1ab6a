/*
 * manifest_read.h: ckpt-manifest.json read back and checked, for verify.
 * Every field is type-checked and every path must name a file inside the
 * folder: a manifest is input like any other.
 */
#ifndef CKPT_MANIFEST_READ_H
#define CKPT_MANIFEST_READ_H

#include "ckpt.h"

#include <jansson.h>
#include <stdbool.h>

struct manifest_file {
    const char *path;       /* borrowed from the JSON tree */
    uint64_t size;
    const char *xxh3_128;
};

struct manifest_tensor {
    const char *name, *file, *xxh3_128, *alias_of, *source_name;
    ckpt_dtype dtype, source_dtype;
    ckpt_layout layout;
    bool transposed;
    uint32_t rank, nd_rank;
    uint64_t shape[66], nd_shape[64];
    uint64_t offset, nbytes;
    ckpt_row_select rows;   /* groups 0 when the manifest records no row selection */
    ckpt_quant quant;       /* quant.type, CKPT_QUANT_NONE when the manifest records none */
    ckpt_quant_role quant_role;
    ckpt_dtype load_dtype;  /* quant.load_dtype */
    uint64_t nz_c0;         /* device.c0 of an NZ tensor */
};

struct manifest {
    json_t *root;
    const char *target, *dtype, *nz, *overflow, *rules, *rename, *quant;
    unsigned nz_fp32_c0;
    const char *deepspeed_weights;   /* source.deepspeed_weights: "fp32", "module", or NULL */
    uint64_t max_shard_bytes;
    struct manifest_file *files;
    size_t file_count;
    struct manifest_tensor *tensors;
    size_t tensor_count;
};

/* Loads DIR/ckpt-manifest.json; CKPT_ERR_FORMAT (or NOT_FOUND) naming the defect when it cannot be trusted. */
int manifest_load(struct manifest *m, const char *dir, ckpt_error *err);

void manifest_free(struct manifest *m);

/* The convert options the manifest records, for re-planning. */
int manifest_options(const struct manifest *m, ckpt_convert_options *opts, const char *path, ckpt_error *err);

#endif
