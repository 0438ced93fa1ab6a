/*
 * archive_fs.h: checkpoints inside .nemo, .tar, .tar.gz, .tar.zst and .zip
 * archives, read through libarchive into a member table (fs.h).
 */
#ifndef CKPT_ARCHIVE_H
#define CKPT_ARCHIVE_H

#include "libckpt/io/fs.h"

#include <stdbool.h>

/* True when the file at `path` is an archive libckpt opens as a folder (not a torch.save zip). */
bool archive_probe(const char *path);

/*
 * Reads every member of the archive at `path` once, in order, into one
 * unlinked temporary file that is then mapped (fs->data); a member is a
 * slice of it.  Refuses (CKPT_ERR_FORMAT, naming archive and member)
 * absolute names, ".." components, links, devices and fifos, duplicate
 * names, sizes that differ from the header, and more than `max_bytes`
 * inflated bytes or an inflation ratio no checkpoint has (a bomb).
 */
int archive_open_fs(const char *path, uint64_t max_bytes, struct ckpt_fs **out, ckpt_error *err);

/*
 * The path of the checkpoint inside an opened archive: the archive's top
 * folder (descending through folders that hold only one folder), or a NeMo 1
 * model_weights.ckpt / model_weights folder in it.  NULL (and CKPT_OK) for
 * a torch.save zip, which is a file to read as it is.
 */
int archive_find_checkpoint(const struct ckpt_fs *fs, char **inner, ckpt_error *err);

#endif
