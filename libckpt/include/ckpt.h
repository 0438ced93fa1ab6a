/*
 * ckpt.h: the whole public interface of libckpt.
 *
 * libckpt reads large-model checkpoints written by training frameworks and
 * writes what Ascend inference loads, without running any code from the
 * input and with every byte accounted for.
 *
 * Conventions (after libgit2 and zstd):
 *   - Functions return an int status: CKPT_OK (0) or a positive ckpt_status.
 *   - Every function that can fail takes a `ckpt_error *err` last; when it is
 *     not NULL it receives the status and a one-line message naming the file
 *     and the problem.  There is no hidden per-thread or global error state.
 *   - Handles are opaque; each `_open`/`_new` has a matching `_free`.
 *   - The library never prints, exits or aborts, and its messages name no
 *     command-line flag (the CLI adds its own hints).
 *   - Every option struct starts with `size_t size`, set by its _default()
 *     function: fill the struct with that function, then change fields.  The
 *     library reads only the first `size` bytes, so a program built against
 *     an older (smaller) struct keeps working and the fields it does not
 *     know keep their defaults; a size larger than the library knows (a
 *     newer header) is refused with CKPT_ERR_ARG.  Structs grow only at their
 *     end.  ckpt_limits, embedded in ckpt_open_options, is checked by its own
 *     size and does not grow after 0.1.0: later limits go to the end of
 *     ckpt_open_options.
 *   - Choices are enums; those a command line spells have functions from and
 *     to their names (ckpt_target_from_name, ckpt_float_type_parse, ...).
 *
 * Threads:
 *   - No function keeps hidden global state; any functions may run at the
 *     same time on different handles.
 *   - ckpt_source: immutable once open; any number of threads may read
 *     tensors from one source at the same time.  Free it once no call on it
 *     runs (and no plan or call that borrows it).
 *   - ckpt_writer: one thread at a time (calls in order: open, write..., finish).
 *   - ckpt_plan: immutable after ckpt_plan_build; its accessors may be called
 *     from any threads at once.  ckpt_plan_execute runs once at a time per
 *     plan; ckpt_plan_cancel may be called from any thread or a signal
 *     handler while it runs.
 *   - ckpt_verify, ckpt_diff, ckpt_pack, ckpt_unpack, ckpt_parts_merge:
 *     callbacks (progress, findings, events) are called one at a time but
 *     possibly from worker threads; they must not call back into the same
 *     run.
 */
#ifndef CKPT_H
#define CKPT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && defined(CKPT_BUILDING)
#define CKPT_API __attribute__((visibility("default")))
#else
#define CKPT_API
#endif

#define CKPT_VERSION_MAJOR 0
#define CKPT_VERSION_MINOR 1
#define CKPT_VERSION_PATCH 0
#define CKPT_VERSION_STRING "0.1.0"

/* The version of the library actually linked (may differ from the header). */
CKPT_API const char *ckpt_version(void);

/* ======================================================================
 * Errors
 * ====================================================================== */

typedef enum ckpt_status {
    CKPT_OK = 0,
    CKPT_ERR_ARG,         /* the caller passed an invalid argument */
    CKPT_ERR_FORMAT,      /* the input is malformed or hostile */
    CKPT_ERR_UNSUPPORTED, /* the input is valid but uses something libckpt does not handle */
    CKPT_ERR_LIMIT,       /* the input exceeds a resource limit (see ckpt_limits) */
    CKPT_ERR_NOT_FOUND,   /* a named file or tensor does not exist */
    CKPT_ERR_READ,        /* reading the input failed (I/O error, truncated file) */
    CKPT_ERR_WRITE,       /* writing the output failed (disk full, permissions) */
    CKPT_ERR_EXISTS,      /* the output already exists */
    CKPT_ERR_NOMEM,       /* out of memory */
    CKPT_ERR_MISMATCH,    /* a check found a difference */
    CKPT_ERR_CANCELLED    /* the caller asked to stop */
} ckpt_status;

#define CKPT_ERROR_MESSAGE_MAX 512

typedef struct ckpt_error {
    int code;                              /* a ckpt_status */
    char message[CKPT_ERROR_MESSAGE_MAX];  /* one line, no trailing newline */
} ckpt_error;

/* A short constant name for a status ("format error", ...). */
CKPT_API const char *ckpt_status_name(int status);

/* Non-zero when the status blames the input (bad, unreadable, over a limit). */
CKPT_API int ckpt_status_is_input_error(int status);

/* ======================================================================
 * Element types
 * ====================================================================== */

/* Values are stable across releases; names follow safetensors. */
typedef enum ckpt_dtype {
    CKPT_DTYPE_INVALID = 0,
    CKPT_DTYPE_BOOL,
    CKPT_DTYPE_U8,
    CKPT_DTYPE_I8,
    CKPT_DTYPE_I16,
    CKPT_DTYPE_U16,
    CKPT_DTYPE_F16,
    CKPT_DTYPE_BF16,
    CKPT_DTYPE_I32,
    CKPT_DTYPE_U32,
    CKPT_DTYPE_F32,
    CKPT_DTYPE_F64,
    CKPT_DTYPE_I64,
    CKPT_DTYPE_U64,
    CKPT_DTYPE_F8_E4M3,     /* e4m3fn: no infinities, one NaN pattern per sign */
    CKPT_DTYPE_F8_E5M2,
    CKPT_DTYPE_F8_E8M0,
    CKPT_DTYPE_F8_E4M3FNUZ,
    CKPT_DTYPE_F8_E5M2FNUZ,
    CKPT_DTYPE_C64,
    CKPT_DTYPE_COUNT
} ckpt_dtype;

/* Bytes per element, or 0 for CKPT_DTYPE_INVALID. */
CKPT_API size_t ckpt_dtype_size(ckpt_dtype dtype);

/* The safetensors name ("BF16"), or "INVALID". */
CKPT_API const char *ckpt_dtype_name(ckpt_dtype dtype);

/* Parses a safetensors dtype name; returns CKPT_DTYPE_INVALID when unknown. */
CKPT_API ckpt_dtype ckpt_dtype_from_name(const char *name);

/* ======================================================================
 * Resource limits applied to every input
 * ====================================================================== */

typedef struct ckpt_limits {
    size_t size;                /* sizeof(ckpt_limits): set by ckpt_limits_default */
    uint64_t max_header_bytes;  /* safetensors JSON header, index files, and all tensor names of a
                                   source together (default 100,000,000) */
    uint64_t max_tensors;       /* tensors in one source (default 10,000,000) */
    uint32_t max_rank;          /* dimensions of one tensor (default 64) */
    uint64_t max_pickle_bytes;  /* memory the pickle machine may allocate (default 1 GiB) */
    uint64_t max_archive_bytes; /* bytes an archive (.nemo, .tar*, .zip) may inflate to (default 256 GiB) */
    uint64_t max_bundle_header_bytes; /* bytes of an open bundle held in memory: the headers and pickles of
                                         the files its reader maps, everything but tensor data (default 1 GiB) */
    uint64_t max_expansion;     /* how many times the bytes of its storage one tensor may present: a
                                   stride-0 (expanded) or overlapping view past this factor is refused
                                   (default 1024) */
} ckpt_limits;

/* Fills `limits` with the defaults above (and `size`). */
CKPT_API void ckpt_limits_default(ckpt_limits *limits);

/* ======================================================================
 * Sources: open a checkpoint, list its tensors, read their bytes
 * ====================================================================== */

typedef struct ckpt_source ckpt_source;

/* One tensor of a source's catalog.  Pointers stay valid until the source is freed. */
typedef struct ckpt_tensor {
    const char *name;
    ckpt_dtype dtype;
    uint32_t rank;
    const uint64_t *shape;   /* `rank` extents, outermost first */
    uint64_t nbytes;         /* element count times element size, row-major */
    uint32_t file;           /* index into the source's files */
    const char *alias_of;    /* the tensor this one shares its data with, or NULL */
} ckpt_tensor;

/*
 * Opens a checkpoint: a file, or a folder of shards.  The format is detected
 * from the content.  `limits` may be NULL for the defaults.  Nothing is read
 * from tensor data; headers are fully validated before this returns.
 */
CKPT_API int ckpt_source_open(ckpt_source **out, const char *path,
                              const ckpt_limits *limits, ckpt_error *err);

/* What a long call is doing, step by step (opening a source, comparing two). */
typedef enum ckpt_event_kind {
    CKPT_EVENT_FILE = 0,   /* open: a file of the checkpoint was mapped */
    CKPT_EVENT_TENSOR      /* open: a tensor was catalogued; diff: a tensor was compared */
} ckpt_event_kind;

/* One event.  Strings are valid only during the callback. */
typedef struct ckpt_event {
    ckpt_event_kind kind;
    const char *path;      /* the checkpoint being opened, or diff's first checkpoint */
    const char *file;      /* FILE: the file mapped; else NULL */
    const char *tensor;    /* TENSOR: its name; else NULL */
    uint64_t done;         /* open: files (FILE) or tensors (TENSOR) so far; diff: bytes of the first
                              checkpoint's tensors handled so far */
    uint64_t total;        /* diff: bytes of all the first checkpoint's tensors; open: 0 (not known ahead) */
} ckpt_event;

/*
 * Called one call at a time, on the calling thread; returning non-zero
 * cancels the call, which then fails with CKPT_ERR_CANCELLED.
 */
typedef int (*ckpt_event_fn)(void *payload, const ckpt_event *event);

/* Which weights a DeepSpeed ZeRO checkpoint folder yields. */
typedef enum ckpt_deepspeed_weights {
    CKPT_DEEPSPEED_FP32 = 0, /* full fp32 weights rebuilt from the optimizer partitions (zero_to_fp32) */
    CKPT_DEEPSPEED_MODULE    /* the 16-bit module weights of the model states (ZeRO 0-2 only) */
} ckpt_deepspeed_weights;

/*
 * Hugging Face routed experts fused as transformers >= 5 holds them
 * (`mlp.experts.gate_up_proj` [E, 2F, H], `mlp.experts.down_proj` [E, H, F]):
 * as stored, or presented per expert (`mlp.experts.e.gate_proj.weight` ...,
 * views of the stored bytes) for the models whose checkpoints transformers
 * reads per expert (config.json's model_type).  `--rename hf` asks for the
 * split (ckpt_open_options_for_rename).
 */
typedef enum ckpt_experts {
    CKPT_EXPERTS_AS_STORED = 0,
    CKPT_EXPERTS_SPLIT
} ckpt_experts;

/* How to open a source: limits, and choices some formats offer. */
typedef struct ckpt_open_options {
    size_t size;                   /* sizeof(ckpt_open_options): set by ckpt_open_options_default */
    ckpt_limits limits;
    ckpt_deepspeed_weights deepspeed_weights;
    ckpt_event_fn events;          /* each file mapped and tensor catalogued while opening, or NULL; */
    void *events_payload;          /* non-zero cancels the open */
    ckpt_experts experts;          /* fused Hugging Face experts as stored or split (as_stored by default) */
    int crc_when_converting;       /* non-zero: a torch.save zip's stored entries are CRC-checked by
                                      ckpt_plan_execute, in its one pass over the source files (a mismatch
                                      fails the conversion, which then writes nothing), not by the open:
                                      only for a source opened to be converted (ckpt convert does) */
} ckpt_open_options;

/* Fills `opts` with the defaults: ckpt_limits_default, fp32 DeepSpeed weights. */
CKPT_API void ckpt_open_options_default(ckpt_open_options *opts);

/*
 * Sets in `opts` what rename set `rename` (NULL: none) needs of the source:
 * "hf" and "hf-llama" read fused experts split (CKPT_EXPERTS_SPLIT).  convert
 * calls it; verify --against and the merge of parts call it with the
 * manifest's rename set, so that they read the source as convert did.
 */
CKPT_API void ckpt_open_options_for_rename(ckpt_open_options *opts, const char *rename);

/* ckpt_source_open with options; `opts` may be NULL for the defaults. */
CKPT_API int ckpt_source_open_ext(ckpt_source **out, const char *path, const ckpt_open_options *opts,
                                  ckpt_error *err);

CKPT_API void ckpt_source_free(ckpt_source *src);

/* The path the source was opened from. */
CKPT_API const char *ckpt_source_path(const ckpt_source *src);

/* The detected format, for example "safetensors". */
CKPT_API const char *ckpt_source_format(const ckpt_source *src);

CKPT_API size_t ckpt_source_file_count(const ckpt_source *src);
CKPT_API const char *ckpt_source_file_path(const ckpt_source *src, size_t file);
CKPT_API uint64_t ckpt_source_file_size(const ckpt_source *src, size_t file);

CKPT_API size_t ckpt_source_tensor_count(const ckpt_source *src);

/* The i-th tensor, in storage order (file by file); NULL when out of range. */
CKPT_API const ckpt_tensor *ckpt_source_tensor(const ckpt_source *src, size_t i);

/* Finds a tensor by name; returns CKPT_ERR_NOT_FOUND when absent. */
CKPT_API int ckpt_source_find(const ckpt_source *src, const char *name, size_t *index);

/* Free-form string metadata (safetensors `__metadata__`, merged across shards). */
CKPT_API size_t ckpt_source_metadata_count(const ckpt_source *src);
CKPT_API void ckpt_source_metadata(const ckpt_source *src, size_t i,
                                   const char **key, const char **value);
/* The value of metadata `key`, or NULL when the source has none. */
CKPT_API const char *ckpt_source_metadata_value(const ckpt_source *src, const char *key);

/*
 * Non-tensor values found beside the tensors (training step, `args`, ...),
 * flattened to dotted names like tensors.  `kind` is one of "none", "bool",
 * "int", "float", "string", "bytes", "opaque" (an object libckpt keeps but
 * never interprets or calls: `value` then names its class).  `value` is the
 * value as text.
 */
typedef struct ckpt_object {
    const char *name;
    const char *kind;
    const char *value;
} ckpt_object;

CKPT_API size_t ckpt_source_object_count(const ckpt_source *src);
CKPT_API const ckpt_object *ckpt_source_object(const ckpt_source *src, size_t i);

/*
 * How a tensor of a folder that ckpt convert wrote is stored, when that is
 * not its logical row-major form.  A FRACTAL_NZ tensor is listed (and read
 * by ckpt_source_read) as the logical matrix it encodes; `shape` here is the
 * tile shape on disk.  `quant` is the type quant_model_description.json
 * gives the tensor (its msModelSlim name, "FLOAT" included), or NULL.
 */
typedef enum ckpt_layout {
    CKPT_LAYOUT_ND = 0,        /* row-major, as the shape says */
    CKPT_LAYOUT_FRACTAL_NZ = 1 /* Ascend NZ tiles: (..., ceil(N/C0), ceil(M/16), 16, C0) */
} ckpt_layout;

typedef struct ckpt_tensor_storage {
    ckpt_layout layout;
    int transposed;            /* NZ of the matrix with its last two dimensions swapped */
    uint32_t rank;
    const uint64_t *shape;     /* as stored */
    uint64_t nbytes;           /* as stored, padding included */
    uint64_t c0;               /* NZ: elements of one tile row */
    const char *quant;
} ckpt_tensor_storage;

/* The storage of tensor i (layout ND and the tensor's own shape when nothing is special); NULL when out of range. */
CKPT_API const ckpt_tensor_storage *ckpt_source_tensor_storage(const ckpt_source *src, size_t i);

/* Rows of a tensor: shape[0], or 1 for a rank-0 tensor. */
CKPT_API uint64_t ckpt_tensor_rows(const ckpt_tensor *t);

/* Bytes of one row: nbytes / rows (0 for a tensor with no rows). */
CKPT_API uint64_t ckpt_tensor_row_bytes(const ckpt_tensor *t);

/*
 * Copies rows [row_begin, row_begin + row_count) of tensor `i` into `dst`,
 * row-major, little-endian, whatever the layout on disk.  `dst_size` must be
 * at least row_count * row bytes.  Reads only what is asked for.
 */
CKPT_API int ckpt_source_read(const ckpt_source *src, size_t i,
                              uint64_t row_begin, uint64_t row_count,
                              void *dst, size_t dst_size, ckpt_error *err);

/* ======================================================================
 * safetensors writer: streaming, atomic
 * ====================================================================== */

typedef struct ckpt_writer ckpt_writer;

typedef struct ckpt_kv {
    const char *key;
    const char *value;
} ckpt_kv;

/*
 * Starts a safetensors file at `path` holding `tensors` in the given order
 * (name, dtype, rank and shape are used; the other fields are ignored) and
 * the string pairs in `metadata` as `__metadata__`.  The header is written at
 * once; data then follows through ckpt_writer_write.  The file is built under
 * a temporary name in the same folder and appears at `path` only when
 * ckpt_writer_finish succeeds.  An existing `path` is an error.
 */
CKPT_API int ckpt_writer_open(ckpt_writer **out, const char *path,
                              const ckpt_tensor *tensors, size_t tensor_count,
                              const ckpt_kv *metadata, size_t metadata_count,
                              ckpt_error *err);

/* Appends data bytes: tensors in order, each exactly nbytes long, in any chunking. */
CKPT_API int ckpt_writer_write(ckpt_writer *w, const void *data, size_t len, ckpt_error *err);

/* Checks every byte was written, flushes to disk and renames into place. */
CKPT_API int ckpt_writer_finish(ckpt_writer *w, ckpt_error *err);

/* Frees the writer; an unfinished file is removed. */
CKPT_API void ckpt_writer_free(ckpt_writer *w);

/* ======================================================================
 * Kernels: element-type conversion and Ascend layouts
 * ====================================================================== */

/* What a narrowing cast does with a finite value beyond the target's range. */
typedef enum ckpt_overflow {
    CKPT_OVERFLOW_SATURATE = 0, /* clamp to the largest finite value (default) */
    CKPT_OVERFLOW_INF,          /* become infinity, as torch's .to() does */
    CKPT_OVERFLOW_ERROR         /* fail with CKPT_ERR_LIMIT */
} ckpt_overflow;

/* The cost of a cast, accumulated across calls. */
typedef struct ckpt_cast_counts {
    uint64_t overflowed; /* finite values beyond the target's range */
    uint64_t subnormal;  /* non-zero results that are subnormal in the target */
    uint64_t flushed;    /* non-zero finite values that became zero */
} ckpt_cast_counts;

/*
 * Converts `count` elements between F64, F32, F16, BF16, F8_E4M3 (fn) and
 * F8_E5M2, rounding to nearest even, bit-identical to torch's .to(dtype)
 * (narrowing goes through float, as torch's does).  NaN stays NaN with its
 * sign (the target's canonical quiet NaN); infinities stay infinite (NaN in
 * e4m3fn, which has none).  `counts` (may be NULL) accumulates.  Fails with
 * CKPT_ERR_LIMIT under CKPT_OVERFLOW_ERROR, CKPT_ERR_UNSUPPORTED for other
 * types (the same type is a copy).  src and dst may not overlap unless equal.
 */
CKPT_API int ckpt_cast(ckpt_dtype from, const void *src, ckpt_dtype to, void *dst, size_t count,
                       ckpt_overflow overflow, ckpt_cast_counts *counts, ckpt_error *err);

/*
 * Dequantizes rows [row0, row0 + rows) of a block-scaled fp8 weight with
 * `cols` columns: each element becomes float(w) * scale of its block, then
 * `to` (as torch's `(w.float() * s).to(dtype)`).  `scales` is the whole
 * [scale_rows, scale_cols] float32 scale matrix (DeepSeek-V3's
 * `weight_scale_inv`); blocks are block_rows x block_cols, edge blocks smaller.
 */
CKPT_API int ckpt_fp8_dequant(ckpt_dtype weight_dtype, const void *weight, uint64_t rows, uint64_t cols,
                              uint64_t row0, const float *scales, uint64_t scale_rows, uint64_t scale_cols,
                              uint64_t block_rows, uint64_t block_cols, ckpt_dtype to, void *dst,
                              ckpt_overflow overflow, ckpt_cast_counts *counts, ckpt_error *err);

/*
 * Quantizes `rows` rows of `cols` elements of a weight to int8 the way
 * msModelSlim's data-free "minmax" per-channel symmetric quantizer does, in
 * the weight's own type `dtype` (F16, BF16, F32 or F64): per row,
 * mn = min(min(row), 0), mx = max(max(row), 0), scale = max(-mn, mx) / 127,
 * floored at float32's machine epsilon; q = round-half-even(w / scale)
 * clamped to [-128, 127].  Each operation is rounded to `dtype` as torch's
 * CPU ops round it (docs/quantization.md).  `q` receives rows * cols int8
 * values, `scales` (may be NULL) one float32 per row.  A NaN or infinite
 * value is refused (CKPT_ERR_FORMAT): no scale represents it.
 */
CKPT_API int ckpt_quantize_int8(ckpt_dtype dtype, const void *weight, uint64_t rows, uint64_t cols, int8_t *q,
                                float *scales, ckpt_error *err);

/* C0 of NZ tiles for elements of `elem_bits` bits (4, 8, 16, 32): 64, 32, 16, 16. */
CKPT_API uint64_t ckpt_nz_c0(unsigned elem_bits);

/*
 * The FRACTAL_NZ storage shape of an ND shape (..., M, N): (..., ceil(N/C0),
 * ceil(M/16), 16, C0); rank 1 is taken as (1, N); with `transpose` the last
 * two dims are swapped first.  `nz_shape` needs room for rank + 3 extents.
 */
CKPT_API int ckpt_nz_shape(const uint64_t *nd_shape, uint32_t rank, unsigned elem_bits, int transpose,
                           uint64_t *nz_shape, uint32_t *nz_rank, ckpt_error *err);

/* ND (shape as given) to NZ, zero padded, and back.  Packed int4 rows need an even N. */
CKPT_API int ckpt_nd_to_nz(const void *src, void *dst, const uint64_t *shape, uint32_t rank, unsigned elem_bits,
                           int transpose, ckpt_error *err);
CKPT_API int ckpt_nz_to_nd(const void *src, void *dst, const uint64_t *shape, uint32_t rank, unsigned elem_bits,
                           int transpose, ckpt_error *err);

/* Bytes of the NC1HWC0 (fractal_z = 0) or FRACTAL_Z (1) form of an NCHW tensor; 0 if invalid. */
CKPT_API uint64_t ckpt_conv_layout_bytes(const uint64_t nchw[4], size_t elem_size, int fractal_z);

/* NCHW feature maps to NC1HWC0 ("5HD") and back. */
CKPT_API int ckpt_nchw_to_nc1hwc0(const void *src, void *dst, const uint64_t nchw[4], size_t elem_size,
                                  ckpt_error *err);
CKPT_API int ckpt_nc1hwc0_to_nchw(const void *src, void *dst, const uint64_t nchw[4], size_t elem_size,
                                  ckpt_error *err);

/* Conv weights (N, C, H, W) to FRACTAL_Z and back. */
CKPT_API int ckpt_conv_to_fractal_z(const void *src, void *dst, const uint64_t nchw[4], size_t elem_size,
                                    ckpt_error *err);
CKPT_API int ckpt_fractal_z_to_conv(const void *src, void *dst, const uint64_t nchw[4], size_t elem_size,
                                    ckpt_error *err);

/* ======================================================================
 * Conversion: plan, then execute
 * ====================================================================== */

typedef enum ckpt_nz_mode {
    CKPT_NZ_AUTO = 0, /* what the target does: no target tiles anything (the runtimes tile on the device) */
    CKPT_NZ_ALL,      /* every tensor whose last two dims are both > 1: a device image for AscendCL programs */
    CKPT_NZ_NONE
} ckpt_nz_mode;

/* Data-free int8 quantization in msModelSlim's layout (docs/quantization.md). */
typedef enum ckpt_quant {
    CKPT_QUANT_NONE = 0,
    CKPT_QUANT_W8A8_DYNAMIC, /* int8 per-channel weights; activations quantized per token at run time */
    CKPT_QUANT_W8A16         /* int8 per-channel weights; 16-bit activations */
} ckpt_quant;

/* What a plan entry is to the quantized linear it belongs to. */
typedef enum ckpt_quant_role {
    CKPT_QUANT_ROLE_NONE = 0, /* not quantized ("FLOAT") */
    CKPT_QUANT_ROLE_WEIGHT,   /* X.weight: int8 [out, in] */
    CKPT_QUANT_ROLE_SCALE,    /* X.weight_scale: float32 [out, 1] */
    CKPT_QUANT_ROLE_OFFSET    /* X.weight_offset: float32 [out, 1], zeros (symmetric) */
} ckpt_quant_role;

/* The msModelSlim name of a type ("W8A8_DYNAMIC", "W8A16"; "FLOAT" for CKPT_QUANT_NONE). */
CKPT_API const char *ckpt_quant_name(ckpt_quant quant);

/*
 * Parses a type: the CLI's and the rules' spelling ("w8a8-dynamic", "w8a16",
 * "none") or msModelSlim's ("W8A8_DYNAMIC", "W8A16", "FLOAT"), any case;
 * CKPT_ERR_ARG when unknown.
 */
CKPT_API int ckpt_quant_parse(const char *name, ckpt_quant *out);

/* What a conversion writes for (docs/targets.md). */
typedef enum ckpt_target {
    CKPT_TARGET_NONE = 0,      /* not set: ckpt_plan_build refuses it */
    CKPT_TARGET_ND,            /* "nd": names and layouts unchanged, types kept unless asked */
    CKPT_TARGET_ASCEND_310P,   /* "ascend-310p": float16 (the 310P has no bfloat16) */
    CKPT_TARGET_ASCEND_910B    /* "ascend-910b": bfloat16 (Atlas A2/A3) */
} ckpt_target;

/* The target's name ("ascend-910b"), or NULL for CKPT_TARGET_NONE and unknown values. */
CKPT_API const char *ckpt_target_name(ckpt_target target);

/* Parses a target's exact name; CKPT_TARGET_NONE when unknown. */
CKPT_API ckpt_target ckpt_target_from_name(const char *name);

/* The floating-point type a conversion gives every floating tensor. */
typedef enum ckpt_float_type {
    CKPT_FLOAT_TARGET = 0,     /* the target's choice (default) */
    CKPT_FLOAT_KEEP,           /* "keep": every tensor keeps its source type */
    CKPT_FLOAT_F16,            /* "f16" */
    CKPT_FLOAT_BF16,           /* "bf16" */
    CKPT_FLOAT_F32             /* "f32" */
} ckpt_float_type;

/* Its name ("bf16", "keep"; "target" for CKPT_FLOAT_TARGET), or NULL when unknown. */
CKPT_API const char *ckpt_float_type_name(ckpt_float_type type);

/* Parses "f16", "bf16", "f32", "keep" or "target", any case; CKPT_ERR_ARG when unknown. */
CKPT_API int ckpt_float_type_parse(const char *name, ckpt_float_type *out);

typedef struct ckpt_convert_options {
    size_t size;               /* sizeof(ckpt_convert_options): set by ckpt_convert_options_default */
    ckpt_target target;        /* required */
    ckpt_float_type dtype;
    ckpt_nz_mode nz;
    ckpt_overflow overflow;
    const char *rules;         /* extra rules (docs/rules.md), or NULL */
    const char *rules_origin;  /* names the rules in messages, e.g. their file */
    const char *rename;        /* a built-in rename set applied after the target's rules ("hf-llama"), or NULL */
    uint64_t max_shard_bytes;  /* default 5,000,000,000 */
    uint64_t max_memory;       /* working memory for tensor data; 0: 16 MiB per job */
    unsigned jobs;             /* worker threads; 0: one per core */
    int force;                 /* replace an existing destination */
    unsigned part, parts;      /* parts > 0: convert only part `part` (1..parts) of the output shards into
                                  DST.ckpt-parts/part-K-of-N; ckpt_parts_merge then builds DST
                                  (docs/scale-out.md) */
    ckpt_quant quant;          /* quantize every decoder-layer projection (rules `quant=` refine it) */
    unsigned nz_fp32_c0;       /* C0 of FRACTAL_NZ for 4-byte elements: 16 (torch_npu, GE) or 8
                                  (aclnnNpuFormatCast on A2/A3); 0 refuses NZ of such tensors */
} ckpt_convert_options;

/* Fills `opts` with the defaults: no target (one must be set), overflow saturate, 5 GB shards. */
CKPT_API void ckpt_convert_options_default(ckpt_convert_options *opts);

/*
 * The rows of the source's first dimension that a plan entry holds (rules
 * `rows=`, `groups=`, `split=`): the source's first groups * group_rows rows
 * are `groups` groups of `group_rows` consecutive rows, and the entry holds
 * rows [offset, offset + count) of each group, in group order, so its row r
 * is source row (r / count) * group_rows + offset + r % count.
 * groups == 0: every row, as stored.
 */
typedef struct ckpt_row_select {
    uint64_t groups, group_rows, offset, count;
} ckpt_row_select;

/* One output tensor of a plan. */
typedef struct ckpt_plan_entry {
    const char *name;            /* in the output */
    const char *source_name;
    ckpt_dtype source_dtype;
    ckpt_dtype dtype;            /* as stored */
    ckpt_layout layout;
    int transposed;              /* the last two dims were swapped before tiling */
    uint32_t rank;
    const uint64_t *shape;       /* as stored (NZ: the tile shape) */
    uint32_t nd_rank;
    const uint64_t *nd_shape;    /* the logical row-major shape the stored bytes encode */
    const char *scale_name;      /* fp8 block scales used to dequantize, or NULL */
    const char *alias_of;        /* output tensor this one shares data with (not stored), or NULL */
    ckpt_row_select rows;        /* rows of the source taken (groups 0: all) */
    uint32_t shard;              /* output file, see ckpt_plan_shard_name */
    uint64_t offset;             /* of its bytes within the shard's data */
    uint64_t nbytes;
    ckpt_quant quant;            /* the type of the quantized linear it belongs to, CKPT_QUANT_NONE if none */
    ckpt_quant_role quant_role;
    ckpt_dtype load_dtype;       /* quant_role != NONE: the type the weight is quantized in */
    uint64_t nz_c0;              /* FRACTAL_NZ: elements of one tile row (the last stored dimension) */
} ckpt_plan_entry;

typedef struct ckpt_plan ckpt_plan;

/*
 * Decides, for every tensor of `src`, its output name, element type, layout,
 * shard and offset, writing nothing.  `src` must outlive the plan.
 */
CKPT_API int ckpt_plan_build(ckpt_plan **out, const ckpt_source *src, const char *dst,
                             const ckpt_convert_options *opts, ckpt_error *err);

CKPT_API void ckpt_plan_free(ckpt_plan *plan);

CKPT_API size_t ckpt_plan_entry_count(const ckpt_plan *plan);
CKPT_API const ckpt_plan_entry *ckpt_plan_entry_at(const ckpt_plan *plan, size_t i);
CKPT_API size_t ckpt_plan_shard_count(const ckpt_plan *plan);
CKPT_API const char *ckpt_plan_shard_name(const ckpt_plan *plan, size_t shard);

/* Source tensors the plan leaves out (dropped by a rule, or fp8 scales consumed). */
CKPT_API size_t ckpt_plan_dropped_count(const ckpt_plan *plan);
CKPT_API const char *ckpt_plan_dropped(const ckpt_plan *plan, size_t i);

/* Bytes the execution reads and writes (tensor data only). */
CKPT_API uint64_t ckpt_plan_bytes_in(const ckpt_plan *plan);
CKPT_API uint64_t ckpt_plan_bytes_out(const ckpt_plan *plan);

/*
 * Called from worker threads, one call at a time, as data is converted.
 * Returning non-zero cancels the execution.
 */
typedef int (*ckpt_progress_fn)(void *payload, uint64_t bytes_done, uint64_t bytes_total);

typedef struct ckpt_convert_stats {
    uint64_t tensors;
    uint64_t bytes_in;
    uint64_t bytes_out;
    double seconds;
    ckpt_cast_counts counts;
} ckpt_convert_stats;

/*
 * Executes the plan: builds the destination folder under a temporary name
 * beside it (shards, index, config and small files, ckpt-manifest.json) and
 * renames it into place only when every byte is written and flushed.  On
 * failure or cancellation nothing is left at the destination.
 * `progress` and `stats` may be NULL.
 */
CKPT_API int ckpt_plan_execute(ckpt_plan *plan, ckpt_progress_fn progress, void *payload,
                               ckpt_convert_stats *stats, ckpt_error *err);

/*
 * Joins the parts of a partitioned conversion (ckpt_convert_options.parts)
 * into DST, byte for byte what a single ckpt_plan_execute writes: reads
 * DST.ckpt-parts/part-K-of-N, refuses (CKPT_ERR_FORMAT) a missing or
 * duplicated part or one whose plan digest differs (other source, options or
 * version), reopens the source to rebuild the plan, then writes the index,
 * config.json, side files and manifest and moves DST into place at once.
 * The staging folder is removed afterwards.  `force` replaces an existing DST.
 */
CKPT_API int ckpt_parts_merge(const char *dst, int force, ckpt_convert_stats *stats, ckpt_error *err);

/* Asks a running ckpt_plan_execute to stop; safe from any thread or a signal handler. */
CKPT_API void ckpt_plan_cancel(ckpt_plan *plan);

/*
 * A hidden temporary folder that a run killed before its end (SIGKILL, a
 * crash, a lost machine) left beside a destination.  A live run holds a
 * lock on its own, so none is ever listed while its run goes on.
 */
typedef struct ckpt_stale_output {
    const char *path;      /* the folder (".NAME.ckpt-tmp-XXXXXX") */
    const char *dst;       /* the destination its run was writing, beside it */
    uint64_t bytes;        /* what its files hold up */
    int same_dst;          /* it was writing the `dst` asked about */
} ckpt_stale_output;

/* Called once per stale folder, strings valid during the call; non-zero stops the listing. */
typedef int (*ckpt_stale_fn)(void *payload, const ckpt_stale_output *stale);

/*
 * Lists the stale temporary folders in the folder that holds `dst`, removing
 * none.  ckpt_plan_execute, ckpt_parts_merge and ckpt_unpack remove those of
 * their own destination when they start; the others are for the caller to
 * name or remove.
 */
CKPT_API int ckpt_stale_outputs(const char *dst, ckpt_stale_fn fn, void *payload, ckpt_error *err);

/* ======================================================================
 * Verification: proving a converted folder intact and faithful
 * ====================================================================== */

typedef enum ckpt_check {
    CKPT_CHECK_FILE,       /* a file the manifest lists: present, same size, same checksum */
    CKPT_CHECK_EXTRA_FILE, /* a file in the folder that the manifest does not list */
    CKPT_CHECK_HEADER,     /* a shard header's entry for a tensor agrees with the manifest */
    CKPT_CHECK_TENSOR,     /* a tensor's stored bytes match their checksum */
    CKPT_CHECK_FIDELITY,   /* a tensor holds exactly what converting its source gives */
    CKPT_CHECK_DIFF,       /* a tensor compared between two checkpoints (ckpt_diff) */
    CKPT_CHECK_OPTION      /* a conversion option `against` was proven with: its value and origin; fails when
                              given options that change bytes differ from the manifest's */
} ckpt_check;

/* One check's outcome.  Strings are valid only during the callback. */
typedef struct ckpt_finding {
    ckpt_check check;
    int ok;
    const char *file;        /* the file concerned, or NULL */
    const char *tensor;      /* the tensor concerned, or NULL */
    const char *message;     /* what differs, or what was checked when ok */
    double max_abs_error;    /* FIDELITY, DIFF: largest |stored - source| over the tensor */
    double max_rel_error;    /* ... and largest |stored - source| / |source| (source != 0) */
    uint64_t mismatched;     /* FIDELITY: elements whose bits differ from the recomputation */
    ckpt_cast_counts counts; /* FIDELITY: the cost of the cast, as convert counts it */
    ckpt_quant quant;        /* FIDELITY, DIFF: the tensor is an int8 weight of this type, compared dequantized */
    double sqnr_db;          /* ... and its signal-to-quantization-noise ratio in dB (INFINITY when exact) */
    const char *option;      /* OPTION: its name ("target", "dtype", "rules"...), */
    const char *value;       /* ... the value proven with ("none" when unset; a rules text in full), */
    const char *origin;      /* ... and "options" (ckpt_verify_options.convert) or "manifest" */
} ckpt_finding;

/*
 * Called once per check, one call at a time; returning non-zero stops the
 * run.  Findings come in the same order every run, whatever the number of
 * jobs: the checks of the folder as a whole (extra files by name), then the
 * manifest's files in order, then its tensors in plan order.
 */
typedef int (*ckpt_finding_fn)(void *payload, const ckpt_finding *finding);

typedef struct ckpt_verify_options {
    size_t size;             /* sizeof(ckpt_verify_options): set by ckpt_verify_options_default */
    const char *against;     /* a source checkpoint to prove fidelity against, or NULL */
    double max_abs_error;    /* with `against`: fail a tensor above this error (0: no bound) */
    double max_rel_error;
    unsigned jobs;           /* 0: one per core */
    uint64_t max_memory;     /* with `against`: working memory (0: 16 MiB per job) */
    const ckpt_open_options *open; /* how to open `against` (NULL: the defaults) */
    ckpt_progress_fn progress;     /* bytes hashed (and recomputed) so far, or NULL; called one */
    void *progress_payload;        /* call at a time, from worker threads; non-zero cancels the run */
    const ckpt_convert_options *convert; /* with `against`: the conversion to prove (target required);
                                            NULL: the options the manifest records, reported as such.
                                            Options that change bytes and differ from the manifest's
                                            fail (CKPT_CHECK_OPTION).  `open` gives deepspeed_weights. */
} ckpt_verify_options;

typedef struct ckpt_verify_summary {
    uint64_t checks;
    uint64_t failures;
    uint64_t bytes;          /* bytes hashed or compared */
    double seconds;
} ckpt_verify_summary;

/* Fills `opts` with the defaults: no source, no bounds, one job per core. */
CKPT_API void ckpt_verify_options_default(ckpt_verify_options *opts);

/*
 * Re-hashes every file and tensor that DST's ckpt-manifest.json lists,
 * checks every shard header against it, and with `against` recomputes every
 * tensor from the source.  Returns CKPT_OK when every check passed,
 * CKPT_ERR_MISMATCH when one failed, CKPT_ERR_CANCELLED when the progress
 * callback stopped it, another status when verification could not run (an
 * unreadable manifest is CKPT_ERR_FORMAT or CKPT_ERR_NOT_FOUND).
 */
CKPT_API int ckpt_verify(const char *dst, const ckpt_verify_options *opts, ckpt_finding_fn fn, void *payload,
                         ckpt_verify_summary *summary, ckpt_error *err);

typedef struct ckpt_diff_options {
    size_t size;             /* sizeof(ckpt_diff_options): set by ckpt_diff_options_default */
    int names_only;          /* compare names, element types and shapes, not values */
    double max_abs_error;    /* values within these bounds count as equal (0: exact) */
    double max_rel_error;
    const ckpt_open_options *open; /* how to open both checkpoints (NULL: the defaults) */
    ckpt_event_fn events;          /* each tensor of the first checkpoint once compared (done/total: its */
    void *events_payload;          /* bytes), or NULL; non-zero cancels the run (CKPT_ERR_CANCELLED) */
} ckpt_diff_options;

/* Fills `opts` with the defaults: values compared exactly, default open options. */
CKPT_API void ckpt_diff_options_default(ckpt_diff_options *opts);

/*
 * Compares two checkpoints of any formats and layouts: tensors only in one,
 * changed element types or logical shapes, and values (NZ tensors written by
 * convert are compared in their logical layout).  Returns CKPT_OK when they
 * agree, CKPT_ERR_MISMATCH when they differ.
 */
CKPT_API int ckpt_diff(const char *a, const char *b, const ckpt_diff_options *opts, ckpt_finding_fn fn,
                       void *payload, ckpt_verify_summary *summary, ckpt_error *err);

/* ======================================================================
 * Checksum lists: what `sha256sum -c` and `xxhsum -c` check (docs/manifest.md)
 * ====================================================================== */

typedef enum ckpt_sums_format {
    CKPT_SUMS_XXH128 = 0, /* XXH3-128 as `xxhsum -H2` prints it, the checksum of ckpt-manifest.json */
    CKPT_SUMS_SHA256 = 1  /* SHA-256 as `sha256sum` prints it, and the Hugging Face Hub gives its LFS files */
} ckpt_sums_format;

typedef struct ckpt_sums_options {
    size_t size;               /* sizeof(ckpt_sums_options): set by ckpt_sums_options_default */
    ckpt_sums_format format;   /* ckpt_sums: the digest listed (default XXH128); ckpt_verify_sums reads each
                                  line's own */
    unsigned jobs;             /* hashing threads; 0: one per core */
    ckpt_progress_fn progress; /* bytes hashed so far, or NULL; one call at a time; non-zero cancels */
    void *progress_payload;
    int ignore_missing;        /* ckpt_verify_sums: a listed file the folder lacks is no failure and gives
                                  no finding (sha256sum --ignore-missing); none present at all still fails */
} ckpt_sums_options;

CKPT_API void ckpt_sums_options_default(ckpt_sums_options *opts);

/*
 * Called once per file, in path order, one call at a time.  `line` is the
 * line `sha256sum` (or `xxhsum -H2`) prints for it, newline included; a
 * name holding a backslash or newline is escaped as GNU coreutils does.
 * Returning non-zero stops the run (CKPT_ERR_CANCELLED).
 */
typedef int (*ckpt_sum_fn)(void *payload, const char *path, const char *hex, const char *line);

/*
 * Hashes every regular file under `dir` (or `dir` itself when it is a
 * file): paths relative to it, sorted bytewise; names starting with '.'
 * skipped, symbolic links to files followed, links to folders not.
 */
CKPT_API int ckpt_sums(const char *dir, const ckpt_sums_options *opts, ckpt_sum_fn fn, void *payload,
                       ckpt_error *err);

/*
 * Checks the files of folder `dir` against the checksum list `sums`:
 * `sha256sum` / `xxhsum -H2` lines, their BSD `--tag` forms, a
 * ckpt-manifest.json (its "files"), or a Hugging Face Hub listing of a
 * repository's files (the tree API's JSON array or model info's "siblings":
 * LFS files checked by SHA-256, the others by their git blob id).  With
 * the manifest of a source (ckpt_manifest_create), a file that differs is
 * followed by one CKPT_CHECK_TENSOR finding per tensor it holds, naming
 * those whose logical bytes changed.  One CKPT_CHECK_FILE finding per listed
 * file, in list order; files the list does not name are not looked at.
 * Returns CKPT_OK when every file matches, CKPT_ERR_MISMATCH when one is
 * missing or differs, CKPT_ERR_FORMAT (naming the list's file and line)
 * for a malformed list or a path outside `dir`.
 */
CKPT_API int ckpt_verify_sums(const char *dir, const char *sums, const ckpt_sums_options *opts, ckpt_finding_fn fn,
                              void *payload, ckpt_verify_summary *summary, ckpt_error *err);

/* How ckpt_manifest_create reads its source. */
typedef struct ckpt_manifest_options {
    size_t size;                   /* sizeof(ckpt_manifest_options): set by ckpt_manifest_options_default */
    const ckpt_open_options *open; /* how the source is opened (NULL: the defaults) */
    unsigned jobs;                 /* hashing threads; 0: one per core */
    ckpt_progress_fn progress;     /* bytes hashed so far, or NULL; one call at a time; non-zero cancels */
    void *progress_payload;
} ckpt_manifest_options;

CKPT_API void ckpt_manifest_options_default(ckpt_manifest_options *opts);

/*
 * The manifest of a source as it is, converting nothing: ckpt-manifest.json's
 * format with "target": null, "files" every file under SRC (as ckpt_sums
 * lists them) with its size and XXH3-128, and "tensors" every tensor as
 * ckpt_source_read presents it, with the XXH3-128 of those logical bytes.
 * Paths are relative to SRC.  `*json` receives the document as a
 * NUL-terminated string, freed with ckpt_free.
 */
CKPT_API int ckpt_manifest_create(const char *src, const ckpt_manifest_options *opts, char **json,
                                  ckpt_error *err);

/* Frees memory the library handed over (ckpt_manifest_create's text). */
CKPT_API void ckpt_free(void *p);

/* ======================================================================
 * Bundles: a checkpoint compressed for transport, read in place (docs/bundle.md)
 * ====================================================================== */

typedef struct ckpt_pack_options {
    size_t size;                   /* sizeof(ckpt_pack_options): set by ckpt_pack_options_default */
    uint64_t frame_bytes;          /* bytes of a file per frame, the unit read at random (default 1 MiB;
                                      64 KiB to 16 MiB, a multiple of 8) */
    uint64_t volume_bytes;         /* 0: frames inside BUNDLE; else in volumes BUNDLE.001, ... of at most
                                      this many bytes beside it, BUNDLE holding the index only */
    int level;                     /* zstd level for bytes that are not floating-point tensor data (default 1);
                                      floating-point planes are entropy-coded whatever the level */
    unsigned jobs;                 /* compressing threads; 0: one per core */
    unsigned part, parts;          /* parts > 0: pack only part `part` (1..parts)'s share of the files, into
                                      BUNDLE.part-K-of-N and its volumes; ckpt_pack_merge then writes BUNDLE */
    int force;                     /* replace an existing bundle */
    const ckpt_open_options *open; /* how SRC is opened to find its tensors (NULL: the defaults) */
    ckpt_progress_fn progress;     /* bytes packed so far, or NULL; non-zero cancels */
    void *progress_payload;
} ckpt_pack_options;

typedef struct ckpt_pack_stats {
    uint64_t files;
    uint64_t tensor_bytes;         /* bytes of tensor data among the files' bytes */
    uint64_t bytes_in;             /* the files' bytes (this part's, with parts) */
    uint64_t bytes_out;            /* the bundle's bytes: index file and volumes */
    uint64_t volumes;
    double seconds;
} ckpt_pack_stats;

/* Fills `opts` with the defaults above. */
CKPT_API void ckpt_pack_options_default(ckpt_pack_options *opts);

/*
 * Packs the checkpoint at SRC (a folder, every file in it, or one file) into
 * the bundle BUNDLE.  SRC is opened with its reader first, so that tensor
 * data is told from headers; floating-point data is split into byte planes
 * and every frame compressed with zstd on `jobs` threads.  Each output file
 * is built under a temporary name and appears only when complete and
 * flushed; the index file is written last.  `stats` may be NULL.
 */
CKPT_API int ckpt_pack(const char *src, const char *bundle, const ckpt_pack_options *opts, ckpt_pack_stats *stats,
                       ckpt_error *err);

/*
 * Joins the parts of a partitioned pack (ckpt_pack_options.parts) into the
 * bundle: reads every BUNDLE.part-K-of-N, refuses (CKPT_ERR_FORMAT) a
 * missing or duplicated part or one of another plan, writes BUNDLE (which
 * names the parts' volumes; nothing is copied) and removes the part files.
 */
CKPT_API int ckpt_pack_merge(const char *bundle, int force, ckpt_pack_stats *stats, ckpt_error *err);

typedef struct ckpt_unpack_options {
    size_t size;                   /* sizeof(ckpt_unpack_options): set by ckpt_unpack_options_default */
    unsigned jobs;                 /* decompressing threads; 0: one per core */
    int force;                     /* replace an existing destination */
    ckpt_progress_fn progress;     /* bytes written so far, or NULL; non-zero cancels */
    void *progress_payload;
} ckpt_unpack_options;

typedef struct ckpt_unpack_stats {
    uint64_t files;                /* files written, each checked against its XXH3-128 */
    uint64_t damaged;              /* files left out because a frame of theirs is damaged or lost */
    uint64_t bytes;
    double seconds;
} ckpt_unpack_stats;

CKPT_API void ckpt_unpack_options_default(ckpt_unpack_options *opts);

/*
 * Writes the files a bundle holds to DST (a folder, or the one file a file
 * was packed from), byte for byte, each checked against the XXH3-128 the
 * bundle holds for it.  DST is built under a temporary name beside it and
 * renamed into place when complete and flushed.  A file with a damaged or
 * missing frame is left out and reported through `fn` (a failed
 * CKPT_CHECK_FILE finding naming the file, and the tensor whose bytes were
 * lost); every intact file is still written and CKPT_ERR_FORMAT returned.
 * `fn` and `stats` may be NULL.
 */
CKPT_API int ckpt_unpack(const char *bundle, const char *dst, const ckpt_unpack_options *opts, ckpt_finding_fn fn,
                         void *payload, ckpt_unpack_stats *stats, ckpt_error *err);

#ifdef __cplusplus
}
#endif

#endif /* CKPT_H */
