/*
 * bundle_format.h: the bundle file format (docs/bundle.md), shared by the
 * reader here and by pack, unpack and verify.
 *
 * A bundle holds the files of a checkpoint, compressed.  Every file is cut
 * into segments: the bytes of tensors (found by opening the checkpoint with
 * its reader when packing) and everything else; every segment into frames
 * of at most `frame_bytes`, each compressed on its own (one zstd frame
 * followed by a trailer naming what it holds and the XXH3-64 of its
 * bytes).  Floating-point tensor data is split into byte planes first
 * (kernels/byte_planes.h).  The plan, at the front, lists the files and
 * segments, and so implies every frame; the table, at the end, says where
 * each frame is and holds the XXH3-128 of every file and segment.  Frames
 * lie in the index file itself, or in volumes beside it.
 */
#ifndef CKPT_BUNDLE_FORMAT_H
#define CKPT_BUNDLE_FORMAT_H

#include "ckpt.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BUNDLE_MAGIC "\x89" "CKB\r\n\x1a\n"   /* 8 bytes: a transfer that mangles line ends or high bits shows */
#define BUNDLE_MAGIC_BYTES 8
#define BUNDLE_VERSION 1
#define BUNDLE_HEADER_BYTES 64
#define BUNDLE_FOOTER_MAGIC "CKBTABLE"
#define BUNDLE_FOOTER_BYTES 32
/* A frame's trailer: a zstd skippable frame (magic, size 24) holding file, offset and XXH3-64. */
#define BUNDLE_TRAILER_MAGIC 0x184D2A5Bu
#define BUNDLE_TRAILER_BYTES 32

#define BUNDLE_FRAME_MIN ((uint64_t)64 << 10)
#define BUNDLE_FRAME_MAX ((uint64_t)16 << 20)
#define BUNDLE_FRAME_DEFAULT ((uint64_t)1 << 20)

/* A bundle whose frames inflate past this ratio and floor is a bomb, not a checkpoint (as for archives). */
#define BUNDLE_MAX_RATIO 200
#define BUNDLE_RATIO_FLOOR ((uint64_t)64 << 20)

/* At most this many volumes, and volume names of at most this many bytes. */
#define BUNDLE_MAX_VOLUMES 100000
#define BUNDLE_MAX_NAME 255

/* What the file at hand is (header `kind`). */
enum bundle_kind {
    BUNDLE_KIND_BUNDLE = 0, /* the bundle: header, plan, frames (unless in volumes), table, footer */
    BUNDLE_KIND_PART = 1,   /* one part's index of a partitioned pack (pack --part K/N) */
    BUNDLE_KIND_VOLUME = 2  /* header and frames only */
};

/* Plan flags. */
#define BUNDLE_SOURCE_IS_FILE 1u   /* the source was one file, not a folder */
/* File flags. */
#define BUNDLE_FILE_WAS_LINK 1u    /* the source held a symbolic link here (its target's bytes are stored) */

enum segment_kind {
    SEGMENT_BYTES = 0,   /* headers, pickles, files no reader maps: decompressed into memory when a reader maps the file */
    SEGMENT_TENSOR = 1   /* tensor data: read through frames only, never held whole */
};

struct bundle_header {
    uint32_t version, kind;
    uint64_t set_id;          /* XXH3-64 of the plan: the same for every part and volume of one bundle */
    uint32_t part, parts;     /* 1-based part of a partitioned pack, 0 when not */
    uint32_t volume;          /* a volume's number within its writer, 1-based; 0 in index files */
    uint64_t plan_bytes;      /* index files: the plan's length, right after the header */
};

struct bundle_segment {
    uint64_t offset, length;  /* in its file */
    uint32_t file;
    uint8_t kind;             /* enum segment_kind */
    uint8_t width;            /* byte planes of elements this wide (2, 4, 8), or 0: bytes as they are */
    size_t first_frame, frame_count;
    char **names;             /* the tensors stored here, for messages */
    uint32_t name_count;
    uint8_t hash[16];         /* XXH3-128 (canonical) of its bytes */
};

struct bundle_file {
    char *path;               /* relative, '/'-separated, checked */
    uint64_t size;
    uint32_t flags;           /* BUNDLE_FILE_* */
    size_t first_segment, segment_count;
    size_t first_frame, frame_count;
    uint8_t hash[16];
};

struct bundle_frame {
    uint64_t offset;          /* of its compressed bytes in its volume */
    uint64_t file_offset;     /* of its first byte in its file */
    uint32_t volume;          /* index into bundle_index.volumes; BUNDLE_ABSENT in a part that does not hold it */
    uint32_t csize;           /* compressed bytes, trailer included */
    uint32_t length;          /* bytes it holds */
    uint32_t segment;
};

#define BUNDLE_ABSENT UINT32_MAX

struct bundle_volume {
    char *name;               /* a file beside the index file; volumes[0] is the index file itself (name NULL) */
    uint64_t size;
    uint8_t hash[16];         /* XXH3-128 of the whole volume (not kept for volumes[0]) */
};

/* Everything the plan and the table say. */
struct bundle_index {
    uint32_t flags;           /* BUNDLE_SOURCE_* */
    uint64_t frame_bytes;
    char *format;             /* the checkpoint format found when packing, for messages */
    struct bundle_file *files;
    size_t file_count;
    struct bundle_segment *segments;
    size_t segment_count;
    struct bundle_frame *frames;
    size_t frame_count;
    struct bundle_volume *volumes;
    size_t volume_count;
    uint64_t data_bytes;      /* the files' bytes together */
};

/* Header of 64 bytes: encoded, and parsed with every field checked (`path` names the file in messages). */
void bundle_header_encode(uint8_t out[BUNDLE_HEADER_BYTES], const struct bundle_header *h);
int bundle_header_parse(const uint8_t in[BUNDLE_HEADER_BYTES], struct bundle_header *h, const char *path,
                        ckpt_error *err);

/* Footer of 32 bytes at the end of an index file: where the table is, and its XXH3-64. */
void bundle_footer_encode(uint8_t out[BUNDLE_FOOTER_BYTES], uint64_t table_offset, uint64_t table_bytes,
                          uint64_t table_hash);
int bundle_footer_parse(const uint8_t in[BUNDLE_FOOTER_BYTES], uint64_t file_size, uint64_t *table_offset,
                        uint64_t *table_bytes, uint64_t *table_hash, const char *path, ckpt_error *err);

/* A frame's trailer: which file and offset it holds, and the XXH3-64 of those bytes. */
void bundle_trailer_encode(uint8_t out[BUNDLE_TRAILER_BYTES], uint32_t file, uint64_t file_offset, uint64_t hash);
bool bundle_trailer_parse(const uint8_t in[BUNDLE_TRAILER_BYTES], uint32_t *file, uint64_t *file_offset,
                          uint64_t *hash);

/* A growing byte buffer for encoding; `failed` once an allocation failed. */
struct bundle_bytes {
    uint8_t *data;
    size_t len, cap;
    bool failed;
};

void bundle_bytes_free(struct bundle_bytes *b);

/*
 * The plan of `ix` (flags, frame size, format, files and segments), and its
 * table (volumes[1..], every frame, file and segment hash).
 */
int bundle_plan_encode(const struct bundle_index *ix, struct bundle_bytes *out, ckpt_error *err);
int bundle_table_encode(const struct bundle_index *ix, struct bundle_bytes *out, ckpt_error *err);

/*
 * Fills files, segments and frames (their lengths and file offsets; the
 * table places them) from a plan read from `path`.  Everything is checked:
 * lengths inside the plan, paths that stay inside the bundle and are unique
 * (and no file inside another), segments covering each file exactly,
 * plane widths dividing their segment, counts and names within `limits`.
 */
int bundle_plan_parse(struct bundle_index *ix, const uint8_t *plan, size_t len, const ckpt_limits *limits,
                      const char *path, ckpt_error *err);

/*
 * Fills volumes, frame places and hashes from a table.  In the table of a
 * part (`part` true) frames of files the part does not hold are absent;
 * otherwise every frame must be placed.  Frame places are checked against
 * the volumes by bundle_check_places once the volumes' sizes are known.
 */
int bundle_table_parse(struct bundle_index *ix, const uint8_t *table, size_t len, bool part, const char *path,
                       ckpt_error *err);

/*
 * Checks that the frames of each volume follow each other without gap or
 * overlap from `start[v]` to `end[v]` (volume 0: from the end of the plan to
 * the table), each no larger than its bytes can compress to, and that the
 * whole does not inflate like a bomb.
 */
int bundle_check_places(const struct bundle_index *ix, const uint64_t *start, const uint64_t *end, const char *path,
                        ckpt_error *err);

/* The segment of file `file` holding byte `offset`, by binary search (offset < the file's size). */
size_t bundle_segment_at(const struct bundle_index *ix, size_t file, uint64_t offset);

/* The frame of file `file` holding byte `offset`, by binary search (offset < the file's size). */
size_t bundle_frame_at(const struct bundle_index *ix, size_t file, uint64_t offset);

/*
 * Which part (0-based) packs each file of a pack split in `parts`: in plan
 * order, each file to the part with the fewest bytes so far, the lowest on
 * a tie.  Every process computes the same from the same plan.  CKPT_OK, or
 * CKPT_ERR_NOMEM.
 */
int bundle_assign_parts(const struct bundle_index *ix, unsigned parts, unsigned *file_part);

/* A one-line description of what frame `frame` holds: its file, bytes and tensor, for messages. */
void bundle_describe_frame(const struct bundle_index *ix, size_t frame, char *out, size_t cap);

void bundle_index_free(struct bundle_index *ix);

#endif
