/*
 * safetensors.c: the safetensors reader: one file, a folder with
 * model.safetensors.index.json (or msModelSlim's
 * quant_model_weights.safetensors.index.json), or a folder of *.safetensors
 * shards.  A folder ckpt convert wrote is then read back as its logical
 * tensors (converted.c).
 */
#include "formats/common/format.h"

#include "converted.h"
#include "formats/common/shard_index.h"
#include "libckpt/common/error.h"
#include "safetensors.h"

#include <stdlib.h>
#include <string.h>

#define SAFETENSORS_INDEX "model.safetensors.index.json"

/*
 * A file starts with its header length, then the JSON object; a file named
 * .safetensors is taken at its word, so that a damaged one gets a precise error.
 */
static bool safetensors_probe(const struct format_probe *p)
{
    size_t n = strlen(p->path);
    if (!p->is_dir)
        return (p->head_len >= 9 && p->head[8] == '{') || (n >= 12 && strcmp(p->path + n - 12, ".safetensors") == 0);
    if (format_dir_has(p->fs, p->path, SAFETENSORS_INDEX) || format_dir_has(p->fs, p->path, QUANT_INDEX_FILE))
        return true;
    char **files;
    size_t count;
    if (dir_list_suffix(p->fs, p->path, ".safetensors", &files, &count, NULL) != CKPT_OK)
        return false;
    path_list_free(files, count);
    return count > 0;
}

static int open_indexed(struct ckpt_source *src, const char *dir, const char *index_name, ckpt_error *err)
{
    struct shard_index index;
    int rc = shard_index_load(&index, src->fs, dir, index_name, &src->limits, err);
    for (size_t i = 0; i < index.file_count && !rc; i++)
        rc = safetensors_load_file(src, index.files[i], err);
    if (!rc)
        rc = shard_index_verify(&index, src, err);
    shard_index_free(&index);
    return rc;
}

static int open_listed(struct ckpt_source *src, const char *dir, ckpt_error *err)
{
    char **files;
    size_t count;
    int rc = dir_list_suffix(src->fs, dir, ".safetensors", &files, &count, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < count && !rc; i++)
        rc = safetensors_load_file(src, files[i], err);
    path_list_free(files, count);
    return rc;
}

static int safetensors_open(struct ckpt_source *src, const char *path, ckpt_error *err)
{
    int rc;
    if (src->experts == CKPT_EXPERTS_SPLIT) {   /* config.json is the folder's, or the file's folder's */
        char *dir = format_is_dir(src->fs, path) ? strdup(path) : NULL;
        const char *slash = dir ? NULL : strrchr(path, '/');
        if (!dir)
            dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
        src->split_fused = dir && fused_experts_model(src, dir);
        free(dir);
    }
    if (!format_is_dir(src->fs, path))
        rc = safetensors_load_file(src, path, err);
    else if (format_dir_has(src->fs, path, SAFETENSORS_INDEX))
        rc = open_indexed(src, path, SAFETENSORS_INDEX, err);
    else if (format_dir_has(src->fs, path, QUANT_INDEX_FILE))
        rc = open_indexed(src, path, QUANT_INDEX_FILE, err);
    else
        rc = open_listed(src, path, err);
    return rc ? rc : converted_apply(src, path, err);
}

const struct format_reader format_safetensors = {"safetensors", safetensors_probe, safetensors_open};
