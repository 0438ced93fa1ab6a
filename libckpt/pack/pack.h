/*
 * pack.h: the inside of ckpt_pack, ckpt_pack_merge and ckpt_unpack.
 *
 * Packing first makes the bundle's plan (pack_plan.c): every file of the
 * source, and in each the bytes of tensors (from the source's catalog) cut
 * apart from everything else.  Then the frames are compressed on worker
 * threads and handed over in plan order (pack_frames.c) to the writer
 * (pack.c), which places them in the index file or in volumes and hashes
 * every file and segment as it goes.
 */
#ifndef CKPT_PACK_H
#define CKPT_PACK_H

#include "formats/bundle/bundle_format.h"

#include <stdatomic.h>
#include <stdbool.h>

struct pack_plan {
    char *root;               /* SRC as given, without trailing '/' */
    char **paths;             /* where each of the bundle's files is read from */
    struct bundle_index ix;   /* files, segments and frames, not yet placed */
    uint8_t *plan;            /* ix encoded: the bytes at the front of the bundle */
    size_t plan_bytes;
    bool *entropy_only;       /* per segment: values with no repeats to find (planes, fp8): entropy-code only */
};

/*
 * Lists SRC (a folder, recursively, or one file), opens it as a checkpoint
 * with `open` and cuts every file into segments.  Refuses what a bundle
 * cannot carry: links to folders, devices, fifos and sockets, an archive
 * as SRC, and anything its reader refuses.
 */
int pack_plan_build(struct pack_plan *p, const char *src, uint64_t frame_bytes, const ckpt_open_options *open,
                    ckpt_error *err);

void pack_plan_free(struct pack_plan *p);

/* One compressed frame, handed to the writer in plan order. */
struct packed_frame {
    size_t index;             /* in ix.frames */
    const uint8_t *bytes;     /* the frame's own bytes, as in the file */
    const uint8_t *packed;    /* zstd frame and trailer */
    size_t packed_bytes;
};

/* Receives each frame in order; returns non-zero to stop. */
typedef int (*pack_sink_fn)(void *ctx, const struct packed_frame *frame, ckpt_error *err);

/*
 * Reads, splits into planes, compresses and trailers the frames `frames`
 * (indexes into ix.frames, in plan order) on `jobs` threads, and hands them
 * to `sink` in that order on the calling thread.  `level` is the zstd level
 * of bytes that are not entropy-only.  `stop`, when set by anyone, ends the
 * run with CKPT_ERR_CANCELLED.
 */
int pack_frames(const struct pack_plan *p, const size_t *frames, size_t count, int level, unsigned jobs,
                pack_sink_fn sink, void *ctx, atomic_int *stop, ckpt_error *err);

/* The index file of part `part` of `parts` of `bundle` ("B.part-K-of-N"), or `bundle` itself (parts 0). */
char *pack_index_path(const char *bundle, unsigned part, unsigned parts);

#endif
