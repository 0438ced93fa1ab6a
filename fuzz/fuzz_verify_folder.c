/*
 * fuzz_verify_folder.c: a hostile editor's edits of a real converted folder,
 * then `verify --against SRC`, which must never pass a folder that is not
 * what converting SRC writes (docs/verify.md, "Fidelity").
 *
 * Once per process, a tiny source (safetensors, config.json, a side file)
 * is written and converted twice: ref0 with NZ tiles and small shards (so
 * an index and layout records), ref1 quantized (msModelSlim's names and
 * description).  An input is a mode byte and a list of edits applied to a
 * copy of one of them: overwrite, insert or delete bytes, put a JSON token,
 * truncate, remove, add or duplicate a file.  The empty input is the honest
 * folder, so every mutation libFuzzer makes is an attack.
 *
 * The oracle (abort() so that libFuzzer reports it): the honest folder
 * passes (else the rest would prove nothing); no edit is blamed on the
 * caller (CKPT_ERR_ARG, the usage exit); when verify passes
 * with the reference's options pinned, every file but the manifest equals
 * the reference's byte for byte and no file is more or less; when it
 * passes with the manifest's options, the same holds against a fresh
 * conversion with the options it reported (the proof was of what it says).
 */
#include "ckpt.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILES 32
#define MAX_FILE_BYTES (1u << 20)

struct file {
    char name[256];
    uint8_t *data;
    size_t len, cap;
};

struct folder {
    struct file files[MAX_FILES];
    size_t count;
    uint8_t *owned[2 * MAX_FILES];   /* every buffer made for it, whatever the edits removed */
    size_t owned_count;
};

/* A buffer of `cap` bytes that `f` frees; NULL when it holds too many. */
static uint8_t *buffer(struct folder *f, size_t cap)
{
    if (f->owned_count == sizeof f->owned / sizeof f->owned[0])
        return NULL;
    uint8_t *p = malloc(cap ? cap : 1);
    if (!p)
        abort();
    return f->owned[f->owned_count++] = p;
}

static char root[256], src[300], dst[300], oracle[300];
static struct folder refs[2];
static ckpt_convert_options ref_opts[2];

static const struct file *find(const struct folder *f, const char *name);

static void clear_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[600];
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) != 0) {   /* a folder: a failed conversion's temporary */
            clear_dir(path);
            rmdir(path);
        }
    }
    if (d)
        closedir(d);
}

static void remove_all(void)
{
    if (root[0]) {
        clear_dir(root);
        rmdir(root);
    }
}

static void write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    if (write(fd, data, len) != (ssize_t)len)
        abort();
    close(fd);
}

static void read_folder(const char *dir, struct folder *f)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[600];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (f->count == MAX_FILES || lstat(path, &st) != 0 || (uint64_t)st.st_size > MAX_FILE_BYTES)
            abort();
        struct file *x = &f->files[f->count++];
        snprintf(x->name, sizeof x->name, "%s", e->d_name);
        x->cap = (size_t)st.st_size;
        x->data = buffer(f, x->cap);
        FILE *in = fopen(path, "rb");
        x->len = in ? fread(x->data, 1, x->cap, in) : 0;
        if (in)
            fclose(in);
    }
    if (d)
        closedir(d);
}

static void free_folder(struct folder *f)
{
    for (size_t i = 0; i < f->owned_count; i++)
        free(f->owned[i]);
    f->count = f->owned_count = 0;
}

static void make_source(void)
{
    static const char *const names[] = {"model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
                                        "model.layers.0.self_attn.q_proj.weight", "model.norm.weight",
                                        "lm_head.weight"};
    static const uint64_t shapes[][2] = {{8, 16}, {16, 0}, {16, 16}, {16, 0}, {8, 16}};
    ckpt_tensor t[5];
    size_t total = 0;
    for (int i = 0; i < 5; i++) {
        uint32_t rank = shapes[i][1] ? 2 : 1;
        uint64_t elems = shapes[i][0] * (rank == 2 ? shapes[i][1] : 1);
        t[i] = (ckpt_tensor){names[i], i == 1 ? CKPT_DTYPE_F32 : CKPT_DTYPE_BF16, rank, shapes[i], 0, 0, NULL};
        total += elems * (i == 1 ? 4 : 2);
    }
    uint8_t *data = malloc(total);
    uint32_t x = 12345;
    for (size_t i = 0; i < total; i += 2) {   /* finite bf16/f32 halves: exponents 0x3c..0x40 */
        x = x * 1103515245u + 12345u;
        data[i] = (uint8_t)(x >> 16);
        data[i + 1] = (uint8_t)(0x3c + (x >> 28) % 5) | (uint8_t)((x >> 8) & 0x80);
    }
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", src);
    ckpt_writer *w;
    if (ckpt_writer_open(&w, path, t, 5, NULL, 0, NULL) || ckpt_writer_write(w, data, total, NULL) ||
        ckpt_writer_finish(w, NULL))
        abort();
    ckpt_writer_free(w);
    free(data);
    static const char config[] = "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", "
                                 "\"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"torch_dtype\": \"bfloat16\"}\n";
    write_file(src, "config.json", config, sizeof config - 1);
    write_file(src, "tokenizer_config.json", "{}\n", 3);
}

static int convert(const char *to, const ckpt_convert_options *opts)
{
    ckpt_source *s = NULL;
    ckpt_plan *plan = NULL;
    int rc = ckpt_source_open_ext(&s, src, NULL, NULL);
    if (!rc)
        rc = ckpt_plan_build(&plan, s, to, opts, NULL);
    if (!rc)
        rc = ckpt_plan_execute(plan, NULL, NULL, NULL, NULL);
    ckpt_plan_free(plan);
    ckpt_source_free(s);
    return rc;
}

static void init(void)
{
    snprintf(root, sizeof root, "/tmp/ckpt-fuzz-verify-XXXXXX");
    if (!mkdtemp(root))
        abort();
    atexit(remove_all);
    snprintf(src, sizeof src, "%s/src", root);
    snprintf(dst, sizeof dst, "%s/dst", root);
    snprintf(oracle, sizeof oracle, "%s/oracle", root);
    if (mkdir(src, 0755) || mkdir(dst, 0755))
        abort();
    make_source();
    for (int k = 0; k < 2; k++) {
        ckpt_convert_options_default(&ref_opts[k]);
        ref_opts[k].target = k ? CKPT_TARGET_ASCEND_910B : CKPT_TARGET_ASCEND_310P;
        ref_opts[k].nz = k ? CKPT_NZ_NONE : CKPT_NZ_ALL;
        ref_opts[k].max_shard_bytes = k ? 5000000000u : 1200;
        ref_opts[k].quant = k ? CKPT_QUANT_W8A16 : CKPT_QUANT_NONE;
        ref_opts[k].jobs = 1;
        char to[320];
        snprintf(to, sizeof to, "%s/ref%d", root, k);
        if (convert(to, &ref_opts[k]) != CKPT_OK)
            abort();
        read_folder(to, &refs[k]);
    }
    /* the paths meant to be covered: shards with an index and NZ records; a quantized folder */
    if (!find(&refs[0], "model.safetensors.index.json") || !find(&refs[0], "model-00002-of-00002.safetensors") ||
        !find(&refs[1], "quant_model_description.json") || !find(&refs[0], "tokenizer_config.json"))
        abort();
}

/* ---- the edits ---- */

static const char *const tokens[] = {"0", "1", "-1", "null", "true", "[]", "{}", "\"\"", "\"F32\"", "\"F16\"",
                                     "\"BF16\"", "\"I8\"", "\"ND\"", "\"FRACTAL_NZ\"", "18446744073709551615",
                                     "4294967296", "[1, 1]", "\"a\"", "\"all\"", "\"none\"", "\"w8a16\"",
                                     "\"ascend-910b\"", "\"ckpt-manifest.json\"", "\"..\"", "1e308"};

#define SLACK 256   /* bytes an edited file may grow by */

static void edit_bytes(struct file *f, size_t at, size_t remove, const uint8_t *add, size_t add_len)
{
    if (at > f->len)
        at = f->len;
    if (remove > f->len - at)
        remove = f->len - at;
    if (f->len - remove + add_len > f->cap)
        return;
    memmove(f->data + at + add_len, f->data + at + remove, f->len - at - remove);
    if (add_len)
        memcpy(f->data + at, add, add_len);
    f->len = f->len - remove + add_len;
}

static bool plain_name(const uint8_t *s, size_t len)
{
    if (len == 0 || len > 200 || (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '/' || s[i] == 0)
            return false;
    return true;
}

/* Applies the edits of `data` to `f`. */
static void apply(struct folder *f, const uint8_t *data, size_t size)
{
    size_t at = 0;
    while (at + 4 <= size && f->count) {
        uint8_t op = data[at] % 9, which = data[at + 1], len = data[at + 3];
        size_t where = (size_t)data[at + 2] << 4;   /* coarse, then refined by the length byte below */
        at += 4;
        struct file *x = &f->files[which % f->count];
        where = x->len ? (where + len) % (x->len + 1) : 0;
        size_t n = len % 16 + 1;
        if (at + n > size)
            n = size - at;
        const uint8_t *bytes = data + at;
        switch (op) {
        case 0: edit_bytes(x, where, n, bytes, n); at += n; break;       /* overwrite */
        case 1: edit_bytes(x, where, 0, bytes, n); at += n; break;       /* insert */
        case 2: edit_bytes(x, where, n, NULL, 0); break;                 /* delete */
        case 3: {                                                    /* put a JSON token */
            const char *t = tokens[len % (sizeof tokens / sizeof tokens[0])];
            edit_bytes(x, where, n % 4, (const uint8_t *)t, strlen(t));
            break;
        }
        case 4: x->len = where; break;                               /* truncate */
        case 5: *x = f->files[--f->count]; break;                    /* remove (its buffer stays owned) */
        case 6:                                                      /* add a file named by the bytes */
        case 7:                                                      /* ... or a copy of this one */
            if (f->count < MAX_FILES && plain_name(bytes, n)) {
                struct file *y = &f->files[f->count];
                size_t len0 = op == 7 ? x->len : 0;
                if (!(y->data = buffer(f, len0 + SLACK)))
                    break;
                memcpy(y->name, bytes, n);
                y->name[n] = 0;
                y->len = len0;
                y->cap = len0 + SLACK;
                if (len0)
                    memcpy(y->data, x->data, len0);
                f->count++;
            }
            at += n;
            break;
        default: {                                                   /* flip one bit */
            if (x->len)
                x->data[where % x->len] ^= (uint8_t)(1u << (len % 8));
            break;
        }
        }
    }
}

/* ---- the oracle ---- */

static const struct file *find(const struct folder *f, const char *name)
{
    for (size_t i = 0; i < f->count; i++)
        if (strcmp(f->files[i].name, name) == 0)
            return &f->files[i];
    return NULL;
}

/* Every file of `a` but the manifest is in `b` with the same bytes, and the reverse. */
static bool same_outputs(const struct folder *a, const struct folder *b)
{
    for (int side = 0; side < 2; side++) {
        const struct folder *x = side ? b : a, *y = side ? a : b;
        for (size_t i = 0; i < x->count; i++) {
            const struct file *o = find(y, x->files[i].name);
            if (strcmp(x->files[i].name, "ckpt-manifest.json") == 0)
                continue;
            if (!o || o->len != x->files[i].len || memcmp(o->data, x->files[i].data, o->len) != 0)
                return false;
        }
    }
    return true;
}

/* The options verify reported, read back into convert options. */
struct reported {
    ckpt_convert_options opts;
    char rules[4096], rename[64];
    bool ok;
};

static int collect(void *payload, const ckpt_finding *f)
{
    struct reported *r = payload;
    if (f->check != CKPT_CHECK_OPTION || !f->option || !f->value)
        return 0;
    const char *v = f->value;
    ckpt_convert_options *o = &r->opts;
    if (strcmp(f->option, "target") == 0)
        o->target = ckpt_target_from_name(v);
    else if (strcmp(f->option, "dtype") == 0 && strcmp(v, "target's") != 0)
        r->ok &= ckpt_float_type_parse(v, &o->dtype) == CKPT_OK;
    else if (strcmp(f->option, "quant") == 0 && strcmp(v, "none") != 0)
        r->ok &= ckpt_quant_parse(v, &o->quant) == CKPT_OK;
    else if (strcmp(f->option, "nz") == 0)
        o->nz = strcmp(v, "all") == 0 ? CKPT_NZ_ALL : strcmp(v, "none") == 0 ? CKPT_NZ_NONE : CKPT_NZ_AUTO;
    else if (strcmp(f->option, "nz_fp32_c0") == 0)
        o->nz_fp32_c0 = (unsigned)atoi(v);
    else if (strcmp(f->option, "overflow") == 0)
        o->overflow = strcmp(v, "inf") == 0 ? CKPT_OVERFLOW_INF
                      : strcmp(v, "error") == 0 ? CKPT_OVERFLOW_ERROR : CKPT_OVERFLOW_SATURATE;
    else if (strcmp(f->option, "rename") == 0 && strcmp(v, "none") != 0 && strlen(v) < sizeof r->rename)
        o->rename = strcpy(r->rename, v);
    else if (strcmp(f->option, "rules") == 0 && strcmp(v, "none") != 0)
        r->ok &= strlen(v) < sizeof r->rules && (o->rules = strcpy(r->rules, v)) != NULL;
    else if (strcmp(f->option, "max_shard_size") == 0)
        o->max_shard_bytes = strtoull(v, NULL, 10);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!root[0])
        init();
    int ref = size && (data[0] & 2) ? 1 : 0;
    bool pinned = size && (data[0] & 1);
    static struct folder f;   /* large: not on the stack */
    f.count = refs[ref].count;
    f.owned_count = 0;
    for (size_t i = 0; i < f.count; i++) {
        f.files[i] = refs[ref].files[i];
        f.files[i].cap = f.files[i].len + SLACK;
        f.files[i].data = buffer(&f, f.files[i].cap);
        memcpy(f.files[i].data, refs[ref].files[i].data, f.files[i].len);
    }
    apply(&f, size ? data + 1 : data, size ? size - 1 : 0);
    clear_dir(dst);
    for (size_t i = 0; i < f.count; i++)
        write_file(dst, f.files[i].name, f.files[i].data, f.files[i].len);

    ckpt_verify_options opts;
    ckpt_verify_options_default(&opts);
    opts.against = src;
    opts.jobs = 1;
    opts.convert = pinned ? &ref_opts[ref] : NULL;
    struct reported rep = {.ok = true};
    ckpt_convert_options_default(&rep.opts);
    rep.opts.jobs = 1;
    int rc = ckpt_verify(dst, &opts, collect, &rep, NULL, NULL);
    if (size <= 1 && rc != CKPT_OK)
        abort();   /* the honest folder refused: the oracle below would prove nothing */
    if (rc == CKPT_ERR_ARG)
        abort();   /* a folder's content is input, never the caller's mistake (exit 3, not the usage exit 2) */
    static struct folder written, fresh;
    if (rc == CKPT_OK) {
        read_folder(dst, &written);   /* what is on disk: the edits may have written one name twice */
        if (pinned && !same_outputs(&written, &refs[ref]))
            abort();   /* verify passed a folder that is not the reference conversion */
        if (!pinned) {
            clear_dir(oracle);
            rmdir(oracle);
            if (!rep.ok || convert(oracle, &rep.opts) != CKPT_OK)
                abort();   /* it proved with options that do not convert */
            read_folder(oracle, &fresh);
            bool same = same_outputs(&written, &fresh);
            free_folder(&fresh);
            if (!same)
                abort();   /* verify passed a folder that is not what its reported options give */
        }
        free_folder(&written);
    }
    free_folder(&f);
    return 0;
}
