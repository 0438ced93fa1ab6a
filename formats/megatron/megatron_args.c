/*
 * megatron_args.c: Megatron-LM's `args` as megatron.* source metadata; see
 * megatron_args.h.  The values come from the objects the torch reader
 * flattened (`args.hidden_size` = "4096", kind "int"), so nothing here
 * touches a pickle.
 */
#include "megatron_args.h"

#include "libckpt/common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const ckpt_object *find(const struct ckpt_source *from, const char *name, const char *kind)
{
    for (size_t i = 0; i < from->object_count; i++)
        if (strcmp(from->objects[i].name, name) == 0)
            return strcmp(from->objects[i].kind, kind) == 0 ? &from->objects[i] : NULL;
    return NULL;
}

static bool get_int(const struct ckpt_source *from, const char *name, long long *out)
{
    const ckpt_object *o = find(from, name, "int");
    char *end;
    if (!o)
        return false;
    *out = strtoll(o->value, &end, 10);
    return *end == '\0';
}

static bool get_flag(const struct ckpt_source *from, const char *name)
{
    const ckpt_object *o = find(from, name, "bool");
    return o && strcmp(o->value, "True") == 0;
}

/* An int arg as it is, a float one as the shortest decimal text that reads back to the same double. */
static bool get_real(const struct ckpt_source *from, const char *name, char *out, size_t cap)
{
    const ckpt_object *o = find(from, name, "int");
    if (o) {
        snprintf(out, cap, "%s", o->value);
        return true;
    }
    if (!(o = find(from, name, "float")))
        return false;
    double v = strtod(o->value, NULL);
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(out, cap, "%.*g", digits, v);
        if (strtod(out, NULL) == v)
            break;
    }
    return true;
}

static int put(struct ckpt_source *src, const char *key, long long value, const char *file, ckpt_error *err)
{
    char text[32];
    snprintf(text, sizeof text, "%lld", value);
    return source_add_metadata(src, key, text, file, err);
}

/* The keys that are recorded when their arg is present. */
static int record_optional(struct ckpt_source *src, const struct ckpt_source *from, const char *file,
                           ckpt_error *err)
{
    static const struct {
        const char *arg, *key;
    } ints[] = {
        {"args.max_position_embeddings", "megatron.max_position_embeddings"},
        {"args.tensor_model_parallel_size", "megatron.tensor_model_parallel_size"},
        {"args.pipeline_model_parallel_size", "megatron.pipeline_model_parallel_size"},
        {"iteration", "megatron.iteration"},
    };
    int rc = CKPT_OK;
    long long v;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && !rc; i++)
        if (get_int(from, ints[i].arg, &v))
            rc = put(src, ints[i].key, v, file, err);
    char real[64];
    if (!rc && (get_real(from, "args.norm_epsilon", real, sizeof real) ||
                get_real(from, "args.layernorm_epsilon", real, sizeof real)))
        rc = source_add_metadata(src, "megatron.norm_epsilon", real, file, err);
    if (!rc && get_real(from, "args.rotary_base", real, sizeof real))
        rc = source_add_metadata(src, "megatron.rotary_base", real, file, err);
    return rc;
}

int megatron_args_record(struct ckpt_source *src, const struct ckpt_source *from, const char *file,
                         ckpt_error *err)
{
    long long layers, hidden, heads, ffn, groups, kv, padded, vocab;
    if (!get_int(from, "args.hidden_size", &hidden))
        return CKPT_OK;   /* no Megatron args in this file */
    if (!get_int(from, "args.num_layers", &layers) || !get_int(from, "args.num_attention_heads", &heads) ||
        layers <= 0 || hidden <= 0 || heads <= 0)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: args lack a positive num_layers, hidden_size or num_attention_heads",
                         file);
    if (!get_int(from, "args.ffn_hidden_size", &ffn))
        ffn = 4 * hidden;   /* Megatron's default */
    groups = heads;
    if (get_flag(from, "args.group_query_attention") && !get_int(from, "args.num_query_groups", &groups))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: args ask for grouped-query attention without num_query_groups", file);
    if (groups <= 0 || heads % groups)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: args: %lld query groups do not divide %lld heads", file, groups,
                         heads);
    if (!get_int(from, "args.kv_channels", &kv)) {
        if (hidden % heads)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: args: %lld heads do not divide hidden size %lld", file, heads,
                             hidden);
        kv = hidden / heads;
    }
    padded = vocab = 0;
    bool has_padded = get_int(from, "args.padded_vocab_size", &padded);
    bool has_vocab = get_int(from, "args.vocab_size", &vocab);
    if (!has_vocab)
        vocab = padded;   /* the contract: the padded size when args lack the true one */
    if (!has_padded)
        padded = vocab;
    const struct {
        const char *key;
        long long value;
        bool present;
    } keys[] = {
        {"megatron.num_layers", layers, true},
        {"megatron.hidden_size", hidden, true},
        {"megatron.ffn_hidden_size", ffn, true},
        {"megatron.num_attention_heads", heads, true},
        {"megatron.num_query_groups", groups, true},
        {"megatron.kv_channels", kv, true},
        {"megatron.heads_per_group", heads / groups, true},
        {"megatron.padded_vocab_size", padded, has_padded || has_vocab},
        {"megatron.vocab_size", vocab, has_padded || has_vocab},
    };
    int rc = CKPT_OK;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0] && !rc; i++)
        if (keys[i].present)
            rc = put(src, keys[i].key, keys[i].value, file, err);
    if (!rc)
        rc = source_add_metadata(src, "megatron.swiglu", get_flag(from, "args.swiglu") ? "true" : "false", file, err);
    return rc ? rc : record_optional(src, from, file, err);
}
