/*
 * open.c: ckpt_source_open, the way in: an archive is opened as the folder it
 * holds, the reader is chosen by content (registry.c) and fills the catalog.
 */
#include "open.h"

#include "formats/archive/archive_fs.h"
#include "formats/bundle/bundle.h"
#include "formats/common/format.h"
#include "libckpt/catalog/source.h"
#include "libckpt/common/error.h"
#include "libckpt/common/options.h"
#include "libckpt/io/links.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

/*
 * Opens the archive at `path` as a folder: the archive itself (members read
 * in place) or its inflated members becomes one file of `src` (hashed in
 * manifests), and `*inner` the path of the checkpoint inside it.
 */
static int open_archive(struct ckpt_source *src, const char *path, char **inner, ckpt_error *err)
{
    int rc = archive_open_fs(path, src->limits.max_archive_bytes, &src->fs, err);
    if (rc)
        return rc;
    src->fs_owned = true;
    rc = archive_find_checkpoint(src->fs, inner, err);
    if (rc || !*inner) {   /* failed, or a torch.save zip named .zip: the file itself is the checkpoint */
        if (src->fs->data)
            munmap((void *)src->fs->data, (size_t)src->fs->size);
        fs_free(src->fs);
        src->fs = NULL;
        return rc;
    }
    uint32_t index;
    if (src->fs->data) {
        /* an archive read in place is read back from its path; an inflated copy is unlinked, so nothing else can change it */
        rc = source_add_mapping(src, path, src->fs->data, src->fs->size, src->fs->backing, &index, err);
        if (rc) {
            munmap((void *)src->fs->data, (size_t)src->fs->size);
            src->fs->data = NULL;
            return rc;
        }
    }
    return CKPT_OK;
}

/*
 * Opens the bundle at `path` in place as the folder or file it holds; its
 * index file and volumes become the source's own files (hashed in
 * manifests), its members slices of the files they hold.
 */
static int open_bundle(struct ckpt_source *src, const char *path, char **inner, ckpt_error *err)
{
    int rc = bundle_open_fs(path, &src->limits, &src->fs, inner, err);
    if (rc)
        return rc;
    src->fs_owned = true;
    const struct bundle *b = bundle_of_fs(src->fs);
    uint32_t index;
    for (size_t v = 0; v < bundle_index_of(b)->volume_count && !rc; v++)
        rc = source_add_file(src, bundle_volume_path(b, v), &index, err);
    return rc;
}

void ckpt_open_options_default(ckpt_open_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
    ckpt_limits_default(&opts->limits);
    opts->deepspeed_weights = CKPT_DEEPSPEED_FP32;
}

int limits_take(ckpt_limits *out, const ckpt_limits *given, ckpt_error *err)
{
    ckpt_limits_default(out);
    return options_take(out, sizeof *out, given, "ckpt_limits", err);
}

/*
 * The link policy (libckpt/io/links.h) for a source on disk, once its reader
 * is done: every file it mapped, and every link in SRC's folder and its
 * subfolders (an index, config.json, a side file, a tag or iteration folder,
 * a NeMo context file), must stay inside the source's root.
 */
static int check_links(const struct ckpt_source *src, const char *path, ckpt_error *err)
{
    char *root = links_root(path);
    int rc = CKPT_OK;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))   /* first: a folder's link is named, not a file under it */
        rc = links_check_folder(root, path, err);
    for (size_t i = 0; i < src->file_count && !rc; i++)
        if (!src->files[i].borrowed)
            rc = links_check(root, src->files[i].path, err);
    free(root);
    return rc;
}

int open_options_take(ckpt_open_options *out, const ckpt_open_options *given, ckpt_error *err)
{
    ckpt_open_options_default(out);
    int rc = options_take(out, sizeof *out, given, "ckpt_open_options", err);
    /* the embedded limits were copied whole when the caller's struct reaches past them: take them by their own size */
    if (!rc && given && given->size >= offsetof(ckpt_open_options, limits) + sizeof given->limits.size)
        rc = limits_take(&out->limits, &given->limits, err);
    if (!rc && out->deepspeed_weights != CKPT_DEEPSPEED_FP32 && out->deepspeed_weights != CKPT_DEEPSPEED_MODULE)
        rc = ckpt_fail(err, CKPT_ERR_ARG, "ckpt_source_open: unknown deepspeed_weights %d",
                       (int)out->deepspeed_weights);
    if (!rc && out->experts != CKPT_EXPERTS_AS_STORED && out->experts != CKPT_EXPERTS_SPLIT)
        rc = ckpt_fail(err, CKPT_ERR_ARG, "ckpt_source_open: unknown experts %d", (int)out->experts);
    return rc;
}

void ckpt_open_options_for_rename(ckpt_open_options *opts, const char *rename)
{
    if (opts && rename && (strcmp(rename, "hf") == 0 || strcmp(rename, "hf-llama") == 0))
        opts->experts = CKPT_EXPERTS_SPLIT;
}

int ckpt_source_open(ckpt_source **out, const char *path, const ckpt_limits *limits, ckpt_error *err)
{
    ckpt_error_clear(err);
    ckpt_open_options opts;
    ckpt_open_options_default(&opts);
    int rc = limits_take(&opts.limits, limits, err);
    return rc ? rc : ckpt_source_open_ext(out, path, &opts, err);
}

int ckpt_source_open_ext(ckpt_source **out, const char *path, const ckpt_open_options *given, ckpt_error *err)
{
    ckpt_error_clear(err);
    if (!out || !path)
        return ckpt_fail(err, CKPT_ERR_ARG, "ckpt_source_open: NULL argument");
    *out = NULL;
    ckpt_open_options opts;
    int rc = open_options_take(&opts, given, err);
    if (rc)
        return rc;
    struct ckpt_source *src = source_new(path, &opts.limits);
    if (!src)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    src->deepspeed_weights = opts.deepspeed_weights;
    src->experts = opts.experts;
    src->crc_when_converting = opts.crc_when_converting != 0;
    src->events = opts.events;
    src->events_payload = opts.events_payload;
    char *inner = NULL;
    rc = bundle_probe(path)    ? open_bundle(src, path, &inner, err)
             : archive_probe(path) ? open_archive(src, path, &inner, err)
                                   : CKPT_OK;
    const struct format_reader *reader = NULL;
    if (!rc)
        rc = format_detect(src->fs, inner ? inner : path, &reader, err);
    if (!rc) {
        src->format = reader->name;
        rc = reader->open(src, inner ? inner : path, err);
    }
    src->inner = inner;
    if (!rc && src->cancelled)   /* a reader that went on past a refused step still fails */
        rc = ckpt_fail(err, CKPT_ERR_CANCELLED, "%s: opening cancelled", path);
    if (!rc && !src->fs)
        rc = check_links(src, path, err);
    if (rc) {
        ckpt_source_free(src);
        return rc;
    }
    *out = src;
    return CKPT_OK;
}
