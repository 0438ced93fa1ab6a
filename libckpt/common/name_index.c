/* name_index.c: see name_index.h. */
#include "name_index.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static size_t first_slot(const struct name_index *ix, const char *name)
{
    return (size_t)XXH3_64bits(name, strlen(name)) & (ix->slot_count - 1);
}

size_t name_index_find(const struct name_index *ix, const char *name, name_of_fn name_of, const void *items)
{
    if (!ix->slot_count)
        return SIZE_MAX;
    for (size_t s = first_slot(ix, name);; s = (s + 1) & (ix->slot_count - 1)) {
        size_t v = ix->slots[s];
        if (v == 0)
            return SIZE_MAX;
        if (strcmp(name_of(items, v - 1), name) == 0)
            return v - 1;
    }
}

static void insert(struct name_index *ix, size_t i, name_of_fn name_of, const void *items)
{
    size_t s = first_slot(ix, name_of(items, i));
    while (ix->slots[s])
        s = (s + 1) & (ix->slot_count - 1);
    ix->slots[s] = i + 1;
}

bool name_index_add(struct name_index *ix, size_t i, name_of_fn name_of, const void *items)
{
    if ((i + 1) * 2 > ix->slot_count) {   /* grow, and put items 0 .. i-1 in again */
        size_t count = ix->slot_count ? ix->slot_count * 2 : 64;
        while (count < (i + 1) * 2)
            count *= 2;
        size_t *slots = calloc(count, sizeof *slots);
        if (!slots)
            return false;
        free(ix->slots);
        *ix = (struct name_index){slots, count};
        for (size_t k = 0; k < i; k++)
            insert(ix, k, name_of, items);
    }
    insert(ix, i, name_of, items);
    return true;
}

void name_index_free(struct name_index *ix)
{
    free(ix->slots);
    *ix = (struct name_index){NULL, 0};
}
