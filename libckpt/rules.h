/*
 * rules.h: what convert does to each tensor, as an ordered list of rules.
 *
 * A rules file has one rule a line: a glob over the source tensor name, an
 * optional `from=DTYPE` filter on the source element type, and actions:
 * `dtype=f16|bf16|f32|f64|keep`, `layout=nd|nz|nz-t`, `rename=TEMPLATE`
 * (`$1`..`$9` are what the pattern's `*`s matched), `drop`.  `#` starts a
 * comment.  For each attribute the last matching rule wins, so the built-in
 * target rules come first, then the user's file, then command-line options.
 * docs/rules.md is the user's description.
 */
#ifndef CKPT_RULES_H
#define CKPT_RULES_H

#include "ckpt.h"

#include <stdbool.h>

enum rule_layout { RULE_LAYOUT_UNSET = -1, RULE_LAYOUT_ND, RULE_LAYOUT_NZ, RULE_LAYOUT_NZ_T };

struct rule {
    char *pattern;
    ckpt_dtype from;      /* CKPT_DTYPE_INVALID: any */
    bool set_dtype;
    ckpt_dtype dtype;     /* CKPT_DTYPE_INVALID: keep */
    int layout;           /* enum rule_layout */
    char *rename;         /* NULL: unchanged */
    bool drop;
};

struct ruleset {
    struct rule *rules;
    size_t count, cap;
};

/* What the rules say about one tensor. */
struct rule_decision {
    bool drop;
    bool set_dtype;
    ckpt_dtype dtype;     /* when set_dtype; CKPT_DTYPE_INVALID: keep */
    int layout;           /* enum rule_layout, RULE_LAYOUT_UNSET when no rule spoke */
    char *name;           /* malloc'd output name */
};

/* Appends the rules in `text`; errors name `origin` and the line. */
int ruleset_parse(struct ruleset *rs, const char *text, const char *origin, ckpt_error *err);

/* Appends the built-in rules of a target ("ascend-310p", "ascend-910b", "nd"). */
int ruleset_add_target(struct ruleset *rs, const char *target, ckpt_error *err);

/* Applies the rules to one source tensor. */
int ruleset_decide(const struct ruleset *rs, const char *name, ckpt_dtype from, struct rule_decision *out,
                   ckpt_error *err);

void ruleset_free(struct ruleset *rs);

/* Parses "f16", "BF16", ... ; "keep" gives CKPT_DTYPE_INVALID and true. */
bool rules_parse_dtype(const char *word, ckpt_dtype *out);

#endif
