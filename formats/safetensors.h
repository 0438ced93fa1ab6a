/* safetensors.h: calls shared by the safetensors reader's parts. */
#ifndef CKPT_SAFETENSORS_H
#define CKPT_SAFETENSORS_H

#include "source.h"

/* Maps one .safetensors file, validates its header and declares its tensors. */
int safetensors_load_file(struct ckpt_source *src, const char *path, ckpt_error *err);

#endif
