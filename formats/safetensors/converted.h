/*
 * converted.h: reading back what ckpt convert and msModelSlim add to a
 * safetensors folder (converted.c), and the names msModelSlim gives a
 * quantized folder's files (msmodelslim/core/quant_service/modelslim_v1/save/
 * ascendv1.py @3de0a3c L146-147, save/utils/safetensors.py).
 */
#ifndef CKPT_SAFETENSORS_CONVERTED_H
#define CKPT_SAFETENSORS_CONVERTED_H

#include "formats/common/format.h"

#define QUANT_WEIGHTS_STEM "quant_model_weights"
#define QUANT_INDEX_FILE "quant_model_weights.safetensors.index.json"
#define QUANT_DESCRIPTION_FILE "quant_model_description.json"

/*
 * Applies the device-image records of the loaded shards (NZ tensors become
 * the logical matrices they encode) and, when `path` is a folder holding
 * quant_model_description.json, each tensor's type; refuses records and
 * descriptions that do not fit the tensors.
 */
int converted_apply(struct ckpt_source *src, const char *path, ckpt_error *err);

#endif
