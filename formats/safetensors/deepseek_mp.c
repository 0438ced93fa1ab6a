/*
 * deepseek_mp.c: DeepSeek-V3's own inference shards, model{i}-mp{N}.safetensors,
 * as its inference/convert.py writes them (deepseek-ai/DeepSeek-V3 @ 9b4e9788),
 * merged back into the whole model under DeepSeek's names (`--rename hf`
 * gives the Hugging Face ones).
 *
 * convert.py gives file i the routed experts [i*E/N, (i+1)*E/N) whole (lines
 * 68-71), cuts every other tensor whose module `mapping` gives a dim into N
 * equal parts on it (lines 72-75: embed, wq, wq_b, wkv_b, w1, w3, head on
 * dim 0; wo, w2 on dim 1), its fp8 `scale` the same way, so in whole blocks,
 * and copies the rest into every file.  So: a routed expert is taken from
 * the one file that must hold it; a cut tensor is the N parts in file order
 * (pieces, nothing copied), each the same shape; a copied one is file 0's,
 * the others checked to have its type and shape.  Anything else (a file
 * missing, a tensor absent from one file or in two, parts of unequal
 * shapes, an expert in another file than its range) is refused by name.
 */
#include "formats/common/format.h"

#include "formats/common/shard_index.h"
#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"
#include "safetensors.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MP 1024

/* "model{i}-mp{n}.safetensors" (a base name) into i and n. */
static bool mp_name(const char *base, long *i, long *n)
{
    char *end;
    if (strncmp(base, "model", 5) != 0 || !isdigit((unsigned char)base[5]))
        return false;
    *i = strtol(base + 5, &end, 10);
    if (strncmp(end, "-mp", 3) != 0 || !isdigit((unsigned char)end[3]))
        return false;
    *n = strtol(end + 3, &end, 10);
    return strcmp(end, ".safetensors") == 0 && *n >= 1 && *n <= MAX_MP && *i >= 0 && *i < *n;
}

static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* A folder whose every *.safetensors file is named model{i}-mp{n}.safetensors. */
static bool mp_probe(const struct format_probe *p)
{
    char **files;
    size_t count;
    if (!p->is_dir || dir_list_suffix(p->fs, p->path, ".safetensors", &files, &count, NULL) != CKPT_OK)
        return false;
    bool all = count > 0;
    for (size_t k = 0; k < count && all; k++) {
        long i, n;
        all = mp_name(base_of(files[k]), &i, &n);
    }
    path_list_free(files, count);
    return all;
}

/* The dim convert.py's `mapping` cuts a module on (lines 11-30), or -1 when it copies it. */
static int cut_dim(const char *name)
{
    static const struct {
        const char *module;
        int dim;
    } cuts[] = {{"embed", 0}, {"wq", 0}, {"wq_b", 0}, {"wkv_b", 0}, {"w1", 0}, {"w3", 0}, {"head", 0},
                {"wo", 1}, {"w2", 1}};
    /* the module is the second-to-last part, as convert.py takes it (line 62) */
    const char *last = strrchr(name, '.');
    if (!last)
        return -1;
    const char *start = last;
    while (start > name && start[-1] != '.')
        start--;
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++)
        if ((size_t)(last - start) == strlen(cuts[k].module) && strncmp(start, cuts[k].module, last - start) == 0)
            return cuts[k].dim;
    return -1;
}

/* The routed expert a name is, as convert.py reads it (line 69: the third-to-last part), or -1. */
static long expert_of(const char *name)
{
    if (!strstr(name, "experts") || strstr(name, "shared_experts"))
        return -1;
    const char *at = strstr(name, ".experts.");
    if (!at || !isdigit((unsigned char)at[9]))
        return -2;
    return strtol(at + 9, NULL, 10);
}

struct shards {
    long n;
    struct ckpt_source **files;   /* scratch catalogs, by file index i */
    uint32_t *base;               /* file i's first file index in src */
    const char **paths;
};

static const struct tensor_entry *find(const struct ckpt_source *s, const char *name)
{
    size_t at;
    return ckpt_source_find(s, name, &at) == CKPT_OK ? &s->tensors[at] : NULL;
}

static struct tensor_view view_in(const struct shards *sh, long i, const struct tensor_entry *t)
{
    struct tensor_view v = t->view;
    v.file += sh->base[i];
    return v;
}

/* The expert count: the rows of the first router (layers.L.ffn.gate.weight) file 0 holds, or 0. */
static long routed_experts(const struct ckpt_source *s)
{
    for (size_t k = 0; k < s->tensor_count; k++) {
        const char *name = s->tensors[k].pub.name;
        size_t len = strlen(name);
        if (len > 16 && strcmp(name + len - 16, ".ffn.gate.weight") == 0 && s->tensors[k].pub.rank == 2)
            return (long)s->tensors[k].shape[0];
    }
    return 0;
}

/* A tensor of file 0 that is not a routed expert: cut on `dim` over the files, or copied. */
static int declare_shared(struct ckpt_source *src, const struct shards *sh, const struct tensor_entry *t0,
                          ckpt_error *err)
{
    const char *name = t0->pub.name;
    int dim = cut_dim(name);
    if (dim >= (int)t0->pub.rank)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s has no dim %d to be cut on", sh->paths[0], name, dim);
    for (long i = 1; i < sh->n; i++) {
        const struct tensor_entry *t = find(sh->files[i], name);
        if (!t)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: no tensor %s, which %s holds", sh->paths[i], name,
                             sh->paths[0]);
        if (t->pub.dtype != t0->pub.dtype || t->pub.rank != t0->pub.rank ||
            memcmp(t->shape, t0->shape, t->pub.rank * sizeof *t->shape) != 0)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s is not of the type and shape it has in %s (each "
                             "file holds an equal part%s)", sh->paths[i], name, sh->paths[0],
                             dim < 0 ? ", here a copy" : "");
    }
    if (dim < 0 || sh->n == 1) {
        struct tensor_view v = view_in(sh, 0, t0);
        v.strides = t0->strides;
        return source_add_tensor(src, name, t0->pub.dtype, t0->pub.rank, t0->shape, &v, err);
    }
    uint32_t rank = t0->pub.rank;
    uint64_t shape[SOURCE_MAX_RANK];
    memcpy(shape, t0->shape, rank * sizeof *shape);
    if (!ckpt_mul_u64(shape[dim], (uint64_t)sh->n, &shape[dim]))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: its merged size overflows", sh->paths[0], name);
    struct tensor_piece *pieces = calloc((size_t)sh->n, sizeof *pieces);
    uint64_t *offsets = calloc((size_t)sh->n * rank, sizeof *offsets);
    if (!pieces || !offsets) {
        free(pieces);
        free(offsets);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory merging %s", name);
    }
    for (long i = 0; i < sh->n; i++) {
        const struct tensor_entry *t = find(sh->files[i], name);
        uint64_t *off = offsets + (size_t)i * rank;
        off[dim] = (uint64_t)i * t0->shape[dim];
        pieces[i] = (struct tensor_piece){off, t->shape, view_in(sh, i, t)};
        pieces[i].view.strides = t->strides;
    }
    int rc = source_add_pieces(src, name, t0->pub.dtype, rank, shape, pieces, (size_t)sh->n, err);
    free(pieces);
    free(offsets);
    return rc;
}

/* Every routed expert has each tensor expert 0 has (file 0 holds expert 0 of every MoE layer). */
static int check_experts(const struct shards *sh, long experts, long local, ckpt_error *err)
{
    const struct ckpt_source *s = sh->files[0];
    for (size_t k = 0; k < s->tensor_count; k++) {
        const char *name = s->tensors[k].pub.name, *at = strstr(name, ".experts.0.");
        if (expert_of(name) != 0 || !at)
            continue;
        for (long e = 1; e < experts; e++) {
            char other[1024];
            int n = snprintf(other, sizeof other, "%.*s.experts.%ld.%s", (int)(at - name), name, e, at + 11);
            if (n < 0 || (size_t)n >= sizeof other || !find(sh->files[e / local], other))
                return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: no tensor %s (expert %ld of %ld, whose range the file "
                                 "holds)", sh->paths[e / local], other, e, experts);
        }
    }
    return CKPT_OK;
}

/* Every tensor of file i: file 0's merged (or copied), and each file's routed experts where they must be. */
static int declare_all(struct ckpt_source *src, const struct shards *sh, ckpt_error *err)
{
    long experts = routed_experts(sh->files[0]);
    if (experts && experts % sh->n != 0)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: %ld routed experts do not divide over %ld files", sh->paths[0],
                         experts, sh->n);
    long local = experts / sh->n;
    int rc = CKPT_OK;
    for (long i = 0; i < sh->n && !rc; i++) {
        const struct ckpt_source *s = sh->files[i];
        for (size_t k = 0; k < s->tensor_count && !rc; k++) {
            const struct tensor_entry *t = &s->tensors[k];
            long e = expert_of(t->pub.name);
            if (e == -1 && i == 0) {
                rc = declare_shared(src, sh, t, err);
            } else if (e == -1 && !find(sh->files[0], t->pub.name)) {
                rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s, which %s does not hold", sh->paths[i],
                               t->pub.name, sh->paths[0]);
            } else if (e == -2 || (e >= 0 && (!local || e / local != i))) {
                rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: routed expert tensor %s, but file %ld holds experts "
                               "[%ld, %ld) of %ld", sh->paths[i], t->pub.name, i, i * local, (i + 1) * local,
                               experts);
            } else if (e >= 0) {
                struct tensor_view v = view_in(sh, i, t);
                v.strides = t->strides;
                rc = source_add_tensor(src, t->pub.name, t->pub.dtype, t->pub.rank, t->shape, &v, err);
            }
        }
    }
    if (!rc)
        rc = check_experts(sh, experts, local, err);
    char text[32];
    snprintf(text, sizeof text, "%ld", sh->n);
    if (!rc)
        rc = source_add_metadata(src, "deepseek.model_parallel", text, sh->paths[0], err);
    snprintf(text, sizeof text, "%ld", experts);
    if (!rc && experts)
        rc = source_add_metadata(src, "deepseek.n_routed_experts", text, sh->paths[0], err);
    return rc;
}

static int mp_open(struct ckpt_source *src, const char *path, ckpt_error *err)
{
    char **files = NULL;
    size_t count = 0;
    struct shards sh = {0};
    int rc = dir_list_suffix(src->fs, path, ".safetensors", &files, &count, err);
    long i0, n0 = 0;
    if (!rc && (count == 0 || !mp_name(base_of(files[0]), &i0, &n0)))
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: no model{i}-mp{n}.safetensors file", path);
    sh.n = n0;
    if (!rc && !(sh.files = calloc((size_t)n0, sizeof *sh.files)))
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    if (!rc && (!(sh.base = calloc((size_t)n0, sizeof *sh.base)) || !(sh.paths = calloc((size_t)n0, sizeof *sh.paths))))
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    for (size_t k = 0; k < count && !rc; k++) {
        long i, n;
        if (!mp_name(base_of(files[k]), &i, &n) || n != n0)
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: not one of %ld model{i}-mp%ld.safetensors files", files[k], n0,
                           n0);
        else if (sh.paths[i])
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: a second file for model-parallel rank %ld", files[k], i);
        else
            sh.paths[i] = files[k];
    }
    for (long i = 0; i < n0 && !rc; i++) {
        if (!sh.paths[i]) {
            rc = ckpt_fail(err, CKPT_ERR_NOT_FOUND, "%s/model%ld-mp%ld.safetensors: missing", path, i, n0);
            break;
        }
        if (!(sh.files[i] = source_new(sh.paths[i], &src->limits))) {
            rc = ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", sh.paths[i]);
            break;
        }
        source_share_fs(sh.files[i], src);
        rc = safetensors_load_file(sh.files[i], sh.paths[i], err);
        if (!rc)
            rc = source_adopt_files(src, sh.files[i], &sh.base[i], err);
    }
    if (!rc)
        rc = declare_all(src, &sh, err);
    for (long i = 0; sh.files && i < n0; i++)
        ckpt_source_free(sh.files[i]);
    free(sh.files);
    free(sh.base);
    free(sh.paths);
    path_list_free(files, count);
    return rc;
}

const struct format_reader format_deepseek_mp = {"deepseek-mp", mp_probe, mp_open};
