/*
 * rules.h: what convert does to each tensor, as an ordered list of rules.
 *
 * A rules file has one rule a line: a glob over the source tensor name, an
 * optional `from=DTYPE` filter on the source element type, and actions:
 * `dtype=f16|bf16|f32|f64|keep`, `layout=nd|nz|nz-t`, `quant=w8a8-dynamic|w8a16|none`, `rename=TEMPLATE`
 * (`$1`..`$9` are what the pattern's `*`s matched, `${KEY}` a metadata
 * value, `${KEY+$N}` that value plus the number `$N` matched), `copy=`
 * (more outputs of the same rows, one template each), `drop`.  `#` starts a
 * comment.  Row actions pick rows of dim 0 and may make several outputs of
 * one tensor: `rows=N` (the first N rows), `split=P1:P2:...` (consecutive
 * parts in these proportions, one rename template each, comma-separated),
 * `groups=G` (with split: G equal groups, each cut by split).  Their values
 * may be `${KEY}`, read from the source metadata when the rule applies.
 * For each attribute the last matching rule wins, so the built-in target
 * rules come first, then a built-in rename set, then the user's file, then
 * command-line options.  docs/rules.md is the user's description.
 */
#ifndef CKPT_RULES_H
#define CKPT_RULES_H

#include "ckpt.h"

#include <stdbool.h>

#define RULE_MAX_PARTS 16

enum rule_layout { RULE_LAYOUT_UNSET = -1, RULE_LAYOUT_ND, RULE_LAYOUT_NZ, RULE_LAYOUT_NZ_T };

#define RULE_QUANT_UNSET (-1)

struct rule {
    char *pattern;
    ckpt_dtype from;      /* CKPT_DTYPE_INVALID: any */
    bool set_dtype;
    ckpt_dtype dtype;     /* CKPT_DTYPE_INVALID: keep */
    int layout;           /* enum rule_layout */
    char *rename;         /* NULL: unchanged */
    char *copy;           /* `copy=` templates, comma-separated: more outputs with the same rows, or NULL */
    bool drop;
    int quant;            /* a ckpt_quant (`quant=`), or RULE_QUANT_UNSET */
    char *rows;           /* `rows=` value as written (a number or ${KEY}), or NULL */
    char *split;          /* `split=` value as written, or NULL */
    char *groups;         /* `groups=` value as written (needs split), or NULL */
    char *where;          /* "origin:line", for messages */
};

struct ruleset {
    struct rule *rules;
    size_t count, cap;
};

/* What the rules say about one tensor. */
struct rule_decision {
    bool drop;
    bool named;           /* a rule renamed or dropped it */
    bool set_dtype;
    ckpt_dtype dtype;     /* when set_dtype; CKPT_DTYPE_INVALID: keep */
    int layout;           /* enum rule_layout, RULE_LAYOUT_UNSET when no rule spoke */
    int quant;            /* a ckpt_quant, RULE_QUANT_UNSET when no rule spoke */
    size_t parts;         /* outputs: 1, or the number of split parts */
    char *names[RULE_MAX_PARTS];   /* malloc'd output name of each part */
    size_t copies;        /* outputs besides the parts that repeat the tensor (copy=) ... */
    char *copy_names[RULE_MAX_PARTS];   /* ... and their malloc'd names */
    uint64_t rows;        /* rows of dim 0 kept (rows=), 0: all */
    uint64_t groups;      /* groups of the kept rows (groups=), 1 unless set */
    uint64_t split[RULE_MAX_PARTS];   /* proportions of each part, when parts > 1 */
    const char *rows_rule, *split_rule;   /* where rows= and split= were decided, or NULL */
};

/* Appends the rules in `text`; errors name `origin` and the line. */
int ruleset_parse(struct ruleset *rs, const char *text, const char *origin, ckpt_error *err);

/*
 * Appends the built-in rules of a target: `* dtype=D` with D the target's
 * floating type, or `dtype` when not CKPT_FLOAT_TARGET, then for the Ascend
 * targets the tensors kept in float32.
 */
int ruleset_add_target(struct ruleset *rs, ckpt_target target, ckpt_float_type dtype, ckpt_error *err);

/* The floating type a target gives every tensor ("f16", "bf16"), or NULL (nd, or unknown). */
const char *ruleset_target_dtype(ckpt_target target);

/*
 * Appends a built-in rename set ("hf-llama"); refuses a source whose
 * metadata says the set does not fit it (src may be NULL).
 */
int ruleset_add_rename(struct ruleset *rs, const char *set, const ckpt_source *src, ckpt_error *err);

/*
 * Applies the rules to one source tensor; `${KEY}` values are read from the
 * metadata of `src`.  A missing key or a bad value is a format error naming
 * the rule and the tensor.
 */
int ruleset_decide(const struct ruleset *rs, const ckpt_source *src, const char *name, ckpt_dtype from,
                   struct rule_decision *out, ckpt_error *err);

/*
 * The rows of part `part` of a decision, for a source tensor of `shape`
 * (rank 1 or more: a vector's rows are its elements): refuses rows= beyond the tensor and groups or parts that
 * do not divide the rows, naming the tensor and the rule.  Selecting every
 * row in order gives groups = 0 (no selection).
 */
int rule_rows(const struct rule_decision *d, size_t part, const char *tensor, uint32_t rank, const uint64_t *shape,
              ckpt_row_select *out, ckpt_error *err);

void rule_decision_free(struct rule_decision *d);

void ruleset_free(struct ruleset *rs);

/* Parses "w8a8-dynamic", "w8a16" or "none" (the CLI's and the rules' spelling). */
bool rules_parse_quant(const char *word, ckpt_quant *out);

/* The spelling rules_parse_quant reads. */
const char *rules_quant_word(ckpt_quant quant);

/* Glob match of a whole name: `*` any run of characters (dots included), `?` one; false past a step budget. */
bool rules_glob(const char *pattern, const char *name);

/* Parses "f16", "BF16", ... ; "keep" gives CKPT_DTYPE_INVALID and true. */
bool rules_parse_dtype(const char *word, ckpt_dtype *out);

#endif
