/* source.c: the catalog of an open checkpoint and the public ckpt_source calls. */
#include "source.h"

#include "archive_fs.h"
#include "checked.h"
#include "error.h"
#include "format.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

void ckpt_limits_default(ckpt_limits *limits)
{
    limits->max_header_bytes = 100000000;
    limits->max_tensors = 10000000;
    limits->max_rank = 64;
    limits->max_pickle_bytes = (uint64_t)1 << 30;
    limits->max_archive_bytes = ARCHIVE_DEFAULT_MAX_BYTES;
}

static int grow(void **array, size_t *cap, size_t need, size_t elem_size, ckpt_error *err)
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

static int append_file(struct ckpt_source *src, const char *path, const uint8_t *data,
                       uint64_t size, bool mapped, bool borrowed, uint32_t *index, ckpt_error *err)
{
    if (src->file_count >= UINT32_MAX)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: too many files in one checkpoint", path);
    int rc = grow((void **)&src->files, &src->file_cap, src->file_count + 1, sizeof *src->files, err);
    if (rc)
        return rc;
    char *copy = strdup(path);
    if (!copy)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    src->files[src->file_count] = (struct source_file){copy, data, size, mapped, borrowed, NULL, 0};
    *index = (uint32_t)src->file_count++;
    return CKPT_OK;
}

int source_add_file(struct ckpt_source *src, const char *path, uint32_t *index, ckpt_error *err)
{
    const struct fs_member *member = fs_member(src->fs, path);
    if (member) {
        if (member->is_dir)
            return ckpt_fail(err, CKPT_ERR_READ, "%s: not a regular file", path);
        const struct source_file whole = {src->fs->root, src->fs->data, src->fs->size, true, true,
                                          src->fs->in_place ? src->fs->root : NULL, 0};
        return source_add_borrowed(src, &whole, member->offset, member->size, path, index, err);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ckpt_fail(err, errno == ENOENT ? CKPT_ERR_NOT_FOUND : CKPT_ERR_READ,
                         "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ckpt_fail(err, CKPT_ERR_READ, "%s: not a regular file", path);
    }
    const uint8_t *data = NULL;
    if (st.st_size > 0) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            return ckpt_fail(err, CKPT_ERR_READ, "%s: cannot map: %s", path, strerror(errno));
        }
        data = m;
    }
    close(fd);
    int rc = append_file(src, path, data, (uint64_t)st.st_size, true, false, index, err);
    if (rc && data)
        munmap((void *)data, (size_t)st.st_size);
    else if (!rc)
        src->files[*index].backing = src->files[*index].path;
    return rc;
}

int source_add_buffer(struct ckpt_source *src, const char *path, uint8_t *data, uint64_t size,
                      uint32_t *index, ckpt_error *err)
{
    int rc = append_file(src, path, data, size, false, false, index, err);
    if (rc)
        free(data);
    return rc;
}

int source_add_slice(struct ckpt_source *src, uint32_t parent, uint64_t offset, uint64_t size, const char *path,
                     uint32_t *index, ckpt_error *err)
{
    if (parent >= src->file_count)
        return ckpt_fail(err, CKPT_ERR_ARG, "%s: no such file index %u", path, parent);
    return source_add_borrowed(src, &src->files[parent], offset, size, path, index, err);
}

int source_add_borrowed(struct ckpt_source *src, const struct source_file *parent, uint64_t offset, uint64_t size,
                        const char *path, uint32_t *index, ckpt_error *err)
{
    uint64_t end;
    if (!ckpt_add_u64(offset, size, &end) || end > parent->size)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: bytes %llu+%llu lie outside %s (%llu bytes)", path,
                         (unsigned long long)offset, (unsigned long long)size, parent->path,
                         (unsigned long long)parent->size);
    int rc = append_file(src, path, parent->data ? parent->data + offset : NULL, size, parent->mapped, true, index,
                         err);
    if (!rc && parent->backing) {
        src->files[*index].backing = parent->backing;
        src->files[*index].backing_offset = parent->backing_offset + offset;
    }
    return rc;
}

int source_adopt_files(struct ckpt_source *src, struct ckpt_source *scratch, uint32_t *base, ckpt_error *err)
{
    if (src->file_count + scratch->file_count >= UINT32_MAX)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: too many files in one checkpoint", src->path);
    int rc = grow((void **)&src->files, &src->file_cap, src->file_count + scratch->file_count, sizeof *src->files,
                  err);
    if (rc)
        return rc;
    *base = (uint32_t)src->file_count;
    if (scratch->file_count)
        memcpy(src->files + src->file_count, scratch->files, scratch->file_count * sizeof *scratch->files);
    src->file_count += scratch->file_count;
    scratch->file_count = 0;
    return CKPT_OK;
}

/* ---- finding tensors and metadata by name ---- */

static const char *tensor_name(const void *tensors, size_t i)
{
    return ((const struct tensor_entry *)tensors)[i].pub.name;
}

static const char *metadata_key(const void *metadata, size_t i)
{
    return ((const ckpt_kv *)metadata)[i].key;
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
    t->parts = NULL;
    t->shape = NULL;
    t->strides = NULL;
    t->part_count = 0;
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
        rc = grow((void **)&src->tensors, &src->tensor_cap, src->tensor_count + 1, sizeof *src->tensors, err);
    char *name = rc ? NULL : strdup(t->pub.name);
    if (!rc && !name)
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory adding tensor %s", t->pub.name);
    if (!rc) {
        t->pub.name = name;
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
    return CKPT_OK;
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

int source_add_alias(struct ckpt_source *src, const char *name, size_t target, ckpt_error *err)
{
    if (target >= src->tensor_count)
        return ckpt_fail(err, CKPT_ERR_ARG, "alias %s: no such tensor %zu", name, target);
    struct tensor_entry *base = &src->tensors[target];
    size_t distinct = src->tensor_count - src->alias_count;
    if (src->alias_count >= SOURCE_ALIASES_BASE + SOURCE_ALIASES_PER_TENSOR * (uint64_t)distinct)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: more aliases than %zu for %zu distinct tensor%s (a pickle bomb?), at "
                         "%.200s", src->files[base->pub.file].path, src->alias_count, distinct,
                         distinct == 1 ? "" : "s", name);
    int rc;
    if (base->parts) {   /* the same pieces again (a tied weight rebuilt from ZeRO partitions) */
        struct tensor_piece *pieces = calloc(base->part_count ? base->part_count : 1, sizeof *pieces);
        if (!pieces)
            return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory adding alias %s", name);
        for (size_t i = 0; i < base->part_count; i++) {
            const struct tensor_entry *p = &base->parts[i].entry;
            pieces[i] = (struct tensor_piece){base->parts[i].offsets, p->shape, p->view};
            pieces[i].view.strides = p->strides;
        }
        rc = source_add_pieces(src, name, base->pub.dtype, base->pub.rank, base->shape, pieces, base->part_count, err);
        free(pieces);
    } else {
        struct tensor_view view = base->view;
        rc = source_add_tensor(src, name, base->pub.dtype, base->pub.rank, base->shape, &view, err);
    }
    if (rc)
        return rc;
    struct tensor_entry *t = &src->tensors[src->tensor_count - 1];
    base = &src->tensors[target];
    t->alias_target = base->alias_target != SIZE_MAX ? base->alias_target : target;
    t->pub.alias_of = src->tensors[t->alias_target].pub.name;
    src->alias_count++;
    return CKPT_OK;
}

int source_add_metadata(struct ckpt_source *src, const char *key, const char *value,
                        const char *file, ckpt_error *err)
{
    const char *earlier = ckpt_source_metadata_value(src, key);
    if (earlier)
        return strcmp(earlier, value) == 0
                   ? CKPT_OK
                   : ckpt_fail(err, CKPT_ERR_FORMAT, "%s: metadata %s disagrees with an earlier shard", file, key);
    int rc = grow((void **)&src->metadata, &src->metadata_cap, src->metadata_count + 1,
                  sizeof *src->metadata, err);
    if (rc)
        return rc;
    char *k = strdup(key), *v = strdup(value);
    src->metadata[src->metadata_count] = (ckpt_kv){k, v};
    if (!k || !v || !name_index_add(&src->metadata_keys, src->metadata_count, metadata_key, src->metadata)) {
        free(k);
        free(v);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory reading metadata", file);
    }
    src->metadata_count++;
    return CKPT_OK;
}

int source_add_object(struct ckpt_source *src, const char *name, const char *kind, const char *value,
                      ckpt_error *err)
{
    if (src->object_count >= SOURCE_MAX_OBJECTS)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "more than %d non-tensor values, at %.200s", SOURCE_MAX_OBJECTS, name);
    int rc = grow((void **)&src->objects, &src->object_cap, src->object_count + 1, sizeof *src->objects, err);
    if (rc)
        return rc;
    char *n = strdup(name), *v = strdup(value);
    if (!n || !v) {
        free(n);
        free(v);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory recording object %s", name);
    }
    src->objects[src->object_count++] = (ckpt_object){n, kind, v};
    return CKPT_OK;
}

/* ---- the public calls ---- */

void source_share_fs(struct ckpt_source *scratch, const struct ckpt_source *src)
{
    scratch->fs = src->fs;
    scratch->fs_owned = false;
}

/*
 * Opens the archive at `path` as a folder: the archive itself (members read
 * in place) or its inflated members becomes one file of `src` (hashed in
 * manifests), and `*inner` the path of the checkpoint inside it.
 */
static int open_archive(struct ckpt_source *src, const char *path, char **inner, ckpt_error *err)
{
    int rc = archive_open_fs(path, src->limits.max_archive_bytes, &src->fs, err);
    if (rc)
        return rc;
    src->fs_owned = true;
    rc = archive_find_checkpoint(src->fs, inner, err);
    if (rc || !*inner) {   /* failed, or a torch.save zip named .zip: the file itself is the checkpoint */
        if (src->fs->data)
            munmap((void *)src->fs->data, (size_t)src->fs->size);
        fs_free(src->fs);
        src->fs = NULL;
        return rc;
    }
    uint32_t index;
    if (src->fs->data) {
        rc = append_file(src, path, src->fs->data, src->fs->size, true, false, &index, err);
        if (rc) {
            munmap((void *)src->fs->data, (size_t)src->fs->size);
            src->fs->data = NULL;
            return rc;
        }
        if (src->fs->in_place)   /* else the unlinked inflated copy: nothing else can change it */
            src->files[index].backing = src->fs->root;
    }
    return CKPT_OK;
}

struct ckpt_source *source_new(const char *path, const ckpt_limits *limits)
{
    struct ckpt_source *src = calloc(1, sizeof *src);
    if (!src)
        return NULL;
    if (limits)
        src->limits = *limits;
    else
        ckpt_limits_default(&src->limits);
    if (!(src->path = strdup(path))) {
        free(src);
        return NULL;
    }
    return src;
}

void ckpt_open_options_default(ckpt_open_options *opts)
{
    memset(opts, 0, sizeof *opts);
    ckpt_limits_default(&opts->limits);
    opts->deepspeed_weights = CKPT_DEEPSPEED_FP32;
}

int ckpt_source_open(ckpt_source **out, const char *path, const ckpt_limits *limits, ckpt_error *err)
{
    ckpt_open_options opts;
    ckpt_open_options_default(&opts);
    if (limits)
        opts.limits = *limits;
    return ckpt_source_open_ext(out, path, &opts, err);
}

int ckpt_source_open_ext(ckpt_source **out, const char *path, const ckpt_open_options *opts, ckpt_error *err)
{
    ckpt_error_clear(err);
    if (!out || !path)
        return ckpt_fail(err, CKPT_ERR_ARG, "ckpt_source_open: NULL argument");
    *out = NULL;
    if (opts && opts->deepspeed_weights != CKPT_DEEPSPEED_FP32 && opts->deepspeed_weights != CKPT_DEEPSPEED_MODULE)
        return ckpt_fail(err, CKPT_ERR_ARG, "ckpt_source_open: unknown deepspeed_weights %d",
                         (int)opts->deepspeed_weights);
    struct ckpt_source *src = source_new(path, opts ? &opts->limits : NULL);
    if (!src)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    src->deepspeed_weights = opts ? opts->deepspeed_weights : CKPT_DEEPSPEED_FP32;
    char *inner = NULL;
    int rc = archive_probe(path) ? open_archive(src, path, &inner, err) : CKPT_OK;
    const struct format_reader *reader = NULL;
    if (!rc)
        rc = format_detect(src->fs, inner ? inner : path, &reader, err);
    if (!rc) {
        src->format = reader->name;
        rc = reader->open(src, inner ? inner : path, err);
    }
    src->inner = inner;
    if (rc) {
        ckpt_source_free(src);
        return rc;
    }
    *out = src;
    return CKPT_OK;
}

void ckpt_source_free(ckpt_source *src)
{
    if (!src)
        return;
    for (size_t i = 0; i < src->file_count; i++) {
        struct source_file *f = &src->files[i];
        if (!f->borrowed && f->mapped && f->data)
            munmap((void *)f->data, (size_t)f->size);
        else if (!f->borrowed && !f->mapped)
            free((void *)f->data);
        free(f->path);
    }
    for (size_t i = 0; i < src->tensor_count; i++) {
        free((char *)src->tensors[i].pub.name);
        source_entry_release(&src->tensors[i]);
    }
    for (size_t i = 0; i < src->metadata_count; i++) {
        free((char *)src->metadata[i].key);
        free((char *)src->metadata[i].value);
    }
    for (size_t i = 0; i < src->object_count; i++) {
        free((char *)src->objects[i].name);
        free((char *)src->objects[i].value);
    }
    free(src->objects);
    if (src->fs_owned)
        fs_free(src->fs);
    free(src->files);
    free(src->tensors);
    name_index_free(&src->tensor_names);
    name_index_free(&src->metadata_keys);
    free(src->metadata);
    free(src->path);
    free(src->inner);
    free(src);
}

const char *ckpt_source_path(const ckpt_source *src)
{
    return src->path;
}

const char *ckpt_source_format(const ckpt_source *src)
{
    return src->format;
}

size_t ckpt_source_file_count(const ckpt_source *src)
{
    return src->file_count;
}

const char *ckpt_source_file_path(const ckpt_source *src, size_t file)
{
    return file < src->file_count ? src->files[file].path : NULL;
}

uint64_t ckpt_source_file_size(const ckpt_source *src, size_t file)
{
    return file < src->file_count ? src->files[file].size : 0;
}

size_t ckpt_source_tensor_count(const ckpt_source *src)
{
    return src->tensor_count;
}

const ckpt_tensor *ckpt_source_tensor(const ckpt_source *src, size_t i)
{
    return i < src->tensor_count ? &src->tensors[i].pub : NULL;
}

int ckpt_source_find(const ckpt_source *src, const char *name, size_t *index)
{
    size_t i = source_lookup(src, name);
    if (i == SIZE_MAX)
        return CKPT_ERR_NOT_FOUND;
    *index = i;
    return CKPT_OK;
}

size_t ckpt_source_metadata_count(const ckpt_source *src)
{
    return src->metadata_count;
}

void ckpt_source_metadata(const ckpt_source *src, size_t i, const char **key, const char **value)
{
    *key = i < src->metadata_count ? src->metadata[i].key : NULL;
    *value = i < src->metadata_count ? src->metadata[i].value : NULL;
}

const char *ckpt_source_metadata_value(const ckpt_source *src, const char *key)
{
    size_t i = name_index_find(&src->metadata_keys, key, metadata_key, src->metadata);
    return i == SIZE_MAX ? NULL : src->metadata[i].value;
}

size_t ckpt_source_object_count(const ckpt_source *src)
{
    return src->object_count;
}

const ckpt_object *ckpt_source_object(const ckpt_source *src, size_t i)
{
    return i < src->object_count ? &src->objects[i] : NULL;
}

uint64_t ckpt_tensor_rows(const ckpt_tensor *t)
{
    return t->rank ? t->shape[0] : 1;
}

uint64_t ckpt_tensor_row_bytes(const ckpt_tensor *t)
{
    uint64_t rows = ckpt_tensor_rows(t);
    return rows ? t->nbytes / rows : 0;
}

int ckpt_source_read(const ckpt_source *src, size_t i, uint64_t row_begin, uint64_t row_count,
                     void *dst, size_t dst_size, ckpt_error *err)
{
    if (i >= src->tensor_count)
        return ckpt_fail(err, CKPT_ERR_ARG, "no tensor %zu", i);
    const struct tensor_entry *t = &src->tensors[i];
    uint64_t rows = ckpt_tensor_rows(&t->pub), end, need;
    if (!ckpt_add_u64(row_begin, row_count, &end) || end > rows)
        return ckpt_fail(err, CKPT_ERR_ARG, "tensor %s: rows %llu+%llu outside its %llu rows", t->pub.name,
                         (unsigned long long)row_begin, (unsigned long long)row_count,
                         (unsigned long long)rows);
    if (!ckpt_mul_u64(row_count, ckpt_tensor_row_bytes(&t->pub), &need) || need > dst_size)
        return ckpt_fail(err, CKPT_ERR_ARG, "tensor %s: destination of %zu bytes is too small", t->pub.name,
                         dst_size);
    if (need == 0)
        return CKPT_OK;
    /* a row of the first dimension is a whole number of lines */
    uint64_t lines_per_row = view_line_count(&t->pub) / rows;
    return view_read_lines(src, t, row_begin * lines_per_row, row_count * lines_per_row, dst, err);
}
