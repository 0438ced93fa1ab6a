/* torch.h: the parts of the torch.save reader (torch.c, torch_zip.c, torch_legacy.c). */
#ifndef CKPT_TORCH_H
#define CKPT_TORCH_H

#include "source.h"

/* A torch.save file of either kind, added to `src` (a shard of a folder, or the whole checkpoint). */
int torch_load_file(struct ckpt_source *src, const char *path, ckpt_error *err);

/* A torch.save file (either kind) that is already file `file` of `src`, e.g. a slice of a bigger file. */
int torch_load_at(struct ckpt_source *src, uint32_t file, ckpt_error *err);

/* torch >= 1.6: a zip archive holding data.pkl and one entry per storage. */
int torch_load_zip(struct ckpt_source *src, uint32_t file, ckpt_error *err);

/* torch 0.4 - 1.5: consecutive pickles, then the storages; or a plain pickle. */
int torch_load_legacy(struct ckpt_source *src, uint32_t file, ckpt_error *err);

#endif
