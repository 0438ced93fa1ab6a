/*
 * shard_hash.h: a shard file's XXH3-128, for the manifest, taken from the
 * pieces as workers write them instead of from a second read of the file.
 *
 * XXH3 is a stream: bytes must be fed in file order.  A piece that continues
 * the hashed prefix is hashed at once; one written further on (another
 * worker's tensor, ahead of the one before it) is only remembered, and read
 * back from the file when the prefix reaches it.  What no piece covered
 * (nothing, normally) is read back at the end, so the result is the hash of
 * the whole file whatever order the pieces came in.
 */
#ifndef CKPT_SHARD_HASH_H
#define CKPT_SHARD_HASH_H

#include "libckpt/common/error.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <xxhash.h>

struct shard_range {
    uint64_t begin, end;
};

struct shard_hash {
    pthread_mutex_t lock;
    XXH3_state_t *state;
    uint64_t hashed;              /* bytes [0, hashed) of the file are in the state */
    struct shard_range *pending;  /* written beyond it and not hashed yet: sorted, disjoint, not touching */
    size_t count, cap;
    bool whole;                   /* a piece rewrote hashed bytes: hash the file whole at the end */
};

int shard_hash_init(struct shard_hash *h, ckpt_error *err);

/* Notes that bytes [offset, offset + len) of the file `fd` now hold `data`. */
int shard_hash_written(struct shard_hash *h, int fd, const uint8_t *data, uint64_t len, uint64_t offset,
                       const char *name, ckpt_error *err);

/* The hash of the file, `size` bytes long, once every piece is written. */
int shard_hash_finish(struct shard_hash *h, int fd, uint64_t size, const char *name, XXH128_hash_t *out,
                      ckpt_error *err);

void shard_hash_free(struct shard_hash *h);

#endif
