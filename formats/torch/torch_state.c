/*
 * torch_state.c: interpreting torch's rebuild calls and flattening the
 * containers around them; see torch_state.h.
 *
 * The walk is bounded: nesting depth, total nodes visited (a pickle can
 * reference one list from another a thousand times, a billion paths in a
 * few bytes) and name length.  A container met again on its own path is a
 * cycle and is refused; a tensor met again elsewhere is an alias.
 */
#include "torch_state.h"

#include "libckpt/common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 256
#define MAX_VISITS 20000000
#define MAX_NAME 65536

static const struct {
    const char *name;
    ckpt_dtype dtype;
} storage_types[] = {
    {"FloatStorage", CKPT_DTYPE_F32},   {"DoubleStorage", CKPT_DTYPE_F64}, {"HalfStorage", CKPT_DTYPE_F16},
    {"BFloat16Storage", CKPT_DTYPE_BF16}, {"LongStorage", CKPT_DTYPE_I64},  {"IntStorage", CKPT_DTYPE_I32},
    {"ShortStorage", CKPT_DTYPE_I16},   {"CharStorage", CKPT_DTYPE_I8},    {"ByteStorage", CKPT_DTYPE_U8},
    {"BoolStorage", CKPT_DTYPE_BOOL},   {"ComplexFloatStorage", CKPT_DTYPE_C64},
    {"UntypedStorage", CKPT_DTYPE_INVALID},
};

static const struct {
    const char *name;
    ckpt_dtype dtype;
} dtype_globals[] = {
    {"float32", CKPT_DTYPE_F32},  {"float", CKPT_DTYPE_F32},     {"float64", CKPT_DTYPE_F64},
    {"double", CKPT_DTYPE_F64},   {"float16", CKPT_DTYPE_F16},   {"half", CKPT_DTYPE_F16},
    {"bfloat16", CKPT_DTYPE_BF16}, {"int64", CKPT_DTYPE_I64},    {"long", CKPT_DTYPE_I64},
    {"int32", CKPT_DTYPE_I32},    {"int", CKPT_DTYPE_I32},       {"int16", CKPT_DTYPE_I16},
    {"short", CKPT_DTYPE_I16},    {"int8", CKPT_DTYPE_I8},       {"uint8", CKPT_DTYPE_U8},
    {"bool", CKPT_DTYPE_BOOL},    {"complex64", CKPT_DTYPE_C64}, {"cfloat", CKPT_DTYPE_C64},
    {"float8_e4m3fn", CKPT_DTYPE_F8_E4M3}, {"float8_e5m2", CKPT_DTYPE_F8_E5M2},
    {"uint16", CKPT_DTYPE_U16},   {"uint32", CKPT_DTYPE_U32},    {"uint64", CKPT_DTYPE_U64},
};

ckpt_dtype torch_dtype_global(const struct pk_value *g)
{
    for (size_t i = 0; g && g->kind == PK_GLOBAL && i < sizeof dtype_globals / sizeof dtype_globals[0]; i++)
        if (strcmp(g->s, "torch") == 0 && strcmp(g->s2, dtype_globals[i].name) == 0)
            return dtype_globals[i].dtype;
    return CKPT_DTYPE_INVALID;
}

static bool get_u64(const struct pk_value *v, uint64_t *out)
{
    int64_t i;
    if (!pk_int(v, &i) || i < 0)
        return false;
    *out = (uint64_t)i;
    return true;
}

int torch_parse_persid(const struct pk_value *pid, struct torch_storage_ref *ref, const char *origin, ckpt_error *err)
{
    memset(ref, 0, sizeof *ref);
    const struct pk_value *t = pid && pid->kind == PK_PERSID ? pid->fn : NULL;
    if (!t || t->kind != PK_TUPLE || t->count < 5 || !pk_str(t->items[0]) || strcmp(t->items[0]->s, "storage") != 0)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: a persistent id is not a storage reference", origin);
    const struct pk_value *type = t->items[1];
    bool known = false;
    for (size_t i = 0; type && type->kind == PK_GLOBAL && i < sizeof storage_types / sizeof storage_types[0]; i++) {
        if (strcmp(type->s2, storage_types[i].name) == 0 && strncmp(type->s, "torch", 5) == 0) {
            ref->dtype = storage_types[i].dtype;
            known = true;
        }
    }
    if (!known)
        return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: unsupported storage type %s.%s", origin,
                         type && type->kind == PK_GLOBAL ? type->s : "?",
                         type && type->kind == PK_GLOBAL ? type->s2 : "?");
    ref->key = pk_str(t->items[2]);
    if (!ref->key || !get_u64(t->items[4], &ref->numel))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: storage reference without a key or size", origin);
    if (t->count >= 6 && t->items[5]->kind == PK_TUPLE) {
        const struct pk_value *view = t->items[5];
        ref->has_view = true;
        ref->view_key = view->count == 3 ? pk_str(view->items[0]) : NULL;
        if (!ref->view_key || !get_u64(view->items[1], &ref->view_offset) || !get_u64(view->items[2], &ref->view_numel))
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: storage view of %s is malformed", origin, ref->key);
    }
    return CKPT_OK;
}

/* ---- the walk ---- */

struct walk {
    struct ckpt_source *src;
    const char *origin;
    torch_locate_fn locate;
    void *ctx;
    int (*on_storage)(void *ctx, const struct torch_storage_ref *ref, ckpt_error *err);
    char *name;
    size_t name_cap;
    uint64_t visits;
    size_t tensors;
    ckpt_error *err;
};

static int fail(struct walk *w, int code, const char *what)
{
    return ckpt_fail(w->err, code, "%s: %s at %s", w->origin, what, w->name[0] ? w->name : "the root");
}

/* Appends ".part" (or "part" at the root) to the name; returns the old length to restore. */
static int name_push(struct walk *w, size_t len, const char *part, size_t part_len, size_t *new_len)
{
    size_t need = len + (len ? 1 : 0) + part_len + 1;
    if (need > MAX_NAME)
        return fail(w, CKPT_ERR_LIMIT, "a name longer than 64 KiB");
    if (need > w->name_cap) {
        size_t cap = w->name_cap * 2 > need ? w->name_cap * 2 : need;
        char *grown = realloc(w->name, cap);
        if (!grown)
            return fail(w, CKPT_ERR_NOMEM, "out of memory");
        w->name = grown;
        w->name_cap = cap;
    }
    if (len)
        w->name[len++] = '.';
    memcpy(w->name + len, part, part_len);
    w->name[len + part_len] = '\0';
    *new_len = len + part_len;
    return CKPT_OK;
}

static bool is_rebuild(const struct pk_value *fn)
{
    return pk_is_global(fn, "torch._utils", "_rebuild_tensor") || pk_is_global(fn, "torch._utils", "_rebuild_tensor_v2") ||
           pk_is_global(fn, "torch._utils", "_rebuild_tensor_v3");
}

static bool is_tensor_node(const struct pk_value *v)
{
    return v->kind == PK_CALL &&
           (is_rebuild(v->fn) || pk_is_global(v->fn, "torch._utils", "_rebuild_parameter") ||
            pk_is_global(v->fn, "torch._utils", "_rebuild_parameter_with_state") ||
            pk_is_global(v->fn, "torch._tensor", "_rebuild_from_type_v2") ||
            pk_is_global(v->fn, "torch._utils", "_rebuild_from_type_v2"));
}

static bool shape_of(const struct pk_value *t, uint64_t *out, uint32_t max, uint32_t *rank)
{
    if (!t || (t->kind != PK_TUPLE && t->kind != PK_LIST) || t->count > max)
        return false;
    for (size_t i = 0; i < t->count; i++)
        if (!get_u64(t->items[i], &out[i]))
            return false;
    *rank = (uint32_t)t->count;
    return true;
}

/* The rebuild call's function and arguments, through parameter and subclass wrappers. */
static int unwrap(struct walk *w, const struct pk_value *v, const struct pk_value **fn, const struct pk_value **args)
{
    for (int hops = 0; hops < 8; hops++) {
        const struct pk_value *a = v->args;
        if (!a || a->kind != PK_TUPLE)
            return fail(w, CKPT_ERR_FORMAT, "a tensor rebuild without arguments");
        if (is_rebuild(v->fn)) {
            *fn = v->fn;
            *args = a;
            return CKPT_OK;
        }
        if (pk_is_global(v->fn, "torch._tensor", "_rebuild_from_type_v2") ||
            pk_is_global(v->fn, "torch._utils", "_rebuild_from_type_v2")) {
            /* (func, type, args, state): func applied to args */
            if (a->count < 3 || !is_rebuild(a->items[0]) || a->items[2]->kind != PK_TUPLE)
                return fail(w, CKPT_ERR_FORMAT, "a tensor subclass this reader does not rebuild");
            *fn = a->items[0];
            *args = a->items[2];
            return CKPT_OK;
        }
        /* _rebuild_parameter(data, requires_grad, hooks[, state]) */
        if (a->count < 1 || !is_tensor_node(a->items[0]))
            return fail(w, CKPT_ERR_FORMAT, "a parameter without a tensor");
        v = a->items[0];
    }
    return fail(w, CKPT_ERR_FORMAT, "tensor wrappers nested too deep");
}

static int declare_tensor(struct walk *w, struct pk_value *v)
{
    if (v->tag >= 0) /* reached before: tied weights share one tensor */
        return source_add_alias(w->src, w->name, (size_t)v->tag, w->err);
    const struct pk_value *fn, *a;
    int rc = unwrap(w, v, &fn, &a);
    if (rc)
        return rc;
    uint64_t offset, shape[SOURCE_MAX_RANK];
    int64_t strides[SOURCE_MAX_RANK];
    uint32_t rank = 0, srank = 0;
    uint64_t stride_u[SOURCE_MAX_RANK];
    if (a->count < 4 || !get_u64(a->items[1], &offset) || !shape_of(a->items[2], shape, SOURCE_MAX_RANK, &rank) ||
        !shape_of(a->items[3], stride_u, SOURCE_MAX_RANK, &srank) || srank != rank)
        return fail(w, CKPT_ERR_FORMAT, "a tensor whose offset, size or stride is malformed");
    for (uint32_t d = 0; d < rank; d++) {
        if (stride_u[d] > INT64_MAX)
            return fail(w, CKPT_ERR_FORMAT, "a stride too large");
        strides[d] = (int64_t)stride_u[d];
    }
    struct torch_storage_ref ref;
    if ((rc = torch_parse_persid(a->items[0], &ref, w->origin, w->err)))
        return rc;
    ckpt_dtype dtype = ref.dtype;
    if (pk_is_global(fn, "torch._utils", "_rebuild_tensor_v3")) {
        dtype = torch_dtype_global(a->count > 6 ? a->items[6] : NULL);
    }
    if (dtype == CKPT_DTYPE_INVALID)
        return fail(w, CKPT_ERR_UNSUPPORTED, "a tensor of an element type libckpt does not read");
    if (!w->locate)
        return fail(w, CKPT_ERR_FORMAT, "a tensor in a pickle that has no storages");
    struct tensor_view view = {0};
    if ((rc = w->locate(w->ctx, &ref, dtype, &view, w->err)))
        return rc;
    view.elem_offset = offset;
    view.strides = strides;
    if ((rc = source_add_tensor(w->src, w->name, dtype, rank, shape, &view, w->err)))
        return rc;
    v->tag = (int64_t)(w->src->tensor_count - 1);
    w->tensors++;
    return CKPT_OK;
}

static int add_object(struct walk *w, const char *kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int add_object(struct walk *w, const char *kind, const char *fmt, ...)
{
    if (!w->src)
        return CKPT_OK;
    char value[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    int rc = source_add_object(w->src, w->name[0] ? w->name : TORCH_ROOT_TENSOR_NAME, kind, value, w->err);
    return rc == CKPT_ERR_LIMIT ? fail(w, rc, "too many non-tensor values (a pickle bomb?)") : rc;
}

static int walk(struct walk *w, struct pk_value *v, size_t name_len, int depth);

/* The size of an io.BytesIO's buffer: its state is (bytes, position, dict), or bytes given to the constructor. */
static size_t bytes_io_size(const struct pk_value *v)
{
    const struct pk_value *s = v->state && v->state->kind == PK_TUPLE && v->state->count >= 1 ? v->state->items[0]
                             : v->args && v->args->kind == PK_TUPLE && v->args->count >= 1 ? v->args->items[0]
                                                                                          : NULL;
    return s && s->kind == PK_BYTES ? s->len : 0;
}

static int walk_child(struct walk *w, struct pk_value *v, size_t len, const char *part, size_t part_len, int depth)
{
    size_t new_len;
    int rc = name_push(w, len, part, part_len, &new_len);
    if (!rc)
        rc = walk(w, v, new_len, depth + 1);
    w->name[len] = '\0';
    return rc;
}

static int walk_dict(struct walk *w, struct pk_value *d, size_t len, int depth)
{
    for (size_t i = 0; i + 1 < d->count; i += 2) {
        const struct pk_value *k = d->items[i];
        char num[32];
        const char *part = pk_str(k);
        size_t part_len = part ? k->len : 0;
        int64_t ki;
        if (!part && k->kind == PK_STR)   /* a key holding a NUL: no name can carry it whole */
            return fail(w, CKPT_ERR_FORMAT, "a key holding a NUL byte (names cannot carry it whole)");
        if (!part && pk_int(k, &ki)) {
            part_len = (size_t)snprintf(num, sizeof num, "%lld", (long long)ki);
            part = num;
        } else if (!part) {
            part_len = (size_t)snprintf(num, sizeof num, "key%zu", i / 2);
            part = num;
        }
        int rc = walk_child(w, d->items[i + 1], len, part, part_len, depth);
        if (rc)
            return rc;
    }
    return CKPT_OK;
}

static int walk_seq(struct walk *w, struct pk_value *s, size_t len, int depth)
{
    for (size_t i = 0; i < s->count; i++) {
        char num[32];
        int n = snprintf(num, sizeof num, "%zu", i);
        int rc = walk_child(w, s->items[i], len, num, (size_t)n, depth);
        if (rc)
            return rc;
    }
    return CKPT_OK;
}

static int walk(struct walk *w, struct pk_value *v, size_t len, int depth)
{
    if (depth > MAX_DEPTH)
        return fail(w, CKPT_ERR_LIMIT, "nesting deeper than 256");
    if (++w->visits > MAX_VISITS)
        return fail(w, CKPT_ERR_LIMIT, "more than 20 million references (a pickle bomb?)");
    if (v->visiting)
        return fail(w, CKPT_ERR_FORMAT, "a container that contains itself");
    if (is_tensor_node(v)) {
        if (w->on_storage) {   /* the storage pass: report, declare nothing */
            const struct pk_value *fn, *a;
            struct torch_storage_ref ref;
            int rc = unwrap(w, v, &fn, &a);
            if (!rc && a->count > 0)
                rc = torch_parse_persid(a->items[0], &ref, w->origin, w->err);
            return rc ? rc : w->on_storage(w->ctx, &ref, w->err);
        }
        return declare_tensor(w, v);
    }
    int rc = CKPT_OK;
    v->visiting = true;
    switch (v->kind) {
    case PK_DICT: rc = walk_dict(w, v, len, depth); break;
    case PK_LIST:
    case PK_TUPLE: rc = walk_seq(w, v, len, depth); break;
    case PK_CALL:
        if (pk_is_call(v, "argparse", "Namespace") && v->state && v->state->kind == PK_DICT)
            rc = walk_dict(w, v->state, len, depth);   /* args.lr, args.hidden_size, ... */
        else if (pk_is_call(v, "_io", "BytesIO") || pk_is_call(v, "io", "BytesIO"))
            rc = add_object(w, "bytes", "<%zu bytes in an io.BytesIO, not read>", bytes_io_size(v));
        else
            rc = add_object(w, "opaque", "%s.%s", v->fn->s, v->fn->s2);
        break;
    case PK_NONE: rc = add_object(w, "none", "None"); break;
    case PK_BOOL: rc = add_object(w, "bool", "%s", v->i ? "True" : "False"); break;
    case PK_INT:
        rc = v->big ? add_object(w, "int", "<%zu-byte integer>", v->len) : add_object(w, "int", "%lld", (long long)v->i);
        break;
    case PK_FLOAT: rc = add_object(w, "float", "%.17g", v->f); break;
    case PK_STR: rc = add_object(w, "string", "%s", v->s); break;
    case PK_BYTES: rc = add_object(w, "bytes", "<%zu bytes>", v->len); break;
    case PK_SET: rc = add_object(w, "opaque", "set of %zu", v->count); break;
    case PK_GLOBAL: rc = add_object(w, "opaque", "%s.%s", v->s, v->s2); break;
    case PK_PERSID: rc = fail(w, CKPT_ERR_FORMAT, "a storage outside any tensor"); break;
    }
    v->visiting = false;
    return rc;
}

int torch_state_declare(struct ckpt_source *src, const struct pk_value *root, const char *origin,
                        torch_locate_fn locate, void *ctx, ckpt_error *err)
{
    struct walk w = {src, origin, locate, ctx, NULL, calloc(1, 256), 256, 0, 0, err};
    if (!w.name)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", origin);
    int rc;
    if (is_tensor_node(root)) {
        strcpy(w.name, TORCH_ROOT_TENSOR_NAME);
        rc = declare_tensor(&w, (struct pk_value *)root);
    } else {
        rc = walk(&w, (struct pk_value *)root, 0, 0);
    }
    free(w.name);
    if (!rc && w.tensors == 0 && !src->objects_only)
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: no tensors in this pickle", origin);
    return rc;
}

int torch_state_storages(const struct pk_value *root, const char *origin,
                         int (*fn)(void *ctx, const struct torch_storage_ref *ref, ckpt_error *err), void *ctx,
                         ckpt_error *err)
{
    struct walk w = {NULL, origin, NULL, ctx, fn, calloc(1, 256), 256, 0, 0, err};
    if (!w.name)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", origin);
    int rc = walk(&w, (struct pk_value *)root, 0, 0);
    free(w.name);
    return rc;
}
