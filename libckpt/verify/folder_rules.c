/* folder_rules.c: see folder_rules.h. */
#include "folder_rules.h"

#include "formats/safetensors/converted.h"
#include "libckpt/common/checked.h"
#include "libckpt/sink/side_files.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define INDEX_MAX_BYTES ((off_t)100000000)

void check_shard_rules(const char *dir, const char *name, const ckpt_open_options *open, struct reporter *r)
{
    char path[4096];
    ckpt_finding f = {.check = CKPT_CHECK_HEADER, .file = name};
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
        report_finding(r, f, "%s: path too long to open", name);
        return;
    }
    ckpt_open_options o;
    if (open)
        o = *open;
    else
        ckpt_open_options_default(&o);
    ckpt_source *s = NULL;
    ckpt_error e = {0};
    f.ok = ckpt_source_open_ext(&s, path, &o, &e) == CKPT_OK;
    ckpt_source_free(s);
    if (f.ok)
        report_finding(r, f, "%s: obeys the rules of a source shard", name);
    else   /* the message names the path; say which rule without repeating it */
        report_finding(r, f, "%s: not a valid safetensors file: %s", name,
                       strncmp(e.message, path, strlen(path)) == 0 && e.message[strlen(path)] == ':'
                           ? e.message + strlen(path) + 2
                           : e.message);
}

static const char *index_name(const struct manifest *m)
{
    for (size_t i = 0; i < m->file_count; i++)
        if (strcmp(m->files[i].path, INDEX_NAME) == 0 || strcmp(m->files[i].path, QUANT_INDEX_FILE) == 0)
            return m->files[i].path;
    return NULL;
}

void check_index(const char *dir, const struct manifest *m, struct reporter *r)
{
    const char *name = index_name(m);
    if (!name)
        return;
    ckpt_finding f = {.check = CKPT_CHECK_FILE, .file = name};
    char path[4096];
    struct stat st;
    json_t *doc = NULL;
    if (snprintf(path, sizeof path, "%s/%s", dir, name) < (int)sizeof path && lstat(path, &st) == 0 &&
        S_ISREG(st.st_mode) && st.st_size <= INDEX_MAX_BYTES)
        doc = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
    const json_t *map = json_object_get(doc, "weight_map");
    uint64_t total = 0, stored = 0, listed;
    bool fits = true;
    if (!json_is_object(map) || !json_is_integer(json_object_get(json_object_get(doc, "metadata"), "total_size"))) {
        report_finding(r, f, "%s: not a shard index (no weight_map or total_size)", name);
        json_decref(doc);
        return;
    }
    for (size_t i = 0; i < m->tensor_count; i++) {
        const struct manifest_tensor *t = &m->tensors[i];
        if (t->alias_of)
            continue;
        stored++;
        fits &= ckpt_add_u64(total, t->nbytes, &total);
        const char *file = json_string_value(json_object_get(map, t->name));
        if (!file || strcmp(file, t->file) != 0) {
            f.tensor = t->name;
            report_finding(r, f, "%s: tensor %s is %s, the manifest stores it in %s", name, t->name,
                           file ? "mapped to another file" : "missing", t->file);
        }
    }
    f.tensor = NULL;
    listed = json_object_size(map);
    if (listed != stored)
        report_finding(r, f, "%s: maps %llu tensors, the manifest stores %llu", name, (unsigned long long)listed,
                       (unsigned long long)stored);
    json_int_t size = json_integer_value(json_object_get(json_object_get(doc, "metadata"), "total_size"));
    f.ok = fits && size >= 0 && (uint64_t)size == total;
    if (f.ok)
        report_finding(r, f, "%s: total_size agrees with the manifest's tensors", name);
    else
        report_finding(r, f, "%s: total_size %lld is not the manifest's stored bytes", name, (long long)size);
    json_decref(doc);
}
