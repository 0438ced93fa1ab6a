/* inspect.c: `ckpt inspect`: what a checkpoint holds, as a table or JSON. */
#include "cli.h"

#include <getopt.h>
#include <string.h>

static const char inspect_help[] =
    "Usage: ckpt inspect SRC [--json] [--objects] [source options]\n"
    "Lists the detected format, files, tensors (name, dtype, shape, file) and totals\n"
    "of the checkpoint SRC: a file, or a folder of shards.\n\n"
    "  --json               print one JSON document instead of a table\n"
    "  --objects            also list non-tensor values (step counts, args, ...)\n"
    CLI_OPEN_HELP
    CLI_GLOBAL_HELP;

/* A file's name relative to the checkpoint root (its base name when it is the root). */
static const char *relative_to(const char *path, const char *root)
{
    if (strcmp(path, root) == 0) {
        const char *slash = strrchr(path, '/');
        return slash ? slash + 1 : path;
    }
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/')
        n--;
    if (strncmp(path, root, n) == 0 && path[n] == '/')
        return path + n + 1;
    return path;
}

static uint64_t total_bytes(const ckpt_source *src)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < ckpt_source_tensor_count(src); i++) {
        const ckpt_tensor *t = ckpt_source_tensor(src, i);
        if (!t->alias_of)
            sum += t->nbytes;
    }
    return sum;
}

static json_t *dims(const uint64_t *shape, uint32_t rank)
{
    json_t *a = json_array();
    for (uint32_t d = 0; d < rank; d++)
        json_array_append_new(a, json_integer((json_int_t)shape[d]));
    return a;
}

static json_t *tensor_json(const ckpt_source *src, size_t i, const char *root)
{
    const ckpt_tensor *t = ckpt_source_tensor(src, i);
    const ckpt_tensor_storage *st = ckpt_source_tensor_storage(src, i);
    json_t *shape = dims(t->shape, t->rank);
    json_t *o = json_pack("{s:s, s:s, s:o, s:I, s:s}", "name", t->name, "dtype", ckpt_dtype_name(t->dtype), "shape",
                          shape, "bytes", (json_int_t)t->nbytes, "file",
                          relative_to(ckpt_source_file_path(src, t->file), root));
    if (o && t->alias_of)
        json_object_set_new(o, "alias_of", json_string(t->alias_of));
    if (o && st->layout == CKPT_LAYOUT_FRACTAL_NZ)
        json_object_set_new(o, "storage", json_pack("{s:s, s:o, s:I, s:I, s:b}", "layout", "FRACTAL_NZ", "shape",
                                                    dims(st->shape, st->rank), "bytes", (json_int_t)st->nbytes, "c0",
                                                    (json_int_t)st->c0, "transposed", st->transposed));
    if (o && st->quant)
        json_object_set_new(o, "quant", json_string(st->quant));
    return o;
}

static int print_json(const ckpt_source *src, const char *root, int with_objects)
{
    json_t *files = json_array(), *tensors = json_array(), *meta = json_object();
    for (size_t i = 0; i < ckpt_source_file_count(src); i++)
        json_array_append_new(files, json_pack("{s:s, s:I}", "path", ckpt_source_file_path(src, i), "size",
                                               (json_int_t)ckpt_source_file_size(src, i)));
    for (size_t i = 0; i < ckpt_source_tensor_count(src); i++)
        json_array_append_new(tensors, tensor_json(src, i, root));
    for (size_t i = 0; i < ckpt_source_metadata_count(src); i++) {
        const char *key, *value;
        ckpt_source_metadata(src, i, &key, &value);
        json_object_set_new(meta, key, json_string(value));
    }
    json_t *doc = json_pack("{s:s, s:s, s:I, s:I, s:I, s:o, s:o, s:o}", "path", root, "format",
                            ckpt_source_format(src), "file_count", (json_int_t)ckpt_source_file_count(src),
                            "tensor_count", (json_int_t)ckpt_source_tensor_count(src), "total_bytes",
                            (json_int_t)total_bytes(src), "files", files, "metadata", meta, "tensors", tensors);
    if (doc && with_objects) {
        json_t *objects = json_array();
        for (size_t i = 0; i < ckpt_source_object_count(src); i++) {
            const ckpt_object *o = ckpt_source_object(src, i);
            json_array_append_new(objects,
                                  json_pack("{s:s, s:s, s:s}", "name", o->name, "kind", o->kind, "value", o->value));
        }
        json_object_set_new(doc, "objects", objects);
    }
    return cli_print_json(doc);
}

/* "FRACTAL_NZ [4, 4, 16, 16] W8A8_DYNAMIC": how a tensor of a converted folder is stored; its length. */
static size_t storage_text(char *buf, size_t size, const ckpt_tensor_storage *st)
{
    size_t used = 0;
    buf[0] = '\0';
    if (st->layout == CKPT_LAYOUT_FRACTAL_NZ) {
        char dims_text[256];
        ckpt_tensor tiles = {.rank = st->rank, .shape = st->shape};
        cli_format_shape(dims_text, sizeof dims_text, &tiles);
        used = (size_t)snprintf(buf, size, "FRACTAL_NZ%s %s", st->transposed ? "-T" : "", dims_text);
    }
    if (st->quant && used < size)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", used ? " " : "", st->quant);
    return used < size ? used : size - 1;
}

static int print_table(const ckpt_source *src, const char *root, int with_objects)
{
    char size[32], shape[512];
    size_t n = ckpt_source_tensor_count(src);
    cli_format_bytes(size, sizeof size, total_bytes(src));
    printf("path:    %s\nformat:  %s\nfiles:   %zu\ntensors: %zu\nbytes:   %llu (%s)\n", root,
           ckpt_source_format(src), ckpt_source_file_count(src), n, (unsigned long long)total_bytes(src), size);
    /* per-tensor layout records (docs/manifest.md) are counted, not listed: --json has them all */
    size_t layouts = 0;
    for (size_t i = 0; i < ckpt_source_metadata_count(src); i++) {
        const char *key, *value;
        ckpt_source_metadata(src, i, &key, &value);
        if (strncmp(key, "ckpt.layout.", 12) == 0)
            layouts++;
        else
            printf("metadata: %s = %s\n", key, value);
    }
    if (layouts)
        printf("layouts: %zu tensors stored as FRACTAL_NZ (see --json metadata)\n", layouts);
    int name_w = 4, shape_w = 5, stored_w = 0;
    char stored[512];
    for (size_t i = 0; i < n; i++) {
        const ckpt_tensor *t = ckpt_source_tensor(src, i);
        cli_format_shape(shape, sizeof shape, t);
        if ((int)strlen(t->name) > name_w)
            name_w = (int)strlen(t->name);
        if ((int)strlen(shape) > shape_w)
            shape_w = (int)strlen(shape);
        if ((int)storage_text(stored, sizeof stored, ckpt_source_tensor_storage(src, i)) > stored_w)
            stored_w = (int)strlen(stored);
    }
    /* a converted folder's tensors: their stored layout and quantization besides the logical shape */
    if (stored_w && stored_w < 6)
        stored_w = 6;
    if (n)
        printf("\n%-*s  %-11s  %-*s  %-*s%s%s\n", name_w, "NAME", "DTYPE", shape_w, "SHAPE", stored_w,
               stored_w ? "STORED" : "", stored_w ? "  " : "", "FILE");
    for (size_t i = 0; i < n; i++) {
        const ckpt_tensor *t = ckpt_source_tensor(src, i);
        cli_format_shape(shape, sizeof shape, t);
        storage_text(stored, sizeof stored, ckpt_source_tensor_storage(src, i));
        printf("%-*s  %-11s  %-*s  %-*s%s%s", name_w, t->name, ckpt_dtype_name(t->dtype), shape_w, shape, stored_w,
               stored, stored_w ? "  " : "", relative_to(ckpt_source_file_path(src, t->file), root));
        if (t->alias_of)
            printf("  (alias of %s)", t->alias_of);
        putchar('\n');
    }
    if (with_objects && ckpt_source_object_count(src)) {
        printf("\nOBJECTS\n");
        for (size_t i = 0; i < ckpt_source_object_count(src); i++) {
            const ckpt_object *o = ckpt_source_object(src, i);
            printf("%s = %s  (%s)\n", o->name, o->value, o->kind);
        }
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "ckpt inspect: cannot write output\n");
        return EXIT_OUTPUT;
    }
    return EXIT_OK;
}

int cmd_inspect(int argc, char **argv)
{
    static const struct option options[] = {
        {"json", no_argument, NULL, 'J'},
        {"objects", no_argument, NULL, 'o'},
        CLI_OPEN_OPTIONS, CLI_GLOBAL_OPTIONS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int json = 0, objects = 0, c, status;
    ckpt_open_options open_opts;
    cli_open_options_default(&open_opts);
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h" CLI_GLOBAL_SHORT, options, NULL)) != -1) {
        switch (c) {
        CLI_GLOBAL_CASES:
            if ((status = cli_parse_global_option("inspect", c, optarg)))
                return status;
            break;
        case 'J': json = 1; break;
        case 'o': objects = 1; break;
        CLI_OPEN_CASES:
            if ((status = cli_parse_open_option("inspect", c, optarg, &open_opts)))
                return status;
            break;
        case 'h': fputs(inspect_help, stdout); return EXIT_OK;
        default: return cli_unknown_option("inspect", argv[optind - 1], options);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("inspect", "expects one checkpoint path, got %d", argc - optind);
    const char *path = argv[optind];

    ckpt_source *src;
    ckpt_error err;
    cli_cancellable(NULL);
    if (ckpt_source_open_ext(&src, path, &open_opts, &err) != CKPT_OK)
        return cli_fail("inspect", &err);
    status = json ? print_json(src, path, objects)
             : cli_global.quiet ? EXIT_OK   /* -q: the exit status says whether SRC opens */
                                : print_table(src, path, objects);
    ckpt_source_free(src);
    return status;
}
