/*
 * nemo2_config.c: a NeMo 2 model's shape, from `context/model.yaml`.
 *
 * NeMo 2 writes its model configuration as a Hydra-style YAML document:
 * `_target_: ...LlamaModel`, then `config:` holding the Megatron
 * TransformerConfig fields (num_layers: 32, hidden_size: 4096, ...).  Only
 * that block's plain scalars are read, by a line scanner that understands
 * no more YAML than that (nested blocks, quotes, flow styles and anchors
 * are skipped, never interpreted).  The values are handed to the Megatron
 * args helper under Megatron's own names, so that NeMo 2 checkpoints get
 * the same megatron.* metadata as Megatron's.
 */
#include "nemo2_config.h"

#include "formats/common/format.h"
#include "libckpt/common/error.h"
#include "megatron_args.h"
#include "formats/common/shard_index.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_FILE "context/model.yaml"
#define MAX_VALUE 1024

/* NeMo's field name, and the Megatron arg it is. */
static const struct {
    const char *field, *arg;
} fields[] = {
    {"num_layers", "args.num_layers"},
    {"hidden_size", "args.hidden_size"},
    {"ffn_hidden_size", "args.ffn_hidden_size"},
    {"num_attention_heads", "args.num_attention_heads"},
    {"num_query_groups", "args.num_query_groups"},
    {"kv_channels", "args.kv_channels"},
    {"layernorm_epsilon", "args.norm_epsilon"},
    {"rotary_base", "args.rotary_base"},
    {"seq_length", "args.max_position_embeddings"},
    {"vocab_size", "args.vocab_size"},
    {"gated_linear_unit", "args.swiglu"},
    {"tensor_model_parallel_size", "args.tensor_model_parallel_size"},
    {"pipeline_model_parallel_size", "args.pipeline_model_parallel_size"},
    {"add_qkv_bias", "args.add_qkv_bias"},
    {"add_bias_linear", "args.add_bias_linear"},
    {"qk_layernorm", "args.qk_layernorm"},
    {"num_moe_experts", "args.num_experts"},
    {"moe_ffn_hidden_size", "args.moe_ffn_hidden_size"},
    {"moe_shared_expert_intermediate_size", "args.moe_shared_expert_intermediate_size"},
    {"moe_router_topk", "args.moe_router_topk"},
    {"moe_router_num_groups", "args.moe_router_num_groups"},
    {"moe_router_group_topk", "args.moe_router_group_topk"},
    {"moe_router_topk_scaling_factor", "args.moe_router_topk_scaling_factor"},
    {"moe_router_score_function", "args.moe_router_score_function"},
    {"moe_router_enable_expert_bias", "args.moe_router_enable_expert_bias"},
    {"moe_shared_expert_gate", "args.moe_shared_expert_gate"},
    {"moe_layer_freq", "args.moe_layer_freq"},
    {"multi_latent_attention", "args.multi_latent_attention"},
    {"q_lora_rank", "args.q_lora_rank"},
    {"kv_lora_rank", "args.kv_lora_rank"},
    {"qk_head_dim", "args.qk_head_dim"},
    {"qk_pos_emb_head_dim", "args.qk_pos_emb_head_dim"},
    {"v_head_dim", "args.v_head_dim"},
    {"mtp_num_layers", "args.mtp_num_layers"},
    {"rotary_scaling_factor", "args.rotary_scaling_factor"},
    {"mscale", "args.mscale"},
    {"mscale_all_dim", "args.mscale_all_dim"},
    {"original_max_position_embeddings", "args.original_max_position_embeddings"},
    {"beta_fast", "args.beta_fast"},
    {"beta_slow", "args.beta_slow"},
    {"rope_type", "args.rope_type"},
};

/* Fields whose value is a word (moe_router_score_function: sigmoid), recorded as a string. */
static bool is_text_field(const char *field)
{
    return strcmp(field, "moe_router_score_function") == 0 || strcmp(field, "rope_type") == 0;
}

/* The kind a scalar reads as, the way the torch reader names them; NULL for anything else (null, text). */
static const char *scalar_kind(const char *v)
{
    if (strcmp(v, "null") == 0 || strcmp(v, "~") == 0)
        return NULL;
    if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)
        return "bool";
    char *end;
    strtoll(v, &end, 10);
    if (*v && !*end)
        return "int";
    strtod(v, &end);
    return *v && !*end ? "float" : NULL;
}

/* A flow list of integers, "[0, 0, 1]", recorded as ARG.0, ARG.1, ... as the torch reader flattens a list. */
static int take_list(struct ckpt_source *args, const char *arg, const char *value, ckpt_error *err)
{
    const char *p = value + 1;
    char name[96], number[32];
    for (size_t i = 0;; i++) {
        while (*p == ' ')
            p++;
        if (*p == ']' && i == 0)
            return CKPT_OK;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p)
            return CKPT_OK;   /* not a list of integers: left out, as any value we do not read */
        p = end;
        while (*p == ' ')
            p++;
        if (*p != ',' && *p != ']')
            return CKPT_OK;
        snprintf(name, sizeof name, "%s.%zu", arg, i);
        snprintf(number, sizeof number, "%lld", v);
        int rc = source_add_object(args, name, "int", number, err);
        if (rc || *p++ == ']')
            return rc;
    }
}

/* One "key: value" line of the config block, recorded as args.X when it is a field we know. */
static int take_line(struct ckpt_source *args, const char *line, size_t len, ckpt_error *err)
{
    const char *colon = memchr(line, ':', len);
    if (!colon)
        return CKPT_OK;
    size_t key_len = (size_t)(colon - line), vlen = len - key_len - 1;
    const char *v = colon + 1;
    while (vlen && (*v == ' ' || *v == '\t'))
        v++, vlen--;
    while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t' || v[vlen - 1] == '\r'))
        vlen--;
    if (vlen == 0 || vlen >= MAX_VALUE)
        return CKPT_OK;
    char value[MAX_VALUE];
    memcpy(value, v, vlen);
    value[vlen] = '\0';
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (strlen(fields[i].field) != key_len || memcmp(fields[i].field, line, key_len) != 0)
            continue;
        if (value[0] == '[')
            return take_list(args, fields[i].arg, value, err);
        const char *kind = scalar_kind(value);
        if (!kind && is_text_field(fields[i].field) && (isalnum((unsigned char)value[0]) || value[0] == '_'))
            kind = "string";
        if (!kind)
            return CKPT_OK;
        if (strcmp(kind, "bool") == 0)
            strcpy(value, value[0] == 't' ? "True" : "False");
        int rc = source_add_object(args, fields[i].arg, kind, value, err);
        /* NeMo gives the group count itself; Megatron's args also say that grouping is on */
        if (!rc && strcmp(fields[i].field, "num_query_groups") == 0)
            rc = source_add_object(args, "args.group_query_attention", "bool", "True", err);
        return rc;
    }
    return CKPT_OK;
}

/* The direct children of the top-level `config:` block of text[0, size). */
static int scan_config(struct ckpt_source *args, const char *text, size_t size, ckpt_error *err)
{
    bool inside = false;
    size_t child_indent = 0;
    for (size_t pos = 0; pos < size;) {
        const char *line = text + pos, *nl = memchr(line, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - line) : size - pos;
        pos += len + 1;
        size_t indent = 0;
        while (indent < len && line[indent] == ' ')
            indent++;
        if (indent == len || line[indent] == '#')
            continue;   /* blank or comment */
        if (indent == 0) {
            size_t end = len;
            while (end && (line[end - 1] == ' ' || line[end - 1] == '\r'))
                end--;
            inside = end == 7 && memcmp(line, "config:", 7) == 0;
            child_indent = 0;
            continue;
        }
        if (!inside)
            continue;
        if (!child_indent)
            child_indent = indent;
        if (indent != child_indent)
            continue;   /* a nested block's line */
        int rc = take_line(args, line + indent, len - indent, err);
        if (rc)
            return rc;
    }
    return CKPT_OK;
}

int nemo2_config_record(struct ckpt_source *src, const char *dir, ckpt_error *err)
{
    if (!format_dir_has(src->fs, dir, CONFIG_FILE))
        return CKPT_OK;
    char *path = path_join(dir, CONFIG_FILE);
    struct ckpt_source *args = path ? source_new(path, &src->limits) : NULL;
    uint32_t file;
    int rc = args ? source_add_file(src, path, &file, err) : ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", dir);
    if (!rc && src->files[file].size > src->limits.max_header_bytes)
        rc = ckpt_fail(err, CKPT_ERR_LIMIT, "%s: larger than max_header_bytes", path);
    if (!rc)
        rc = scan_config(args, (const char *)src->files[file].data, (size_t)src->files[file].size, err);
    /* the embedding's rows are the padded vocabulary (the config often leaves vocab_size to the tokenizer) */
    size_t emb = source_lookup(src, "embedding.word_embeddings.weight");
    char rows[32];
    if (!rc && emb != SIZE_MAX && src->tensors[emb].pub.rank == 2) {
        snprintf(rows, sizeof rows, "%llu", (unsigned long long)src->tensors[emb].pub.shape[0]);
        rc = source_add_object(args, "args.padded_vocab_size", "int", rows, err);
    }
    if (!rc)
        rc = megatron_args_record(src, args, path, err);
    ckpt_source_free(args);
    free(path);
    return rc;
}
