/* rules.c: parsing and applying conversion rules; see rules.h. */
#include "rules.h"

#include "libckpt/common/error.h"
#include "libckpt/common/quant_names.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_CAPTURES 9
#define MATCH_STEP_BUDGET 100000   /* backtracking steps one match may take */
#define MAX_ROW_VALUE ((uint64_t)1 << 48)   /* a row count or proportion beyond any tensor */

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

bool rules_parse_quant(const char *word, ckpt_quant *out)
{
    return ckpt_quant_parse(word, out) == CKPT_OK;
}

const char *rules_quant_word(ckpt_quant quant)
{
    return quant_word(quant);
}

/* A row value as written: decimal digits, or ${KEY} with a non-empty key. */
static bool row_value_ok(const char *v, size_t len)
{
    if (len >= 3 && v[0] == '$' && v[1] == '{' && v[len - 1] == '}')
        return memchr(v + 2, '}', len - 3) == NULL;
    if (len == 0 || len > 15)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isdigit((unsigned char)v[i]))
            return false;
    return true;
}

/* `value` is 1 (or, for split, 2..RULE_MAX_PARTS) row values separated by ':'. */
static bool row_values_ok(const char *value, bool split)
{
    size_t parts = 0;
    for (const char *p = value;; parts++) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        if (!row_value_ok(p, len))
            return false;
        if (!colon)
            break;
        p = colon + 1;
    }
    return split ? parts + 1 >= 2 && parts + 1 <= RULE_MAX_PARTS : parts == 0;
}

static int set_string(char **slot, const char *value, const char *origin, int line, ckpt_error *err)
{
    free(*slot);
    if (!(*slot = strdup(value)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s:%d: out of memory", origin, line);
    return CKPT_OK;
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
    } else if (strcmp(key, "quant") == 0) {
        ckpt_quant q;
        if (!rules_parse_quant(value, &q))
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%d: unknown quant '%s' (w8a8-dynamic, w8a16, none)", origin,
                             line, value);
        r->quant = (int)q;
    } else if (strcmp(key, "rename") == 0 || strcmp(key, "copy") == 0) {
        if (!*value)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%d: empty %s", origin, line, key);
        return set_string(key[0] == 'r' ? &r->rename : &r->copy, value, origin, line, err);
    } else if (strcmp(key, "rows") == 0 || strcmp(key, "groups") == 0 || strcmp(key, "split") == 0) {
        bool split = strcmp(key, "split") == 0;
        if (!row_values_ok(value, split))
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%d: %s=%s: expected %s", origin, line, key, value,
                             split ? "2 to 16 numbers or ${KEY}s separated by ':'" : "a number or ${KEY}");
        return set_string(split ? &r->split : strcmp(key, "rows") == 0 ? &r->rows : &r->groups, value, origin,
                          line, err);
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
    *r = (struct rule){.from = CKPT_DTYPE_INVALID, .layout = RULE_LAYOUT_UNSET, .quant = RULE_QUANT_UNSET};
    r->pattern = strdup(word);
    if (r->pattern && asprintf(&r->where, "%s:%d", origin, line) < 0)
        r->where = NULL;
    rs->count++;   /* from here the rule is owned by the set, even if an action is refused */
    if (!r->pattern || !r->where)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s:%d: out of memory", origin, line);
    int actions = 0;
    while ((word = strtok_r(NULL, " \t\r", &save)) != NULL) {
        int rc = parse_action(r, word, origin, line, err);
        if (rc)
            return rc;
        actions++;
    }
    if (!actions)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%d: pattern '%s' has no action", origin, line, r->pattern);
    if (r->groups && !r->split)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%d: groups= needs split= on the same rule", origin, line);
    if (r->copy && r->split)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%d: copy= repeats a whole tensor: not with split=", origin, line);
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

bool rules_glob(const char *pattern, const char *name)
{
    struct match m = {0};
    return glob(pattern, name, 0, &m);
}

/* What a template is expanded with: the captures of the match, the source's metadata. */
struct expansion {
    const struct match *m;
    int captures;
    const ckpt_source *src;
    const struct rule *rule;
    const char *tensor;
};

static bool capture_at(const char *t, size_t i, size_t len, int captures)
{
    return t[i] == '$' && i + 1 < len && t[i + 1] >= '1' && t[i + 1] <= '0' + captures;
}

/*
 * `${KEY}` or `${KEY+$N}` at t[0, len) (t[0] is '$', t[1] is '{'): the
 * metadata value, or that value plus the decimal capture N, into out[64];
 * the length of the reference in *used.
 */
static int expand_key(const struct expansion *x, const char *t, size_t len, char *out, size_t *used, ckpt_error *err)
{
    const char *close = memchr(t, '}', len), *plus;
    if (!close || close - t > 200)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "rule %s: a '${' without its '}' in a name", x->rule->where);
    char key[256];
    size_t klen = (size_t)(close - t - 2);
    memcpy(key, t + 2, klen);
    key[klen] = '\0';
    *used = (size_t)(close - t + 1);
    int add = 0;
    if ((plus = strchr(key, '+')) != NULL) {
        if (plus[1] != '$' || plus[2] < '1' || plus[2] > '0' + x->captures || plus[3])
            return ckpt_fail(err, CKPT_ERR_FORMAT, "rule %s: ${%s}: after '+' a capture $1..$%d is expected",
                             x->rule->where, key, x->captures);
        add = plus[2] - '0';
        key[plus - key] = '\0';
    }
    const char *v = x->src ? ckpt_source_metadata_value(x->src, key) : NULL;
    if (!v || !*v || strlen(v) >= 64)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "rule %s (%s): the source metadata has no %s, needed for %s",
                         x->rule->where, x->rule->pattern, key, x->tensor);
    if (!add) {
        strcpy(out, v);
        return CKPT_OK;
    }
    char digits[32];
    size_t n = x->m->cap_len[add - 1] < sizeof digits ? x->m->cap_len[add - 1] : sizeof digits - 1;
    memcpy(digits, x->m->cap[add - 1], n);
    digits[n] = '\0';
    char *end1, *end2;
    errno = 0;
    unsigned long long a = strtoull(v, &end1, 10), b = strtoull(digits, &end2, 10);
    if (errno || *end1 || *end2 || !isdigit((unsigned char)v[0]) || !isdigit((unsigned char)digits[0]) ||
        a > MAX_ROW_VALUE || b > MAX_ROW_VALUE)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "rule %s (%s): ${%s+$%d} adds '%s' and '%s', which are not both "
                         "numbers, for %s", x->rule->where, x->rule->pattern, key, add, v, digits, x->tensor);
    snprintf(out, 64, "%llu", a + b);
    return CKPT_OK;
}

/* Expands `tmpl[0, len)`: `$1`..`$9` stand for the captures, `${KEY}` and `${KEY+$N}` for metadata. */
static int expand(const char *tmpl, size_t tlen, const struct expansion *x, char **out, ckpt_error *err)
{
    size_t len = 0, used;
    char value[64];
    int rc = CKPT_OK;
    for (size_t i = 0; i < tlen && !rc; i++) {
        if (capture_at(tmpl, i, tlen, x->captures)) {
            len += x->m->cap_len[tmpl[++i] - '1'];
        } else if (tmpl[i] == '$' && i + 1 < tlen && tmpl[i + 1] == '{') {
            rc = expand_key(x, tmpl + i, tlen - i, value, &used, err);
            len += strlen(value);
            i += used - 1;
        } else {
            len++;
        }
    }
    char *name = rc ? NULL : malloc(len + 1), *o = name;
    if (!rc && !name)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory renaming");
    for (size_t i = 0; i < tlen && !rc; i++) {
        if (capture_at(tmpl, i, tlen, x->captures)) {
            int k = tmpl[++i] - '1';
            memcpy(o, x->m->cap[k], x->m->cap_len[k]);
            o += x->m->cap_len[k];
        } else if (tmpl[i] == '$' && i + 1 < tlen && tmpl[i + 1] == '{') {
            expand_key(x, tmpl + i, tlen - i, value, &used, err);   /* succeeded in the first pass */
            o = stpcpy(o, value);
            i += used - 1;
        } else {
            *o++ = tmpl[i];
        }
    }
    if (rc)
        return rc;
    *o = '\0';
    free(*out);
    *out = name;
    return CKPT_OK;
}

/* One row value: digits, or ${KEY} looked up in the source metadata. */
static int resolve_value(const char *v, size_t len, const ckpt_source *src, const struct rule *r, const char *tensor,
                         uint64_t *out, ckpt_error *err)
{
    char key[256], text[64];
    const char *digits = v;
    size_t dlen = len;
    if (v[0] == '$') {
        if (len - 3 >= sizeof key)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "rule %s: metadata key too long", r->where);
        memcpy(key, v + 2, len - 3);
        key[len - 3] = '\0';
        digits = src ? ckpt_source_metadata_value(src, key) : NULL;
        if (!digits)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "rule %s (%s): the source metadata has no %s, needed for %s",
                             r->where, r->pattern, key, tensor);
        dlen = strlen(digits);
    }
    if (dlen >= sizeof text)
        dlen = sizeof text - 1;   /* too many digits for a row count anyway */
    memcpy(text, digits, dlen);
    text[dlen] = '\0';
    char *end;
    errno = 0;
    unsigned long long n = strtoull(text, &end, 10);
    if (errno || *end || !isdigit((unsigned char)text[0]) || n == 0 || n > MAX_ROW_VALUE)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "rule %s (%s): '%s' is not a positive row count, for %s", r->where,
                         r->pattern, text, tensor);
    *out = n;
    return CKPT_OK;
}

/* The rows=, groups= and split= a decision ends with, as numbers. */
static int resolve_rows(const struct rule *rows, const struct rule *split, const ckpt_source *src, const char *tensor,
                        struct rule_decision *out, ckpt_error *err)
{
    int rc = CKPT_OK;
    if (rows) {
        rc = resolve_value(rows->rows, strlen(rows->rows), src, rows, tensor, &out->rows, err);
        out->rows_rule = rows->where;
    }
    if (!rc && split && split->groups)
        rc = resolve_value(split->groups, strlen(split->groups), src, split, tensor, &out->groups, err);
    for (const char *p = split ? split->split : NULL; p && !rc; out->parts++) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        rc = resolve_value(p, len, src, split, tensor, &out->split[out->parts], err);
        p = colon ? colon + 1 : NULL;
    }
    if (split)
        out->split_rule = split->where;
    return rc;
}

/* The names of `count` outputs from the comma-separated templates t (one each), into names[]. */
static int expand_list(const char *t, size_t count, const struct expansion *x, char **names, ckpt_error *err)
{
    for (size_t k = 0; k < count; k++) {
        const char *comma = k + 1 < count ? strchr(t, ',') : NULL;
        size_t len = comma ? (size_t)(comma - t) : strlen(t);
        int rc = expand(t, len, x, &names[k], err);
        if (rc)
            return rc;
        t += len + 1;
    }
    return CKPT_OK;
}

/* Templates in a comma-separated list (a name holds no comma). */
static size_t template_count(const char *t)
{
    size_t n = 1;
    for (; *t; t++)
        n += *t == ',';
    return n;
}

/* The output names: the last rename's template, one comma-separated template per split part; then any copies. */
static int name_parts(const struct rule *rename, const struct rule *copy, const ckpt_source *src, const char *name,
                      struct rule_decision *out, ckpt_error *err)
{
    size_t parts = out->parts ? out->parts : 1;
    if (!rename && parts > 1)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "rule %s: split= makes %zu parts of %s but no rename= names them",
                         out->split_rule, parts, name);
    if (rename && parts > 1 && template_count(rename->rename) != parts)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "rule %s: split= makes %zu parts of %s but rule %s gives another "
                         "number of names", out->split_rule, parts, name, rename->where);
    if (copy && parts > 1)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "rule %s: copy= repeats the whole of %s, which rule %s splits",
                         copy->where, name, out->split_rule);
    if (copy && template_count(copy->copy) > RULE_MAX_PARTS)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "rule %s: more than %d copy= names", copy->where, RULE_MAX_PARTS);
    int rc = CKPT_OK;
    if (!rename && !(out->names[0] = strdup(name)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    for (int which = 0; which < 2 && !rc; which++) {
        const struct rule *r = which ? copy : rename;
        if (!r)
            continue;
        struct match m = {0};
        glob(r->pattern, name, 0, &m);   /* matched before: this only recovers the captures */
        struct expansion x = {&m, count_stars(r->pattern), src, r, name};
        if (which) {
            out->copies = template_count(r->copy);
            rc = expand_list(r->copy, out->copies, &x, out->copy_names, err);
        } else {
            rc = expand_list(r->rename, parts, &x, out->names, err);
        }
    }
    return rc;
}

int ruleset_decide(const struct ruleset *rs, const ckpt_source *src, const char *name, ckpt_dtype from,
                   struct rule_decision *out, ckpt_error *err)
{
    *out = (struct rule_decision){.dtype = CKPT_DTYPE_INVALID, .layout = RULE_LAYOUT_UNSET,
                                  .quant = RULE_QUANT_UNSET, .groups = 1};
    const struct rule *rename = NULL, *rows = NULL, *split = NULL, *copy = NULL;
    for (size_t i = 0; i < rs->count; i++) {
        const struct rule *r = &rs->rules[i];
        struct match m = {0};
        if (r->from != CKPT_DTYPE_INVALID && r->from != from)
            continue;
        if (!glob(r->pattern, name, 0, &m)) {
            if (m.steps > MATCH_STEP_BUDGET)
                return ckpt_fail(err, CKPT_ERR_LIMIT, "rule '%s' is too costly to match against %s", r->pattern,
                                 name);
            continue;
        }
        out->drop |= r->drop;
        out->named |= r->drop || r->rename;
        if (r->set_dtype) {
            out->set_dtype = true;
            out->dtype = r->dtype;
        }
        if (r->layout != RULE_LAYOUT_UNSET)
            out->layout = r->layout;
        if (r->quant != RULE_QUANT_UNSET)
            out->quant = r->quant;
        rename = r->rename ? r : rename;
        copy = r->copy ? r : copy;
        rows = r->rows ? r : rows;
        split = r->split ? r : split;
    }
    if (out->drop)
        return CKPT_OK;
    int rc = resolve_rows(rows, split, src, name, out, err);
    if (!rc)
        rc = name_parts(rename, copy, src, name, out, err);
    if (!out->parts)
        out->parts = 1;
    if (rc)
        rule_decision_free(out);
    return rc;
}

int rule_rows(const struct rule_decision *d, size_t part, const char *tensor, uint32_t rank, const uint64_t *shape,
              ckpt_row_select *out, ckpt_error *err)
{
    *out = (ckpt_row_select){0, 0, 0, 0};
    if (!d->rows_rule && !d->split_rule)
        return CKPT_OK;
    const char *rule = d->split_rule ? d->split_rule : d->rows_rule;
    if (rank < 1)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "rule %s: %s is a scalar; rows=, groups= and split= need rank 1 or "
                         "more", rule, tensor);
    uint64_t kept = d->rows ? d->rows : shape[0], total = 0, before = 0;
    if (kept > shape[0])
        return ckpt_fail(err, CKPT_ERR_FORMAT, "rule %s: rows=%llu but %s has %llu rows", d->rows_rule,
                         (unsigned long long)kept, tensor, (unsigned long long)shape[0]);
    for (size_t k = 0; k < d->parts; k++) {
        before += k < part ? d->split[k] : 0;
        total += d->split[k];   /* at most 16 values of at most 2^48: no overflow */
    }
    if (d->parts <= 1)
        total = 1;
    if (kept % d->groups || (kept / d->groups) % total)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "rule %s: the %llu rows of %s do not divide into %llu groups of %llu "
                         "equal units (split)", rule, (unsigned long long)kept, tensor,
                         (unsigned long long)d->groups, (unsigned long long)total);
    uint64_t group_rows = kept / d->groups, unit = group_rows / total;
    *out = (ckpt_row_select){d->groups, group_rows, unit * before, unit * (d->parts > 1 ? d->split[part] : 1)};
    if (d->parts <= 1)
        out->count = group_rows;
    if (out->offset == 0 && out->count == group_rows && d->groups * group_rows == shape[0])
        *out = (ckpt_row_select){0, 0, 0, 0};   /* every row in order: no selection */
    return CKPT_OK;
}

void rule_decision_free(struct rule_decision *d)
{
    for (size_t k = 0; k < RULE_MAX_PARTS; k++) {
        free(d->names[k]);
        free(d->copy_names[k]);
        d->names[k] = d->copy_names[k] = NULL;
    }
    d->copies = 0;
}

void ruleset_free(struct ruleset *rs)
{
    for (size_t i = 0; i < rs->count; i++) {
        free(rs->rules[i].pattern);
        free(rs->rules[i].rename);
        free(rs->rules[i].copy);
        free(rs->rules[i].rows);
        free(rs->rules[i].split);
        free(rs->rules[i].groups);
        free(rs->rules[i].where);
    }
    free(rs->rules);
    memset(rs, 0, sizeof *rs);
}
