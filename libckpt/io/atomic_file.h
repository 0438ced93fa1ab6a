/*
 * atomic_file.h: an output file that appears under its final name only once
 * it is complete and on disk.  Data goes to a hidden temporary file in the
 * same folder; commit flushes it and links it to the final name, which fails
 * rather than replace an existing file.  A killed process leaves at most a
 * dot-file that no reader mistakes for output.
 */
#ifndef CKPT_ATOMIC_FILE_H
#define CKPT_ATOMIC_FILE_H

#include "ckpt.h"

#include <stdbool.h>
#include <stdint.h>

struct atomic_file {
    int fd;
    char *final_path;
    char *temp_path;
    uint64_t written;
    bool replace;      /* commit replaces an existing file (atomic_file_create_over) */
};

/* Creates the temporary file; CKPT_ERR_EXISTS when `path` already exists. */
int atomic_file_create(struct atomic_file *f, const char *path, ckpt_error *err);

/*
 * The same for an output the caller was asked to replace (--force): an
 * existing regular file at `path` is replaced at commit, atomically; any
 * other kind of file there (a link, a device) is refused.
 */
int atomic_file_create_over(struct atomic_file *f, const char *path, ckpt_error *err);

/* Writes all of `data`, retrying short writes. */
int atomic_file_write(struct atomic_file *f, const void *data, size_t len, ckpt_error *err);

/* fsyncs and closes the file, still under its temporary name (commit names it later). */
int atomic_file_flush(struct atomic_file *f, ckpt_error *err);

/* fsyncs (unless flushed already), gives the file its final name, and fsyncs the folder. */
int atomic_file_commit(struct atomic_file *f, ckpt_error *err);

/* Closes and removes the temporary file, if any; safe after commit and twice. */
void atomic_file_discard(struct atomic_file *f);

/* fsyncs a folder so that a rename or link inside it is durable. */
int sync_dir(const char *dir, ckpt_error *err);

#endif
