/*
 * source_manifest.c: ckpt_manifest_create, the manifest of a source as it
 * is, converting nothing (docs/manifest.md, "Source manifests"): every
 * file under it with its size and XXH3-128, and every tensor as its reader
 * presents it with the XXH3-128 of its logical bytes, so that a copy can
 * be checked file by file (verify --sums) before it is trusted, and a
 * tensor named when one changed.
 */
#include "manifest.h"
#include "sums.h"

#include "libckpt/catalog/source.h"
#include "libckpt/common/error.h"
#include "libckpt/common/options.h"
#include "libckpt/common/workers.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define READ_CHUNK ((uint64_t)16 << 20)   /* lines of a tensor read at once, at least one */

struct create_run {
    const char *path;
    bool single;                   /* SRC is one file */
    const struct sums_files *files;
    char (*file_hex)[SUMS_HEX_MAX + 1];
    const ckpt_source *src;
    char (*tensor_hex)[33];
    atomic_size_t next_file, next_tensor;
    struct sums_progress p;
};

int sums_tensor_hash(const struct ckpt_source *src, size_t index, char hex[33], sums_bytes_fn count, void *ctx,
                     atomic_int *stop, ckpt_error *err)
{
    const struct tensor_entry *t = &src->tensors[index];
    hex[0] = '\0';
    if (t->pub.alias_of)
        return CKPT_OK;
    uint64_t lines = view_line_count(&t->pub), line_bytes = view_line_bytes(&t->pub);
    uint64_t per = line_bytes && line_bytes < READ_CHUNK ? READ_CHUNK / line_bytes : 1;
    if (per > lines)
        per = lines ? lines : 1;
    if (line_bytes && per > SIZE_MAX / line_bytes)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: a line too large to read", t->pub.name);
    uint8_t *buf = malloc(line_bytes ? (size_t)(per * line_bytes) : 1);
    XXH3_state_t *state = XXH3_createState();
    int rc = buf && state ? CKPT_OK : ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory hashing", t->pub.name);
    if (!rc)
        XXH3_128bits_reset(state);
    for (uint64_t at = 0; !rc && at < lines && t->pub.nbytes; at += per) {
        uint64_t n = lines - at < per ? lines - at : per;
        if (stop && atomic_load(stop))
            rc = ckpt_fail(err, CKPT_ERR_CANCELLED, "%s: cancelled", t->pub.name);
        if (!rc)
            rc = view_read_lines(src, t, at, n, buf, err);
        if (!rc) {
            XXH3_128bits_update(state, buf, (size_t)(n * line_bytes));
            if (count && count(ctx, n * line_bytes))
                rc = ckpt_fail(err, CKPT_ERR_CANCELLED, "%s: cancelled", t->pub.name);
        }
    }
    if (!rc)
        hash_hex(XXH3_128bits_digest(state), hex);
    XXH3_freeState(state);
    free(buf);
    return rc;
}

static void *create_worker(void *arg)
{
    struct create_run *r = arg;
    ckpt_error err;
    for (size_t i; !atomic_load(&r->p.stop) && (i = atomic_fetch_add(&r->next_file, 1)) < r->files->count;) {
        size_t n = strlen(r->path) + strlen(r->files->items[i].path) + 2;
        char *path = malloc(n);
        int rc = path ? CKPT_OK : ckpt_fail(&err, CKPT_ERR_NOMEM, "out of memory");
        if (!rc) {
            if (r->single)
                snprintf(path, n, "%s", r->path);
            else
                snprintf(path, n, "%s/%s", r->path, r->files->items[i].path);
            rc = sums_hash_file(path, path, CKPT_SUMS_XXH128, r->file_hex[i], sums_progress_add, &r->p, &r->p.stop,
                                &err);
        }
        free(path);
        if (rc)
            sums_progress_fail(&r->p, rc, &err);
    }
    for (size_t i; !atomic_load(&r->p.stop) && (i = atomic_fetch_add(&r->next_tensor, 1)) < r->src->tensor_count;) {
        int rc = sums_tensor_hash(r->src, i, r->tensor_hex[i], sums_progress_add, &r->p, &r->p.stop, &err);
        if (rc)
            sums_progress_fail(&r->p, rc, &err);
    }
    return NULL;
}

static json_t *shape_array(const uint64_t *shape, uint32_t rank)
{
    json_t *a = json_array();
    for (uint32_t d = 0; d < rank && a; d++)
        json_array_append_new(a, json_integer((json_int_t)shape[d]));
    return a;
}

static int by_path(const void *key, const void *item)
{
    return strcmp(key, ((const struct sums_file *)item)->path);
}

static bool listed(const struct sums_files *files, const char *path)
{
    return files->count && bsearch(path, files->items, files->count, sizeof *files->items, by_path) != NULL;
}

/*
 * The listed file (relative to SRC) that holds a reader's file: itself, the file a slice
 * "FILE@OFFSET" is cut from (DCP's .distcp chunks), or SRC itself for an archive's member.
 */
static const char *holder(const struct create_run *r, const char *path, const char *base, char *buf, size_t cap)
{
    size_t n = strlen(r->path);
    while (n > 1 && r->path[n - 1] == '/')
        n--;
    const char *rel = strcmp(path, r->path) == 0                           ? base
                      : strncmp(path, r->path, n) == 0 && path[n] == '/' ? path + n + 1
                                                                         : path;
    if (r->single || listed(r->files, rel))
        return r->single ? base : rel;
    const char *at = strrchr(rel, '@');
    if (at && (size_t)(at - rel) < cap) {
        memcpy(buf, rel, (size_t)(at - rel));
        buf[at - rel] = '\0';
        if (listed(r->files, buf))
            return buf;
    }
    return rel;
}

static json_t *manifest_json(const struct create_run *r, const char *base)
{
    json_t *files = json_array(), *tensors = json_array();
    for (size_t i = 0; i < r->files->count && files; i++)
        json_array_append_new(files, json_pack("{s:s, s:I, s:s}", "path", r->files->items[i].path, "size",
                                               (json_int_t)r->files->items[i].size, "xxh3_128", r->file_hex[i]));
    for (size_t i = 0; i < r->src->tensor_count && tensors; i++) {
        const ckpt_tensor *t = &r->src->tensors[i].pub;
        json_t *o = json_pack("{s:s, s:s, s:o, s:s, s:o, s:b, s:{s:s, s:s}}", "name", t->name, "dtype",
                              ckpt_dtype_name(t->dtype), "shape", shape_array(t->shape, t->rank), "layout", "ND",
                              "nd_shape", shape_array(t->shape, t->rank), "transposed", 0, "source", "name", t->name,
                              "dtype", ckpt_dtype_name(t->dtype));
        if (o && t->alias_of) {
            json_object_set_new(o, "alias_of", json_string(t->alias_of));
        } else if (o) {
            char buf[4096];
            json_object_set_new(o, "file", json_string(holder(r, r->src->files[t->file].path, base, buf, sizeof buf)));
            json_object_set_new(o, "nbytes", json_integer((json_int_t)t->nbytes));
            json_object_set_new(o, "xxh3_128", json_string(r->tensor_hex[i]));
        }
        json_array_append_new(tensors, o);
    }
    return json_pack("{s:i, s:s, s:{s:s, s:s, s:O}, s:n, s:o, s:o}", "manifest_version", MANIFEST_VERSION, "tool",
                     "libckpt " CKPT_VERSION_STRING, "source", "path", base, "format", ckpt_source_format(r->src),
                     "files", files, "target", "files", files, "tensors", tensors);
}

void ckpt_manifest_options_default(ckpt_manifest_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
}

void ckpt_free(void *p)
{
    free(p);
}

int ckpt_manifest_create(const char *path, const ckpt_manifest_options *opts, char **json, ckpt_error *err)
{
    ckpt_error_clear(err);
    ckpt_manifest_options taken;
    ckpt_manifest_options_default(&taken);
    int taken_rc = options_take(&taken, sizeof taken, opts, "ckpt_manifest_options", err);
    if (taken_rc)
        return taken_rc;
    opts = &taken;
    if (!path || !json)
        return ckpt_fail(err, CKPT_ERR_ARG, "ckpt_manifest_create: no source or no output");
    *json = NULL;
    ckpt_source *src = NULL;
    int rc = ckpt_source_open_ext(&src, path, opts->open, err);
    struct sums_files files = {0};
    if (!rc)
        rc = sums_list_folder(path, &files, err);
    struct stat st;
    struct create_run r = {.path = path, .single = stat(path, &st) == 0 && S_ISREG(st.st_mode), .files = &files,
                           .src = src};
    sums_progress_init(&r.p, opts->progress, opts->progress_payload);
    if (!rc) {
        r.file_hex = calloc(files.count + 1, sizeof *r.file_hex);
        r.tensor_hex = calloc(src->tensor_count + 1, sizeof *r.tensor_hex);
        if (!r.file_hex || !r.tensor_hex)
            rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < files.count; i++)
            r.p.total += files.items[i].size;
        for (size_t i = 0; i < src->tensor_count; i++)
            r.p.total += src->tensors[i].pub.alias_of ? 0 : src->tensors[i].pub.nbytes;
    }
    if (!rc) {
        run_on_threads(worker_count(opts->jobs, files.count + src->tensor_count), create_worker, &r);
        rc = r.p.rc;
        if (rc && err)
            *err = r.p.err;
        if (!rc && atomic_load(&r.p.stop))
            rc = ckpt_fail(err, CKPT_ERR_CANCELLED, "%s: cancelled", path);
    }
    if (!rc) {
        /* the base name, not the path: a manifest says nothing of the machine it was made on */
        char *copy = strdup(path);
        size_t n = copy ? strlen(copy) : 0;
        while (n > 1 && copy[n - 1] == '/')
            copy[--n] = '\0';
        char *real = copy && (strcmp(copy, ".") == 0 || strcmp(copy, "..") == 0) ? realpath(copy, NULL) : NULL;
        const char *named = real ? real : copy;
        const char *slash = named ? strrchr(named, '/') : NULL;
        json_t *doc = named ? manifest_json(&r, slash && slash[1] ? slash + 1 : named) : NULL;
        *json = doc ? json_dumps(doc, JSON_INDENT(1)) : NULL;
        json_decref(doc);
        free(real);
        free(copy);
        if (!*json)
            rc = ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory writing the manifest", path);
    }
    free(r.file_hex);
    free(r.tensor_hex);
    pthread_mutex_destroy(&r.p.lock);
    sums_files_free(&files);
    ckpt_source_free(src);
    return rc;
}
