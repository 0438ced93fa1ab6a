/*
 * torch.c: the torch.save reader: a .bin/.pt/.pth file (zip or legacy), a
 * plain pickle (read only to refuse it precisely), or a folder with
 * pytorch_model.bin.index.json.
 */
#include "formats/common/format.h"

#include "formats/common/shard_index.h"
#include "libckpt/common/error.h"
#include "torch.h"

#include <string.h>

#define TORCH_INDEX "pytorch_model.bin.index.json"

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool torch_probe(const struct format_probe *p)
{
    if (p->is_dir)
        return format_dir_has(p->fs, p->path, TORCH_INDEX);
    if (p->head_len >= 4 && memcmp(p->head, "PK\x03\x04", 4) == 0)
        return true;
    if (p->head_len >= 1 && p->head[0] == 0x80)   /* PROTO: a pickle of protocol 2 or later */
        return true;
    static const char *const suffixes[] = {".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++)
        if (has_suffix(p->path, suffixes[i]))
            return true;
    return false;
}

int torch_load_file(struct ckpt_source *src, const char *path, ckpt_error *err)
{
    uint32_t file;
    int rc = source_add_file(src, path, &file, err);
    return rc ? rc : torch_load_at(src, file, err);
}

int torch_load_at(struct ckpt_source *src, uint32_t file, ckpt_error *err)
{
    const struct source_file *f = &src->files[file];
    if (f->size >= 4 && memcmp(f->data, "PK\x03\x04", 4) == 0)
        return torch_load_zip(src, file, err);
    return torch_load_legacy(src, file, err);
}

static int open_indexed(struct ckpt_source *src, const char *dir, ckpt_error *err)
{
    struct shard_index index;
    int rc = shard_index_load(&index, src->fs, dir, TORCH_INDEX, &src->limits, err);
    for (size_t i = 0; i < index.file_count && !rc; i++)
        rc = torch_load_file(src, index.files[i], err);
    if (!rc)
        rc = shard_index_verify(&index, src, err);
    shard_index_free(&index);
    return rc;
}

static int torch_open(struct ckpt_source *src, const char *path, ckpt_error *err)
{
    return format_is_dir(src->fs, path) ? open_indexed(src, path, err) : torch_load_file(src, path, err);
}

const struct format_reader format_torch = {"torch", torch_probe, torch_open};
