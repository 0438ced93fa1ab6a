/*
 * acl.h: the AscendCL codes a device program passes to aclCreateTensor for
 * the tensors ckpt convert writes as device images (FRACTAL_NZ tiles):
 * aclFormat and aclDataType values, as CANN's acl_base.h defines them
 * (Ascend/pytorch third_party/acl/inc/acl/acl_base.h @0c9d3005).
 */
#ifndef CKPT_KERNELS_ACL_H
#define CKPT_KERNELS_ACL_H

#include "ckpt.h"

#define ACL_FORMAT_ND_CODE 2
#define ACL_FORMAT_FRACTAL_NZ_CODE 29

/*
 * The shard metadata key prefix of a device-image record: "ckpt.layout.NAME"
 * describes tensor NAME's tiles (docs/manifest.md).  convert writes it, the
 * safetensors reader reads it back to present the logical tensor.
 */
#define LAYOUT_KEY_PREFIX "ckpt.layout."

/* The aclDataType of an element type, and its name ("ACL_FLOAT16") in *name; -1 when ACL has none. */
int acl_dtype_of(ckpt_dtype dtype, const char **name);

#endif
