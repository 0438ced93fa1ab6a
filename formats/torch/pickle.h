/*
 * pickle.h: a pickle machine that never calls anything.
 *
 * It reads protocols 0 to 5 into a tree of values.  A GLOBAL is just a name.
 * Applying a global (REDUCE, NEWOBJ, OBJ, INST, BUILD) is allowed only for
 * the few callables libckpt itself understands (torch's tensor rebuilders,
 * containers, argparse.Namespace, numpy's RNG-state arrays, io.BytesIO): the
 * result is a node recording the callable and its arguments, for the caller to
 * interpret.  Applying anything else refuses the whole file, naming the
 * global, before any tensor is declared.  Memory, nesting, memo and
 * container sizes are bounded; exceeding a bound refuses the file.
 */
#ifndef CKPT_PICKLE_H
#define CKPT_PICKLE_H

#include "ckpt.h"

#include <stdbool.h>
#include <stdint.h>

enum pk_kind {
    PK_NONE,
    PK_BOOL,
    PK_INT,     /* i; when `big`, the little-endian two's complement bytes are in s/len */
    PK_FLOAT,
    PK_STR,     /* UTF-8 text in s/len */
    PK_BYTES,
    PK_TUPLE,
    PK_LIST,
    PK_DICT,    /* items are key, value, key, value ... */
    PK_SET,
    PK_GLOBAL,  /* module in s, name in s2 */
    PK_CALL,    /* callable (a global) applied: fn, args, then any BUILD state */
    PK_PERSID   /* a persistent id: the storage reference, in fn */
};

struct pk_value {
    enum pk_kind kind;
    bool big;
    int64_t i;
    double f;
    const char *s, *s2;
    size_t len;
    struct pk_value **items;
    size_t count, cap;
    struct pk_value *fn, *args, *state;
    int64_t tag;          /* for the interpreter: -1 until it assigns something */
    bool visiting;        /* for the interpreter's walks: on the current path (a cycle if met again) */
};

struct pk_chunk;

struct pickle {
    struct pk_chunk *chunks;
    uint64_t used, limit;
    struct pk_value *root;
    size_t end;           /* bytes of input the pickle took, through STOP */
};

/*
 * Unpickles data[0, len) up to its STOP.  `origin` names the input in
 * messages; `max_bytes` bounds the memory the tree may take.
 */
int pickle_load(struct pickle *p, const uint8_t *data, size_t len, const char *origin, uint64_t max_bytes,
                ckpt_error *err);

void pickle_free(struct pickle *p);

/* True when v is the global module.name. */
bool pk_is_global(const struct pk_value *v, const char *module, const char *name);

/* True when v is a call of the global module.name. */
bool pk_is_call(const struct pk_value *v, const char *module, const char *name);

/* The text of a str value (NUL-terminated), or NULL. */
const char *pk_str(const struct pk_value *v);

/* The value of a small int, or false. */
bool pk_int(const struct pk_value *v, int64_t *out);

#endif
