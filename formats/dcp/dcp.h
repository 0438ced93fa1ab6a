/*
 * dcp.h: PyTorch Distributed Checkpoint folders (`.metadata` + `*.distcp`),
 * and the Megatron torch_dist and NeMo 2 layouts built on them.
 *
 * dcp_metadata.c turns the `.metadata` pickle into plain records (every
 * tensor's global shape and its chunks, each chunk matched to the file range
 * that stores it); dcp.c maps the files and assembles the chunks into whole
 * tensors.  The parser works on bytes alone, so that it can be fuzzed.
 */
#ifndef CKPT_DCP_H
#define CKPT_DCP_H

#include "formats/torch/pickle.h"
#include "libckpt/catalog/source.h"

/* Where a chunk or a bytes entry is: `length` bytes at `offset` of `path`, relative to the folder. */
struct dcp_storage {
    const char *path;      /* checked: relative, no "..", no empty part */
    uint64_t offset, length;
};

struct dcp_chunk {
    const uint64_t *offsets, *sizes;   /* `rank` values each, global coordinates */
    struct dcp_storage storage;
};

struct dcp_entry {
    const char *name;      /* the fully qualified name */
    bool is_tensor;        /* else a BytesStorageMetadata entry (a pickled object) */
    ckpt_dtype dtype;
    uint32_t rank;
    const uint64_t *shape;
    struct dcp_chunk *chunks;
    size_t chunk_count;
    struct dcp_storage bytes;          /* for a bytes entry */
};

struct dcp_metadata {
    struct dcp_entry *entries;         /* in the pickle's order */
    size_t count;
    struct pickle pickle;              /* names and paths point into its tree */
};

/* No name in a DCP folder is longer; no tensor has more chunks than source_max_pieces allows its shape. */
#define DCP_MAX_NAME 65536

/*
 * Parses a `.metadata` pickle held in data[0, len).  `origin` names it in
 * messages; `limits` bounds the pickle's memory and the entry count (NULL:
 * the defaults).  Every chunk must have its storage_data entry; unknown
 * classes, malformed records and unsafe paths are refused.  On success the
 * caller frees `md` with dcp_metadata_free.
 */
int dcp_metadata_parse(struct dcp_metadata *md, const uint8_t *data, size_t len, const char *origin,
                       const ckpt_limits *limits, ckpt_error *err);

void dcp_metadata_free(struct dcp_metadata *md);

/* No entry is split into tensors along more leading axes than this (layers, then experts). */
#define DCP_MAX_SPLIT 2

/* What a reader on top of DCP does with each entry before it is declared (any member may be NULL). */
struct dcp_options {
    /* Returns false to leave the entry out. */
    bool (*keep)(void *ctx, const struct dcp_entry *e);
    /* Refuses an entry the reader cannot declare truthfully (a layout it does not know), naming `dir`. */
    int (*check)(void *ctx, const struct dcp_entry *e, const char *dir, ckpt_error *err);
    /*
     * Megatron stacks the layers of a transformer block into one tensor with
     * a leading layer axis, and a layer's experts on the next: the number of
     * leading axes (at most DCP_MAX_SPLIT) along which the entry is declared
     * as one tensor per index, 0 to keep it whole.
     */
    unsigned (*split)(void *ctx, const struct dcp_entry *e);
    /*
     * Writes the name to declare into out[cap]: of the tensor at `index`
     * (`axes` values) of a split entry, or of the whole entry (axes 0).
     * Returns false when it does not fit.  NULL: entries keep their own names.
     */
    bool (*rename)(void *ctx, const char *name, const uint64_t *index, unsigned axes, char *out, size_t cap);
    /* Called for each bytes entry once its range is checked: file `file` of src holds it at e->bytes.offset. */
    int (*bytes)(void *ctx, struct ckpt_source *src, const struct dcp_entry *e, uint32_t file, ckpt_error *err);
    void *ctx;
};

/*
 * Declares entry `e`, whose chunks are `pieces`, as one tensor per index of
 * its first `axes` dimensions (dcp_split.c), each named by opt->rename into
 * name[cap]; a chunk spanning several indexes gives a piece to each.
 */
int dcp_declare_split(struct ckpt_source *src, const struct dcp_entry *e, const struct tensor_piece *pieces,
                      unsigned axes, const struct dcp_options *opt, char *name, size_t cap, ckpt_error *err);

/* Reads the DCP folder `dir` into `src`. */
int dcp_load_folder(struct ckpt_source *src, const char *dir, const struct dcp_options *opt, ckpt_error *err);

#endif
