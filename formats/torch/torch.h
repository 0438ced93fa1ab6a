/* torch.h: the parts of the torch.save reader (torch.c, torch_zip.c, torch_legacy.c). */
#ifndef CKPT_TORCH_H
#define CKPT_TORCH_H

#include "libckpt/catalog/source.h"

/* A torch.save file of either kind, added to `src` (a shard of a folder, or the whole checkpoint). */
int torch_load_file(struct ckpt_source *src, const char *path, ckpt_error *err);

/* A torch.save file (either kind) that is already file `file` of `src`, e.g. a slice of a bigger file. */
int torch_load_at(struct ckpt_source *src, uint32_t file, ckpt_error *err);

/* torch >= 1.6: a zip archive holding data.pkl and one entry per storage. */
int torch_load_zip(struct ckpt_source *src, uint32_t file, ckpt_error *err);

struct pk_value;

/*
 * Called with the unpickled object once its tensors are declared, for a
 * reader that needs more than the flattened catalog (shapes, enums).  A
 * tensor node's `tag` is its index in the source's catalog.  The tree is
 * freed after the call.
 */
typedef int (*torch_visit_fn)(void *ctx, const struct pk_value *root, const char *origin, ckpt_error *err);

/* torch_load_zip, then `visit` on the unpickled object. */
int torch_load_zip_visit(struct ckpt_source *src, uint32_t file, torch_visit_fn visit, void *ctx, ckpt_error *err);

/* torch 0.4 - 1.5: consecutive pickles, then the storages; or a plain pickle. */
int torch_load_legacy(struct ckpt_source *src, uint32_t file, ckpt_error *err);

#endif
