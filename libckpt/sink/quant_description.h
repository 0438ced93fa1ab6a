/*
 * quant_description.h: quant_model_description.json, the file by which
 * vllm-ascend and MindIE know a folder is quantized and how, as msModelSlim
 * writes it (msmodelslim/core/quant_service/modelslim_v1/save/ascendv1.py
 * @3de0a3c L146, L220-229, L526-528): every tensor of the folder with its
 * type ("FLOAT" when not quantized), then version, model_quant_type,
 * metadata, group_size and optional.
 */
#ifndef CKPT_SINK_QUANT_DESCRIPTION_H
#define CKPT_SINK_QUANT_DESCRIPTION_H

#include "libckpt/io/outdir.h"
#include "libckpt/manifest/records.h"
#include "libckpt/plan/plan.h"

int write_quant_description(struct outdir *o, const struct ckpt_plan *plan, struct file_records *files,
                            ckpt_error *err);

#endif
