/* source_config.c: see source_config.h. */
#include "source_config.h"

#include "libckpt/catalog/source.h"
#include "libckpt/common/error.h"
#include "libckpt/io/fs.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CONFIG_MAX_BYTES ((uint64_t)64 << 20)
#define MAX_BLOCK ((json_int_t)1 << 20)
#define MAX_LAYERS ((json_int_t)1 << 20)

/* config.json of the folder the weights are in, when it is a regular file there (through a link held to the root). */
static bool config_path(const ckpt_source *src, char *path, size_t size)
{
    const char *dir = src->inner ? src->inner : src->path;
    struct stat st;
    if (!fs_is_dir(src->fs, dir) || snprintf(path, size, "%s/config.json", dir) >= (int)size)
        return false;
    if (fs_inside(src->fs, path))
        return fs_is_file(src->fs, path);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static ckpt_dtype torch_dtype_of(const char *name)
{
    static const struct {
        const char *name;
        ckpt_dtype dtype;
    } names[] = {{"float16", CKPT_DTYPE_F16}, {"bfloat16", CKPT_DTYPE_BF16}, {"float32", CKPT_DTYPE_F32}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].name) == 0)
            return names[i].dtype;
    return CKPT_DTYPE_INVALID;
}

static int read_fields(const json_t *config, const char *path, struct source_config *cfg, ckpt_error *err)
{
    const json_t *block = json_object_get(json_object_get(config, "quantization_config"), "weight_block_size");
    if (block) {
        json_int_t r = json_integer_value(json_array_get(block, 0)), c = json_integer_value(json_array_get(block, 1));
        if (json_array_size(block) != 2 || r <= 0 || c <= 0 || r > MAX_BLOCK || c > MAX_BLOCK)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: weight_block_size is not two positive integers", path);
        cfg->fp8_block[0] = (uint64_t)r;
        cfg->fp8_block[1] = (uint64_t)c;
    }
    /* transformers names it torch_dtype, newer versions dtype; other values (auto, float64) load as stored */
    const json_t *dtype = json_object_get(config, "torch_dtype");
    if (!dtype)
        dtype = json_object_get(config, "dtype");
    if (dtype && !json_is_string(dtype) && !json_is_null(dtype))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: torch_dtype is not a string", path);
    if (json_is_string(dtype))
        cfg->torch_dtype = torch_dtype_of(json_string_value(dtype));
    const json_t *layers = json_object_get(config, "num_hidden_layers");
    if (layers && (!json_is_integer(layers) || json_integer_value(layers) < 1 ||
                   json_integer_value(layers) > MAX_LAYERS))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: num_hidden_layers is not a layer count", path);
    if (layers)
        cfg->hidden_layers = (uint64_t)json_integer_value(layers);
    return CKPT_OK;
}

/*
 * A Megatron checkpoint has no config.json: its decoder layers are its args'
 * num_layers (the MTP layers, which --rename hf numbers after them, are not).
 */
static void megatron_layers(const ckpt_source *src, struct source_config *cfg)
{
    const char *v = ckpt_source_metadata_value(src, "megatron.num_layers");
    char *end;
    unsigned long long n = v ? strtoull(v, &end, 10) : 0;
    if (v && *v >= '0' && *v <= '9' && !*end && n >= 1 && n <= (unsigned long long)MAX_LAYERS)
        cfg->hidden_layers = n;
}

int source_config_read(const ckpt_source *src, struct source_config *cfg, ckpt_error *err)
{
    *cfg = (struct source_config){{128, 128}, CKPT_DTYPE_INVALID, 0};
    megatron_layers(src, cfg);
    char path[4096];
    if (!config_path(src, path, sizeof path))
        return CKPT_OK;
    char *text;
    size_t len;
    int rc = fs_read_small(src->fs, path, CONFIG_MAX_BYTES, &text, &len, err);
    if (rc)
        return rc;
    json_error_t jerr;
    json_t *config = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!json_is_object(config))
        rc = config ? ckpt_fail(err, CKPT_ERR_FORMAT, "%s: not a JSON object", path)
                    : ckpt_fail(err, CKPT_ERR_FORMAT, "%s: invalid JSON at line %d: %s", path, jerr.line, jerr.text);
    else
        rc = read_fields(config, path, cfg, err);
    json_decref(config);
    return rc;
}
