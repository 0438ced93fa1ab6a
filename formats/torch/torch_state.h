/*
 * torch_state.h: an unpickled torch.save object turned into the source's
 * catalog: tensors from their rebuild calls, everything else as objects,
 * nested containers flattened to dotted names.  Shared by the zip and the
 * legacy readers, which differ only in where a storage's bytes are.
 */
#ifndef CKPT_TORCH_STATE_H
#define CKPT_TORCH_STATE_H

#include "pickle.h"
#include "libckpt/catalog/source.h"

/* The name a file gets whose whole content is one tensor. */
#define TORCH_ROOT_TENSOR_NAME "tensor"

/* A storage persistent id: ('storage', type, key, location, numel[, view]). */
struct torch_storage_ref {
    const char *key;
    ckpt_dtype dtype;          /* from the storage type; CKPT_DTYPE_INVALID for UntypedStorage */
    uint64_t numel;            /* elements of dtype, or bytes when untyped */
    bool has_view;             /* legacy files: the storage is a view into another */
    const char *view_key;
    uint64_t view_offset, view_numel;
};

/* Where a storage's bytes are: fills view->file, storage_offset, storage_bytes, big_endian. */
typedef int (*torch_locate_fn)(void *ctx, const struct torch_storage_ref *ref, ckpt_dtype dtype,
                               struct tensor_view *view, ckpt_error *err);

/* The element type a torch dtype global names (torch.bfloat16 ...), or CKPT_DTYPE_INVALID. */
ckpt_dtype torch_dtype_global(const struct pk_value *g);

int torch_parse_persid(const struct pk_value *pid, struct torch_storage_ref *ref, const char *origin, ckpt_error *err);

/*
 * Declares every tensor and object reachable from `root`.  `locate` may be
 * NULL for a pickle that must hold no tensors.  Fails naming the file and
 * the defect; a file with no tensor at all is an error too, unless the
 * source reads objects only (src->objects_only).
 */
int torch_state_declare(struct ckpt_source *src, const struct pk_value *root, const char *origin,
                        torch_locate_fn locate, void *ctx, ckpt_error *err);

/* Visits every storage reference reachable from root (legacy files need them all before locating any). */
int torch_state_storages(const struct pk_value *root, const char *origin,
                         int (*fn)(void *ctx, const struct torch_storage_ref *ref, ckpt_error *err), void *ctx,
                         ckpt_error *err);

#endif
