/*
 * dcp.c: the PyTorch Distributed Checkpoint reader (FSDP, torchtitan,
 * torch.distributed.checkpoint.save): a folder with `.metadata` and the
 * `*.distcp` files it names.
 *
 * Each chunk of a tensor is a complete torch.save archive at a byte range
 * of a data file.  It is read by the torch.save reader in a scratch source
 * over a borrowed slice of the file (mapped once here), its one tensor's
 * view taken, and the scratch files adopted; the chunks then become the
 * pieces of the global tensor, whose tiling the catalog checks.  Entries
 * that hold pickled objects (BytesStorageMetadata) are recorded as objects
 * of kind "bytes" and never unpickled.
 */
#include "dcp.h"

#include "formats/common/format.h"
#include "formats/common/shard_index.h"
#include "formats/torch/torch.h"
#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METADATA_FILE ".metadata"
#define NAME_CAP (DCP_MAX_NAME + 32)

struct loader {
    struct ckpt_source *src;
    const char *dir;
    const char **paths;    /* data files mapped so far, sorted by their relative path ... */
    uint32_t *files;       /* ... and their index in src */
    size_t count;
    char *name;            /* NAME_CAP bytes: the name being declared */
};

/* Where `rel` is or belongs in the sorted list of mapped data files (found: *found set). */
static size_t file_slot(const struct loader *l, const char *rel, bool *found)
{
    size_t lo = 0, hi = l->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(l->paths[mid], rel);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/* The source file index of a data file, mapping it on first use (a rank's file holds many chunks). */
static int data_file(struct loader *l, const char *rel, uint32_t *file, ckpt_error *err)
{
    bool found;
    size_t at = file_slot(l, rel, &found);
    if (found) {
        *file = l->files[at];
        return CKPT_OK;
    }
    const char **paths = realloc(l->paths, (l->count + 1) * sizeof *paths);
    if (paths)
        l->paths = paths;
    uint32_t *files = paths ? realloc(l->files, (l->count + 1) * sizeof *files) : NULL;
    if (files)
        l->files = files;
    char *full = files ? path_join(l->dir, rel) : NULL;
    if (!full)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", l->dir);
    int rc = source_add_file(l->src, full, file, err);
    free(full);
    if (!rc) {
        memmove(l->paths + at + 1, l->paths + at, (l->count - at) * sizeof *l->paths);
        memmove(l->files + at + 1, l->files + at, (l->count - at) * sizeof *l->files);
        l->paths[at] = rel;
        l->files[at] = *file;
        l->count++;
    }
    return rc;
}

/* Maps the file a storage range names and checks that the range lies inside it. */
static int storage_range(struct loader *l, const char *name, const struct dcp_storage *s, uint32_t *file,
                         ckpt_error *err)
{
    int rc = data_file(l, s->path, file, err);
    if (rc)
        return rc;
    const struct source_file *f = &l->src->files[*file];
    uint64_t end;
    if (!ckpt_add_u64(s->offset, s->length, &end) || end > f->size)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: bytes %llu+%llu lie outside the file (%llu bytes)",
                         f->path, name, (unsigned long long)s->offset, (unsigned long long)s->length,
                         (unsigned long long)f->size);
    return CKPT_OK;
}

/* Checks the chunk's torch.save content against what the metadata says it holds. */
static int check_chunk_tensor(const struct ckpt_source *s, const struct dcp_entry *e, const struct dcp_chunk *c,
                              const struct tensor_entry **out, ckpt_error *err)
{
    const struct tensor_entry *t = s->tensor_count == 1 ? &s->tensors[0] : NULL;
    if (!t || t->parts || t->alias_target != SIZE_MAX)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: a chunk's data is not one tensor", s->path, e->name);
    bool same = t->pub.dtype == e->dtype && t->pub.rank == e->rank;
    for (uint32_t d = 0; same && d < e->rank; d++)
        same = t->shape[d] == c->sizes[d];
    if (!same)
        return ckpt_fail(err, CKPT_ERR_FORMAT,
                         "%s: tensor %s: a chunk's data has another type or shape than the metadata gives it", s->path,
                         e->name);
    *out = t;
    return CKPT_OK;
}

/*
 * Reads one chunk: its view (file index in src, strides copied into
 * `strides`) becomes piece->view.  A failure inside the torch.save reader
 * is reported again with the tensor's name.
 */
static int load_chunk(struct loader *l, const struct dcp_entry *e, const struct dcp_chunk *c,
                      struct tensor_piece *piece, int64_t *strides, ckpt_error *err)
{
    uint32_t parent;
    int rc = storage_range(l, e->name, &c->storage, &parent, err);
    if (rc)
        return rc;
    char name[4200];
    snprintf(name, sizeof name, "%s@%llu", l->src->files[parent].path, (unsigned long long)c->storage.offset);
    struct ckpt_source *s = source_new(name, &l->src->limits);
    if (!s)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", name);
    uint32_t slice, base;
    ckpt_error inner;
    const struct tensor_entry *t = NULL;
    rc = source_add_borrowed(s, &l->src->files[parent], c->storage.offset, c->storage.length, name, &slice, &inner);
    if (!rc)
        rc = torch_load_at(s, slice, &inner);
    if (rc)
        rc = ckpt_fail(err, rc, "%s (a chunk of tensor %s)", inner.message, e->name);
    if (!rc)
        rc = check_chunk_tensor(s, e, c, &t, err);
    if (!rc)
        rc = source_adopt_files(l->src, s, &base, err);
    if (!rc) {
        piece->offsets = c->offsets;
        piece->sizes = c->sizes;
        piece->view = t->view;
        piece->view.file += base;
        piece->view.strides = NULL;
        if (t->strides) {
            memcpy(strides, t->strides, e->rank * sizeof *strides);
            piece->view.strides = strides;
        }
    }
    ckpt_source_free(s);
    return rc;
}

/* The name an entry is declared under when it is not split, into name[NAME_CAP]. */
static int declared_name(const struct dcp_entry *e, const struct dcp_options *opt, char *name, const char *dir,
                         ckpt_error *err)
{
    if (opt && opt->rename ? opt->rename(opt->ctx, e->name, NULL, 0, name, NAME_CAP)
                           : (size_t)snprintf(name, NAME_CAP, "%s", e->name) < NAME_CAP)
        return CKPT_OK;
    return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: entry %s: its name is too long", dir, e->name);
}

static int declare_tensor(struct loader *l, const struct dcp_entry *e, const struct dcp_options *opt,
                          ckpt_error *err)
{
    size_t width = e->rank ? e->rank : 1;
    struct tensor_piece *pieces = calloc(e->chunk_count, sizeof *pieces);
    int64_t *strides = calloc(e->chunk_count * width, sizeof *strides);
    int rc = pieces && strides ? CKPT_OK : ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory adding tensor %s", e->name);
    for (size_t c = 0; c < e->chunk_count && !rc; c++)
        rc = load_chunk(l, e, &e->chunks[c], &pieces[c], strides + c * width, err);
    unsigned axes = opt && opt->split ? opt->split(opt->ctx, e) : 0;
    if (!rc && axes)
        rc = dcp_declare_split(l->src, e, pieces, axes, opt, l->name, NAME_CAP, err);
    else if (!rc && !(rc = declared_name(e, opt, l->name, l->dir, err)))
        rc = source_add_pieces(l->src, l->name, e->dtype, e->rank, e->shape, pieces, e->chunk_count, err);
    free(pieces);
    free(strides);
    return rc;
}

/* A pickled object: its bytes are checked to exist, recorded, never unpickled. */
static int declare_bytes(struct loader *l, const struct dcp_entry *e, const struct dcp_options *opt,
                         ckpt_error *err)
{
    uint32_t file;
    int rc = storage_range(l, e->name, &e->bytes, &file, err);
    if (!rc)
        rc = declared_name(e, opt, l->name, l->dir, err);
    if (rc)
        return rc;
    char value[128];
    snprintf(value, sizeof value, "<%llu bytes of a pickled object>", (unsigned long long)e->bytes.length);
    rc = source_add_object(l->src, l->name, "bytes", value, err);
    return !rc && opt && opt->bytes ? opt->bytes(opt->ctx, l->src, e, file, err) : rc;
}

/*
 * Notes the chunks of an entry left out (optimizer state) that lie in data
 * files mapped for the entries kept, so that packing stores them as tensor
 * data (source_note_data).
 */
static int note_left_out(struct loader *l, const struct dcp_entry *e, ckpt_error *err)
{
    int rc = CKPT_OK;
    for (size_t k = 0; e->is_tensor && k < e->chunk_count && !rc; k++) {
        const struct dcp_storage *s = &e->chunks[k].storage;
        bool found;
        size_t at = file_slot(l, s->path, &found);
        if (found)
            rc = source_note_data(l->src, l->files[at], s->offset, s->length, err);
    }
    return rc;
}

int dcp_load_folder(struct ckpt_source *src, const char *dir, const struct dcp_options *opt, ckpt_error *err)
{
    char *path = path_join(dir, METADATA_FILE);
    if (!path)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", dir);
    uint32_t file;
    struct dcp_metadata md;
    int rc = source_add_file(src, path, &file, err);
    if (!rc)
        rc = dcp_metadata_parse(&md, src->files[file].data, (size_t)src->files[file].size, path, &src->limits, err);
    free(path);
    if (rc)
        return rc;
    struct loader l = {src, dir, NULL, NULL, 0, malloc(NAME_CAP)};
    if (!l.name)
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", dir);
    for (size_t i = 0; i < md.count && !rc; i++) {
        const struct dcp_entry *e = &md.entries[i];
        if (opt && opt->keep && !opt->keep(opt->ctx, e))
            continue;
        if (opt && opt->check && (rc = opt->check(opt->ctx, e, dir, err)))
            break;
        rc = e->is_tensor ? declare_tensor(&l, e, opt, err) : declare_bytes(&l, e, opt, err);
    }
    for (size_t i = 0; i < md.count && !rc && opt && opt->keep; i++)
        if (!opt->keep(opt->ctx, &md.entries[i]))
            rc = note_left_out(&l, &md.entries[i], err);
    free(l.name);
    if (!rc && src->tensor_count == 0)
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: a DCP checkpoint without tensors", dir);
    free(l.paths);
    free(l.files);
    dcp_metadata_free(&md);
    return rc;
}

static bool dcp_probe(const struct format_probe *p)
{
    return p->is_dir && format_dir_has(p->fs, p->path, METADATA_FILE);
}

static int dcp_open(struct ckpt_source *src, const char *path, ckpt_error *err)
{
    return dcp_load_folder(src, path, NULL, err);
}

const struct format_reader format_dcp = {"dcp", dcp_probe, dcp_open};
