/* shard_index.c: shard index files and folder listings; see shard_index.h. */
#include "shard_index.h"

#include "libckpt/common/error.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int read_tag_file(const struct ckpt_fs *fs, const char *path, char *out, size_t cap, const char *what,
                  ckpt_error *err)
{
    long got = fs_read_head(fs, path, out, cap);   /* filling all `cap` bytes leaves no room for the NUL */
    if (got < 0)
        return ckpt_fail(err, CKPT_ERR_READ, "%s: cannot open", path);
    size_t n = (size_t)got;
    if (n == cap)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: longer than %s", path, what);
    if (memchr(out, '\0', n))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: holds a NUL byte", path);
    while (n && strchr(" \t\r\n", out[n - 1]))
        n--;
    out[n] = '\0';
    return CKPT_OK;
}

int named_folder(const struct ckpt_fs *fs, const char *dir, const char *name, const char *named_by, char **out,
                 ckpt_error *err)
{
    if (!(*out = path_join(dir, name)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", dir);
    if (fs_is_dir(fs, *out))
        return CKPT_OK;
    int rc = ckpt_fail(err, CKPT_ERR_NOT_FOUND, "%s: names %s, which is not a folder", named_by, *out);
    free(*out);
    *out = NULL;
    return rc;
}

void path_list_free(char **paths, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(paths[i]);
    free(paths);
}

static int by_string(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int dir_list_suffix(const struct ckpt_fs *fs, const char *dir, const char *suffix, char ***paths, size_t *count,
                    ckpt_error *err)
{
    return fs_list_suffix(fs, dir, suffix, paths, count, err);
}

/* A shard name must stay inside the folder: relative, and no ".." component. */
static bool safe_relative_name(const char *name)
{
    if (name[0] == '\0' || name[0] == '/')
        return false;
    for (const char *p = name; *p;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return false;
        p += len + (slash ? 1 : 0);
    }
    return true;
}

/* The shard path for `name`, added to the index's files when first seen. */
static int shard_path(struct shard_index *index, const struct ckpt_fs *fs, const char *dir, const char *name, const char **out,
                      ckpt_error *err)
{
    char *full = path_join(dir, name);
    if (!full)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", index->path);
    for (size_t i = index->file_count; i-- > 0;) {
        if (strcmp(index->files[i], full) == 0) {
            free(full);
            *out = index->files[i];
            return CKPT_OK;
        }
    }
    if (!fs_is_file(fs, full)) {
        int rc = ckpt_fail(err, CKPT_ERR_NOT_FOUND, "%s: lists shard %s, which does not exist", index->path, name);
        free(full);
        return rc;
    }
    /* there are never more distinct files than names, so `files` has room */
    index->files[index->file_count++] = full;
    *out = full;
    return CKPT_OK;
}

static int load_weight_map(struct shard_index *index, const struct ckpt_fs *fs, const char *dir, const json_t *map, ckpt_error *err)
{
    size_t n = json_object_size(map);
    index->names = calloc(n ? n : 1, sizeof *index->names);
    index->name_file = calloc(n ? n : 1, sizeof *index->name_file);
    index->files = calloc(n ? n : 1, sizeof *index->files);
    if (!index->names || !index->name_file || !index->files)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory for %zu entries", index->path, n);
    const char *name;
    const json_t *file;
    json_object_foreach((json_t *)map, name, file) {
        if (!json_is_string(file))
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: weight_map entry %s is not a file name", index->path, name);
        const char *shard = json_string_value(file);
        if (!safe_relative_name(shard))
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: shard name %s leaves the checkpoint folder", index->path,
                             shard);
        size_t i = index->name_count;
        int rc = shard_path(index, fs, dir, shard, &index->name_file[i], err);
        if (rc)
            return rc;
        if (!(index->names[i] = strdup(name)))
            return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", index->path);
        index->name_count++;
    }
    return CKPT_OK;
}

int shard_index_load(struct shard_index *index, const struct ckpt_fs *fs, const char *dir, const char *index_name,
                     const ckpt_limits *limits, ckpt_error *err)
{
    memset(index, 0, sizeof *index);
    if (!(index->path = path_join(dir, index_name)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", dir);
    char *text;
    size_t len;
    int rc = fs_read_small(fs, index->path, limits->max_header_bytes, &text, &len, err);
    if (rc)
        return rc;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!root)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: invalid JSON at line %d: %s", index->path, jerr.line, jerr.text);
    const json_t *map = json_is_object(root) ? json_object_get(root, "weight_map") : NULL;
    if (!json_is_object(map))
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: no weight_map object", index->path);
    else
        rc = load_weight_map(index, fs, dir, map, err);
    json_decref(root);
    if (!rc) /* shards are opened in name order; name_file points at the strings, not the slots */
        qsort(index->files, index->file_count, sizeof *index->files, by_string);
    return rc;
}

int shard_index_verify(const struct shard_index *index, const struct ckpt_source *src, ckpt_error *err)
{
    bool *listed = calloc(src->tensor_count ? src->tensor_count : 1, sizeof *listed);
    if (!listed)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", index->path);
    int rc = CKPT_OK;
    for (size_t i = 0; i < index->name_count && !rc; i++) {
        size_t t = source_lookup(src, index->names[i]);
        const char *want = index->name_file[i];
        if (t == SIZE_MAX) {
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s is not in shard %s", index->path, index->names[i],
                           want);
        } else if (strcmp(src->files[src->tensors[t].pub.file].path, want) != 0) {
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s is listed in %s but stored in %s", index->path,
                           index->names[i], want, src->files[src->tensors[t].pub.file].path);
        }
        if (!rc)
            listed[t] = true;
    }
    for (size_t t = 0; t < src->tensor_count && !rc; t++)
        if (!listed[t])
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: shard %s holds tensor %s, which the index omits", index->path,
                           src->files[src->tensors[t].pub.file].path, src->tensors[t].pub.name);
    free(listed);
    return rc;
}

void shard_index_free(struct shard_index *index)
{
    free(index->path);
    path_list_free(index->files, index->file_count);
    path_list_free(index->names, index->name_count);
    free((void *)index->name_file);
    memset(index, 0, sizeof *index);
}
