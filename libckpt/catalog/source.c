/* source.c: the catalog of an open checkpoint and the public ckpt_source calls. */
#include "source.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"
#include "libckpt/io/fs.h"
#include "libckpt/kernels/kernels.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

void ckpt_limits_default(ckpt_limits *limits)
{
    limits->size = sizeof *limits;
    limits->max_header_bytes = 100000000;
    limits->max_tensors = 10000000;
    limits->max_rank = 64;
    limits->max_pickle_bytes = (uint64_t)1 << 30;
    limits->max_archive_bytes = SOURCE_DEFAULT_MAX_ARCHIVE_BYTES;
    limits->max_bundle_header_bytes = (uint64_t)1 << 30;
    limits->max_expansion = 1024;
}

static int append_file(struct ckpt_source *src, const char *path, const uint8_t *data,
                       uint64_t size, bool mapped, bool borrowed, uint32_t *index, ckpt_error *err)
{
    if (src->file_count >= UINT32_MAX)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: too many files in one checkpoint", path);
    int rc = source_grow((void **)&src->files, &src->file_cap, src->file_count + 1, sizeof *src->files, err);
    if (rc)
        return rc;
    char *copy = strdup(path);
    if (!copy)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    src->files[src->file_count] = (struct source_file){copy, data, size, mapped, borrowed, false, NULL, 0, NULL, 0};
    *index = (uint32_t)src->file_count++;
    /* the file is the source's now, whatever the callback says: a cancel fails the next tensor, or the open */
    (void)source_tell(src, CKPT_EVENT_FILE, copy, NULL, src->file_count, NULL);
    return CKPT_OK;
}

int source_add_file(struct ckpt_source *src, const char *path, uint32_t *index, ckpt_error *err)
{
    const struct fs_member *member = fs_member(src->fs, path);
    if (member) {
        if (member->is_dir)
            return ckpt_fail(err, CKPT_ERR_READ, "%s: not a regular file", path);
        int rc = fs_map_member(src->fs, member, err);
        if (rc)
            return rc;
        const struct source_file whole = {src->fs->root, src->fs->data, src->fs->size, true, true, false,
                                          src->fs->backing, 0, NULL, 0};
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
    struct vfile *backing = vfile_disk_new(path);
    int rc = backing ? append_file(src, path, data, (uint64_t)st.st_size, true, false, index, err)
                     : ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    if (rc) {
        if (data)
            munmap((void *)data, (size_t)st.st_size);
        vfile_release(backing);
        return rc;
    }
    src->files[*index].backing = backing;
    src->files[*index].owns_backing = true;
    return CKPT_OK;
}

int source_add_mapping(struct ckpt_source *src, const char *path, const uint8_t *data, uint64_t size,
                       const struct vfile *backing, uint32_t *index, ckpt_error *err)
{
    int rc = append_file(src, path, data, size, true, false, index, err);
    if (!rc)
        src->files[*index].backing = backing;
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
    int rc = source_grow((void **)&src->files, &src->file_cap, src->file_count + scratch->file_count, sizeof *src->files,
                  err);
    if (rc)
        return rc;
    *base = (uint32_t)src->file_count;
    if (scratch->file_count)
        memcpy(src->files + src->file_count, scratch->files, scratch->file_count * sizeof *scratch->files);
    for (size_t i = 0; i < scratch->file_count; i++)   /* read through a scratch source: the caller's files all the same */
        (void)source_tell(src, CKPT_EVENT_FILE, src->files[*base + i].path, NULL, *base + i + 1, NULL);
    src->file_count += scratch->file_count;
    scratch->file_count = 0;
    for (size_t i = 0; i < scratch->data_range_count && !rc; i++) {
        const struct data_range *d = &scratch->data_ranges[i];
        rc = source_note_data(src, *base + d->file, d->offset, d->size, err);
    }
    scratch->data_range_count = 0;
    return rc;
}

int source_note_data(struct ckpt_source *src, uint32_t file, uint64_t offset, uint64_t size, ckpt_error *err)
{
    uint64_t end;
    if (file >= src->file_count || !ckpt_add_u64(offset, size, &end) || end > src->files[file].size || !size)
        return CKPT_OK;
    if (src->data_range_count >= src->limits.max_tensors)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: more than %llu storages (max_tensors)", src->files[file].path,
                         (unsigned long long)src->limits.max_tensors);
    int rc = source_grow((void **)&src->data_ranges, &src->data_range_cap, src->data_range_count + 1,
                         sizeof *src->data_ranges, err);
    if (!rc)
        src->data_ranges[src->data_range_count++] = (struct data_range){file, offset, size};
    return rc;
}

/* ---- aliases, metadata, objects ---- */

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

/* The C0 values CANN tiles elements of `esize` bytes with: 32 bytes of a row, and 16 or 8 for 4-byte ones. */
static bool cann_c0(size_t esize, uint64_t c0)
{
    return (esize == 1 && c0 == 32) || (esize == 2 && c0 == 16) || (esize == 4 && (c0 == 16 || c0 == 8));
}

int source_present_nz(struct ckpt_source *src, size_t index, const uint64_t *shape, uint32_t rank, uint64_t c0,
                      bool transposed, ckpt_error *err)
{
    struct tensor_entry *t = &src->tensors[index];
    const char *file = src->files[t->view.file].path, *name = t->pub.name;
    size_t esize = ckpt_dtype_size(t->pub.dtype);
    if (t->parts || t->strides || t->view.big_endian || t->alias_target != SIZE_MAX ||
        t->storage.layout != CKPT_LAYOUT_ND)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: a FRACTAL_NZ record for a tensor that is not one plain "
                         "stored block", file, name);
    if (!cann_c0(esize, c0))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: FRACTAL_NZ record with C0 %llu for %s elements", file,
                         name, (unsigned long long)c0, ckpt_dtype_name(t->pub.dtype));
    if (rank < 2 || rank > SOURCE_MAX_RANK || rank + 2 != t->pub.rank)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: FRACTAL_NZ record of rank %u for a tensor stored with "
                         "rank %u", file, name, rank, t->pub.rank);
    uint64_t tiled[SOURCE_MAX_RANK], tiles[SOURCE_MAX_RANK + 3], count;
    uint32_t tiles_rank;
    memcpy(tiled, shape, rank * sizeof *tiled);
    if (transposed) {
        tiled[rank - 2] = shape[rank - 1];
        tiled[rank - 1] = shape[rank - 2];
    }
    if (nz_shape_c0(tiled, rank, (unsigned)esize * 8, c0, 0, tiles, &tiles_rank, NULL) != CKPT_OK ||
        tiles_rank != t->pub.rank || memcmp(tiles, t->pub.shape, tiles_rank * sizeof *tiles) != 0 ||
        !ckpt_product_u64(shape, rank, &count))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: its stored shape is not the FRACTAL_NZ tiling its "
                         "layout record describes", file, name);
    uint64_t *logical = malloc(rank * sizeof *logical);
    if (!logical)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory presenting tensor %s", name);
    memcpy(logical, shape, rank * sizeof *logical);
    t->storage_shape = t->shape;
    t->storage = (ckpt_tensor_storage){CKPT_LAYOUT_FRACTAL_NZ, transposed, t->pub.rank, t->storage_shape,
                                       t->pub.nbytes, c0, t->quant};
    t->shape = logical;
    t->pub.shape = logical;
    t->pub.rank = rank;
    t->pub.nbytes = count * esize;   /* at most the stored bytes: the tiles pad, never drop */
    return CKPT_OK;
}

int source_set_quant(struct ckpt_source *src, size_t index, const char *type, ckpt_error *err)
{
    struct tensor_entry *t = &src->tensors[index];
    char *copy = strdup(type);
    if (!copy)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory reading the type of %s", t->pub.name);
    free(t->quant);
    t->quant = copy;
    t->storage.quant = copy;
    return CKPT_OK;
}

static const char *metadata_key(const void *metadata, size_t i)
{
    return ((const ckpt_kv *)metadata)[i].key;
}

int source_add_metadata(struct ckpt_source *src, const char *key, const char *value,
                        const char *file, ckpt_error *err)
{
    const char *earlier = ckpt_source_metadata_value(src, key);
    if (earlier)
        return strcmp(earlier, value) == 0
                   ? CKPT_OK
                   : ckpt_fail(err, CKPT_ERR_FORMAT, "%s: metadata %s disagrees with an earlier shard", file, key);
    int rc = source_grow((void **)&src->metadata, &src->metadata_cap, src->metadata_count + 1,
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
    int rc = source_grow((void **)&src->objects, &src->object_cap, src->object_count + 1, sizeof *src->objects, err);
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
        if (f->owns_backing)
            vfile_release((struct vfile *)f->backing);
        for (size_t k = 0; k < f->crc_count; k++)
            free(f->crcs[k].entry);
        free(f->crcs);
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
    free(src->data_ranges);
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

const ckpt_tensor_storage *ckpt_source_tensor_storage(const ckpt_source *src, size_t i)
{
    return i < src->tensor_count ? &src->tensors[i].storage : NULL;
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
