/*
 * pickle.c: the pickle machine; see pickle.h.
 *
 * The rule, for every opcode that would call something in Python (REDUCE,
 * NEWOBJ, NEWOBJ_EX, OBJ, INST, BUILD on a class): the callable must be on
 * `allowed` below.  Those are simulated, never called: containers become
 * containers, and everything else becomes a PK_CALL node that the torch
 * reader interprets (tensor rebuilders) or carries as an opaque value
 * (argparse.Namespace, numpy RNG arrays, io.BytesIO).  Any other callable refuses the
 * whole file with its name, whatever module it is from: an allow-list, not a
 * deny-list, so no new gadget can slip through.  EXT1-4 (the copyreg
 * extension registry) and out-of-band buffers are refused for the same
 * reason.
 */
#include "pickle.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STACK ((size_t)1 << 20)
#define MAX_MARKS ((size_t)1 << 16)
#define MAX_MEMO ((size_t)1 << 22)
#define CHUNK_MIN ((size_t)64 << 10)

/* ---- the arena: every value of the tree, freed at once ---- */

struct pk_chunk {
    struct pk_chunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

static void *arena_alloc(struct pickle *p, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    if (size > p->limit || p->used > p->limit - size)
        return NULL;
    struct pk_chunk *c = p->chunks;
    if (!c || c->size - c->used < size) {
        size_t cs = size > CHUNK_MIN ? size : CHUNK_MIN;
        if (!(c = malloc(sizeof *c + cs)))
            return NULL;
        c->size = cs;
        c->used = 0;
        c->next = p->chunks;
        p->chunks = c;
    }
    void *out = c->data + c->used;
    c->used += size;
    p->used += size;
    memset(out, 0, size);
    return out;
}

void pickle_free(struct pickle *p)
{
    for (struct pk_chunk *c = p->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    memset(p, 0, sizeof *p);
}

/* ---- the machine ---- */

struct machine {
    struct pickle *p;
    const uint8_t *data;
    size_t len, pos;
    const char *origin;
    ckpt_error *err;
    struct pk_value **stack;
    size_t depth, stack_cap;
    size_t *marks;
    size_t mark_count, mark_cap;
    struct pk_value **memo;
    size_t memo_cap, memo_next;
};

#define FAIL(m, code, ...) ckpt_fail((m)->err, code, __VA_ARGS__)

static int out_of_memory(struct machine *m)
{
    return FAIL(m, CKPT_ERR_LIMIT, "%s: pickle needs more than %llu bytes of memory (limit max_pickle_bytes)",
                m->origin, (unsigned long long)m->p->limit);
}

static struct pk_value *new_value(struct machine *m, enum pk_kind kind)
{
    struct pk_value *v = arena_alloc(m->p, sizeof *v);
    if (v) {
        v->kind = kind;
        v->tag = -1;
    }
    return v;
}

static const char *copy_text(struct machine *m, const uint8_t *s, size_t n)
{
    char *t = arena_alloc(m->p, n + 1);
    if (t) {
        memcpy(t, s, n);
        t[n] = '\0';
    }
    return t;
}

static int push(struct machine *m, struct pk_value *v)
{
    if (!v)
        return out_of_memory(m);
    if (m->depth == m->stack_cap) {
        if (m->stack_cap >= MAX_STACK)
            return FAIL(m, CKPT_ERR_LIMIT, "%s: pickle stack deeper than %zu", m->origin, MAX_STACK);
        size_t cap = m->stack_cap ? m->stack_cap * 2 : 64;
        struct pk_value **grown = realloc(m->stack, cap * sizeof *grown);
        if (!grown)
            return FAIL(m, CKPT_ERR_NOMEM, "%s: out of memory", m->origin);
        m->stack = grown;
        m->stack_cap = cap;
    }
    m->stack[m->depth++] = v;
    return CKPT_OK;
}

static struct pk_value *pop(struct machine *m)
{
    size_t floor = m->mark_count ? m->marks[m->mark_count - 1] : 0;
    return m->depth > floor ? m->stack[--m->depth] : NULL;
}

static struct pk_value *top(struct machine *m)
{
    size_t floor = m->mark_count ? m->marks[m->mark_count - 1] : 0;
    return m->depth > floor ? m->stack[m->depth - 1] : NULL;
}

static int stack_underflow(struct machine *m, const char *op)
{
    return FAIL(m, CKPT_ERR_FORMAT, "%s: pickle %s at byte %zu finds too few values on the stack", m->origin, op,
                m->pos);
}

/* Values pushed since the last MARK: the MARK is removed, the slice left for the caller to consume. */
static int pop_mark(struct machine *m, size_t *first, const char *op)
{
    if (!m->mark_count)
        return FAIL(m, CKPT_ERR_FORMAT, "%s: pickle %s at byte %zu without a MARK", m->origin, op, m->pos);
    *first = m->marks[--m->mark_count];
    /* every opcode keeps the stack at or above the last MARK; checked again so that no slice is negative */
    if (*first > m->depth)
        return stack_underflow(m, op);
    return CKPT_OK;
}

static int append_items(struct machine *m, struct pk_value *c, struct pk_value **items, size_t n)
{
    if (n == 0)   /* an empty APPENDS or SETITEMS: c->items may still be NULL */
        return CKPT_OK;
    if (c->count + n > c->cap) {
        size_t cap = c->cap ? c->cap : 4;
        while (cap < c->count + n)
            cap *= 2;
        struct pk_value **grown = arena_alloc(m->p, cap * sizeof *grown);
        if (!grown)
            return out_of_memory(m);
        if (c->count)
            memcpy(grown, c->items, c->count * sizeof *grown);
        c->items = grown;
        c->cap = cap;
    }
    memcpy(c->items + c->count, items, n * sizeof *items);
    c->count += n;
    return CKPT_OK;
}

static struct pk_value *make_seq(struct machine *m, enum pk_kind kind, struct pk_value **items, size_t n)
{
    struct pk_value *v = new_value(m, kind);
    if (v && n && append_items(m, v, items, n))
        return NULL;
    return v;
}

/* ---- reading the input ---- */

static const uint8_t *take(struct machine *m, size_t n)
{
    if (n > m->len - m->pos)
        return NULL;
    const uint8_t *p = m->data + m->pos;
    m->pos += n;
    return p;
}

static int truncated(struct machine *m)
{
    return FAIL(m, CKPT_ERR_FORMAT, "%s: pickle ends at byte %zu before its STOP", m->origin, m->len);
}

/* A protocol-0 argument: the bytes up to the next newline. */
static const uint8_t *take_line(struct machine *m, size_t *n)
{
    const uint8_t *start = m->data + m->pos;
    const uint8_t *nl = memchr(start, '\n', m->len - m->pos);
    if (!nl)
        return NULL;
    *n = (size_t)(nl - start);
    m->pos += *n + 1;
    return start;
}

static bool valid_utf8(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!k || i + k > n)
            return false;
        for (size_t j = 1; j < k; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
        i += k;
    }
    return true;
}

static int push_text(struct machine *m, enum pk_kind kind, const uint8_t *s, size_t n)
{
    if (!s)
        return truncated(m);
    if (kind == PK_STR && !valid_utf8(s, n))
        return FAIL(m, CKPT_ERR_FORMAT, "%s: pickle string at byte %zu is not valid UTF-8", m->origin, m->pos);
    struct pk_value *v = new_value(m, kind);
    if (v && !(v->s = copy_text(m, s, n)))
        v = NULL;
    if (v)
        v->len = n;
    return push(m, v);
}

static int push_int(struct machine *m, int64_t i)
{
    struct pk_value *v = new_value(m, PK_INT);
    if (v)
        v->i = i;
    return push(m, v);
}

/* LONG1/LONG4: n bytes of little-endian two's complement. */
static int push_long(struct machine *m, const uint8_t *b, size_t n)
{
    if (!b)
        return truncated(m);
    if (n <= 8) {
        uint64_t u = 0;
        for (size_t k = n; k-- > 0;)
            u = u << 8 | b[k];
        if (n && n < 8 && (b[n - 1] & 0x80))
            u |= ~(uint64_t)0 << (8 * n);
        return push_int(m, (int64_t)u);
    }
    struct pk_value *v = new_value(m, PK_INT);
    if (v && !(v->s = copy_text(m, b, n)))
        v = NULL;
    if (v) {
        v->big = true;
        v->len = n;
    }
    return push(m, v);
}

/* Protocol-0 INT and LONG: decimal text, "00"/"01" for False/True. */
static int push_decimal(struct machine *m, const uint8_t *s, size_t n, bool is_long)
{
    if (!s)
        return truncated(m);
    if (!is_long && n == 2 && s[0] == '0' && (s[1] == '0' || s[1] == '1')) {
        struct pk_value *v = new_value(m, PK_BOOL);
        if (v)
            v->i = s[1] == '1';
        return push(m, v);
    }
    if (is_long && n && s[n - 1] == 'L')
        n--;
    char buf[32];
    if (n == 0 || n >= sizeof buf)
        return FAIL(m, CKPT_ERR_UNSUPPORTED, "%s: pickle integer at byte %zu is too long", m->origin, m->pos);
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    long long v = strtoll(buf, &end, 10);
    if (*end)
        return FAIL(m, CKPT_ERR_FORMAT, "%s: pickle integer '%s' is not a number", m->origin, buf);
    return push_int(m, v);
}

/* ---- globals and what may be applied to them ---- */

static const struct {
    const char *module, *name;
} allowed[] = {
    {"torch._utils", "_rebuild_tensor"},
    {"torch._utils", "_rebuild_tensor_v2"},
    {"torch._utils", "_rebuild_tensor_v3"},
    {"torch._utils", "_rebuild_parameter"},
    {"torch._utils", "_rebuild_parameter_with_state"},
    {"torch._utils", "_rebuild_from_type_v2"},
    {"torch._tensor", "_rebuild_from_type_v2"},
    {"torch", "Size"},
    {"torch", "device"},
    {"collections", "OrderedDict"},
    {"builtins", "set"},
    {"builtins", "frozenset"},
    {"__builtin__", "set"},
    {"__builtin__", "frozenset"},
    {"_codecs", "encode"},
    {"argparse", "Namespace"},
    {"numpy.core.multiarray", "_reconstruct"},
    {"numpy._core.multiarray", "_reconstruct"},
    {"numpy.core.multiarray", "scalar"},
    {"numpy._core.multiarray", "scalar"},
    {"numpy", "ndarray"},
    {"numpy", "dtype"},
    /*
     * PyTorch Distributed Checkpoint `.metadata` (dcp_metadata.c): dataclasses
     * rebuilt as records, never constructed.  torch < 2 kept them under
     * torch.distributed._shard; later releases moved them.  StorageMeta's
     * checkpoint_id is the writer's folder, a pathlib path; torch pickles a
     * layout (TensorProperties.layout) as _get_layout("torch.strided").
     */
    {"torch.serialization", "_get_layout"},
    {"torch.distributed._shard.checkpoint.metadata", "Metadata"},
    {"torch.distributed._shard.checkpoint.metadata", "TensorStorageMetadata"},
    {"torch.distributed._shard.checkpoint.metadata", "ChunkStorageMetadata"},
    {"torch.distributed._shard.checkpoint.metadata", "BytesStorageMetadata"},
    {"torch.distributed._shard.checkpoint.metadata", "MetadataIndex"},
    {"torch.distributed._shard.checkpoint.filesystem", "_StorageInfo"},
    {"torch.distributed._shard.sharded_tensor.metadata", "TensorProperties"},
    {"torch.distributed._shard.sharded_tensor.metadata", "MEM_FORMAT_ENCODING"},
    {"torch.distributed.checkpoint.metadata", "Metadata"},
    {"torch.distributed.checkpoint.metadata", "TensorStorageMetadata"},
    {"torch.distributed.checkpoint.metadata", "ChunkStorageMetadata"},
    {"torch.distributed.checkpoint.metadata", "BytesStorageMetadata"},
    {"torch.distributed.checkpoint.metadata", "MetadataIndex"},
    {"torch.distributed.checkpoint.metadata", "TensorProperties"},
    {"torch.distributed.checkpoint.metadata", "_MEM_FORMAT_ENCODING"},
    {"torch.distributed.checkpoint.metadata", "StorageMeta"},
    {"torch.distributed.checkpoint.filesystem", "_StorageInfo"},
    {"pathlib", "PosixPath"},
    {"pathlib._local", "PosixPath"},   /* Python 3.13 defined the path classes there */
    /* DeepSpeed ZeRO checkpoints: the stage enum, the loss scaler, optimizer slice records */
    {"deepspeed.runtime.zero.config", "ZeroStageEnum"},
    {"deepspeed.runtime.fp16.loss_scaler", "LossScaler"},
    {"deepspeed.runtime.fp16.loss_scaler", "DynamicLossScaler"},
    {"deepspeed.utils.tensor_fragment", "fragment_address"},
    /*
     * Megatron-LM `args` (legacy model_optim_rng.pt, torch_dist common.pt):
     * the enum-valued arguments (model_type, attention_backend, fp8/fp4
     * recipes, CUDA graph scopes) and the older homes of ModelType.
     */
    {"megatron.core.enums", "ModelType"},
    {"megatron.core.enums", "Fp8Recipe"},
    {"megatron.core.enums", "Fp4Recipe"},
    {"megatron.core.transformer.enums", "ModelType"},
    {"megatron.core.transformer.enums", "AttnBackend"},
    {"megatron.core.transformer.enums", "AttnMaskType"},
    {"megatron.core.transformer.enums", "CudaGraphModule"},
    {"megatron.core.transformer.enums", "CudaGraphScope"},
    {"megatron.core.transformer.enums", "InferenceCudaGraphScope"},
    {"megatron.model.enums", "ModelType"},
    {"megatron.legacy.model.enums", "ModelType"},
    /*
     * Transformer Engine < 2.0 saved each module's _extra_state as an
     * io.BytesIO of a torch.save: recorded with its bytes, never opened.
     */
    {"_io", "BytesIO"},
    {"io", "BytesIO"},
};

bool pk_is_global(const struct pk_value *v, const char *module, const char *name)
{
    return v && v->kind == PK_GLOBAL && strcmp(v->s, module) == 0 && strcmp(v->s2, name) == 0;
}

bool pk_is_call(const struct pk_value *v, const char *module, const char *name)
{
    return v && v->kind == PK_CALL && pk_is_global(v->fn, module, name);
}

const char *pk_str(const struct pk_value *v)
{
    /* a string holding a NUL is no C string: read as one it would be cut short, so it is not one */
    return v && v->kind == PK_STR && memchr(v->s, '\0', v->len) == NULL ? v->s : NULL;
}

bool pk_int(const struct pk_value *v, int64_t *out)
{
    if (!v || (v->kind != PK_INT && v->kind != PK_BOOL) || v->big)
        return false;
    *out = v->i;
    return true;
}

/*
 * The refusal names what would have been called, with getattr's target
 * (how protocol 2 spells a static method: Transformer Engine's fp8 tensors
 * reduce themselves that way).
 */
static int refuse_call(struct machine *m, const struct pk_value *fn, const struct pk_value *args)
{
    if (!fn || fn->kind != PK_GLOBAL)
        return FAIL(m, CKPT_ERR_FORMAT, "%s: pickle at byte %zu calls something that is not a global", m->origin,
                    m->pos);
    const struct pk_value *target = NULL;
    if ((pk_is_global(fn, "builtins", "getattr") || pk_is_global(fn, "__builtin__", "getattr")) && args &&
        args->kind == PK_TUPLE && args->count == 2 && args->items[0]->kind == PK_GLOBAL && pk_str(args->items[1]))
        target = args->items[0];
    const char *module = target ? target->s : fn->s;
    const char *why = strncmp(module, "transformer_engine", 18) == 0
                          ? "a Transformer Engine tensor (fp8 weights, saved with --fp8-param-gather?) is not read: "
                            "save the checkpoint with high-precision weights"
                          : "not a checkpoint type libckpt reads";
    if (target)
        return FAIL(m, CKPT_ERR_FORMAT, "%s: refusing to call %s.%s(%s.%s, '%s'): %s", m->origin, fn->s, fn->s2,
                    target->s, target->s2, args->items[1]->s, why);
    return FAIL(m, CKPT_ERR_FORMAT, "%s: refusing to call %s.%s: %s", m->origin, fn->s, fn->s2, why);
}

static bool is_allowed(const struct pk_value *fn)
{
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        if (pk_is_global(fn, allowed[i].module, allowed[i].name))
            return true;
    return false;
}

static int push_global(struct machine *m, const uint8_t *module, size_t ml, const uint8_t *name, size_t nl)
{
    if (!module || !name)
        return truncated(m);
    if (!valid_utf8(module, ml) || !valid_utf8(name, nl))
        return FAIL(m, CKPT_ERR_FORMAT, "%s: pickle global name is not valid UTF-8", m->origin);
    if (memchr(module, '\0', ml) || memchr(name, '\0', nl))   /* compared as C strings it would be cut short */
        return FAIL(m, CKPT_ERR_FORMAT, "%s: pickle global name holds a NUL byte", m->origin);
    struct pk_value *v = new_value(m, PK_GLOBAL);
    if (v && (!(v->s = copy_text(m, module, ml)) || !(v->s2 = copy_text(m, name, nl))))
        v = NULL;
    return push(m, v);
}

/* _codecs.encode(text, 'latin1'): how protocol 2 spells bytes (numpy RNG state uses it). */
static struct pk_value *latin1_bytes(struct machine *m, const struct pk_value *text)
{
    struct pk_value *v = new_value(m, PK_BYTES);
    char *out = v ? arena_alloc(m->p, text->len + 1) : NULL;
    if (!out)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < text->len; i++) {
        uint8_t c = (uint8_t)text->s[i];
        if (c >= 0xC0 && i + 1 < text->len) /* a two-byte UTF-8 sequence holds code points up to 0x7FF */
            c = (uint8_t)((c & 0x1F) << 6 | ((uint8_t)text->s[++i] & 0x3F));
        out[n++] = (char)c;
    }
    v->s = out;
    v->len = n;
    return v;
}

/*
 * Python >= 3.11 pickles an enum member as getattr(EnumClass, "NAME"): a
 * getattr is accepted only in that form, on an allowed class, by a name.
 */
static bool is_enum_member(const struct pk_value *fn, const struct pk_value *args)
{
    return (pk_is_global(fn, "builtins", "getattr") || pk_is_global(fn, "__builtin__", "getattr")) && args &&
           args->kind == PK_TUPLE && args->count == 2 && is_allowed(args->items[0]) && pk_str(args->items[1]);
}

/* Applies an allowed callable: containers are made here, the rest recorded for the reader. */
static int apply(struct machine *m, struct pk_value *fn, struct pk_value *args)
{
    if (!is_allowed(fn) && !is_enum_member(fn, args))
        return refuse_call(m, fn, args);
    size_t n = args && args->kind == PK_TUPLE ? args->count : 0;
    struct pk_value *v;
    if (pk_is_global(fn, "collections", "OrderedDict") && n == 0) {
        v = new_value(m, PK_DICT);
    } else if ((strcmp(fn->s2, "set") == 0 || strcmp(fn->s2, "frozenset") == 0) && n <= 1) {
        const struct pk_value *from = n ? args->items[0] : NULL;
        if (from && from->kind != PK_LIST && from->kind != PK_TUPLE && from->kind != PK_SET)
            return FAIL(m, CKPT_ERR_FORMAT, "%s: set() of something that is not a list", m->origin);
        v = make_seq(m, PK_SET, from ? from->items : NULL, from ? from->count : 0);
    } else if (pk_is_global(fn, "_codecs", "encode") && n >= 1 && args->items[0]->kind == PK_STR) {
        v = latin1_bytes(m, args->items[0]);
    } else if (pk_is_global(fn, "torch", "Size") && n == 1 && args->items[0]->kind == PK_TUPLE) {
        v = args->items[0];
    } else {
        v = new_value(m, PK_CALL);
        if (v) {
            v->fn = fn;
            v->args = args;
        }
    }
    return push(m, v);
}

static int build(struct machine *m)
{
    struct pk_value *state = pop(m), *obj = top(m);
    if (!state || !obj)
        return stack_underflow(m, "BUILD");
    /* a dict's state is an OrderedDict's attributes (torch's _metadata): kept, never applied */
    if (obj->kind != PK_CALL && obj->kind != PK_DICT)
        return obj->kind == PK_GLOBAL ? refuse_call(m, obj, NULL)
                                      : FAIL(m, CKPT_ERR_FORMAT, "%s: pickle BUILD on a plain value", m->origin);
    obj->state = state;
    return CKPT_OK;
}

/* ---- memo ---- */

static int memo_put(struct machine *m, uint64_t key, struct pk_value *v)
{
    if (!v)
        return stack_underflow(m, "PUT");
    if (key >= MAX_MEMO)
        return FAIL(m, CKPT_ERR_LIMIT, "%s: pickle memo key %llu is over the limit of %zu", m->origin,
                    (unsigned long long)key, MAX_MEMO);
    if (key >= m->memo_cap) {
        size_t cap = m->memo_cap ? m->memo_cap : 64;
        while (cap <= key)
            cap *= 2;
        /* the memo is indexed by key, so one PUT of a large key costs the whole array: charged to the limit */
        size_t more = (cap - m->memo_cap) * sizeof(struct pk_value *);
        if (more > m->p->limit || m->p->used > m->p->limit - more)
            return out_of_memory(m);
        m->p->used += more;
        struct pk_value **grown = realloc(m->memo, cap * sizeof *grown);
        if (!grown)
            return FAIL(m, CKPT_ERR_NOMEM, "%s: out of memory", m->origin);
        memset(grown + m->memo_cap, 0, (cap - m->memo_cap) * sizeof *grown);
        m->memo = grown;
        m->memo_cap = cap;
    }
    m->memo[key] = v;
    return CKPT_OK;
}

static int memo_get(struct machine *m, uint64_t key)
{
    if (key >= m->memo_cap || !m->memo[key])
        return FAIL(m, CKPT_ERR_FORMAT, "%s: pickle reads memo %llu, which was never stored", m->origin,
                    (unsigned long long)key);
    return push(m, m->memo[key]);
}

static int text_key(struct machine *m, const uint8_t *s, size_t n, uint64_t *key)
{
    char buf[24];
    if (!s)
        return truncated(m);
    if (n == 0 || n >= sizeof buf)
        return FAIL(m, CKPT_ERR_FORMAT, "%s: bad memo key in pickle", m->origin);
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    *key = strtoull(buf, &end, 10);
    return *end ? FAIL(m, CKPT_ERR_FORMAT, "%s: bad memo key '%s' in pickle", m->origin, buf) : CKPT_OK;
}

/* ---- containers ---- */

static int set_items(struct machine *m, size_t first, const char *op)
{
    if (first == 0 || first > m->depth)
        return stack_underflow(m, op);
    struct pk_value *d = m->stack[first - 1];
    if (d->kind != PK_DICT)
        return FAIL(m, CKPT_ERR_FORMAT, "%s: pickle %s on something that is not a dict", m->origin, op);
    if ((m->depth - first) % 2)
        return FAIL(m, CKPT_ERR_FORMAT, "%s: pickle %s with an odd number of values", m->origin, op);
    int rc = append_items(m, d, m->stack + first, m->depth - first);
    m->depth = first;
    return rc;
}

static int append_to(struct machine *m, size_t first, enum pk_kind kind, const char *op)
{
    if (first == 0 || first > m->depth)
        return stack_underflow(m, op);
    struct pk_value *l = m->stack[first - 1];
    if (l->kind != kind)
        return FAIL(m, CKPT_ERR_FORMAT, "%s: pickle %s on something that is not a %s", m->origin, op,
                    kind == PK_LIST ? "list" : "set");
    int rc = append_items(m, l, m->stack + first, m->depth - first);
    m->depth = first;
    return rc;
}

static int tuple_from(struct machine *m, size_t first)
{
    struct pk_value *t = make_seq(m, PK_TUPLE, m->stack + first, m->depth - first);
    m->depth = first;
    return push(m, t);
}

static int tuple_n(struct machine *m, size_t n)
{
    size_t floor = m->mark_count ? m->marks[m->mark_count - 1] : 0;
    if (m->depth - floor < n)
        return stack_underflow(m, "TUPLE");
    return tuple_from(m, m->depth - n);
}

static int dict_from(struct machine *m, size_t first)
{
    if ((m->depth - first) % 2)
        return FAIL(m, CKPT_ERR_FORMAT, "%s: pickle DICT with an odd number of values", m->origin);
    struct pk_value *d = make_seq(m, PK_DICT, m->stack + first, m->depth - first);
    m->depth = first;
    return push(m, d);
}

/* Protocol 0 'S': a Python string literal.  Only the escapes pickle writes are decoded. */
static int push_quoted(struct machine *m, const uint8_t *s, size_t n)
{
    if (!s)
        return truncated(m);
    if (n < 2 || (s[0] != '\'' && s[0] != '"') || s[n - 1] != s[0])
        return FAIL(m, CKPT_ERR_FORMAT, "%s: pickle STRING at byte %zu is not quoted", m->origin, m->pos);
    uint8_t *buf = arena_alloc(m->p, n);
    if (!buf)
        return out_of_memory(m);
    size_t k = 0;
    for (size_t i = 1; i + 1 < n; i++) {
        if (s[i] != '\\' || i + 2 >= n) {
            buf[k++] = s[i];
            continue;
        }
        char e = (char)s[++i];
        if (e == 'x' && i + 2 < n - 1) {
            char hex[3] = {(char)s[i + 1], (char)s[i + 2], 0};
            buf[k++] = (uint8_t)strtol(hex, NULL, 16);
            i += 2;
        } else {
            buf[k++] = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : (uint8_t)e;
        }
    }
    struct pk_value *v = new_value(m, PK_BYTES);
    if (v) {
        v->s = (const char *)buf;
        v->len = k;
    }
    return push(m, v);
}

/* ---- the loop ---- */

static int le(struct machine *m, size_t n, uint64_t *out)
{
    *out = 0;
    const uint8_t *b = take(m, n);
    if (!b)
        return truncated(m);
    uint64_t v = 0;
    for (size_t k = n; k-- > 0;)
        v = v << 8 | b[k];
    *out = v;
    return CKPT_OK;
}

static int step(struct machine *m, uint8_t op, bool *stop)
{
    uint64_t n = 0;
    size_t first = 0, l1 = 0, l2 = 0;
    const uint8_t *a, *b;
    struct pk_value *x, *y;
    int rc;
    switch (op) {
    case 0x80: /* PROTO */
        if ((rc = le(m, 1, &n)))
            return rc;
        return n > 5 ? FAIL(m, CKPT_ERR_UNSUPPORTED, "%s: pickle protocol %llu", m->origin, (unsigned long long)n)
                     : CKPT_OK;
    case 0x95: /* FRAME: framing does not matter to a reader holding all the bytes */
        if ((rc = le(m, 8, &n)))
            return rc;
        return n > m->len - m->pos ? truncated(m) : CKPT_OK;
    case '.':
        *stop = true;
        return CKPT_OK;
    case '(':
        if (m->mark_count == m->mark_cap) {
            if (m->mark_cap >= MAX_MARKS)
                return FAIL(m, CKPT_ERR_LIMIT, "%s: pickle nests deeper than %zu", m->origin, MAX_MARKS);
            size_t cap = m->mark_cap ? m->mark_cap * 2 : 32;
            size_t *grown = realloc(m->marks, cap * sizeof *grown);
            if (!grown)
                return FAIL(m, CKPT_ERR_NOMEM, "%s: out of memory", m->origin);
            m->marks = grown;
            m->mark_cap = cap;
        }
        m->marks[m->mark_count++] = m->depth;
        return CKPT_OK;
    case '0':
        return pop(m) ? CKPT_OK : stack_underflow(m, "POP");
    case '1':
        if ((rc = pop_mark(m, &first, "POP_MARK")))
            return rc;
        m->depth = first;
        return CKPT_OK;
    case '2':
        return top(m) ? push(m, top(m)) : stack_underflow(m, "DUP");
    case 'N': return push(m, new_value(m, PK_NONE));
    case 0x88:
    case 0x89:
        x = new_value(m, PK_BOOL);
        if (x)
            x->i = op == 0x88;
        return push(m, x);
    case 'J':
        if ((rc = le(m, 4, &n)))
            return rc;
        return push_int(m, (int32_t)(uint32_t)n);
    case 'K':
        if ((rc = le(m, 1, &n)))
            return rc;
        return push_int(m, (int64_t)n);
    case 'M':
        if ((rc = le(m, 2, &n)))
            return rc;
        return push_int(m, (int64_t)n);
    case 0x8a:
        if ((rc = le(m, 1, &n)))
            return rc;
        return push_long(m, take(m, n), n);
    case 0x8b:
        if ((rc = le(m, 4, &n)))
            return rc;
        if (n > m->len - m->pos)
            return truncated(m);
        return push_long(m, take(m, n), n);
    case 'I': a = take_line(m, &l1); return push_decimal(m, a, l1, false);
    case 'L': a = take_line(m, &l1); return push_decimal(m, a, l1, true);
    case 'F': {
        char buf[64];
        a = take_line(m, &l1);
        if (!a || l1 >= sizeof buf)
            return a ? FAIL(m, CKPT_ERR_FORMAT, "%s: bad FLOAT in pickle", m->origin) : truncated(m);
        memcpy(buf, a, l1);
        buf[l1] = '\0';
        x = new_value(m, PK_FLOAT);
        if (x)
            x->f = strtod(buf, NULL);
        return push(m, x);
    }
    case 'G': {
        if ((rc = le(m, 8, &n)))
            return rc;
        uint64_t be = __builtin_bswap64(n);   /* BINFLOAT is big-endian */
        x = new_value(m, PK_FLOAT);
        if (x)
            memcpy(&x->f, &be, 8);
        return push(m, x);
    }
    case 'X':
        if ((rc = le(m, 4, &n)))
            return rc;
        return push_text(m, PK_STR, n <= m->len - m->pos ? take(m, n) : NULL, n);
    case 0x8c:
        if ((rc = le(m, 1, &n)))
            return rc;
        return push_text(m, PK_STR, take(m, n), n);
    case 0x8d:
        if ((rc = le(m, 8, &n)))
            return rc;
        return push_text(m, PK_STR, n <= m->len - m->pos ? take(m, n) : NULL, n);
    case 'V': a = take_line(m, &l1); return push_text(m, PK_STR, a, l1);
    case 'S': a = take_line(m, &l1); return push_quoted(m, a, l1);
    case 'T':
    case 'B':
        if ((rc = le(m, 4, &n)))
            return rc;
        return push_text(m, PK_BYTES, n <= m->len - m->pos ? take(m, n) : NULL, n);
    case 'U':
    case 'C':
        if ((rc = le(m, 1, &n)))
            return rc;
        return push_text(m, PK_BYTES, take(m, n), n);
    case 0x8e:
    case 0x96:
        if ((rc = le(m, 8, &n)))
            return rc;
        return push_text(m, PK_BYTES, n <= m->len - m->pos ? take(m, n) : NULL, n);
    case ')': return push(m, new_value(m, PK_TUPLE));
    case ']': return push(m, new_value(m, PK_LIST));
    case '}': return push(m, new_value(m, PK_DICT));
    case 0x8f: return push(m, new_value(m, PK_SET));
    case 't':
        if ((rc = pop_mark(m, &first, "TUPLE")))
            return rc;
        return tuple_from(m, first);
    case 0x85: return tuple_n(m, 1);
    case 0x86: return tuple_n(m, 2);
    case 0x87: return tuple_n(m, 3);
    case 'l':
        if ((rc = pop_mark(m, &first, "LIST")))
            return rc;
        x = make_seq(m, PK_LIST, m->stack + first, m->depth - first);
        m->depth = first;
        return push(m, x);
    case 'd':
        if ((rc = pop_mark(m, &first, "DICT")))
            return rc;
        return dict_from(m, first);
    case 0x91:
        if ((rc = pop_mark(m, &first, "FROZENSET")))
            return rc;
        x = make_seq(m, PK_SET, m->stack + first, m->depth - first);
        m->depth = first;
        return push(m, x);
    case 'a':
        if (m->depth < 2 || !top(m))
            return stack_underflow(m, "APPEND");
        return append_to(m, m->depth - 1, PK_LIST, "APPEND");
    case 'e':
        if ((rc = pop_mark(m, &first, "APPENDS")))
            return rc;
        return append_to(m, first, PK_LIST, "APPENDS");
    case 0x90:
        if ((rc = pop_mark(m, &first, "ADDITEMS")))
            return rc;
        return append_to(m, first, PK_SET, "ADDITEMS");
    case 's': {
        /* the key and value must both lie above the last MARK, or the stack would drop below it */
        size_t floor = m->mark_count ? m->marks[m->mark_count - 1] : 0;
        if (m->depth < 3 || m->depth - 2 < floor)
            return stack_underflow(m, "SETITEM");
        return set_items(m, m->depth - 2, "SETITEM");
    }
    case 'u':
        if ((rc = pop_mark(m, &first, "SETITEMS")))
            return rc;
        return set_items(m, first, "SETITEMS");
    case 'p': a = take_line(m, &l1); return (rc = text_key(m, a, l1, &n)) ? rc : memo_put(m, n, top(m));
    case 'q': return (rc = le(m, 1, &n)) ? rc : memo_put(m, n, top(m));
    case 'r': return (rc = le(m, 4, &n)) ? rc : memo_put(m, n, top(m));
    case 0x94: return memo_put(m, m->memo_next++, top(m));
    case 'g': a = take_line(m, &l1); return (rc = text_key(m, a, l1, &n)) ? rc : memo_get(m, n);
    case 'h': return (rc = le(m, 1, &n)) ? rc : memo_get(m, n);
    case 'j': return (rc = le(m, 4, &n)) ? rc : memo_get(m, n);
    case 'c':
        a = take_line(m, &l1);
        b = a ? take_line(m, &l2) : NULL;
        return push_global(m, a, l1, b, l2);
    case 0x93:
        y = pop(m);
        x = pop(m);
        if (!pk_str(x) || !pk_str(y))
            return FAIL(m, CKPT_ERR_FORMAT, "%s: STACK_GLOBAL needs two strings", m->origin);
        return push_global(m, (const uint8_t *)x->s, x->len, (const uint8_t *)y->s, y->len);
    case 'P':
    case 'Q':
        if (op == 'P') {
            a = take_line(m, &l1);
            if ((rc = push_text(m, PK_STR, a, l1)))
                return rc;
        }
        if (!(x = pop(m)))
            return stack_underflow(m, "BINPERSID");
        y = new_value(m, PK_PERSID);
        if (y)
            y->fn = x;
        return push(m, y);
    case 'R':
        y = pop(m);
        x = pop(m);
        if (!x || !y)
            return stack_underflow(m, "REDUCE");
        return apply(m, x, y);
    case 0x81:
        y = pop(m);
        x = pop(m);
        if (!x || !y)
            return stack_underflow(m, "NEWOBJ");
        return apply(m, x, y);
    case 0x92:
        pop(m); /* kwargs */
        y = pop(m);
        x = pop(m);
        if (!x || !y)
            return stack_underflow(m, "NEWOBJ_EX");
        return apply(m, x, y);
    case 'o':
        if ((rc = pop_mark(m, &first, "OBJ")))
            return rc;
        if (first >= m->depth)
            return stack_underflow(m, "OBJ");
        x = m->stack[first];
        y = make_seq(m, PK_TUPLE, m->stack + first + 1, m->depth - first - 1);
        m->depth = first;
        return y ? apply(m, x, y) : out_of_memory(m);
    case 'i':
        a = take_line(m, &l1);
        b = a ? take_line(m, &l2) : NULL;
        if ((rc = push_global(m, a, l1, b, l2)))
            return rc;
        x = m->stack[--m->depth];
        if ((rc = pop_mark(m, &first, "INST")))
            return rc;
        y = make_seq(m, PK_TUPLE, m->stack + first, m->depth - first);
        m->depth = first;
        return y ? apply(m, x, y) : out_of_memory(m);
    case 'b': return build(m);
    case 0x98: return top(m) ? CKPT_OK : stack_underflow(m, "READONLY_BUFFER");
    case 0x82:
    case 0x83:
    case 0x84:
        return FAIL(m, CKPT_ERR_FORMAT, "%s: refusing pickle extension codes (EXT%d): they name callables by number",
                    m->origin, op == 0x84 ? 4 : op - 0x81);   /* EXT1 0x82, EXT2 0x83, EXT4 0x84 */
    case 0x97:
        return FAIL(m, CKPT_ERR_UNSUPPORTED, "%s: pickle uses out-of-band buffers", m->origin);
    default:
        return FAIL(m, CKPT_ERR_FORMAT, "%s: unknown pickle opcode 0x%02x at byte %zu", m->origin, op, m->pos - 1);
    }
}

int pickle_load(struct pickle *p, const uint8_t *data, size_t len, const char *origin, uint64_t max_bytes,
                ckpt_error *err)
{
    memset(p, 0, sizeof *p);
    p->limit = max_bytes;
    struct machine m = {.p = p, .data = data, .len = len, .origin = origin, .err = err};
    /* the stack exists from the start, so that slices of it are never taken from NULL */
    m.stack_cap = 64;
    if (!(m.stack = malloc(m.stack_cap * sizeof *m.stack)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", origin);
    bool stop = false;
    int rc = CKPT_OK;
    while (!rc && !stop) {
        if (m.pos >= m.len) {
            rc = truncated(&m);
            break;
        }
        rc = step(&m, m.data[m.pos++], &stop);
    }
    if (!rc && m.depth != 1)
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: pickle stops with %zu values on its stack, not 1", origin, m.depth);
    if (!rc) {
        p->root = m.stack[0];
        p->end = m.pos;
    }
    free(m.stack);
    free(m.marks);
    free(m.memo);
    if (rc)
        pickle_free(p);
    return rc;
}
