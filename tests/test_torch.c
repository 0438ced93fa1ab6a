/*
 * test_torch.c: torch.save files, ours (testdata/torch, made by real torch)
 * and other projects' (../shared/external), against golden values torch.load
 * gave (testdata/torch/make_fixtures.py); and every file that must be
 * refused, refused without running anything.
 */
#include "helpers.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static json_t *load_golden(void)
{
    char *path = test_testdata("torch/golden.json");
    json_t *g = json_load_file(path, 0, NULL);
    ck_assert_msg(g != NULL, "cannot read %s", path);
    free(path);
    return g;
}

/* Every tensor torch.load found is in the catalog, equal in dtype, shape and every byte; nothing else is. */
static void check_against(const char *path, json_t *expect)
{
    ckpt_source *src = test_open(path);
    ck_assert_msg(ckpt_source_tensor_count(src) == json_object_size(expect), "%s: %zu tensors, torch has %zu", path,
                  ckpt_source_tensor_count(src), json_object_size(expect));
    const char *name;
    json_t *e;
    json_object_foreach(expect, name, e) {
        size_t i;
        ck_assert_msg(ckpt_source_find(src, name, &i) == CKPT_OK, "%s: no tensor %s", path, name);
        const ckpt_tensor *t = ckpt_source_tensor(src, i);
        if (json_object_get(e, "alias_of")) {
            ck_assert_msg(t->alias_of && strcmp(t->alias_of, json_string_value(json_object_get(e, "alias_of"))) == 0,
                          "%s: %s should alias %s", path, name, json_string_value(json_object_get(e, "alias_of")));
            continue;
        }
        ck_assert_msg(strcmp(ckpt_dtype_name(t->dtype), json_string_value(json_object_get(e, "dtype"))) == 0,
                      "%s: %s is %s", path, name, ckpt_dtype_name(t->dtype));
        json_t *shape = json_object_get(e, "shape");
        ck_assert_uint_eq(t->rank, json_array_size(shape));
        for (uint32_t d = 0; d < t->rank; d++)
            ck_assert_uint_eq(t->shape[d], (uint64_t)json_integer_value(json_array_get(shape, d)));
        ck_assert_uint_eq(t->nbytes, (uint64_t)json_integer_value(json_object_get(e, "nbytes")));
        uint8_t *data = test_read_tensor(src, name, NULL);
        char hex[17];
        test_fnv1a_hex(data, t->nbytes, hex);
        ck_assert_msg(strcmp(hex, json_string_value(json_object_get(e, "fnv"))) == 0, "%s: %s values differ from torch",
                      path, name);
        free(data);
    }
    ckpt_source_free(src);
}

START_TEST(fixtures_match_torch)
{
    json_t *g = load_golden();
    const char *file;
    json_t *expect;
    json_object_foreach(json_object_get(g, "fixtures"), file, expect) {
        char rel[256];
        snprintf(rel, sizeof rel, "torch/%s", file);
        char *path = test_testdata(rel);
        check_against(path, expect);
        free(path);
    }
    json_decref(g);
}
END_TEST

START_TEST(external_files_match_torch)
{
    json_t *g = load_golden();
    const char *file;
    json_t *expect;
    size_t n = 0;
    json_object_foreach(json_object_get(g, "external"), file, expect) {
        char *path = test_external(file);
        check_against(path, expect);
        free(path);
        n++;
    }
    ck_assert_uint_ge(n, 34);
    json_decref(g);
}
END_TEST

static const ckpt_object *find_object(const ckpt_source *src, const char *name)
{
    for (size_t i = 0; i < ckpt_source_object_count(src); i++)
        if (strcmp(ckpt_source_object(src, i)->name, name) == 0)
            return ckpt_source_object(src, i);
    ck_abort_msg("no object %s", name);
    return NULL;
}

START_TEST(training_checkpoint_objects)
{
    char *path = test_testdata("torch/training.pt");
    ckpt_source *src = test_open(path);
    ck_assert_str_eq(ckpt_source_format(src), "torch");
    const ckpt_object *o = find_object(src, "iteration");
    ck_assert_str_eq(o->kind, "int");
    ck_assert_str_eq(o->value, "100");
    ck_assert_str_eq(find_object(src, "args.lr")->value, "0.001");
    ck_assert_str_eq(find_object(src, "args.hidden_size")->value, "64");
    ck_assert_str_eq(find_object(src, "args.name")->value, "tiny");
    ck_assert_str_eq(find_object(src, "args.use_bias")->value, "True");
    ck_assert_str_eq(find_object(src, "args.layers.1")->value, "2");
    ck_assert_str_eq(find_object(src, "note")->kind, "none");
    ckpt_source_free(src);
    /* the CLI shows them with --objects */
    char *out;
    ck_assert_int_eq(test_ckpt(&out, NULL, "inspect --objects '%s'", path), 0);
    ck_assert_ptr_nonnull(strstr(out, "args.lr = 0.001  (float)"));
    ck_assert_ptr_nonnull(strstr(out, "model.layer.weight"));
    free(out);
    free(path);
}
END_TEST

/* ---- refusals ---- */

static bool must_read(const char *rel)
{
    static const char *const ok[] = {"picklescan/data/pytorch_model.bin", "picklescan/data/new_pytorch_model.bin"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(rel, ok[i]) == 0)
            return true;
    return strncmp(rel, "burn/", 5) == 0 && strcmp(rel, "burn/broken.pt") != 0 && strstr(rel, ".tar") == NULL;
}

/* Each file under `folder` that must be refused exits 3 with one line naming it; nothing runs. */
static size_t check_refusals(const char *folder, const char *cwd)
{
    char *dir = test_external(folder);
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    size_t refused = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char rel[512];
        snprintf(rel, sizeof rel, "%s/%s", folder, e->d_name);
        if (must_read(rel))
            continue;
        char *path = test_join(dir, e->d_name), *err;
        /* the caller runs this from an empty folder: a payload that ran would likely leave something there */
        int rc = test_ckpt(NULL, &err, "inspect '%s'", path);
        ck_assert_msg(rc == 3, "%s: exit %d, want 3: %s", rel, rc, err);
        ck_assert_msg(strstr(err, path) != NULL && strchr(err, '\n') == err + strlen(err) - 1,
                      "%s: the message should be one line naming the file: %s", rel, err);
        if (strstr(err, "refusing to call"))
            ck_assert_msg(strstr(err, "refusing to call ") && strchr(strstr(err, "refusing to call ") + 17, '.'),
                          "%s: the refusal should name module.global: %s", rel, err);
        free(err);
        free(path);
        refused++;
    }
    closedir(d);
    free(dir);
    ck_assert_uint_eq(test_count_entries(cwd), 0);
    return refused;
}

START_TEST(hostile_files_refused)
{
    char *cwd = test_tmpdir();
    char *here = getcwd(NULL, 0);
    ck_assert_int_eq(chdir(cwd), 0);
    size_t n = check_refusals("picklescan/data", cwd) + check_refusals("picklescan/data2", cwd) +
               check_refusals("burn", cwd);
    ck_assert_int_eq(chdir(here), 0);
    ck_assert_uint_ge(n, 100);
    ck_assert_uint_eq(test_count_entries(cwd), 0);
    /* the payload of a typical sample, if it had run, would have made this file */
    ck_assert_int_ne(access("/tmp/pwned", F_OK), 0);
    test_rmtree(cwd);
    free(here);
    free(cwd);
}
END_TEST

START_TEST(named_refusals)
{
    static const struct {
        const char *file, *needle;
    } cases[] = {
        {"picklescan/data/malicious1_v4.pkl", "refusing to call builtins.eval"},
        {"picklescan/data2/GHSA-4675-36f9-wf6r.pkl", "refusing to call ctypes.CDLL"},
        {"picklescan/data/malicious1.zip", "refusing to call builtins.eval"},
        {"picklescan/data/benign0_v3.pkl", "no tensors"},
        {"burn/broken.pt", "pickle"},
        {"picklescan/data2/malicious1_crc.zip", "CRC"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *path = test_external(cases[i].file);
        ckpt_source *src = NULL;
        ckpt_error err;
        int rc = ckpt_source_open(&src, path, NULL, &err);
        ck_assert_msg(rc != CKPT_OK && ckpt_status_is_input_error(rc), "%s: status %d", cases[i].file, rc);
        ck_assert_msg(strstr(err.message, cases[i].needle) != NULL, "%s: %s", cases[i].file, err.message);
        free(path);
    }
}
END_TEST

/*
 * Where the data of stored entry `name` starts in a zip: its local header
 * found by signature and name, data after the 30 fixed bytes, the name and
 * the extra field (PKWARE APPNOTE 4.3.7), located without the reader.
 */
static size_t entry_data_at(const uint8_t *zip, size_t n, const char *name)
{
    size_t len = strlen(name);
    for (size_t at = 0; at + 30 + len <= n; at++) {
        if (memcmp(zip + at, "PK\3\4", 4) != 0 || (size_t)(zip[at + 26] | zip[at + 27] << 8) != len ||
            memcmp(zip + at + 30, name, len) != 0)
            continue;
        return at + 30 + len + (size_t)(zip[at + 28] | zip[at + 29] << 8);
    }
    ck_abort_msg("no local header for %s", name);
    return 0;
}

/*
 * One byte of a stored tensor changed, its CRC not: opening refuses it, and
 * so does convert, which checks CRCs in its one pass over the source instead
 * (crc_when_converting), leaving no output; opened that way the file opens.
 */
START_TEST(corrupt_entry_fails_open_and_convert)
{
    char *dir = test_tmpdir(), *path = test_join(dir, "model.bin"), *out = test_join(dir, "out");
    char *good = test_testdata("torch/dtypes.pt");
    size_t n;
    uint8_t *zip = test_read_file(good, &n);
    zip[entry_data_at(zip, n, "dtypes/data/2") + 5] ^= 0x40;
    test_write_file(path, zip, n);
    ckpt_source *src = NULL;
    ckpt_error err;
    ck_assert_int_eq(ckpt_source_open(&src, path, NULL, &err), CKPT_ERR_FORMAT);
    ck_assert_msg(strstr(err.message, "fails its CRC check"), "%s", err.message);
    ckpt_open_options opts;
    ckpt_open_options_default(&opts);
    opts.crc_when_converting = 1;
    ck_assert_int_eq(ckpt_source_open_ext(&src, path, &opts, &err), CKPT_OK);
    ckpt_source_free(src);
    char *msg = NULL;
    int rc = test_ckpt(NULL, &msg, "convert '%s' '%s' --target nd", path, out);
    ck_assert_msg(rc == 3 && strstr(msg, "dtypes/data/2 fails its CRC check"), "exit %d: %s", rc, msg);
    ck_assert_int_ne(access(out, F_OK), 0);
    ck_assert_uint_eq(test_count_entries(dir), 1);   /* model.bin only: no DST, no temporary */
    free(msg);
    test_rmtree(dir);
    free(zip);
    free(good);
    free(path);
    free(out);
    free(dir);
}
END_TEST

START_TEST(sharded_bin_folder)
{
    char *dir = test_tmpdir();
    char *a = test_join(dir, "pytorch_model-00001-of-00002.bin"), *b = test_join(dir, "pytorch_model-00002-of-00002.bin");
    char *views = test_testdata("torch/views.pt"), *dtypes = test_testdata("torch/dtypes.pt");
    size_t n;
    uint8_t *x = test_read_file(views, &n);
    test_write_file(a, x, n);
    free(x);
    x = test_read_file(dtypes, &n);
    test_write_file(b, x, n);
    free(x);
    char *index = test_join(dir, "pytorch_model.bin.index.json");
    const char *json = "{\"weight_map\": {\"base\": \"pytorch_model-00001-of-00002.bin\", "
                       "\"transposed\": \"pytorch_model-00001-of-00002.bin\", \"slice\": \"pytorch_model-00001-of-00002.bin\", "
                       "\"expanded\": \"pytorch_model-00001-of-00002.bin\", \"offset\": \"pytorch_model-00001-of-00002.bin\", "
                       "\"strided\": \"pytorch_model-00001-of-00002.bin\", \"tied\": \"pytorch_model-00001-of-00002.bin\", "
                       "\"bf16\": \"pytorch_model-00002-of-00002.bin\", \"f16\": \"pytorch_model-00002-of-00002.bin\", "
                       "\"f32\": \"pytorch_model-00002-of-00002.bin\", \"f64\": \"pytorch_model-00002-of-00002.bin\", "
                       "\"i8\": \"pytorch_model-00002-of-00002.bin\", \"i16\": \"pytorch_model-00002-of-00002.bin\", "
                       "\"i32\": \"pytorch_model-00002-of-00002.bin\", \"i64\": \"pytorch_model-00002-of-00002.bin\", "
                       "\"u8\": \"pytorch_model-00002-of-00002.bin\", \"bool\": \"pytorch_model-00002-of-00002.bin\", "
                       "\"scalar\": \"pytorch_model-00002-of-00002.bin\", \"empty\": \"pytorch_model-00002-of-00002.bin\"}}";
    test_write_file(index, json, strlen(json));
    ckpt_source *src = test_open(dir);
    ck_assert_str_eq(ckpt_source_format(src), "torch");
    ck_assert_uint_eq(ckpt_source_file_count(src), 2);
    ck_assert_uint_eq(ckpt_source_tensor_count(src), 19);
    ckpt_source_free(src);
    test_rmtree(dir);
    free(a);
    free(b);
    free(index);
    free(views);
    free(dtypes);
    free(dir);
}
END_TEST

START_TEST(convert_torch_to_safetensors)
{
    char *dir = test_tmpdir();
    char *dst = test_join(dir, "out"), *src = test_testdata("torch/views.pt");
    char *err;
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s' --target nd", src, dst), 0);
    free(err);
    json_t *g = load_golden();
    json_t *expect = json_deep_copy(json_object_get(json_object_get(g, "fixtures"), "views.pt"));
    json_object_del(expect, "tied");   /* written once: the alias is in the manifest */
    check_against(dst, expect);
    ck_assert_int_eq(test_ckpt(NULL, &err, "verify '%s' --against '%s'", dst, src), 0);
    free(err);
    json_decref(expect);
    json_decref(g);
    test_rmtree(dir);
    free(dst);
    free(src);
    free(dir);
}
END_TEST

/* views.pt re-zipped with every entry deflated, as some tools rewrite archives. */
static void write_deflated_copy(const char *from, const char *to)
{
    struct archive *in = archive_read_new(), *out = archive_write_new();
    archive_read_support_format_zip(in);
    ck_assert_int_eq(archive_read_open_filename(in, from, 1 << 16), ARCHIVE_OK);
    archive_write_set_format_zip(out);
    archive_write_zip_set_compression_deflate(out);
    ck_assert_int_eq(archive_write_open_filename(out, to), ARCHIVE_OK);
    struct archive_entry *e;
    static uint8_t buf[1 << 16];
    while (archive_read_next_header(in, &e) == ARCHIVE_OK) {
        ck_assert_int_eq(archive_write_header(out, e), ARCHIVE_OK);
        la_ssize_t n;
        while ((n = archive_read_data(in, buf, sizeof buf)) > 0)
            ck_assert_int_eq(archive_write_data(out, buf, (size_t)n), n);
    }
    archive_write_free(out);
    archive_read_free(in);
}

/*
 * A legacy file naming `n` storages, one float each: storage lookups must not
 * grow with the square of their number (300,000 once took over five minutes).
 * With `tied`, the list then names each tensor again: n more tensors, each
 * tied to (an alias of) one of the first n.
 */
static void write_many_storages(const char *path, uint32_t n, bool tied)
{
    size_t cap = (size_t)n * 106 + 4096, k = 0;
    uint8_t *b = malloc(cap);
#define PUT(lit) (memcpy(b + k, lit, sizeof lit - 1), k += sizeof lit - 1)
    /* the magic number, protocol 1001 and a sys_info dict, as torch 1.5 wrote them */
    PUT("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.");
    PUT("\x80\x02M\xe9\x03.");
    PUT("\x80\x02}X\x0d\x00\x00\x00little_endian\x88s.");
    PUT("\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\nq\x00" "0" "ctorch\nFloatStorage\nq\x01" "0"
        "X\x07\x00\x00\x00storageq\x02" "0" "X\x03\x00\x00\x00" "cpuq\x03" "0" "](");
    for (uint32_t i = 0; i < n; i++) {
        char key[16];
        int len = snprintf(key, sizeof key, "%u", i);
        PUT("h\x00((h\x02h\x01X");
        uint8_t l4[4] = {(uint8_t)len, 0, 0, 0};
        memcpy(b + k, l4, 4), k += 4;
        memcpy(b + k, key, (size_t)len), k += (size_t)len;
        PUT("h\x03K\x01tQK\x00K\x01\x85K\x01\x85\x89}tR");
        uint32_t memo = 4 + i;   /* LONG_BINPUT: remembered for the tied copies */
        uint8_t put[5] = {'r', (uint8_t)memo, (uint8_t)(memo >> 8), (uint8_t)(memo >> 16), (uint8_t)(memo >> 24)};
        memcpy(b + k, put, 5), k += 5;
    }
    for (uint32_t i = 0; tied && i < n; i++) {
        uint32_t memo = 4 + i;   /* LONG_BINGET */
        uint8_t get[5] = {'j', (uint8_t)memo, (uint8_t)(memo >> 8), (uint8_t)(memo >> 16), (uint8_t)(memo >> 24)};
        memcpy(b + k, get, 5), k += 5;
    }
    PUT("e.\x80\x02](");
    for (uint32_t i = 0; i < n; i++) {
        char key[16];
        int len = snprintf(key, sizeof key, "%u", i);
        b[k++] = 'X';
        uint8_t l4[4] = {(uint8_t)len, 0, 0, 0};
        memcpy(b + k, l4, 4), k += 4;
        memcpy(b + k, key, (size_t)len), k += (size_t)len;
    }
    PUT("e.");
    for (uint32_t i = 0; i < n; i++) {
        PUT("\x01\x00\x00\x00\x00\x00\x00\x00");
        float f = (float)i;
        memcpy(b + k, &f, 4), k += 4;
    }
#undef PUT
    ck_assert_uint_le(k, cap);
    test_write_file(path, b, k);
    free(b);
}

/*
 * A legacy file whose one storage holds the floats 0 .. n-1, read by two
 * views: "0" every fourth element (shape [n/4], stride 4) and "1" the same
 * as one line (shape [1, n/4], strides [n, 4]).
 */
static void write_sparse_views(const char *path, uint32_t n)
{
    size_t cap = (size_t)n * 4 + 4096, k = 0;
    uint8_t *b = malloc(cap);
#define PUT(lit) (memcpy(b + k, lit, sizeof lit - 1), k += sizeof lit - 1)
#define INT(v) (b[k++] = 'J', b[k++] = (uint8_t)(v), b[k++] = (uint8_t)((v) >> 8), b[k++] = (uint8_t)((v) >> 16), \
                b[k++] = (uint8_t)((v) >> 24))
    PUT("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.");
    PUT("\x80\x02M\xe9\x03.");
    PUT("\x80\x02}X\x0d\x00\x00\x00little_endian\x88s.");
    PUT("\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\nq\x00" "0" "ctorch\nFloatStorage\nq\x01" "0"
        "X\x07\x00\x00\x00storageq\x02" "0" "X\x03\x00\x00\x00" "cpuq\x03" "0" "](");
    PUT("h\x00((h\x02h\x01X\x01\x00\x00\x00" "0" "h\x03");
    INT(n);
    PUT("tQK\x00");
    INT(n / 4);
    PUT("\x85K\x04\x85\x89}tR");
    PUT("h\x00((h\x02h\x01X\x01\x00\x00\x00" "0" "h\x03");
    INT(n);
    PUT("tQK\x00K\x01");
    INT(n / 4);
    PUT("\x86");
    INT(n);
    PUT("K\x04\x86\x89}tR");
    PUT("e.\x80\x02](X\x01\x00\x00\x00" "0" "e.");
    uint64_t numel = n;
    memcpy(b + k, &numel, 8), k += 8;
    for (uint32_t i = 0; i < n; i++) {
        float f = (float)i;
        memcpy(b + k, &f, 4), k += 4;
    }
#undef INT
#undef PUT
    ck_assert_uint_le(k, cap);
    test_write_file(path, b, k);
    free(b);
}

/*
 * Views whose elements lie far apart in a 48 MiB storage, so a block of lines
 * (and the one long line) spans more than one strided read buffers: the
 * values are every fourth float, and a file cut short under the open source
 * is a read error naming it, not SIGBUS.
 */
START_TEST(sparse_views_of_a_large_storage)
{
    const uint32_t n = 12u << 20;
    char *dir = test_tmpdir(), *path = test_join(dir, "sparse.pt");
    write_sparse_views(path, n);
    ckpt_source *src = test_open(path);
    float *out = malloc((size_t)n);
    ckpt_error err;
    for (size_t i = 0; i < 2; i++) {
        const ckpt_tensor *t = ckpt_source_tensor(src, i);
        ck_assert_uint_eq(t->nbytes, (uint64_t)n);
        ck_assert_int_eq(ckpt_source_read(src, i, 0, t->shape[0], out, n, &err), CKPT_OK);
        for (uint32_t k = 0; k < n / 4; k++)
            if (out[k] != (float)(4 * k))
                ck_abort_msg("tensor %s element %u is %g, not %u", t->name, k, out[k], 4 * k);
    }
    ck_assert_int_eq(truncate(path, (off_t)n), 0);
    for (size_t i = 0; i < 2; i++) {
        const ckpt_tensor *t = ckpt_source_tensor(src, i);
        ck_assert_int_eq(ckpt_source_read(src, i, 0, t->shape[0], out, n, &err), CKPT_ERR_READ);
        ck_assert_msg(strstr(err.message, "sparse.pt") && strstr(err.message, "truncated while reading tensor"),
                      "%s", err.message);
    }
    ckpt_source_free(src);
    free(out);
    test_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

/* A file cut short after it was opened: a strided view's read is an error naming file and tensor, not SIGBUS. */
START_TEST(strided_view_of_truncated_file)
{
    char *dir = test_tmpdir(), *views = test_testdata("torch/views.pt"), *copy = test_join(dir, "views.pt");
    size_t len;
    uint8_t *bytes = test_read_file(views, &len);
    test_write_file(copy, bytes, len);
    ckpt_source *src = test_open(copy);
    size_t i;
    ck_assert_int_eq(ckpt_source_find(src, "transposed", &i), CKPT_OK);
    float out[24];
    ckpt_error err;
    ck_assert_int_eq(ckpt_source_read(src, i, 0, 6, out, sizeof out, &err), CKPT_OK);   /* whole, it reads */
    ck_assert_int_eq(truncate(copy, 64), 0);
    ck_assert_int_eq(ckpt_source_read(src, i, 0, 6, out, sizeof out, &err), CKPT_ERR_READ);
    ck_assert_msg(strstr(err.message, "views.pt") && strstr(err.message, "truncated while reading tensor transposed"),
                  "%s", err.message);
    ckpt_source_free(src);
    test_rmtree(dir);
    free(bytes);
    free(copy);
    free(views);
    free(dir);
}
END_TEST

START_TEST(crafted_archives)
{
    char *dir = test_tmpdir();
    /* deflated entries: inflated once per storage however many views share it, values as torch gave */
    char *views = test_testdata("torch/views.pt"), *deflated = test_join(dir, "views.pt");
    write_deflated_copy(views, deflated);
    json_t *g = load_golden();
    check_against(deflated, json_object_get(json_object_get(g, "fixtures"), "views.pt"));
    json_decref(g);
    ckpt_source *src = test_open(deflated);
    ck_assert_uint_eq(ckpt_source_file_count(src), 3);   /* the archive, data.pkl, one storage */
    ckpt_source_free(src);

    /* a 46-byte zip64 archive whose end record points anywhere: once read outside the mapping */
    char *tiny = test_join(dir, "tiny.pt");
    uint8_t z[46] = {'P', 'K', 3, 4, 'P', 'K', 6, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0, 0, 0, 1, 0, 0, 0,
                     'P', 'K', 5, 6, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0};
    test_write_file(tiny, z, sizeof z);
    ckpt_error err;
    ck_assert_int_eq(ckpt_source_open(&src, tiny, NULL, &err), CKPT_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.message, "zip64"));

    char *many = test_join(dir, "many.pt");
    write_many_storages(many, 200000, false);
    src = test_open(many);
    ck_assert_uint_eq(ckpt_source_tensor_count(src), 200000);
    const ckpt_tensor *t;
    uint8_t *v = test_read_tensor(src, "199999", &t);
    float f;
    memcpy(&f, v, 4);
    ck_assert_float_eq(f, 199999.0f);
    free(v);
    ckpt_source_free(src);

    test_rmtree(dir);
    free(views);
    free(deflated);
    free(tiny);
    free(many);
    free(dir);
}
END_TEST

/*
 * 20,000 tensors each tied to another: converted, every tie is written once and
 * listed as an alias of its target, and verify --against recomputes them all.
 */
START_TEST(many_ties_convert)
{
    const uint32_t n = 20000;
    char *dir = test_tmpdir(), *path = test_join(dir, "tied.pt"), *dst = test_join(dir, "out");
    write_many_storages(path, n, true);
    ckpt_source *src = test_open(path);
    ck_assert_uint_eq(ckpt_source_tensor_count(src), 2 * n);
    ck_assert_str_eq(ckpt_source_tensor(src, 2 * n - 1)->alias_of, "19999");
    ckpt_source_free(src);
    char *out;
    ck_assert_int_eq(test_ckpt(&out, NULL, "convert '%s' '%s' --target nd --json", path, dst), 0);
    free(out);
    char *manifest = test_join(dst, "ckpt-manifest.json");
    json_t *m = json_load_file(manifest, 0, NULL), *tensors = json_object_get(m, "tensors"), *e;
    ck_assert_uint_eq(json_array_size(tensors), 2 * n);
    size_t i, aliases = 0;
    json_array_foreach(tensors, i, e) {
        const char *alias_of = json_string_value(json_object_get(e, "alias_of"));
        if (!alias_of)
            continue;
        char want[24];
        snprintf(want, sizeof want, "%zu", (size_t)(atol(json_string_value(json_object_get(e, "name"))) - n));
        ck_assert_str_eq(alias_of, want);
        aliases++;
    }
    ck_assert_uint_eq(aliases, n);
    json_decref(m);
    src = test_open(dst);
    ck_assert_uint_eq(ckpt_source_tensor_count(src), n);   /* each tie stored once */
    ckpt_source_free(src);
    ck_assert_int_eq(test_ckpt(&out, NULL, "verify '%s' --against '%s'", dst, path), 0);
    free(out);
    test_rmtree(dir);
    free(manifest);
    free(dst);
    free(path);
    free(dir);
}
END_TEST

/* views.pt (f32, strided views, an alias) for each Ascend target, against casts done here */
START_TEST(convert_torch_for_each_target)
{
    static const struct {
        const char *target;
        ckpt_dtype dtype;
    } targets[] = {{"ascend-310p", CKPT_DTYPE_F16}, {"ascend-910b", CKPT_DTYPE_BF16}};
    char *src = test_testdata("torch/views.pt");
    ckpt_source *in = test_open(src);
    for (size_t k = 0; k < 2; k++) {
        char *dir = test_tmpdir();
        char *dst = test_join(dir, "out"), *err;
        ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s' --target %s", src, dst, targets[k].target), 0);
        free(err);
        ckpt_source *out = test_open(dst);
        static const char *const names[] = {"base", "transposed", "slice", "expanded", "offset", "strided"};
        for (size_t n = 0; n < 6; n++) {
            const ckpt_tensor *t;
            uint8_t *x = test_read_tensor(in, names[n], NULL), *y = test_read_tensor(out, names[n], &t);
            ck_assert_int_eq(t->dtype, targets[k].dtype);
            for (uint64_t e = 0; e < t->nbytes / 2; e++) {
                float f;
                uint16_t got, want;
                memcpy(&f, x + 4 * e, 4);
                memcpy(&got, y + 2 * e, 2);
                if (targets[k].dtype == CKPT_DTYPE_F16) {
                    _Float16 h = (_Float16)f;
                    memcpy(&want, &h, 2);
                } else {   /* these small integers are exact in bf16: the top half of the float */
                    uint32_t b;
                    memcpy(&b, &f, 4);
                    want = (uint16_t)(b >> 16);
                }
                ck_assert_msg(got == want, "%s %s[%llu]", targets[k].target, names[n], (unsigned long long)e);
            }
            free(x);
            free(y);
        }
        ckpt_source_free(out);
        ck_assert_int_eq(test_ckpt(NULL, &err, "verify '%s' --against '%s'", dst, src), 0);
        free(err);
        test_rmtree(dir);
        free(dst);
        free(dir);
    }
    ckpt_source_free(in);
    free(src);
}
END_TEST

static Suite *torch_suite(void)
{
    Suite *s = suite_create("torch");
    TCase *tc = tcase_create("torch");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, fixtures_match_torch);
    tcase_add_test(tc, external_files_match_torch);
    tcase_add_test(tc, training_checkpoint_objects);
    tcase_add_test(tc, hostile_files_refused);
    tcase_add_test(tc, named_refusals);
    tcase_add_test(tc, corrupt_entry_fails_open_and_convert);
    tcase_add_test(tc, sharded_bin_folder);
    tcase_add_test(tc, convert_torch_to_safetensors);
    tcase_add_test(tc, convert_torch_for_each_target);
    tcase_add_test(tc, crafted_archives);
    tcase_add_test(tc, many_ties_convert);
    tcase_add_test(tc, strided_view_of_truncated_file);
    tcase_add_test(tc, sparse_views_of_a_large_storage);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_main(torch_suite());
}
