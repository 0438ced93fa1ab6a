/*
 * source.h: the inside of a ckpt_source, and the calls format readers use to
 * fill its catalog.
 *
 * A reader maps the files it needs (source_add_file), then declares each
 * tensor with a view: where its elements live in a mapped file and how they
 * are strided.  source_add_tensor checks everything a hostile file could get
 * wrong (duplicate names, rank and count limits, element counts that
 * overflow, views that reach outside their storage) so that no reader has to
 * remember to.  Reading then goes through one strided copier (view.c).
 */
#ifndef CKPT_SOURCE_H
#define CKPT_SOURCE_H

#include "ckpt.h"
#include "libckpt/common/name_index.h"
#include "libckpt/io/vfile.h"

#include <stdbool.h>
#include <stdint.h>

/* Non-tensor values kept per source: enough for any training checkpoint's args and counters. */
#define SOURCE_MAX_OBJECTS 200000

/*
 * Aliases (tied weights) allowed: this many, plus this many per distinct
 * tensor.  Real checkpoints tie a few weights, or share whole layers a dozen
 * times; a pickle reaching one tensor through millions of paths is a bomb.
 */
#define SOURCE_ALIASES_BASE 4096
#define SOURCE_ALIASES_PER_TENSOR 64

/* Inflated bytes a compressed archive may hold by default (ckpt_limits.max_archive_bytes). */
#define SOURCE_DEFAULT_MAX_ARCHIVE_BYTES ((uint64_t)256 << 30)

/* No tensor has more dimensions than this, whatever ckpt_limits.max_rank says. */
#define SOURCE_MAX_RANK 64

/*
 * A file of the source, mapped read-only, or bytes the reader produced itself.
 * Tensor data of a mapped file is read through `backing` (vfile.h: pread from
 * the file on disk, or frames decompressed from a bundle): a file truncated
 * under a mapping raises SIGBUS on access, a read reports it as an error.  The
 * mapping serves headers and pickles.
 */
struct source_file {
    char *path;
    const uint8_t *data;
    uint64_t size;
    bool mapped;      /* data is an mmap (else malloc'd and owned) */
    bool borrowed;    /* data belongs to another file of the source (a member, a slice): never freed */
    bool owns_backing;            /* backing was made for this file and is released with it */
    const struct vfile *backing;  /* where data[0] is read from (its own, or a parent's); NULL for buffers */
    uint64_t backing_offset;      /* where data[0] sits in that file */
    struct source_crc *crcs;      /* checks left to the pass that hashes the file (crc_when_converting) */
    size_t crc_count;
};

/* A CRC-32 that bytes [offset, offset + size) of a source file must have (a zip entry's, stored). */
struct source_crc {
    uint64_t offset, size;
    uint32_t crc;
    char *entry;      /* the entry's name, for the error */
};

/*
 * Where a tensor's elements are: a storage of `storage_bytes` bytes starting
 * at byte `storage_offset` of file `file`; element (i0, i1, ...) sits at
 * element index elem_offset + sum(ik * strides[k]) of that storage.
 * strides == NULL means contiguous row-major.
 */
struct tensor_view {
    uint32_t file;
    uint64_t storage_offset;
    uint64_t storage_bytes;
    uint64_t elem_offset;
    const int64_t *strides;  /* copied by source_add_tensor */
    bool big_endian;
};

struct tensor_part;

/* Bytes of a file that hold tensor data the catalog does not list (source_note_data). */
struct data_range {
    uint32_t file;
    uint64_t offset, size;
};

struct tensor_entry {
    ckpt_tensor pub;
    uint64_t *shape;
    int64_t *strides;        /* NULL when contiguous */
    struct tensor_view view;
    size_t alias_target;     /* index of the aliased tensor, or SIZE_MAX */
    struct tensor_part *parts; /* a tensor stored in pieces (pieces.c); `view` is then unused */
    size_t part_count;
    ckpt_tensor_storage storage; /* how it is stored (ckpt_source_tensor_storage); NZ is read untiled (view.c) */
    uint64_t *storage_shape;   /* owned: an NZ tensor's tile shape (storage.shape) */
    char *quant;               /* owned: its type in a quantized folder's description (storage.quant), or NULL */
};

/* One stored piece of a tensor: the box starting at `offsets`, read like a tensor of its own. */
struct tensor_part {
    uint64_t *offsets;
    struct tensor_entry entry; /* shape = the box's sizes; name borrowed from the whole tensor */
};

struct ckpt_source {
    char *path;                  /* as opened */
    const char *format;          /* static string */
    ckpt_limits limits;
    ckpt_deepspeed_weights deepspeed_weights;
    ckpt_experts experts;        /* ckpt_open_options.experts */
    bool split_fused;            /* the safetensors reader found experts to split (fused_experts.c) */
    bool crc_when_converting;    /* ckpt_open_options.crc_when_converting */
    struct source_file *files;
    size_t file_count, file_cap;
    struct tensor_entry *tensors;
    size_t tensor_count, tensor_cap;
    size_t alias_count;          /* of those, aliases (source_add_alias) */
    uint64_t name_bytes;         /* their names, charged to limits.max_header_bytes */
    struct name_index tensor_names;
    ckpt_kv *metadata;           /* owned strings */
    size_t metadata_count, metadata_cap;
    struct name_index metadata_keys;
    ckpt_object *objects;        /* owned strings, except the static kind */
    size_t object_count, object_cap;
    struct ckpt_fs *fs;          /* the archive the source was opened from, or NULL (fs.h) */
    char *inner;                 /* the checkpoint's path inside that archive ("x.nemo/model_weights"), or NULL */
    bool fs_owned;               /* freed with this source (a scratch source borrows its reader's) */
    struct data_range *data_ranges; /* noted by readers for pack (source_note_data) */
    size_t data_range_count, data_range_cap;
    bool objects_only;           /* a scratch source read for its objects: a pickle without tensors is fine */
    ckpt_event_fn events;        /* the caller's (ckpt_open_options.events), on the source it opens only */
    void *events_payload;
    bool cancelled;              /* the callback asked to stop: the open fails whatever the reader does */
};

/*
 * Tells the caller's event callback (if any) a file was mapped or a tensor
 * catalogued; CKPT_ERR_CANCELLED when it asks to stop.
 */
int source_tell(struct ckpt_source *src, ckpt_event_kind kind, const char *file, const char *tensor, uint64_t done,
                ckpt_error *err);

/*
 * Maps `path` read-only and appends it to the source's files; a path inside
 * the source's archive becomes a slice of the archive's inflated members.
 */
int source_add_file(struct ckpt_source *src, const char *path, uint32_t *index, ckpt_error *err);

/*
 * Appends a read-only mapping of `size` bytes that the source unmaps when it
 * is freed (an archive); tensor data is read back through `backing`, which
 * must outlive the source (NULL: nothing else can change the bytes, so they
 * are read from the mapping).
 */
int source_add_mapping(struct ckpt_source *src, const char *path, const uint8_t *data, uint64_t size,
                       const struct vfile *backing, uint32_t *index, ckpt_error *err);

/* Appends bytes the reader owns from now on (malloc'd), named `path` in messages. */
int source_add_buffer(struct ckpt_source *src, const char *path, uint8_t *data, uint64_t size,
                      uint32_t *index, ckpt_error *err);

/*
 * Appends bytes [offset, offset + size) of file `parent` as a file of their
 * own (a torch.save blob inside a DCP file, an archive member), named `path`
 * in messages.  Refuses a range outside the parent.
 */
int source_add_slice(struct ckpt_source *src, uint32_t parent, uint64_t offset, uint64_t size, const char *path,
                     uint32_t *index, ckpt_error *err);

/*
 * The same for bytes of `parent`, a file of another source that outlives
 * this one: a scratch source reads a slice of a file its reader mapped once.
 */
int source_add_borrowed(struct ckpt_source *src, const struct source_file *parent, uint64_t offset, uint64_t size,
                        const char *path, uint32_t *index, ckpt_error *err);

/* Lets scratch source `scratch` find files inside `src`'s archive (call right after source_new). */
void source_share_fs(struct ckpt_source *scratch, const struct ckpt_source *src);

/* An empty source with `limits` (the defaults when NULL), or NULL when out of memory. */
struct ckpt_source *source_new(const char *path, const ckpt_limits *limits);

/*
 * Moves every file of `scratch` to the end of `src`'s files; scratch's file
 * index i becomes base + i.  A reader that assembles tensors from several
 * files loads each into a scratch source with an existing reader, reads the
 * scratch catalog, adopts its files, and declares pieces with the shifted
 * file indexes.  Scratch keeps its catalog (for reading) but no files.
 */
int source_adopt_files(struct ckpt_source *src, struct ckpt_source *scratch, uint32_t *base, ckpt_error *err);

/*
 * Declares a tensor.  Refuses duplicate names, ranks or counts over the
 * limits, sizes that overflow, negative strides and views that reach outside
 * their storage or their file; every refusal names the file and the tensor.
 */
int source_add_tensor(struct ckpt_source *src, const char *name, ckpt_dtype dtype,
                      uint32_t rank, const uint64_t *shape, const struct tensor_view *view,
                      ckpt_error *err);

/*
 * A block of a tensor stored in pieces (tensor-parallel shards, DCP chunks):
 * the box [offsets, offsets + sizes) of the whole tensor, whose elements are
 * found through `view` as if it were a tensor of shape `sizes`.
 */
struct tensor_piece {
    const uint64_t *offsets;
    const uint64_t *sizes;
    struct tensor_view view;
};

/*
 * A run of a tensor stored in pieces of a flat vector (ZeRO partitions):
 * elements [first, first + count) in row-major order, stored contiguously
 * from view.elem_offset on (view.strides must be NULL).
 */
struct tensor_run {
    uint64_t first, count;
    struct tensor_view view;
};

/*
 * How many pieces a tensor may be assembled from: SOURCE_MAX_PIECES, or
 * SOURCE_PIECES_PER_MATRIX for every index of its leading (stacked)
 * dimensions, all but the last two, whichever is more.  Frameworks cut
 * stacked layers and experts one index apart and each matrix into a few
 * tensor-parallel parts (Qwen3-235B's experts: 94 x 128 x 2 chunks in one
 * entry); a count beyond that is no checkpoint's.
 */
#define SOURCE_MAX_PIECES 16384
#define SOURCE_PIECES_PER_MATRIX 64
uint64_t source_max_pieces(uint32_t rank, const uint64_t *shape);

/*
 * Declares a tensor assembled from pieces.  Each piece's view is checked as
 * source_add_tensor checks a view; the pieces must also lie inside the
 * tensor and cover it exactly, with no gap and no overlap.  Refusals name
 * the tensor and a file of the offending piece.  Pieces count toward
 * max_tensors.
 */
int source_add_pieces(struct ckpt_source *src, const char *name, ckpt_dtype dtype, uint32_t rank,
                      const uint64_t *shape, const struct tensor_piece *pieces, size_t count, ckpt_error *err);

/* The same for a tensor given as runs of its row-major elements (each becomes at most 2 * rank - 1 boxes). */
int source_add_runs(struct ckpt_source *src, const char *name, ckpt_dtype dtype, uint32_t rank,
                    const uint64_t *shape, const struct tensor_run *runs, size_t count, ckpt_error *err);

/*
 * Presents tensor `index`, stored contiguously as FRACTAL_NZ tiles (what
 * ckpt convert writes with --nz), as the logical matrix of `shape` (rank 2
 * or more) it encodes: its catalog shape becomes `shape`, reads untile it,
 * and its storage records the tiles.  `c0` is the tile row's width,
 * `transposed` that the tiles hold the matrix with its last two dimensions
 * swapped.  Refused (CKPT_ERR_FORMAT, naming file and tensor) unless the
 * stored shape is exactly the tiling of `shape` with that C0, C0 is one
 * CANN uses for the element size, and the tensor is one plain view.
 */
int source_present_nz(struct ckpt_source *src, size_t index, const uint64_t *shape, uint32_t rank, uint64_t c0,
                      bool transposed, ckpt_error *err);

/* Records the type a quantized folder's description gives tensor `index` (copied). */
int source_set_quant(struct ckpt_source *src, size_t index, const char *type, ckpt_error *err);

/* Declares `name` as another name for the already declared tensor `target`. */
int source_add_alias(struct ckpt_source *src, const char *name, size_t target, ckpt_error *err);

/* Adds a metadata pair; a key already present with another value is a format error. */
int source_add_metadata(struct ckpt_source *src, const char *key, const char *value,
                        const char *file, ckpt_error *err);

/*
 * Notes bytes [offset, offset + size) of file `file` as tensor data that no
 * tensor of the catalog lists (optimizer state stored beside the weights),
 * which the reader never reads through the mapping.  Only packing looks at
 * them: a bundle stores them as tensor data, not as headers it holds in
 * memory when it is opened.  Ranges outside the file are ignored.
 */
int source_note_data(struct ckpt_source *src, uint32_t file, uint64_t offset, uint64_t size, ckpt_error *err);

/* Records a non-tensor value; `kind` must be a static string (see ckpt_object). */
int source_add_object(struct ckpt_source *src, const char *name, const char *kind, const char *value,
                      ckpt_error *err);

/* ---- shared by source.c, entries.c and pieces.c ---- */

/* Grows *array (of *cap elements of elem_size bytes) to hold `need`. */
int source_grow(void **array, size_t *cap, size_t need, size_t elem_size, ckpt_error *err);

/* Checks a new tensor's name, rank and size against the catalog and its limits; sets *nbytes. */
int source_check_new_tensor(const struct ckpt_source *src, const char *name, ckpt_dtype dtype, uint32_t rank,
                            const uint64_t *shape, uint32_t file, uint64_t *nbytes, ckpt_error *err);

/* Checks that a view of `shape` stays inside its storage and its file. */
int source_check_view(const struct ckpt_source *src, const char *name, ckpt_dtype dtype, uint32_t rank,
                      const uint64_t *shape, const struct tensor_view *view, ckpt_error *err);

/* Fills `t` (shape and strides copied) for a view already checked; the name is not copied. */
int source_fill_entry(struct tensor_entry *t, const char *name, ckpt_dtype dtype, uint32_t rank,
                      const uint64_t *shape, const struct tensor_view *view, uint64_t nbytes, ckpt_error *err);

/* Appends a checked entry `t` (taking its allocations and a copy of its name) to the catalog. */
int source_append_entry(struct ckpt_source *src, struct tensor_entry *t, ckpt_error *err);

/* Frees what an entry owns besides its name. */
void source_entry_release(struct tensor_entry *t);

/* Index of the tensor called `name`, or SIZE_MAX. */
size_t source_lookup(const struct ckpt_source *src, const char *name);

/*
 * Lines are rows of the last dimension counted over all leading ones: a
 * [B, M, N] tensor has B*M lines of N elements (a rank-0 tensor one line of one).
 */
uint64_t view_line_count(const ckpt_tensor *t);
uint64_t view_line_bytes(const ckpt_tensor *t);

/* Copies lines [first, first + count) of a tensor, row-major and little-endian (view.c). */
int view_read_lines(const struct ckpt_source *src, const struct tensor_entry *t, uint64_t first, uint64_t count,
                    uint8_t *dst, ckpt_error *err);

#endif
