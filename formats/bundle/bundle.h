/*
 * bundle.h: a bundle opened for reading in place (docs/bundle.md).
 *
 * Opening reads the header, the plan and the table of the index file and
 * checks that every volume is there, of its size and from this bundle;
 * nothing is decompressed.  Reads then decompress the frames covering the
 * bytes asked for, each checked against its trailer (which file and offset
 * it holds, the XXH3-64 of its bytes): a damaged frame is an error naming
 * the volume, the file and the tensor, never wrong bytes.  Frames read in
 * part are kept in a small cache shared by all threads (BUNDLE_CACHE_BYTES).
 *
 * Each thread reads through its own cursor (a decompression context and
 * buffers for one frame), taken from a pool and given back.
 */
#ifndef CKPT_BUNDLE_H
#define CKPT_BUNDLE_H

#include "bundle_format.h"
#include "libckpt/io/fs.h"
#include "libckpt/io/vfile.h"

#include <stdatomic.h>
#include <stdbool.h>

/* Decompressed frames kept for reads that take part of one. */
#define BUNDLE_CACHE_BYTES ((uint64_t)16 << 20)

struct bundle;
struct bundle_cursor;

/* True when the file at `path` starts like a bundle's index file. */
bool bundle_probe(const char *path);

/*
 * Opens the bundle whose index file is `path`.  `limits` bounds the plan and
 * the table (max_header_bytes) and the files (max_tensors).  A truncated or
 * damaged index, a missing, short or foreign volume, frames placed outside
 * their volume and bombs are refused (CKPT_ERR_FORMAT), naming what is lost.
 */
int bundle_open(const char *path, const ckpt_limits *limits, struct bundle **out, ckpt_error *err);

void bundle_close(struct bundle *b);

/*
 * Reads and checks the header, plan and table of the index file at `path`
 * (of a part of a partitioned pack when `part`, else of a bundle) into `ix`
 * (freed by the caller with bundle_index_free, also on failure); the file's
 * own frames lie in [*frames_start, *frames_end).  Volumes are not looked at.
 */
int bundle_read_index(const char *path, const ckpt_limits *limits, bool part, struct bundle_index *ix,
                      struct bundle_header *header, uint64_t *frames_start, uint64_t *frames_end, ckpt_error *err);

/*
 * Opens a bundle whose table is lost (a copy cut short): the header and plan
 * as usual, then each frame of the index file found by walking them in plan
 * order, checked against its trailer, up to the first that is not whole.
 * Frames past it are absent; the files' and tensors' XXH3-128 are unknown
 * (bundle_hashes_known is false).  Refuses a bundle whose table is there
 * (open it with bundle_open) and one with volumes (its index file is small:
 * fetch it again).
 */
int bundle_open_lost_table(const char *path, const ckpt_limits *limits, struct bundle **out, ckpt_error *err);

/* For bundle_open and bundle_open_lost_table: a bundle around the index `ix` read from `path` (taken). */
int bundle_adopt(const char *path, struct bundle_index *ix, bool hashes_known, struct bundle **out, ckpt_error *err);

/* False for a bundle opened without its table: files and tensors are checked frame by frame only. */
bool bundle_hashes_known(const struct bundle *b);

const struct bundle_index *bundle_index_of(const struct bundle *b);

/* The path of volume `v` (0: the index file). */
const char *bundle_volume_path(const struct bundle *b, size_t v);

int bundle_cursor_take(struct bundle *b, struct bundle_cursor **out, ckpt_error *err);
void bundle_cursor_give(struct bundle *b, struct bundle_cursor *c);

/*
 * Decompresses frame `frame` into `dst` (its `length` bytes) and checks it.
 * A damaged frame is CKPT_ERR_FORMAT, a volume shorter than the table says
 * CKPT_ERR_READ; both name the volume, the file and the tensor.
 */
int bundle_decode_frame(struct bundle *b, struct bundle_cursor *c, size_t frame, uint8_t *dst, ckpt_error *err);

/*
 * Called for each frame, in order, with its bytes, or with `damage` saying
 * why it could not be read (then `bytes` is not to be used); non-zero stops.
 */
typedef int (*bundle_frame_fn)(void *ctx, size_t frame, const uint8_t *bytes, const ckpt_error *damage,
                               ckpt_error *err);

/*
 * Decompresses every frame on `jobs` threads (0: one per core) and hands
 * them to `fn` in order on the calling thread, a few frames in flight at
 * most.  `stop`, when set, ends the run with CKPT_ERR_CANCELLED.
 */
int bundle_each_frame(struct bundle *b, unsigned jobs, bundle_frame_fn fn, void *ctx, atomic_int *stop,
                      ckpt_error *err);

/* Reads bytes [offset, offset + len) of file `file` (inside its size) through the frame cache. */
int bundle_read(struct bundle *b, struct bundle_cursor *c, size_t file, uint64_t offset, void *dst, uint64_t len,
                ckpt_error *err);

/*
 * The bundle's files laid end to end as one file, file i from
 * bundle_file_base(b, i) on: a vfile (vfile.h) that any number of threads
 * may read at once, each through its own cursor.
 */
const struct vfile *bundle_vfile(struct bundle *b);
uint64_t bundle_file_base(const struct bundle *b, size_t file);

/*
 * Opens a bundle as the folder (or the file) it holds: a member table whose
 * members' bytes are read through bundle_vfile, with a reserved mapping that
 * a member's non-tensor bytes (headers, pickles) are decompressed into when
 * a reader maps it, at most limits->max_bundle_header_bytes in all.
 * `*inner` is the path of the checkpoint inside (the bundle itself for a
 * folder).
 */
int bundle_open_fs(const char *path, const ckpt_limits *limits, struct ckpt_fs **out, char **inner, ckpt_error *err);

/* The bundle behind a member table bundle_open_fs made, or NULL for any other. */
struct bundle *bundle_of_fs(const struct ckpt_fs *fs);

#endif
