/* side_files.c: the shard index, config.json and copied small files; see side_files.h. */
#include "side_files.h"

#include "libckpt/common/error.h"
#include "libckpt/io/fs.h"
#include "hf_config.h"
#include "quant_description.h"
#include "libckpt/catalog/source.h"
#include "libckpt/manifest/manifest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int write_json(struct outdir *o, const char *name, json_t *doc, struct file_records *files, ckpt_error *err)
{
    XXH128_hash_t h;
    uint64_t size;
    int rc = outdir_write_json(o, name, doc, JSON_INDENT(2), &h, &size, err);
    return rc ? rc : file_records_add(files, name, size, h, err);
}

static int write_index(struct outdir *o, const struct ckpt_plan *plan, struct file_records *files, ckpt_error *err)
{
    json_t *map = json_object();
    for (size_t i = 0; i < plan->item_count && map; i++) {
        const ckpt_plan_entry *e = &plan->items[i].pub;
        if (!e->alias_of)
            json_object_set_new(map, e->name, json_string(plan->shards[e->shard].name));
    }
    json_t *doc = json_pack("{s:{s:I}, s:o}", "metadata", "total_size", (json_int_t)plan->bytes_out, "weight_map", map);
    return write_json(o, plan->quantized ? QUANT_INDEX_FILE : INDEX_NAME, doc, files, err);
}

static const char *torch_dtype_name(ckpt_dtype d)
{
    switch (d) {
    case CKPT_DTYPE_F16: return "float16";
    case CKPT_DTYPE_BF16: return "bfloat16";
    case CKPT_DTYPE_F32: return "float32";
    case CKPT_DTYPE_F64: return "float64";
    default: return NULL;
    }
}

/* The folder the checkpoint's weights are in (inside its archive, if any), or NULL for a single file. */
static const char *source_folder(const struct ckpt_plan *plan)
{
    const struct ckpt_source *src = plan->src;
    const char *path = src->inner ? src->inner : src->path;
    return fs_is_dir(src->fs, path) ? path : NULL;
}

/* config.json as the converted weights need it: their torch_dtype, no fp8 quantization_config. */
static int write_config(struct outdir *o, const struct ckpt_plan *plan, const char *path, struct file_records *files,
                        ckpt_error *err)
{
    char *text;
    size_t len;
    int rc = fs_read_small(plan->src->fs, path, SIDE_FILE_MAX_BYTES, &text, &len, err);
    if (rc)
        return rc;
    json_error_t jerr;
    json_t *config = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!config || !json_is_object(config)) {
        json_decref(config);
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: invalid JSON at line %d: %s", path, jerr.line, jerr.text);
    }
    const char *dtype = torch_dtype_name(plan->float_dtype);
    if (dtype)
        json_object_set_new(config, "torch_dtype", json_string(dtype));
    /* dequantized fp8 has no quantization_config; msModelSlim's folders have none either (their description says it) */
    if (plan->fp8_dequantized || plan->quantized)
        json_object_del(config, "quantization_config");
    return write_json(o, "config.json", config, files, err);
}

/* Weights and our own outputs are never copied as side files. */
static bool is_weight_or_ours(const char *name)
{
    static const char *const suffixes[] = {".safetensors", ".bin", ".pt", ".pth", ".distcp", ".ckpt",
                                           ".index.json", ".nemo", ".tar", ".zst", MANIFEST_NAME};
    size_t n = strlen(name);
    if (strncmp(name, "quant_model_description", 23) == 0)   /* msModelSlim's, written anew when it applies */
        return true;
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        size_t m = strlen(suffixes[i]);
        if (n >= m && strcmp(name + n - m, suffixes[i]) == 0)
            return true;
    }
    return name[0] == '.';
}

static int copy_file(struct outdir *o, const char *path, const char *name, uint64_t size, struct file_records *files,
                     ckpt_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);   /* links were held to the source's root when it was opened */
    struct stat st;
    if (fd < 0)
        return ckpt_fail(err, CKPT_ERR_READ, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != size) {
        close(fd);
        return ckpt_fail(err, CKPT_ERR_READ, "%s: not the regular file it was (changed while converting)", path);
    }
    uint8_t *data = malloc(size ? size : 1);
    ssize_t n = data ? read(fd, data, size) : -1;
    close(fd);
    int rc = CKPT_OK;
    if (!data)
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    else if (n < 0 || (uint64_t)n != size)
        rc = ckpt_fail(err, CKPT_ERR_READ, "%s: cannot read: %s", path, n < 0 ? strerror(errno) : "file changed");
    XXH128_hash_t h;
    if (!rc)
        rc = outdir_write_file(o, name, data, size, &h, err);
    if (!rc)
        rc = file_records_add(files, name, size, h, err);
    free(data);
    return rc;
}

static int by_string(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Regular files of the source folder, through links (which the source's
 * opening held to its root: links.h), in name order so that manifests are
 * reproducible.  Anything else (a folder, a FIFO) is not a side file.
 */
static int copy_small_files(struct outdir *o, const char *dir, struct file_records *files, ckpt_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return ckpt_fail(err, CKPT_ERR_READ, "%s: cannot list: %s", dir, strerror(errno));
    char **names = NULL;
    size_t count = 0;
    int rc = CKPT_OK;
    struct dirent *e;
    while (!rc && (e = readdir(d)) != NULL) {
        if (is_weight_or_ours(e->d_name) || strcmp(e->d_name, "config.json") == 0)
            continue;
        char **grown = reallocarray(names, count + 1, sizeof *names);
        if (!grown || !(grown[count] = strdup(e->d_name)))
            rc = ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", dir);
        if (grown)
            names = grown;
        if (!rc)
            count++;
    }
    closedir(d);
    if (count)
        qsort(names, count, sizeof *names, by_string);
    for (size_t i = 0; i < count; i++) {
        char path[4096];
        struct stat st;
        if (!rc && snprintf(path, sizeof path, "%s/%s", dir, names[i]) < (int)sizeof path &&
            stat(path, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size <= SIDE_FILE_MAX_BYTES)
            rc = copy_file(o, path, names[i], (uint64_t)st.st_size, files, err);
        free(names[i]);
    }
    free(names);
    return rc;
}

/*
 * The small regular files of a folder inside an archive (links were refused
 * when it was opened) or a bundle (whose files that were links hold the
 * bytes they led to, inside the packed folder: pack holds links to the same
 * root).
 */
static int copy_archive_files(struct outdir *o, const struct ckpt_fs *fs, const char *dir, struct file_records *files,
                              ckpt_error *err)
{
    char **paths;
    size_t count;
    int rc = fs_list_suffix(fs, dir, "", &paths, &count, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < count; i++) {
        const char *name = paths[i] + strlen(dir) + 1;
        const struct fs_member *m = fs_member(fs, paths[i]);
        char *data;
        size_t size;
        XXH128_hash_t h;
        if (!rc && m && m->size <= SIDE_FILE_MAX_BYTES && !is_weight_or_ours(name) &&
            strcmp(name, "config.json") != 0) {
            rc = fs_read_small(fs, paths[i], SIDE_FILE_MAX_BYTES, &data, &size, err);
            if (!rc)
                rc = outdir_write_file(o, name, data, size, &h, err);
            if (!rc)
                rc = file_records_add(files, name, size, h, err);
            if (!rc)
                free(data);
        }
        free(paths[i]);
    }
    free(paths);
    return rc;
}

/* A source without config.json renamed to Hugging Face names gets one made from its Megatron metadata. */
static int write_made_config(struct outdir *o, const struct ckpt_plan *plan, struct file_records *files,
                             ckpt_error *err)
{
    if (!plan->opts.rename || (strcmp(plan->opts.rename, "hf") != 0 && strcmp(plan->opts.rename, "hf-llama") != 0))
        return CKPT_OK;
    json_t *config;
    int rc = hf_config(plan, torch_dtype_name(plan->float_dtype), &config, err);
    return rc || !config ? rc : write_json(o, "config.json", config, files, err);
}

/* A regular file, through links held to the source's root (links.h). */
static bool plain_file(const struct ckpt_fs *fs, const char *path)
{
    struct stat st;
    if (fs_inside(fs, path)) {   /* links in archives were refused when it was opened, bundles hold their bytes */
        const struct fs_member *m = fs_member(fs, path);
        return m && !m->is_dir;
    }
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int write_side_files(struct outdir *o, const struct ckpt_plan *plan, struct file_records *files, ckpt_error *err)
{
    int rc = write_index(o, plan, files, err);
    if (!rc && plan->quantized)
        rc = write_quant_description(o, plan, files, err);
    const char *dir = source_folder(plan);
    const struct ckpt_fs *fs = plan->src->fs;
    char config[4096];
    if (!rc && dir && snprintf(config, sizeof config, "%s/config.json", dir) < (int)sizeof config &&
        plain_file(fs, config))
        rc = write_config(o, plan, config, files, err);
    else if (!rc)
        rc = write_made_config(o, plan, files, err);
    if (!rc && dir)
        rc = fs_inside(fs, dir) ? copy_archive_files(o, fs, dir, files, err) : copy_small_files(o, dir, files, err);
    return rc;
}
