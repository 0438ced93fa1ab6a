/*
 * name_index.h: finding an item of an array by its name in constant time.
 *
 * An open-addressing table of indexes into an array the caller keeps (and
 * passes to each call, so it may move when it grows), hashed with XXH3 and
 * kept at most half full.  A hostile file can hold millions of names, so no
 * lookup may scan them.
 */
#ifndef CKPT_NAME_INDEX_H
#define CKPT_NAME_INDEX_H

#include <stdbool.h>
#include <stddef.h>

struct name_index {
    size_t *slots;       /* item index + 1; 0 = empty */
    size_t slot_count;   /* 0, or a power of two */
};

/* The name of item i of the caller's array. */
typedef const char *(*name_of_fn)(const void *items, size_t i);

/* The index of the item called `name`, or SIZE_MAX. */
size_t name_index_find(const struct name_index *ix, const char *name, name_of_fn name_of, const void *items);

/* Adds item i, items 0 .. i-1 being in already; false when out of memory (the index is then unchanged). */
bool name_index_add(struct name_index *ix, size_t i, name_of_fn name_of, const void *items);

void name_index_free(struct name_index *ix);

#endif
