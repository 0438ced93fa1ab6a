/*
 * test_dcp.c: PyTorch Distributed Checkpoint folders written by
 * testdata/dcp/make_fixtures.py (chunks cut by rows, columns and both, a
 * transposed chunk, a scalar, a pickled object) under torch's old and new
 * module paths, read back and compared bit for bit with the full tensors
 * torch held before cutting; the metadata parser on its own; and each
 * defect the fixtures carry refused naming the file and the tensor.
 */
#include "helpers.h"

#include "formats/dcp/dcp.h"
#include "formats/megatron/megatron_args.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every tensor of `golden_name` is in `path` with the same type, shape and bytes; and nothing else is. */
static void expect_equal_to_golden(const char *path, const char *golden_name)
{
    ckpt_source *src = test_open(path);
    test_expect_golden(src, path, golden_name);
    ckpt_source_free(src);
}

START_TEST(chunks_assemble_to_the_originals)
{
    static const char *const folders[] = {"dcp/old", "dcp/new"};
    for (size_t i = 0; i < 2; i++) {
        char *path = test_testdata(folders[i]);
        expect_equal_to_golden(path, "dcp/golden.safetensors");
        ckpt_source *src = test_open(path);
        ck_assert_str_eq(ckpt_source_format(src), "dcp");
        /* the pickled object is recorded, not read */
        ck_assert_uint_eq(ckpt_source_object_count(src), 1);
        ck_assert_str_eq(ckpt_source_object(src, 0)->name, "extra_state");
        ck_assert_str_eq(ckpt_source_object(src, 0)->kind, "bytes");
        ckpt_source_free(src);
        free(path);
    }
}
END_TEST

static void parse_file(const char *relative, struct dcp_metadata *md)
{
    char *path = test_testdata(relative);
    size_t len;
    uint8_t *data = test_read_file(path, &len);
    ckpt_error err;
    int rc = dcp_metadata_parse(md, data, len, path, NULL, &err);
    ck_assert_msg(rc == CKPT_OK, "%s", err.message);
    free(data);   /* the records keep nothing of the input */
    free(path);
}

/* The parser alone: records as the script wrote them, the same from dataclasses with slots. */
START_TEST(metadata_records)
{
    struct dcp_metadata md, slots;
    parse_file("dcp/new/.metadata", &md);
    parse_file("dcp/metadata_slots.pkl", &slots);
    ck_assert_uint_eq(md.count, 6);
    const struct dcp_entry *e = &md.entries[2];   /* model.layer.weight: bf16 [6, 8] in a 2 x 2 grid */
    ck_assert_str_eq(e->name, "model.layer.weight");
    ck_assert(e->is_tensor && e->dtype == CKPT_DTYPE_BF16 && e->rank == 2);
    ck_assert(e->shape[0] == 6 && e->shape[1] == 8 && e->chunk_count == 4);
    ck_assert(e->chunks[3].offsets[0] == 4 && e->chunks[3].offsets[1] == 5);
    ck_assert(e->chunks[3].sizes[0] == 2 && e->chunks[3].sizes[1] == 3);
    ck_assert_str_eq(e->chunks[3].storage.path, "__0_0.distcp");
    ck_assert(!md.entries[0].is_tensor && md.entries[0].bytes.offset == 0 && md.entries[0].bytes.length > 0);
    ck_assert_uint_eq(md.entries[4].rank, 0);   /* model.scale */
    ck_assert_uint_eq(slots.count, md.count);
    for (size_t i = 0; i < md.count; i++) {
        const struct dcp_entry *a = &md.entries[i], *b = &slots.entries[i];
        ck_assert_str_eq(a->name, b->name);
        ck_assert(a->is_tensor == b->is_tensor && a->dtype == b->dtype && a->rank == b->rank);
        ck_assert_uint_eq(a->chunk_count, b->chunk_count);
        for (size_t c = 0; c < a->chunk_count; c++) {
            ck_assert_uint_eq(a->chunks[c].storage.offset, b->chunks[c].storage.offset);
            ck_assert_uint_eq(a->chunks[c].storage.length, b->chunks[c].storage.length);
            for (uint32_t d = 0; d < a->rank; d++)
                ck_assert_uint_eq(a->chunks[c].offsets[d], b->chunks[c].offsets[d]);
        }
    }
    dcp_metadata_free(&md);
    dcp_metadata_free(&slots);
}
END_TEST

/* Every truncation of a real metadata file is refused, never read past its end. */
START_TEST(truncated_metadata_is_refused)
{
    char *path = test_testdata("dcp/new/.metadata");
    size_t len;
    uint8_t *data = test_read_file(path, &len);
    for (size_t n = 0; n < len; n++) {
        uint8_t *copy = malloc(n ? n : 1);   /* exactly n bytes, so that ASan sees any overread */
        memcpy(copy, data, n);
        struct dcp_metadata md;
        ckpt_error err;
        ck_assert_int_ne(dcp_metadata_parse(&md, copy, n, "cut", NULL, &err), CKPT_OK);
        free(copy);
    }
    free(data);
    free(path);
}
END_TEST

/* Converts SRC with `options`, verifies the output against SRC, and diffs it against GOLDEN. */
static void convert_matches(const char *src_rel, const char *golden_rel, const char *options)
{
    char *src = test_testdata(src_rel), *golden = test_testdata(golden_rel);
    char *tmp = test_tmpdir(), *dst = test_join(tmp, "out");
    ck_assert_int_eq(test_ckpt(NULL, NULL, "convert %s %s --target nd --quiet %s", src, dst, options), 0);
    ck_assert_int_eq(test_ckpt(NULL, NULL, "verify %s --against %s", dst, src), 0);
    ck_assert_int_eq(test_ckpt(NULL, NULL, "diff %s %s", dst, golden), 0);
    test_rmtree(tmp);
    free(tmp);
    free(dst);
    free(src);
    free(golden);
}

static void expect_parse_refused(const char *bytes, size_t n, const char *needle)
{
    struct dcp_metadata md;
    ckpt_error err;
    ck_assert_int_eq(dcp_metadata_parse(&md, (const uint8_t *)bytes, n, "m.pkl", NULL, &err), CKPT_ERR_FORMAT);
    ck_assert_msg(strstr(err.message, needle) != NULL, "'%s' lacks '%s'", err.message, needle);
}

/* Pickles no writer makes: a name twice (Python would have merged them), a root that is not Metadata. */
START_TEST(hostile_metadata)
{
    static const char twice[] = "\x80\x02" "ctorch.distributed.checkpoint.metadata\nMetadata\n)\x81}("
                                "X\x13\x00\x00\x00state_dict_metadata}(X\x01\x00\x00\x00" "aNX\x01\x00\x00\x00" "aNu"
                                "X\x0c\x00\x00\x00storage_data}ub.";
    expect_parse_refused(twice, sizeof twice - 1, "m.pkl: entry a: listed twice");
    expect_parse_refused("\x80\x02N.", 4, "m.pkl: is not a DCP Metadata record");
    static const char no_storage[] = "\x80\x02" "ctorch.distributed.checkpoint.metadata\nMetadata\n)\x81}("
                                     "X\x13\x00\x00\x00state_dict_metadata}ub.";
    expect_parse_refused(no_storage, sizeof no_storage - 1, "no storage_data");
}
END_TEST

/* ---- a .metadata pickle written here, protocol 2, for chunk counts no committed fixture could hold ---- */

struct pickle_out {
    char *p;
    size_t n, cap;
};

static void emit(struct pickle_out *o, const void *data, size_t n)
{
    if (o->n + n > o->cap) {
        o->cap = (o->n + n) * 2;
        o->p = realloc(o->p, o->cap);
        ck_assert_ptr_nonnull(o->p);
    }
    memcpy(o->p + o->n, data, n);
    o->n += n;
}

static void emit_str(struct pickle_out *o, const char *text)
{
    uint32_t n = (uint32_t)strlen(text);
    emit(o, "X", 1);
    emit(o, (uint8_t[]){n & 255, n >> 8 & 255, n >> 16 & 255, n >> 24}, 4);
    emit(o, text, n);
}

static void emit_int(struct pickle_out *o, uint32_t v)
{
    emit(o, "J", 1);
    emit(o, (uint8_t[]){v & 255, v >> 8 & 255, v >> 16 & 255, v >> 24}, 4);
}

static void emit_ints(struct pickle_out *o, const uint32_t *v, size_t n)
{
    emit(o, "(", 1);
    for (size_t i = 0; i < n; i++)
        emit_int(o, v[i]);
    emit(o, "t", 1);
}

/* module.name() with its fields set by BUILD: the opening, then the caller's key/value pairs, then close_record. */
static void open_record(struct pickle_out *o, const char *module, const char *name)
{
    char global[160];
    int n = snprintf(global, sizeof global, "c%s\n%s\n)\x81}(", module, name);
    emit(o, global, (size_t)n);
}

static void close_record(struct pickle_out *o)
{
    emit(o, "ub", 2);
}

#define META "torch.distributed.checkpoint.metadata"

/* Metadata of one bf16 tensor `name` of `shape`, in `count` chunks at offsets[i] of sizes[i] (rank 4 each). */
static struct pickle_out chunked_metadata(const char *name, const uint32_t *shape, size_t count,
                                          void (*chunk)(size_t i, uint32_t *off, uint32_t *size))
{
    struct pickle_out o = {0};
    uint32_t off[4], size[4];
    emit(&o, "\x80\x02", 2);
    open_record(&o, META, "Metadata");
    emit_str(&o, "state_dict_metadata");
    emit(&o, "}", 1);
    emit_str(&o, name);
    open_record(&o, META, "TensorStorageMetadata");
    emit_str(&o, "properties");
    static const char properties[] = "c" META "\nTensorProperties\n)\x81(ctorch\nbfloat16\nNNNNtb";
    emit(&o, properties, sizeof properties - 1);
    emit_str(&o, "size");
    emit_ints(&o, shape, 4);
    emit_str(&o, "chunks");
    emit(&o, "](", 2);
    for (size_t i = 0; i < count; i++) {
        chunk(i, off, size);
        open_record(&o, META, "ChunkStorageMetadata");
        emit_str(&o, "offsets");
        emit_ints(&o, off, 4);
        emit_str(&o, "sizes");
        emit_ints(&o, size, 4);
        close_record(&o);
    }
    emit(&o, "e", 1);
    close_record(&o);
    emit(&o, "s", 1);
    emit_str(&o, "storage_data");
    emit(&o, "}(", 2);
    for (size_t i = 0; i < count; i++) {
        chunk(i, off, size);
        open_record(&o, META, "MetadataIndex");
        emit_str(&o, "fqn");
        emit_str(&o, name);
        emit_str(&o, "offset");
        emit_ints(&o, off, 4);
        close_record(&o);
        open_record(&o, "torch.distributed.checkpoint.filesystem", "_StorageInfo");
        emit_str(&o, "relative_path");
        emit_str(&o, "__0_0.distcp");
        emit_str(&o, "offset");
        emit_int(&o, (uint32_t)i * 100);
        emit_str(&o, "length");
        emit_int(&o, 100);
        close_record(&o);
    }
    emit(&o, "u", 1);
    close_record(&o);
    emit(&o, ".", 1);
    return o;
}

/* Megatron's chunks of Qwen3-235B's stacked fc1 [94, 128, 3072, 4096] at ETP=1: per layer, expert and GLU half. */
static void expert_chunk(size_t i, uint32_t *off, uint32_t *size)
{
    uint32_t v[8] = {(uint32_t)(i / 256), (uint32_t)(i / 2 % 128), (uint32_t)(i % 2 * 1536), 0, 1, 1, 1536, 4096};
    memcpy(off, v, 16);
    memcpy(size, v + 4, 16);
}

static void column_chunk(size_t i, uint32_t *off, uint32_t *size)
{
    uint32_t v[8] = {0, 0, 0, (uint32_t)i, 1, 1, 1, 1};
    memcpy(off, v, 16);
    memcpy(size, v + 4, 16);
}

/* Pieces per tensor are bounded by the tensor's shape: 24,064 honest chunks parse, as many on a vector do not. */
START_TEST(chunks_bounded_by_their_shape)
{
    struct dcp_metadata md;
    ckpt_error err;
    struct pickle_out o = chunked_metadata("decoder.layers.mlp.experts.experts.linear_fc1.weight",
                                           (uint32_t[]){94, 128, 3072, 4096}, 24064, expert_chunk);
    ck_assert_msg(dcp_metadata_parse(&md, (const uint8_t *)o.p, o.n, "235b", NULL, &err) == CKPT_OK, "%s", err.message);
    ck_assert_uint_eq(md.count, 1);
    ck_assert_uint_eq(md.entries[0].chunk_count, 24064);
    ck_assert_uint_eq(md.entries[0].chunks[24063].offsets[0], 93);
    dcp_metadata_free(&md);
    free(o.p);
    o = chunked_metadata("a.vector", (uint32_t[]){1, 1, 1, 24064}, 24064, column_chunk);
    ck_assert_int_eq(dcp_metadata_parse(&md, (const uint8_t *)o.p, o.n, "vector", NULL, &err), CKPT_ERR_LIMIT);
    ck_assert_msg(strstr(err.message, "a.vector has 24064 chunks, more than its shape allows (16384)"), "%s",
                  err.message);
    free(o.p);
}
END_TEST

/* The CLI on a DCP folder: inspect, convert, verify against the folder, diff against the originals. */
START_TEST(cli_inspect_convert_verify)
{
    char *src = test_testdata("dcp/new"), *golden = test_testdata("dcp/golden.safetensors");
    char *out = NULL;
    ck_assert_int_eq(test_ckpt(&out, NULL, "inspect %s --json", src), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"format\": \"dcp\""));
    ck_assert_ptr_nonnull(strstr(out, "model.cols"));
    free(out);
    ck_assert_int_eq(test_ckpt(NULL, NULL, "diff %s %s", src, golden), 0);
    convert_matches("dcp/new", "dcp/golden.safetensors", "");
    free(src);
    free(golden);
}
END_TEST

/* A copy of dcp/new whose .metadata is dcp/bad/NAME.metadata. */
static char *broken_copy(const char *tmp, const char *bad)
{
    char *dir = test_join(tmp, bad), *good = test_testdata("dcp/new");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", good, dir);
    ck_assert_int_eq(system(cmd), 0);
    char rel[256];
    snprintf(rel, sizeof rel, "dcp/bad/%s.metadata", bad);
    char *bad_path = test_testdata(rel), *md_path = test_join(dir, ".metadata");
    size_t len;
    uint8_t *data = test_read_file(bad_path, &len);
    test_write_file(md_path, data, len);
    free(data);
    free(bad_path);
    free(md_path);
    free(good);
    return dir;
}

START_TEST(defects_are_refused_naming_file_and_tensor)
{
    static const struct {
        const char *bad, *file, *tensor, *problem;
    } cases[] = {
        {"gap", "__0_0.distcp", "tensor model.cols", "cover 12 of its 30 elements"},
        {"overlap", ".distcp", "tensor model.embed.weight", "overlaps another"},
        {"missing_storage", ".metadata", "tensor model.layer.weight", "chunk at [4, 5] has no storage_data entry"},
        {"escape", ".metadata", "entry model.proj.weight", "'../new/__1_0.distcp' leaves the checkpoint folder"},
        {"length", "__0_0.distcp", "tensor model.scale", "lie outside the file"},
        {"wrong_type", "__1_0.distcp", "tensor model.proj.weight", "another type or shape than the metadata"},
        {"unknown_class", ".metadata", "torch.distributed.checkpoint.metadata.TensorStorageMetadatX", "refusing to call"},
    };
    char *tmp = test_tmpdir();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *dir = broken_copy(tmp, cases[i].bad), *err = NULL;
        ck_assert_int_eq(test_ckpt(NULL, &err, "inspect %s", dir), 3);
        ck_assert_msg(strstr(err, cases[i].file) && strstr(err, cases[i].tensor) && strstr(err, cases[i].problem),
                      "%s: '%s'", cases[i].bad, err);
        const char *nl = strchr(err, '\n');
        ck_assert_msg(!nl || nl[1] == '\0', "%s: not one line: '%s'", cases[i].bad, err);
        free(err);
        free(dir);
    }
    test_rmtree(tmp);
    free(tmp);
}
END_TEST

/*
 * Megatron torch_dist: layers stacked on a leading axis come out as one
 * tensor per layer, equal to the per-layer originals; the args become
 * megatron.* metadata; optimizer state is left out.  NeMo 2: the same
 * weights under module., read through the folder's weights/, and the same
 * metadata from context/model.yaml.
 */
START_TEST(megatron_torch_dist_and_nemo2)
{
    char *dist = test_testdata("dcp/torch_dist"), *nemo = test_testdata("dcp/nemo2");
    expect_equal_to_golden(dist, "dcp/torch_dist_golden.safetensors");
    expect_equal_to_golden(nemo, "dcp/torch_dist_golden.safetensors");
    ckpt_source *src = test_open(dist);
    ck_assert_str_eq(ckpt_source_format(src), "megatron-torch-dist");
    static const char *const want[][2] = {
        {"megatron.num_layers", "2"},         {"megatron.hidden_size", "8"},   {"megatron.ffn_hidden_size", "6"},
        {"megatron.num_query_groups", "1"},   {"megatron.kv_channels", "4"},   {"megatron.heads_per_group", "2"},
        {"megatron.padded_vocab_size", "16"}, {"megatron.vocab_size", "14"},   {"megatron.swiglu", "true"},
        {"megatron.norm_epsilon", "1e-05"},   {"megatron.rotary_base", "10000"}, {"megatron.iteration", "100"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *v = ckpt_source_metadata_value(src, want[i][0]);
        ck_assert_msg(v && strcmp(v, want[i][1]) == 0, "%s = %s, want %s", want[i][0], v ? v : "(none)", want[i][1]);
    }
    size_t index;
    ck_assert_int_eq(ckpt_source_find(src, "optimizer.state.exp_avg.decoder.final_layernorm.weight", &index),
                     CKPT_ERR_NOT_FOUND);
    ckpt_source_free(src);
    src = test_open(nemo);
    ck_assert_str_eq(ckpt_source_format(src), "nemo2");
    /* from context/model.yaml's config block only: its nested and sibling blocks say 99 layers and 999 words */
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *v = ckpt_source_metadata_value(src, want[i][0]);
        if (strcmp(want[i][0], "megatron.iteration") != 0)
            ck_assert_msg(v && strcmp(v, want[i][1]) == 0, "nemo2: %s = %s, want %s", want[i][0], v ? v : "(none)",
                          want[i][1]);
    }
    ckpt_source_free(src);
    free(dist);
    free(nemo);
}
END_TEST

/* A scratch source holding objects given as {name, kind, value}, as the torch reader records args. */
static struct ckpt_source *objects_source(const char *const objects[][3], size_t n)
{
    struct ckpt_source *s = source_new("args", NULL);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(source_add_object(s, objects[i][0], objects[i][1], objects[i][2], NULL), CKPT_OK);
    return s;
}

/* Megatron's defaults where args leave a value out, and args whose shape cannot be. */
START_TEST(megatron_args_defaults_and_refusals)
{
    static const char *const plain[][3] = {
        {"args.num_layers", "int", "4"},          {"args.hidden_size", "int", "64"},
        {"args.num_attention_heads", "int", "8"}, {"args.num_query_groups", "int", "2"},   /* no GQA flag: unused */
        {"args.padded_vocab_size", "int", "128"},
    };
    struct ckpt_source *args = objects_source(plain, 5), *src = source_new("src", NULL);
    ck_assert_int_eq(megatron_args_record(src, args, "args", NULL), CKPT_OK);
    static const char *const want[][2] = {
        {"megatron.ffn_hidden_size", "256"}, {"megatron.num_query_groups", "8"}, {"megatron.kv_channels", "8"},
        {"megatron.heads_per_group", "1"},   {"megatron.vocab_size", "128"},     {"megatron.swiglu", "false"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *v = ckpt_source_metadata_value(src, want[i][0]);
        ck_assert_msg(v && strcmp(v, want[i][1]) == 0, "%s = %s, want %s", want[i][0], v ? v : "(none)", want[i][1]);
    }
    ckpt_source_free(src);
    ckpt_source_free(args);
    static const char *const uneven[][3] = {
        {"args.num_layers", "int", "4"},          {"args.hidden_size", "int", "64"},
        {"args.num_attention_heads", "int", "8"}, {"args.num_query_groups", "int", "3"},
        {"args.group_query_attention", "bool", "True"},
    };
    args = objects_source(uneven, 5);
    src = source_new("src", NULL);
    ckpt_error err;
    ck_assert_int_eq(megatron_args_record(src, args, "common.pt", &err), CKPT_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.message, "common.pt: args: 3 query groups do not divide 8 heads"));
    ckpt_source_free(src);
    ckpt_source_free(args);
}
END_TEST

/* A DCP folder with some other metadata.json is still plain DCP; a torch_dist one with a zarr backend is refused. */
START_TEST(which_metadata_json)
{
    char *tmp = test_tmpdir(), *dir = broken_copy(tmp, "gap");
    char *good = test_testdata("dcp/new/.metadata"), *md = test_join(dir, ".metadata"), *json = test_join(dir, "metadata.json");
    size_t len;
    uint8_t *data = test_read_file(good, &len);
    test_write_file(md, data, len);
    test_write_file(json, "{\"format\": \"mine\"}", 19);
    ckpt_source *src = test_open(dir);
    ck_assert_str_eq(ckpt_source_format(src), "dcp");
    ckpt_source_free(src);
    static const char zarr[] = "{\"sharded_backend\": \"zarr\", \"note\": \"torch_dist\"}";
    test_write_file(json, zarr, sizeof zarr - 1);
    char *err = NULL;
    ck_assert_int_eq(test_ckpt(NULL, &err, "inspect %s", dir), 3);
    ck_assert_ptr_nonnull(strstr(err, "metadata.json: sharded_backend zarr is not torch_dist"));
    free(err);
    free(data);
    free(good);
    free(md);
    free(json);
    free(dir);
    test_rmtree(tmp);
    free(tmp);
}
END_TEST

/* context/model.yaml written with CRLF line ends (an editor on Windows) reads the same. */
START_TEST(nemo2_yaml_with_crlf)
{
    char *tmp = test_tmpdir(), *dir = test_join(tmp, "nemo2"), *good = test_testdata("dcp/nemo2");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s' && sed -i 's/$/\\r/' '%s/context/model.yaml'", good, dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    ckpt_source *src = test_open(dir);
    const char *layers = ckpt_source_metadata_value(src, "megatron.num_layers"), *eps = ckpt_source_metadata_value(src, "megatron.norm_epsilon");
    ck_assert_msg(layers && strcmp(layers, "2") == 0 && eps && strcmp(eps, "1e-05") == 0, "%s %s", layers, eps);
    ckpt_source_free(src);
    test_rmtree(tmp);
    free(tmp);
    free(dir);
    free(good);
}
END_TEST

/* --rename hf-llama on torch_dist and NeMo 2 gives the Hugging Face Llama tensors the script cut from the originals. */
START_TEST(torch_dist_to_hugging_face)
{
    convert_matches("dcp/torch_dist", "dcp/torch_dist_hf_golden.safetensors", "--rename hf-llama");
    convert_matches("dcp/nemo2", "dcp/torch_dist_hf_golden.safetensors", "--rename hf-llama");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dcp");
    TCase *tc = tcase_create("dcp");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, chunks_assemble_to_the_originals);
    tcase_add_test(tc, metadata_records);
    tcase_add_test(tc, truncated_metadata_is_refused);
    tcase_add_test(tc, hostile_metadata);
    tcase_add_test(tc, chunks_bounded_by_their_shape);
    tcase_add_test(tc, cli_inspect_convert_verify);
    tcase_add_test(tc, defects_are_refused_naming_file_and_tensor);
    tcase_add_test(tc, megatron_torch_dist_and_nemo2);
    tcase_add_test(tc, megatron_args_defaults_and_refusals);
    tcase_add_test(tc, which_metadata_json);
    tcase_add_test(tc, nemo2_yaml_with_crlf);
    tcase_add_test(tc, torch_dist_to_hugging_face);
    suite_add_tcase(s, tc);
    return test_main(s);
}
