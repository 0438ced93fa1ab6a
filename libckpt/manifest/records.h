/* records.h: the files and tensors an execution produced, for the manifest. */
#ifndef CKPT_RECORDS_H
#define CKPT_RECORDS_H

#include "ckpt.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <xxhash.h>

struct file_record {
    char *name;          /* relative to its folder */
    uint64_t size;
    XXH128_hash_t hash;
};

struct file_records {
    struct file_record *items;
    size_t count, cap;
};

struct tensor_record {
    XXH128_hash_t hash;  /* of the stored bytes */
    ckpt_cast_counts counts;
};

int file_records_add(struct file_records *r, const char *name, uint64_t size, XXH128_hash_t hash, ckpt_error *err);
void file_records_free(struct file_records *r);

/* XXH3-128 in its canonical big-endian form as 32 lowercase hex digits. */
void hash_hex(XXH128_hash_t hash, char out[33]);

/* The inverse of hash_hex; false unless `hex` is exactly 32 lowercase hex digits. */
bool hex_hash(const char *hex, XXH128_hash_t *out);

/* XXH3-128 of bytes [offset, offset + len) of an open file, read in chunks. */
int hash_file_range(int fd, uint64_t offset, uint64_t len, const char *name, XXH128_hash_t *out, ckpt_error *err);

/* The same bytes fed to a running XXH3-128 state (which goes on from where it was). */
int hash_file_update(int fd, uint64_t offset, uint64_t len, const char *name, XXH3_state_t *state, ckpt_error *err);

struct ckpt_source;

/*
 * Hashes every file of a source (those with want[i], when `want` is not
 * NULL) into `records`, stopping early when *stop becomes non-zero.
 */
int hash_source_files(const struct ckpt_source *src, const bool *want, struct file_records *records, atomic_int *stop,
                      ckpt_error *err);

#endif
