/*
 * entries.c: the tensors of a catalog.  Every tensor a reader declares, whole
 * or in pieces (pieces.c), is checked here against the catalog and its
 * limits before it is appended, so that no reader has to remember to.
 */
#include "source.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"

#include <stdlib.h>
#include <string.h>

int source_grow(void **array, size_t *cap, size_t need, size_t elem_size, ckpt_error *err)
{
    if (need <= *cap)
        return CKPT_OK;
    size_t new_cap = *cap ? *cap * 2 : 16;
    while (new_cap < need)
        new_cap *= 2;
    void *p = reallocarray(*array, new_cap, elem_size);
    if (!p)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory growing a catalog to %zu entries", need);
    *array = p;
    *cap = new_cap;
    return CKPT_OK;
}

/* ---- finding tensors by name ---- */

static const char *tensor_name(const void *tensors, size_t i)
{
    return ((const struct tensor_entry *)tensors)[i].pub.name;
}

size_t source_lookup(const struct ckpt_source *src, const char *name)
{
    return name_index_find(&src->tensor_names, name, tensor_name, src->tensors);
}

/* ---- tensors ---- */

/*
 * The highest element index a view reaches, plus one, or false on overflow.
 * Zero when the tensor has no elements (it then touches no storage).
 */
static bool view_extent(uint32_t rank, const uint64_t *shape, const int64_t *strides,
                        uint64_t elem_offset, uint64_t *extent)
{
    uint64_t count;
    if (!ckpt_product_u64(shape, rank, &count))
        return false;
    if (count == 0) {
        *extent = 0;
        return true;
    }
    if (!strides)
        return ckpt_add_u64(elem_offset, count, extent);
    uint64_t last = elem_offset;
    for (uint32_t d = 0; d < rank; d++) {
        uint64_t step;
        if (!ckpt_mul_u64(shape[d] - 1, (uint64_t)strides[d], &step) || !ckpt_add_u64(last, step, &last))
            return false;
    }
    return ckpt_add_u64(last, 1, extent);
}

int source_check_new_tensor(const struct ckpt_source *src, const char *name, ckpt_dtype dtype, uint32_t rank,
                            const uint64_t *shape, uint32_t file_index, uint64_t *nbytes, ckpt_error *err)
{
    if (file_index >= src->file_count)
        return ckpt_fail(err, CKPT_ERR_ARG, "tensor %s: no such file index %u", name, file_index);
    const char *file = src->files[file_index].path;
    size_t esize = ckpt_dtype_size(dtype);
    if (esize == 0)
        return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: tensor %s: unsupported element type", file, name);
    if (src->tensor_count >= src->limits.max_tensors)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: more than %llu tensors (limit max_tensors)", file,
                         (unsigned long long)src->limits.max_tensors);
    if (rank > src->limits.max_rank || rank > SOURCE_MAX_RANK)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: tensor %s has rank %u, over the limit of %u (max_rank)", file,
                         name, rank, src->limits.max_rank < SOURCE_MAX_RANK ? src->limits.max_rank : SOURCE_MAX_RANK);
    size_t previous = source_lookup(src, name);
    if (previous != SIZE_MAX)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s is already defined in %s", file, name,
                         src->files[src->tensors[previous].pub.file].path);
    uint64_t count;
    if (!ckpt_product_u64(shape, rank, &count) || !ckpt_mul_u64(count, esize, nbytes))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: shape overflows 64 bits", file, name);
    return CKPT_OK;
}

int source_check_view(const struct ckpt_source *src, const char *name, ckpt_dtype dtype, uint32_t rank,
                      const uint64_t *shape, const struct tensor_view *view, ckpt_error *err)
{
    if (view->file >= src->file_count)
        return ckpt_fail(err, CKPT_ERR_ARG, "tensor %s: no such file index %u", name, view->file);
    const char *file = src->files[view->file].path;
    size_t esize = ckpt_dtype_size(dtype);
    if (view->strides)
        for (uint32_t d = 0; d < rank; d++)
            if (view->strides[d] < 0)
                return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: negative stride", file, name);
    uint64_t extent, extent_bytes, end;
    if (!view_extent(rank, shape, view->strides, view->elem_offset, &extent) ||
        !ckpt_mul_u64(extent, esize, &extent_bytes))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: view offsets overflow", file, name);
    if (extent_bytes > view->storage_bytes)
        return ckpt_fail(err, CKPT_ERR_FORMAT,
                         "%s: tensor %s reads %llu bytes of a %llu-byte storage", file, name,
                         (unsigned long long)extent_bytes, (unsigned long long)view->storage_bytes);
    /* a view whose strides repeat elements (stride 0: torch's expand) can present far more bytes than it
     * stores; past the limit it is a bomb that convert and diff would spend hours writing out */
    uint64_t count, nbytes, allowed;
    if (view->strides && ckpt_product_u64(shape, rank, &count) && ckpt_mul_u64(count, esize, &nbytes) &&
        nbytes > view->storage_bytes &&
        ckpt_mul_u64(view->storage_bytes, src->limits.max_expansion, &allowed) && nbytes > allowed)
        return ckpt_fail(err, CKPT_ERR_LIMIT,
                         "%s: tensor %s presents %llu bytes from a %llu-byte storage, over %llu times its size "
                         "(limit max_expansion)",
                         file, name, (unsigned long long)nbytes, (unsigned long long)view->storage_bytes,
                         (unsigned long long)src->limits.max_expansion);
    if (!ckpt_add_u64(view->storage_offset, view->storage_bytes, &end) ||
        end > src->files[view->file].size)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: storage lies outside the file", file, name);
    return CKPT_OK;
}

static bool is_contiguous(uint32_t rank, const uint64_t *shape, const int64_t *strides)
{
    if (!strides)
        return true;
    uint64_t expect = 1;
    for (uint32_t d = rank; d-- > 0;) {
        if (shape[d] != 1 && (uint64_t)strides[d] != expect)
            return false;
        expect *= shape[d];
    }
    return true;
}

int source_fill_entry(struct tensor_entry *t, const char *name, ckpt_dtype dtype, uint32_t rank,
                      const uint64_t *shape, const struct tensor_view *view, uint64_t nbytes, ckpt_error *err)
{
    memset(t, 0, sizeof *t);
    t->shape = malloc((rank ? rank : 1) * sizeof *t->shape);
    bool strided = !is_contiguous(rank, shape, view->strides);
    t->strides = strided ? malloc(rank * sizeof *t->strides) : NULL;
    if (!t->shape || (strided && !t->strides)) {
        source_entry_release(t);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory adding tensor %s", name);
    }
    if (rank)
        memcpy(t->shape, shape, rank * sizeof *t->shape);
    if (strided)
        memcpy(t->strides, view->strides, rank * sizeof *t->strides);
    t->view = *view;
    t->view.strides = t->strides;
    t->pub = (ckpt_tensor){name, dtype, rank, t->shape, nbytes, view->file, NULL};
    t->alias_target = SIZE_MAX;
    return CKPT_OK;
}

void source_entry_release(struct tensor_entry *t)
{
    for (size_t i = 0; i < t->part_count; i++) {
        free(t->parts[i].offsets);
        source_entry_release(&t->parts[i].entry);
    }
    free(t->parts);
    free(t->shape);
    free(t->strides);
    free(t->storage_shape);
    free(t->quant);
    t->parts = NULL;
    t->shape = NULL;
    t->strides = NULL;
    t->storage_shape = NULL;
    t->quant = NULL;
    t->part_count = 0;
}

int source_tell(struct ckpt_source *src, ckpt_event_kind kind, const char *file, const char *tensor, uint64_t done,
                ckpt_error *err)
{
    if (!src->events || src->cancelled)
        return src->cancelled ? ckpt_fail(err, CKPT_ERR_CANCELLED, "%s: opening cancelled", src->path) : CKPT_OK;
    const ckpt_event ev = {.kind = kind, .path = src->path, .file = file, .tensor = tensor, .done = done, .total = 0};
    if (src->events(src->events_payload, &ev) == 0)
        return CKPT_OK;
    src->cancelled = true;
    return ckpt_fail(err, CKPT_ERR_CANCELLED, "%s: opening cancelled", src->path);
}

int source_append_entry(struct ckpt_source *src, struct tensor_entry *t, ckpt_error *err)
{
    /* the names a checkpoint declares are its description, bounded like a header */
    uint64_t name_bytes = src->name_bytes + strlen(t->pub.name) + 1;
    int rc = name_bytes > src->limits.max_header_bytes
                 ? ckpt_fail(err, CKPT_ERR_LIMIT, "%s: tensor names take more than %llu bytes (limit max_header_bytes)",
                             src->path, (unsigned long long)src->limits.max_header_bytes)
                 : CKPT_OK;
    if (!rc)
        rc = source_grow((void **)&src->tensors, &src->tensor_cap, src->tensor_count + 1, sizeof *src->tensors, err);
    char *name = rc ? NULL : strdup(t->pub.name);
    if (!rc && !name)
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory adding tensor %s", t->pub.name);
    if (!rc) {
        t->pub.name = name;
        t->storage = (ckpt_tensor_storage){CKPT_LAYOUT_ND, 0, t->pub.rank, t->pub.shape, t->pub.nbytes, 0, NULL};
        t->storage_shape = NULL;
        t->quant = NULL;
        for (size_t i = 0; i < t->part_count; i++)
            t->parts[i].entry.pub.name = name;
        src->tensors[src->tensor_count] = *t;
        if (!name_index_add(&src->tensor_names, src->tensor_count, tensor_name, src->tensors)) {
            free(name);
            rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory indexing %zu tensor names", src->tensor_count + 1);
        }
    }
    if (rc) {
        source_entry_release(t);
        return rc;
    }
    src->tensor_count++;
    src->name_bytes = name_bytes;
    return source_tell(src, CKPT_EVENT_TENSOR, NULL, name, src->tensor_count, err);
}

int source_add_tensor(struct ckpt_source *src, const char *name, ckpt_dtype dtype,
                      uint32_t rank, const uint64_t *shape, const struct tensor_view *view,
                      ckpt_error *err)
{
    uint64_t nbytes = 0;
    struct tensor_entry t;
    int rc = source_check_new_tensor(src, name, dtype, rank, shape, view->file, &nbytes, err);
    if (!rc)
        rc = source_check_view(src, name, dtype, rank, shape, view, err);
    if (!rc)
        rc = source_fill_entry(&t, name, dtype, rank, shape, view, nbytes, err);
    return rc ? rc : source_append_entry(src, &t, err);
}
