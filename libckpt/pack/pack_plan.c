/*
 * pack_plan.c: what a bundle of SRC holds; see pack_plan_build in pack.h.
 *
 * Tensor data is told from headers by opening SRC with its reader: the
 * storage of every tensor (and every storage the reader notes without
 * making a tensor of it, such as optimizer state) is a tensor segment of
 * the file it lies in, split into byte planes when it holds floating-point
 * values; the bytes between them (headers, pickles) and files the reader
 * never maps are byte segments.
 */
#include "pack.h"

#include "formats/registry/open.h"
#include "libckpt/catalog/source.h"
#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"
#include "libckpt/io/fs.h"
#include "libckpt/io/links.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A file found under SRC. */
struct found {
    char *rel;                /* path inside SRC */
    char *path;               /* where it is read from */
    dev_t dev;
    ino_t ino;
    uint64_t size;
    bool link;
};

struct listing {
    struct found *files;
    size_t count, cap;
    size_t max;
    char *link_root;   /* links are followed inside it only (libckpt/io/links.h), as convert does */
};

/* A stretch of tensor data in a file. */
struct range {
    size_t file;
    uint64_t offset, length;
    unsigned width;           /* byte planes of this width, or 0 */
    bool entropy_only;
    const char *name;         /* the tensor, or NULL for noted storage */
};

static int add_found(struct listing *l, const char *rel, const char *path, const struct stat *st, bool link,
                     ckpt_error *err)
{
    if (l->count >= l->max)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: more than %zu files to pack (max_tensors)", path, l->max);
    if (l->count == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        struct found *grown = reallocarray(l->files, cap, sizeof *grown);
        if (!grown)
            return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
        l->files = grown;
        l->cap = cap;
    }
    struct found *f = &l->files[l->count];
    *f = (struct found){strdup(rel), strdup(path), st->st_dev, st->st_ino, (uint64_t)st->st_size, link};
    if (!f->rel || !f->path) {
        free(f->rel);
        free(f->path);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    }
    l->count++;
    return CKPT_OK;
}

/* Every regular file under `dir` (links to files followed and marked), `rel` its path inside SRC. */
static int walk(struct listing *l, const char *dir, const char *rel, unsigned depth, ckpt_error *err)
{
    if (depth > 64)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: folders nested more than 64 deep", dir);
    DIR *d = opendir(dir);
    if (!d)
        return ckpt_fail(err, CKPT_ERR_READ, "%s: cannot list: %s", dir, strerror(errno));
    int rc = CKPT_OK;
    struct dirent *e;
    while (!rc && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[4096], sub[4096];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path ||
            snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name) >= (int)sizeof sub) {
            rc = ckpt_fail(err, CKPT_ERR_LIMIT, "%s/%s: path too long", dir, e->d_name);
            break;
        }
        struct stat st, target;
        if (lstat(path, &st) != 0) {
            rc = ckpt_fail(err, CKPT_ERR_READ, "%s: %s", path, strerror(errno));
        } else if (S_ISDIR(st.st_mode)) {
            rc = walk(l, path, sub, depth + 1, err);
        } else if (S_ISREG(st.st_mode)) {
            rc = add_found(l, sub, path, &st, false, err);
        } else if (S_ISLNK(st.st_mode) && stat(path, &target) == 0 && S_ISREG(target.st_mode)) {
            rc = links_check(l->link_root, path, err);
            if (!rc)
                rc = add_found(l, sub, path, &target, true, err);
        } else {
            rc = ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: %s: a bundle holds regular files only", path,
                           S_ISLNK(st.st_mode) ? "a link to something other than a file" : "not a regular file");
        }
    }
    closedir(d);
    return rc;
}

static int by_rel(const void *a, const void *b)
{
    return strcmp(((const struct found *)a)->rel, ((const struct found *)b)->rel);
}

static int by_place(const void *a, const void *b)
{
    const struct range *x = a, *y = b;
    if (x->file != y->file)
        return x->file < y->file ? -1 : 1;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return x->length < y->length ? -1 : x->length > y->length;
}

/* Byte planes for a tensor's element type as stored, or 0 for bytes as they are. */
static unsigned plane_width(ckpt_dtype dtype, bool big_endian)
{
    if (big_endian)
        return 0;   /* rare (torch byteorder "big"): kept as stored */
    switch (dtype) {
    case CKPT_DTYPE_F16:
    case CKPT_DTYPE_BF16: return 2;
    case CKPT_DTYPE_F32:
    case CKPT_DTYPE_C64: return 4;
    case CKPT_DTYPE_F64: return 8;
    default: return 0;
    }
}

static bool is_fp8(ckpt_dtype dtype)
{
    return dtype == CKPT_DTYPE_F8_E4M3 || dtype == CKPT_DTYPE_F8_E5M2 || dtype == CKPT_DTYPE_F8_E8M0 ||
           dtype == CKPT_DTYPE_F8_E4M3FNUZ || dtype == CKPT_DTYPE_F8_E5M2FNUZ;
}

struct ranges {
    struct range *items;
    size_t count, cap;
};

static int push_range(struct ranges *r, struct range item, ckpt_error *err)
{
    if (r->count == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 256;
        struct range *grown = reallocarray(r->items, cap, sizeof *grown);
        if (!grown)
            return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory planning a bundle");
        r->items = grown;
        r->cap = cap;
    }
    r->items[r->count++] = item;
    return CKPT_OK;
}

static int by_inode(const void *a, const void *b, void *ctx)
{
    const struct found *files = ctx, *x = &files[*(const size_t *)a], *y = &files[*(const size_t *)b];
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    return x->ino < y->ino ? -1 : x->ino > y->ino;
}

/* A file the reader mapped, paired with the found file it is. */
struct owner {
    const struct vfile *backing;
    size_t found;
};

static int by_backing(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const struct owner *)a)->backing, y = (uintptr_t)((const struct owner *)b)->backing;
    return x < y ? -1 : x > y;
}

/* The found file with the device and inode of `st`, the one whose path ends `path` among links to one file. */
static size_t find_inode(const struct listing *l, const size_t *sorted, const struct stat *st, const char *path)
{
    size_t lo = 0, hi = l->count;
    while (lo < hi) {   /* the first at or after (dev, ino) */
        size_t mid = lo + (hi - lo) / 2;
        const struct found *f = &l->files[sorted[mid]];
        if (f->dev < st->st_dev || (f->dev == st->st_dev && f->ino < st->st_ino))
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t best = SIZE_MAX, plen = strlen(path);
    for (size_t k = lo; k < l->count; k++) {
        const struct found *f = &l->files[sorted[k]];
        if (f->dev != st->st_dev || f->ino != st->st_ino)
            break;
        size_t rlen = strlen(f->rel);
        if (best == SIZE_MAX || (plen >= rlen && strcmp(path + plen - rlen, f->rel) == 0))
            best = sorted[k];
    }
    return best;
}

/*
 * Which found file each catalog file's bytes lie in (SIZE_MAX: none, bytes
 * the reader made itself): a file the reader mapped is matched to the
 * found file it is (device and inode, the path breaking a tie between
 * links), a slice to the file whose backing it shares.
 */
static int match_files(const struct ckpt_source *src, const struct listing *l, size_t *found_of, ckpt_error *err)
{
    size_t *sorted = malloc((l->count ? l->count : 1) * sizeof *sorted);
    struct owner *owners = malloc((src->file_count ? src->file_count : 1) * sizeof *owners);
    if (!sorted || !owners) {
        free(sorted);
        free(owners);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory planning a bundle");
    }
    for (size_t k = 0; k < l->count; k++)
        sorted[k] = k;
    qsort_r(sorted, l->count, sizeof *sorted, by_inode, l->files);
    size_t owner_count = 0;
    for (size_t i = 0; i < src->file_count; i++) {
        const struct source_file *f = &src->files[i];
        struct stat st;
        found_of[i] = SIZE_MAX;
        if (f->borrowed || !f->owns_backing || stat(f->path, &st) != 0)
            continue;
        found_of[i] = find_inode(l, sorted, &st, f->path);
        owners[owner_count++] = (struct owner){f->backing, found_of[i]};
    }
    qsort(owners, owner_count, sizeof *owners, by_backing);
    for (size_t i = 0; i < src->file_count; i++) {
        const struct source_file *f = &src->files[i];
        struct owner key = {f->backing, 0}, *o;
        if (f->borrowed && f->backing && (o = bsearch(&key, owners, owner_count, sizeof *owners, by_backing)))
            found_of[i] = o->found;
    }
    free(sorted);
    free(owners);
    return CKPT_OK;
}

/* The stretch of found file `found` a view's storage occupies. */
static int view_range(const struct ckpt_source *src, const size_t *found_of, const struct tensor_view *v,
                      ckpt_dtype dtype, const char *name, struct ranges *out, ckpt_error *err)
{
    const struct source_file *f = &src->files[v->file];
    size_t k = found_of[v->file];
    uint64_t at;
    if (k == SIZE_MAX || !v->storage_bytes || !ckpt_add_u64(f->backing_offset, v->storage_offset, &at))
        return CKPT_OK;
    struct range r = {k, at, v->storage_bytes, plane_width(dtype, v->big_endian), false, name};
    r.entropy_only = r.width != 0 || is_fp8(dtype);
    if (r.width && r.length % r.width)
        r.width = 0;
    return push_range(out, r, err);
}

/* Every stretch of tensor data in the found files, in file and offset order. */
static int collect_ranges(const struct ckpt_source *src, const size_t *found_of, struct ranges *out, ckpt_error *err)
{
    int rc = CKPT_OK;
    for (size_t i = 0; i < src->tensor_count && !rc; i++) {
        const struct tensor_entry *t = &src->tensors[i];
        if (t->alias_target != SIZE_MAX)
            continue;   /* the same storage as the tensor it aliases */
        if (!t->parts)
            rc = view_range(src, found_of, &t->view, t->pub.dtype, t->pub.name, out, err);
        for (size_t p = 0; p < t->part_count && !rc; p++)
            rc = view_range(src, found_of, &t->parts[p].entry.view, t->pub.dtype, t->pub.name, out, err);
    }
    for (size_t i = 0; i < src->data_range_count && !rc; i++) {
        const struct data_range *d = &src->data_ranges[i];
        struct tensor_view v = {d->file, d->offset, d->size, 0, NULL, false};
        rc = view_range(src, found_of, &v, CKPT_DTYPE_U8, NULL, out, err);
    }
    if (out->count)
        qsort(out->items, out->count, sizeof *out->items, by_place);
    return rc;
}

/* Appends a segment to the draft index `ix` (its arrays sized by the caller). */
static int add_segment(struct bundle_index *ix, bool *entropy, uint64_t length, uint8_t kind, uint8_t width, bool entropy_only,
                       const struct range *names, size_t name_count, ckpt_error *err)
{
    struct bundle_segment *g = &ix->segments[ix->segment_count];
    memset(g, 0, sizeof *g);
    g->length = length;
    g->kind = kind;
    g->width = width;
    entropy[ix->segment_count] = entropy_only;
    ix->segment_count++;
    size_t named = 0;
    for (size_t i = 0; i < name_count; i++)
        named += names[i].name != NULL;
    if (!(g->names = calloc(named ? named : 1, sizeof *g->names)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory planning a bundle");
    for (size_t i = 0; i < name_count; i++) {
        if (!names[i].name)
            continue;
        if (!(g->names[g->name_count] = strdup(names[i].name)))
            return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory planning a bundle");
        g->name_count++;
    }
    return CKPT_OK;
}

/*
 * Cuts each found file into segments: merged stretches of tensor data
 * (overlapping views of one storage become one; planes only when all agree
 * on the width) and byte segments between them.
 */
static int cut_files(struct bundle_index *ix, bool **entropy, const struct listing *l, const struct ranges *r,
                     ckpt_error *err)
{
    size_t most = 2 * r->count + l->count;
    ix->segments = calloc(most ? most : 1, sizeof *ix->segments);
    *entropy = calloc(most ? most : 1, sizeof **entropy);
    ix->files = calloc(l->count, sizeof *ix->files);
    if (!ix->segments || !*entropy || !ix->files)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory planning a bundle");
    int rc = CKPT_OK;
    size_t next = 0;
    for (size_t k = 0; k < l->count && !rc; k++) {
        struct bundle_file *f = &ix->files[ix->file_count++];
        if (!(f->path = strdup(l->files[k].rel)))
            return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory planning a bundle");
        f->size = l->files[k].size;
        f->flags = l->files[k].link ? BUNDLE_FILE_WAS_LINK : 0;
        f->first_segment = ix->segment_count;
        uint64_t at = 0;
        while (!rc && next < r->count && r->items[next].file == k) {
            const struct range *first = &r->items[next];
            uint64_t end = first->offset + first->length;
            unsigned width = first->width;
            bool entropy_only = first->entropy_only;
            size_t n = 1;
            for (; next + n < r->count && r->items[next + n].file == k && r->items[next + n].offset < end; n++) {
                const struct range *o = &r->items[next + n];
                if (o->offset + o->length > end)
                    end = o->offset + o->length;
                if (o->width != width)
                    width = 0;   /* views of other types in one storage: bytes as they are */
                entropy_only = entropy_only && o->entropy_only;
            }
            if (end > f->size) {   /* the file changed since the reader looked */
                rc = ckpt_fail(err, CKPT_ERR_READ, "%s: changed while being packed", l->files[k].path);
                break;
            }
            if (width && (end - first->offset) % width)
                width = 0;
            if (first->offset > at)
                rc = add_segment(ix, *entropy, first->offset - at, SEGMENT_BYTES, 0, false, NULL, 0, err);
            if (!rc)
                rc = add_segment(ix, *entropy, end - first->offset, SEGMENT_TENSOR, (uint8_t)width, entropy_only, first,
                                 n, err);
            at = end;
            next += n;
        }
        if (!rc && at < f->size)
            rc = add_segment(ix, *entropy, f->size - at, SEGMENT_BYTES, 0, false, NULL, 0, err);
        f->segment_count = ix->segment_count - f->first_segment;
    }
    return rc;
}

static void listing_free(struct listing *l)
{
    for (size_t i = 0; i < l->count; i++) {
        free(l->files[i].rel);
        free(l->files[i].path);
    }
    free(l->files);
    free(l->link_root);
}

/* SRC's files: the folder's, sorted by path, or the one file. */
static int list_source(struct listing *l, const char *root, uint32_t *flags, ckpt_error *err)
{
    struct stat st;
    if (stat(root, &st) != 0)
        return ckpt_fail(err, errno == ENOENT ? CKPT_ERR_NOT_FOUND : CKPT_ERR_READ, "%s: %s", root, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        int rc = walk(l, root, "", 0, err);
        if (!rc && l->count == 0)
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: an empty folder", root);
        if (!rc)
            qsort(l->files, l->count, sizeof *l->files, by_rel);
        return rc;
    }
    if (!S_ISREG(st.st_mode))
        return ckpt_fail(err, CKPT_ERR_READ, "%s: not a file or folder", root);
    const char *base = strrchr(root, '/');
    struct stat lst;
    *flags |= BUNDLE_SOURCE_IS_FILE;
    return add_found(l, base ? base + 1 : root, root, &st, lstat(root, &lst) == 0 && S_ISLNK(lst.st_mode), err);
}

int pack_plan_build(struct pack_plan *p, const char *src_path, uint64_t frame_bytes, const ckpt_open_options *open,
                    ckpt_error *err)
{
    memset(p, 0, sizeof *p);
    ckpt_open_options taken;
    int rc = open_options_take(&taken, open, err);
    if (rc)
        return rc;
    open = &taken;
    size_t n = strlen(src_path);
    while (n > 1 && src_path[n - 1] == '/')
        n--;
    if (!(p->root = strndup(src_path, n)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", src_path);
    struct listing l = {NULL, 0, 0, (size_t)open->limits.max_tensors, links_root(p->root)};
    struct bundle_index draft = {0};
    struct ranges r = {0};
    ckpt_source *src = NULL;
    size_t *found_of = NULL;
    bool *entropy = NULL;
    rc = list_source(&l, p->root, &draft.flags, err);
    if (!rc)
        rc = ckpt_source_open_ext(&src, p->root, open, err);
    if (!rc && src->fs)
        rc = ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: an archive or a bundle: pack the folder it holds", p->root);
    if (!rc && !(found_of = calloc(src->file_count ? src->file_count : 1, sizeof *found_of)))
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", p->root);
    if (!rc)
        rc = match_files(src, &l, found_of, err);
    if (!rc)
        rc = collect_ranges(src, found_of, &r, err);
    if (!rc) {
        draft.frame_bytes = frame_bytes;
        draft.format = (char *)ckpt_source_format(src);
        rc = cut_files(&draft, &entropy, &l, &r, err);
    }
    struct bundle_bytes plan = {0};
    if (!rc)
        rc = bundle_plan_encode(&draft, &plan, err);
    draft.format = NULL;   /* static, the reader's name */
    if (!rc)
        rc = bundle_plan_parse(&p->ix, plan.data, plan.len, &open->limits, p->root, err);
    if (!rc && !(p->paths = calloc(l.count, sizeof *p->paths)))
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", p->root);
    for (size_t i = 0; !rc && i < l.count; i++) {
        p->paths[i] = l.files[i].path;
        l.files[i].path = NULL;
    }
    if (!rc) {
        p->plan = plan.data;
        p->plan_bytes = plan.len;
        p->entropy_only = entropy;
        entropy = NULL;
    } else {
        bundle_bytes_free(&plan);
    }
    bundle_index_free(&draft);
    free(entropy);
    free(r.items);
    free(found_of);
    ckpt_source_free(src);
    listing_free(&l);
    if (rc)
        pack_plan_free(p);
    return rc;
}

void pack_plan_free(struct pack_plan *p)
{
    if (p->paths)
        for (size_t i = 0; i < p->ix.file_count; i++)
            free(p->paths[i]);
    free(p->paths);
    bundle_index_free(&p->ix);
    free(p->plan);
    free(p->entropy_only);
    free(p->root);
    memset(p, 0, sizeof *p);
}
