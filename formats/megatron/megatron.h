/*
 * megatron.h: the parts of the Megatron-LM legacy-layout reader (megatron.c
 * finds and loads the rank files, megatron_merge.c joins their tensors).
 */
#ifndef CKPT_MEGATRON_H
#define CKPT_MEGATRON_H

#include "libckpt/catalog/source.h"

struct megatron_layout {
    long tp, pp;       /* tensor-parallel size, pipeline stages */
    long layers;       /* transformer layers in all, split evenly over the stages */
};

/*
 * Declares on `src` the full tensors of the model held by `ranks` (scratch
 * sources of the rank files, stage-major: ranks[p * tp + t]), adopting
 * their files.  Refuses a tensor a rank lacks, shapes or types that do not
 * fit together, and replicated tensors that differ between ranks, naming
 * the files and the tensor.
 */
int megatron_merge(struct ckpt_source *src, struct ckpt_source *const *ranks, const struct megatron_layout *lay,
                   ckpt_error *err);

#endif
