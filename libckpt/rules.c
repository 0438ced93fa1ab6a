/* rules.c: parsing and applying conversion rules; see rules.h. */
#include "rules.h"

#include "error.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_CAPTURES 9
#define MATCH_STEP_BUDGET 100000   /* backtracking steps one match may take */

/* The targets, written in the same language users write. */
static const struct {
    const char *name;
    const char *rules;
} targets[] = {
    {"nd", ""},
    {"ascend-310p",
     "# 310P computes in fp16 only; matmul weights are tiled FRACTAL_NZ as stored ([out, in])\n"
     "*               dtype=f16\n"
     "*.weight        layout=nz\n"
     "*embed*         layout=nd\n"
     "*norm*          layout=nd\n"
     "*lm_head*       layout=nd\n"
     "*output_layer*  layout=nd\n"},
    {"ascend-910b",
     "# 910B computes in bf16 and fp16; wider and fp8 types become bf16\n"
     "* from=f32      dtype=bf16\n"
     "* from=f8_e4m3  dtype=bf16\n"
     "* from=f8_e5m2  dtype=bf16\n"},
};

bool rules_parse_dtype(const char *word, ckpt_dtype *out)
{
    if (strcasecmp(word, "keep") == 0) {
        *out = CKPT_DTYPE_INVALID;
        return true;
    }
    for (int d = CKPT_DTYPE_INVALID + 1; d < CKPT_DTYPE_COUNT; d++) {
        if (strcasecmp(word, ckpt_dtype_name((ckpt_dtype)d)) == 0) {
            *out = (ckpt_dtype)d;
            return true;
        }
    }
    return false;
}

static int parse_action(struct rule *r, char *word, const char *origin, int line, ckpt_error *err)
{
    char *eq = strchr(word, '=');
    if (!eq) {
        if (strcmp(word, "drop") == 0) {
            r->drop = true;
            return CKPT_OK;
        }
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%d: unknown action '%s'", origin, line, word);
    }
    *eq = '\0';
    const char *key = word, *value = eq + 1;
    if (strcmp(key, "dtype") == 0 || strcmp(key, "from") == 0) {
        ckpt_dtype d;
        if (!rules_parse_dtype(value, &d) || (d == CKPT_DTYPE_INVALID && strcmp(key, "from") == 0))
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%d: unknown dtype '%s'", origin, line, value);
        if (strcmp(key, "from") == 0) {
            r->from = d;
        } else {
            r->set_dtype = true;
            r->dtype = d;
        }
    } else if (strcmp(key, "layout") == 0) {
        if (strcmp(value, "nd") == 0)
            r->layout = RULE_LAYOUT_ND;
        else if (strcmp(value, "nz") == 0)
            r->layout = RULE_LAYOUT_NZ;
        else if (strcmp(value, "nz-t") == 0)
            r->layout = RULE_LAYOUT_NZ_T;
        else
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%d: unknown layout '%s' (nd, nz, nz-t)", origin, line, value);
    } else if (strcmp(key, "rename") == 0) {
        if (!*value)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%d: empty rename", origin, line);
        free(r->rename);
        if (!(r->rename = strdup(value)))
            return ckpt_fail(err, CKPT_ERR_NOMEM, "%s:%d: out of memory", origin, line);
    } else {
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%d: unknown action '%s'", origin, line, key);
    }
    return CKPT_OK;
}

static int count_stars(const char *pattern)
{
    int n = 0;
    for (; *pattern; pattern++)
        n += *pattern == '*';
    return n;
}

static int parse_line(struct ruleset *rs, char *text, const char *origin, int line, ckpt_error *err)
{
    char *hash = strchr(text, '#');
    if (hash)
        *hash = '\0';
    char *save = NULL;
    char *word = strtok_r(text, " \t\r", &save);
    if (!word)
        return CKPT_OK;
    if (count_stars(word) > MAX_CAPTURES)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%d: more than %d '*' in one pattern", origin, line, MAX_CAPTURES);
    if (rs->count == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 16;
        struct rule *grown = reallocarray(rs->rules, cap, sizeof *grown);
        if (!grown)
            return ckpt_fail(err, CKPT_ERR_NOMEM, "%s:%d: out of memory", origin, line);
        rs->rules = grown;
        rs->cap = cap;
    }
    struct rule *r = &rs->rules[rs->count];
    *r = (struct rule){.from = CKPT_DTYPE_INVALID, .layout = RULE_LAYOUT_UNSET};
    if (!(r->pattern = strdup(word)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s:%d: out of memory", origin, line);
    rs->count++;   /* from here the rule is owned by the set, even if an action is refused */
    int actions = 0;
    while ((word = strtok_r(NULL, " \t\r", &save)) != NULL) {
        int rc = parse_action(r, word, origin, line, err);
        if (rc)
            return rc;
        actions++;
    }
    if (!actions)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%d: pattern '%s' has no action", origin, line, r->pattern);
    return CKPT_OK;
}

int ruleset_parse(struct ruleset *rs, const char *text, const char *origin, ckpt_error *err)
{
    char *copy = strdup(text);
    if (!copy)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", origin);
    int rc = CKPT_OK, line = 1;
    for (char *p = copy; p && !rc; line++) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        rc = parse_line(rs, p, origin, line, err);
        p = nl ? nl + 1 : NULL;
    }
    free(copy);
    return rc;
}

int ruleset_add_target(struct ruleset *rs, const char *target, ckpt_error *err)
{
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++)
        if (strcmp(targets[i].name, target) == 0)
            return ruleset_parse(rs, targets[i].rules, target, err);
    return ckpt_fail(err, CKPT_ERR_ARG, "unknown target '%s' (ascend-310p, ascend-910b, nd)", target);
}

/* ---- matching ---- */

struct match {
    const char *cap[MAX_CAPTURES];
    size_t cap_len[MAX_CAPTURES];
    long steps;
};

/* Glob match of `s` against `p`; `*` captures, shortest first, backtracking within a step budget. */
static bool glob(const char *p, const char *s, int star, struct match *m)
{
    for (;; p++, s++) {
        if (++m->steps > MATCH_STEP_BUDGET)
            return false;
        if (*p == '*') {
            for (size_t len = 0;; len++) {
                m->cap[star] = s;
                m->cap_len[star] = len;
                if (glob(p + 1, s + len, star + 1, m))
                    return true;
                if (!s[len] || m->steps > MATCH_STEP_BUDGET)
                    return false;
            }
        }
        if (*p == '\0')
            return *s == '\0';
        if (*s == '\0' || (*p != '?' && *p != *s))
            return false;
    }
}

static int expand(const char *tmpl, const struct match *m, int captures, char **out, ckpt_error *err)
{
    size_t len = 0;
    for (const char *t = tmpl; *t; t++)
        len += (t[0] == '$' && t[1] >= '1' && t[1] <= '0' + captures) ? m->cap_len[*++t - '1'] : 1;
    char *name = malloc(len + 1), *o = name;
    if (!name)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory renaming");
    for (const char *t = tmpl; *t; t++) {
        if (t[0] == '$' && t[1] >= '1' && t[1] <= '0' + captures) {
            int k = *++t - '1';
            memcpy(o, m->cap[k], m->cap_len[k]);
            o += m->cap_len[k];
        } else {
            *o++ = *t;
        }
    }
    *o = '\0';
    free(*out);
    *out = name;
    return CKPT_OK;
}

int ruleset_decide(const struct ruleset *rs, const char *name, ckpt_dtype from, struct rule_decision *out,
                   ckpt_error *err)
{
    *out = (struct rule_decision){.dtype = CKPT_DTYPE_INVALID, .layout = RULE_LAYOUT_UNSET};
    for (size_t i = 0; i < rs->count; i++) {
        const struct rule *r = &rs->rules[i];
        struct match m = {0};
        if (r->from != CKPT_DTYPE_INVALID && r->from != from)
            continue;
        if (!glob(r->pattern, name, 0, &m)) {
            if (m.steps > MATCH_STEP_BUDGET) {
                free(out->name);
                return ckpt_fail(err, CKPT_ERR_LIMIT, "rule '%s' is too costly to match against %s", r->pattern,
                                 name);
            }
            continue;
        }
        out->drop |= r->drop;
        if (r->set_dtype) {
            out->set_dtype = true;
            out->dtype = r->dtype;
        }
        if (r->layout != RULE_LAYOUT_UNSET)
            out->layout = r->layout;
        if (r->rename) {
            int rc = expand(r->rename, &m, count_stars(r->pattern), &out->name, err);
            if (rc)
                return rc;
        }
    }
    if (!out->name && !(out->name = strdup(name)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    return CKPT_OK;
}

void ruleset_free(struct ruleset *rs)
{
    for (size_t i = 0; i < rs->count; i++) {
        free(rs->rules[i].pattern);
        free(rs->rules[i].rename);
    }
    free(rs->rules);
    memset(rs, 0, sizeof *rs);
}
