/*
 * zip.h: the central directory of a zip archive (torch.save's container),
 * read from a mapped file.  Every offset and size is checked against the
 * file and against the other entries before anything uses it.
 */
#ifndef CKPT_ZIP_H
#define CKPT_ZIP_H

#include "ckpt.h"

#include <stdbool.h>
#include <stdint.h>

struct zip_entry {
    const char *name;      /* NUL-terminated copy */
    uint16_t method;       /* 0 stored, 8 deflated, ... */
    uint32_t crc;
    uint64_t comp_size, size;
    uint64_t data_offset;  /* where the (possibly compressed) bytes start in the file */
};

struct zip {
    struct zip_entry *entries;
    size_t count;
    char *names;           /* storage for every name */
};

/* Reads the central directory (zip64 included); refuses anything out of bounds or overlapping. */
int zip_open(struct zip *z, const uint8_t *data, uint64_t size, const char *path, ckpt_error *err);

const struct zip_entry *zip_find(const struct zip *z, const char *name);

void zip_free(struct zip *z);

/* CRC-32 (the zip polynomial) of a range, continuing from `crc` (0 to start). */
uint32_t zip_crc32(uint32_t crc, const uint8_t *p, size_t n);

#endif
