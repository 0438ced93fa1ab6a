/*
 * quant_select.c: see quant_select.h.  The fused groups follow vllm-ascend's
 * packed_modules_model_mapping (vllm_ascend/quantization/modelslim_config.py
 * @182b75e L105-170) and its check that every shard of a fused module has
 * one type (L431-470, L776-808): qkv_proj, gate_up_proj, fused_qkv_a_proj,
 * and `experts`, whose type is read from expert 0 for all of them.
 */
#include "quant_select.h"

#include "libckpt/common/error.h"
#include "rules.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const selected[] = {
    "*.layers.*.self_attn.q_proj.weight",
    "*.layers.*.self_attn.k_proj.weight",
    "*.layers.*.self_attn.v_proj.weight",
    "*.layers.*.self_attn.o_proj.weight",
    "*.layers.*.self_attn.q_a_proj.weight",
    "*.layers.*.self_attn.q_b_proj.weight",
    "*.layers.*.self_attn.kv_a_proj_with_mqa.weight",
    "*.layers.*.self_attn.kv_b_proj.weight",
    "*.layers.*.mlp.gate_proj.weight",
    "*.layers.*.mlp.up_proj.weight",
    "*.layers.*.mlp.down_proj.weight",
    "*.layers.*.mlp.experts.*.gate_proj.weight",
    "*.layers.*.mlp.experts.*.up_proj.weight",
    "*.layers.*.mlp.experts.*.down_proj.weight",
    "*.layers.*.mlp.shared_experts.gate_proj.weight",
    "*.layers.*.mlp.shared_experts.up_proj.weight",
    "*.layers.*.mlp.shared_experts.down_proj.weight",
    "*.layers.*.mlp.shared_expert.gate_proj.weight",
    "*.layers.*.mlp.shared_expert.up_proj.weight",
    "*.layers.*.mlp.shared_expert.down_proj.weight",
};

/* The decoder layer a name is in ("....layers.N...."), or UINT64_MAX. */
static uint64_t layer_of(const char *name)
{
    const char *p = strstr(name, ".layers.");
    if (!p && strncmp(name, "layers.", 7) == 0)
        p = name - 1;
    if (!p || !isdigit((unsigned char)p[8]))
        return UINT64_MAX;
    uint64_t n = 0;
    for (p += 8; isdigit((unsigned char)*p) && n < (UINT64_MAX - 9) / 10; p++)
        n = n * 10 + (uint64_t)(*p - '0');
    return *p == '.' ? n : UINT64_MAX;
}

bool quant_selects(const char *name, const struct source_config *cfg)
{
    uint64_t layer = layer_of(name);
    if (layer == UINT64_MAX || (cfg->hidden_layers && layer >= cfg->hidden_layers))
        return false;
    for (size_t i = 0; i < sizeof selected / sizeof selected[0]; i++)
        if (rules_glob(selected[i], name))
            return true;
    return false;
}

static bool ends_with(const char *s, size_t n, const char *suffix)
{
    size_t m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/*
 * The fused module a linear's weight belongs to, written into key (its
 * prefix and the module's vLLM name), or false when it is not fused.
 */
static bool fused_key(const char *name, char *key, size_t size)
{
    static const struct {
        const char *suffix, *module;
    } members[] = {
        {".self_attn.q_proj.weight", ".self_attn.qkv_proj"},
        {".self_attn.k_proj.weight", ".self_attn.qkv_proj"},
        {".self_attn.v_proj.weight", ".self_attn.qkv_proj"},
        {".self_attn.q_a_proj.weight", ".self_attn.fused_qkv_a_proj"},
        {".self_attn.kv_a_proj_with_mqa.weight", ".self_attn.fused_qkv_a_proj"},
        {".gate_proj.weight", ".gate_up_proj"},
        {".up_proj.weight", ".gate_up_proj"},
    };
    size_t n = strlen(name);
    /* routed experts: PREFIX.experts.E.{gate,up,down}_proj.weight, all of one layer together */
    const char *e = strstr(name, ".experts.");
    if (e && isdigit((unsigned char)e[9])) {
        const char *p = e + 9;
        while (isdigit((unsigned char)*p))
            p++;
        if (!strcmp(p, ".gate_proj.weight") || !strcmp(p, ".up_proj.weight") || !strcmp(p, ".down_proj.weight"))
            return snprintf(key, size, "%.*s.experts", (int)(e - name), name) < (int)size;
    }
    for (size_t i = 0; i < sizeof members / sizeof members[0]; i++) {
        if (ends_with(name, n, members[i].suffix))
            return snprintf(key, size, "%.*s%s", (int)(n - strlen(members[i].suffix)), name, members[i].module) <
                   (int)size;
    }
    return false;
}

const char *quant_type_of(const struct ckpt_plan *plan, const struct plan_item *it)
{
    if (it->pub.quant_role != CKPT_QUANT_ROLE_NONE)
        return ckpt_quant_name(it->pub.quant);
    const ckpt_tensor_storage *st = ckpt_source_tensor_storage(plan->src, it->source_index);
    return st && st->quant ? st->quant : ckpt_quant_name(CKPT_QUANT_NONE);
}

struct member {
    char *key;
    const char *name, *type;
};

static int by_key(const void *a, const void *b)
{
    return strcmp(((const struct member *)a)->key, ((const struct member *)b)->key);
}

int quant_check_fused(const struct ckpt_plan *plan, ckpt_error *err)
{
    struct member *m = calloc(plan->item_count + 1, sizeof *m);
    if (!m)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory planning");
    size_t n = 0;
    int rc = CKPT_OK;
    char key[4096];
    for (size_t i = 0; i < plan->item_count && !rc; i++) {
        const struct plan_item *it = &plan->items[i];
        if (it->pub.quant_role > CKPT_QUANT_ROLE_WEIGHT || !fused_key(it->pub.name, key, sizeof key))
            continue;
        if (!(m[n].key = strdup(key))) {
            rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory planning");
            break;
        }
        m[n].name = it->pub.name;
        m[n++].type = quant_type_of(plan, it);
    }
    qsort(m, n, sizeof *m, by_key);
    for (size_t i = 1; i < n && !rc; i++) {
        const struct member *a = &m[i - 1], *b = &m[i];
        if (strcmp(a->key, b->key) == 0 && strcmp(a->type, b->type) != 0)
            rc = ckpt_fail(err, CKPT_ERR_ARG, "%s is %s but %s is %s: vllm-ascend loads them as one module (%s) and "
                           "refuses mixed types; make the quant= rules agree", a->name, a->type, b->name, b->type,
                           b->key);
    }
    for (size_t i = 0; i < n; i++)
        free(m[i].key);
    free(m);
    return rc;
}
