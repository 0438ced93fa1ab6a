/*
 * links.h: the one policy for symbolic links in a source on disk, the same
 * for shards, index files and their entries, DeepSpeed tag and Megatron
 * iteration folders, config.json and the side files convert copies.
 *
 * A link is followed when what it leads to, every link on the way resolved,
 * lies inside the source's root; there it must be what the reader expects (a
 * regular file, or a folder), as any path must.  The root is SRC's folder
 * (SRC itself when a folder), resolved; for a Hugging Face cache snapshot,
 * REPO/snapshots/REV beside REPO/blobs, it is REPO, whose blobs the
 * snapshot's files link to.  A link leaving the root is refused, so that a
 * checkpoint folder cannot pull another file of the converting machine (a
 * key, another model) into DST or a bundle.  docs/verify.md, "Links in a
 * source", says the same for users.
 */
#ifndef CKPT_LINKS_H
#define CKPT_LINKS_H

#include "ckpt.h"

/* The resolved root of the source `src_path` (malloc'd), or NULL when it cannot be resolved (out of memory, gone). */
char *links_root(const char *src_path);

/*
 * CKPT_OK when `path`, resolved, is `root` or inside it (or cannot be
 * resolved: opening it then reports why); CKPT_ERR_FORMAT naming the path
 * and where it leads otherwise.  A NULL root allows everything.
 */
int links_check(const char *root, const char *path, ckpt_error *err);

/*
 * links_check for every link in folder `dir` and its real subfolders, four
 * levels deep (a Megatron iter_N/mp_rank_TT/ file is three); dot names are
 * skipped, as every reader skips them.
 */
int links_check_folder(const char *root, const char *dir, ckpt_error *err);

#endif
