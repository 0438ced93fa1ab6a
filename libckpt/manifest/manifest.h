/*
 * manifest.h: ckpt-manifest.json, the record of a conversion that
 * `ckpt verify` checks (docs/manifest.md describes the format).
 */
#ifndef CKPT_MANIFEST_H
#define CKPT_MANIFEST_H

#include "libckpt/io/outdir.h"
#include "libckpt/kernels/acl.h"
#include "libckpt/plan/plan.h"
#include "records.h"

#include <jansson.h>

#define MANIFEST_NAME "ckpt-manifest.json"
#define MANIFEST_VERSION 1

/* Writes the manifest into the output folder. */
int manifest_write(struct outdir *o, const struct ckpt_plan *plan, const struct file_records *source_files,
                   const struct file_records *output_files, const struct tensor_record *tensors, double seconds,
                   ckpt_error *err);

/*
 * The shard metadata pair that describes an NZ tensor as a device image:
 * "ckpt.layout.NAME" -> {"layout":"FRACTAL_NZ","nd_shape":[...],"transposed":false,"acl_format":29,...}
 * (docs/manifest.md).  Both strings are malloc'd; returns non-zero when out of memory.
 */
int layout_metadata(const ckpt_plan_entry *e, char **key, char **value);

/* The same record as a JSON object (the manifest's "device"), or NULL when out of memory. */
json_t *device_json(const ckpt_plan_entry *e);

/* Files as the manifest lists them: [{"path", "size", "xxh3_128"}, ...]. */
json_t *files_json(const struct file_records *files);

/* The manifest's name of a quantized linear's part: "weight", "scale", "offset" ("none"). */
const char *quant_role_name(ckpt_quant_role role);

/* The lowercase name used in manifests and metadata: "FRACTAL_NZ" or "ND". */
const char *layout_name(ckpt_layout layout);

#endif
