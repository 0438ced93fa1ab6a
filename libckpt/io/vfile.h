/*
 * vfile.h: where the bytes of a source's files are read from.
 *
 * One small interface, in the spirit of SQLite's VFS: a file on disk, read
 * with pread (vfile_disk_new below), or a file held in a bundle, whose reads
 * decompress the frames that cover the range (formats/bundle).  Tensor data,
 * CRC checks and checksums are read through it, never through a mapping, so
 * a file truncated or damaged under a reader is an error naming the file,
 * not a crash.
 *
 * A vfile never changes once made and may be read from many threads at
 * once: each thread reads through its own cursor (an open descriptor, a
 * decompression context), opened for a run of reads and closed after.
 */
#ifndef CKPT_VFILE_H
#define CKPT_VFILE_H

#include "ckpt.h"

#include <stdbool.h>
#include <stdint.h>

struct vfile;

struct vfile_ops {
    /* Starts a run of reads by one thread. */
    int (*open)(const struct vfile *f, void **cursor, ckpt_error *err);
    /*
     * Reads exactly `len` bytes at `offset`.  A failure names `file` (the
     * source file being read, which may be a slice of this one) and what the
     * caller was `doing` ("reading tensor w"), and says what went wrong.
     */
    int (*read)(const struct vfile *f, void *cursor, uint64_t offset, void *dst, uint64_t len, const char *file,
                const char *doing, ckpt_error *err);
    void (*close)(const struct vfile *f, void *cursor);
    /* Frees a vfile its owner made (NULL: the vfile belongs to something else, a bundle). */
    void (*release)(struct vfile *f);
};

struct vfile {
    const struct vfile_ops *ops;
};

/* A file on disk, read with pread; NULL when out of memory.  Free it with vfile_release. */
struct vfile *vfile_disk_new(const char *path);

void vfile_release(struct vfile *f);

/* Whether `f` is a file on disk (vfile_disk_new's), which its path opens. */
bool vfile_is_disk(const struct vfile *f);

/* One thread's reads through whichever vfile it last used: the cursor is kept until another file is read. */
struct vfile_reader {
    const struct vfile *file;
    void *cursor;
};

#define VFILE_READER_INIT {NULL, NULL}

/* Reads `len` bytes at `offset` of `f`, opening a cursor on it first when the reader was on another file. */
int vfile_read(struct vfile_reader *r, const struct vfile *f, uint64_t offset, void *dst, uint64_t len,
               const char *file, const char *doing, ckpt_error *err);

/* Closes the reader's cursor. */
void vfile_reader_close(struct vfile_reader *r);

#endif
