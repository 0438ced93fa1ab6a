/* shard_header.c: see shard_header.h. */
#include "shard_header.h"

#include "formats/safetensors/safetensors.h"
#include "libckpt/common/error.h"
#include "libckpt/manifest/manifest.h"

#include <stdlib.h>

/* The per-shard metadata that makes NZ tensors self-describing without the manifest. */
static int shard_metadata(const struct ckpt_plan *plan, const struct plan_shard *sh, ckpt_kv **out, size_t *count,
                          ckpt_error *err)
{
    ckpt_kv *meta = calloc(sh->item_count + 1, sizeof *meta);
    if (!meta)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    size_t n = 0;
    meta[n++] = (ckpt_kv){"format", "pt"};
    for (size_t i = 0; i < sh->item_count; i++) {
        const ckpt_plan_entry *e = &plan->items[sh->first_item + i].pub;
        if (e->layout != CKPT_LAYOUT_FRACTAL_NZ)
            continue;
        char *key = NULL, *value = NULL;
        if (layout_metadata(e, &key, &value) != 0) {
            for (size_t k = 1; k < n; k++) {
                free((char *)meta[k].key);
                free((char *)meta[k].value);
            }
            free(meta);
            return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
        }
        meta[n++] = (ckpt_kv){key, value};
    }
    *out = meta;
    *count = n;
    return CKPT_OK;
}

static void free_metadata(ckpt_kv *meta, size_t count)
{
    for (size_t k = 1; k < count; k++) {
        free((char *)meta[k].key);
        free((char *)meta[k].value);
    }
    free(meta);
}

int shard_header_build(const struct ckpt_plan *plan, size_t s, char **header, size_t *len, uint64_t *data_bytes,
                       ckpt_error *err)
{
    const struct plan_shard *sh = &plan->shards[s];
    ckpt_tensor *tensors = calloc(sh->item_count + 1, sizeof *tensors);
    if (!tensors)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < sh->item_count; i++) {
        const ckpt_plan_entry *e = &plan->items[sh->first_item + i].pub;
        tensors[i] = (ckpt_tensor){e->name, e->dtype, e->rank, e->shape, e->nbytes, 0, NULL};
    }
    ckpt_kv *meta = NULL;
    size_t meta_count = 0;
    int rc = shard_metadata(plan, sh, &meta, &meta_count, err);
    if (!rc)
        rc = safetensors_header_build(sh->name, tensors, sh->item_count, meta, meta_count, header, len, data_bytes,
                                      err);
    if (meta)
        free_metadata(meta, meta_count);
    free(tensors);
    return rc;
}
