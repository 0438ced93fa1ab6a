/*
 * safetensors_write.c: the streaming safetensors writer (ckpt_writer_*).
 *
 * The header is computed from the plan before any data is written, so data
 * can stream through in order without the file ever being held in memory.
 * Small writes are gathered in a buffer; large ones go straight to the file.
 */
#include "ckpt.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"
#include "libckpt/io/atomic_file.h"
#include "safetensors.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define WRITE_BUFFER_BYTES ((size_t)1 << 20)

struct ckpt_writer {
    struct atomic_file file;
    uint64_t data_bytes;   /* total the plan needs */
    uint64_t data_written;
    uint8_t *buffer;
    size_t buffered;
    bool finished;
};

static int add_tensor_json(json_t *root, const ckpt_tensor *t, uint64_t *offset, const char *path,
                           ckpt_error *err)
{
    size_t esize = ckpt_dtype_size(t->dtype);
    uint64_t count, nbytes, end;
    if (esize == 0)
        return ckpt_fail(err, CKPT_ERR_ARG, "%s: tensor %s: invalid dtype", path, t->name);
    if (!ckpt_product_u64(t->shape, t->rank, &count) || !ckpt_mul_u64(count, esize, &nbytes) ||
        !ckpt_add_u64(*offset, nbytes, &end) || end > (uint64_t)INT64_MAX)
        /* the tensor comes from a source: too large for the format is a fact of the input, not a misuse */
        return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: tensor %s: size overflows safetensors' 63-bit offsets",
                         path, t->name);
    if (strcmp(t->name, "__metadata__") == 0 || json_object_get(root, t->name))
        return ckpt_fail(err, CKPT_ERR_ARG, "%s: tensor name %s is used twice or reserved", path, t->name);
    /* every extent is at most `count`, which fits in INT64 since end does */
    json_t *shape = json_array();
    for (uint32_t d = 0; d < t->rank && shape; d++) {
        if (json_array_append_new(shape, json_integer((json_int_t)t->shape[d]))) {
            json_decref(shape);
            shape = NULL;
        }
    }
    json_t *info = json_pack("{s:s, s:o, s:[I, I]}", "dtype", ckpt_dtype_name(t->dtype), "shape", shape,
                             "data_offsets", (json_int_t)*offset, (json_int_t)end);
    if (!info || json_object_set_new(root, t->name, info))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory building the header", path);
    *offset = end;
    return CKPT_OK;
}

int safetensors_header_build(const char *path, const ckpt_tensor *tensors, size_t tensor_count,
                        const ckpt_kv *metadata, size_t metadata_count, char **out, size_t *out_len,
                        uint64_t *data_bytes, ckpt_error *err)
{
    json_t *root = json_object();
    int rc = root ? CKPT_OK : ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    if (!rc && metadata_count) {
        json_t *meta = json_object();
        for (size_t i = 0; i < metadata_count && meta; i++)
            if (json_object_set_new(meta, metadata[i].key, json_string(metadata[i].value)))
                rc = ckpt_fail(err, CKPT_ERR_ARG, "%s: metadata %s is not valid UTF-8", path, metadata[i].key);
        if (!rc && (!meta || json_object_set_new(root, "__metadata__", meta)))
            rc = ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < tensor_count && !rc; i++)
        rc = add_tensor_json(root, &tensors[i], &offset, path, err);
    char *text = rc ? NULL : json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (rc)
        return rc;
    if (!text)
        return ckpt_fail(err, CKPT_ERR_ARG, "%s: a tensor name is not valid UTF-8", path);
    size_t len = strlen(text), padded = (len + 7) & ~(size_t)7;
    char *grown = realloc(text, padded + 1);
    if (!grown) {
        free(text);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    }
    memset(grown + len, ' ', padded - len);
    *out = grown;
    *out_len = padded;
    *data_bytes = offset;
    return CKPT_OK;
}

int ckpt_writer_open(ckpt_writer **out, const char *path, const ckpt_tensor *tensors, size_t tensor_count,
                     const ckpt_kv *metadata, size_t metadata_count, ckpt_error *err)
{
    ckpt_error_clear(err);
    if (!out || !path || (tensor_count && !tensors) || (metadata_count && !metadata))
        return ckpt_fail(err, CKPT_ERR_ARG, "ckpt_writer_open: NULL argument");
    *out = NULL;
    char *header = NULL;
    size_t header_len = 0;
    uint64_t data_bytes = 0;
    int rc = safetensors_header_build(path, tensors, tensor_count, metadata, metadata_count, &header, &header_len,
                          &data_bytes, err);
    if (rc)
        return rc;
    ckpt_writer *w = calloc(1, sizeof *w);
    if (w)
        w->buffer = malloc(WRITE_BUFFER_BYTES);
    if (!w || !w->buffer) {
        free(header);
        if (w)
            free(w);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    }
    w->file.fd = -1;
    w->data_bytes = data_bytes;
    uint8_t len_le[8];
    for (int i = 0; i < 8; i++)
        len_le[i] = (uint8_t)((uint64_t)header_len >> (8 * i));
    rc = atomic_file_create(&w->file, path, err);
    if (!rc)
        rc = atomic_file_write(&w->file, len_le, sizeof len_le, err);
    if (!rc)
        rc = atomic_file_write(&w->file, header, header_len, err);
    free(header);
    if (rc) {
        ckpt_writer_free(w);
        return rc;
    }
    *out = w;
    return CKPT_OK;
}

static int flush_buffer(ckpt_writer *w, ckpt_error *err)
{
    int rc = atomic_file_write(&w->file, w->buffer, w->buffered, err);
    w->buffered = 0;
    return rc;
}

int ckpt_writer_write(ckpt_writer *w, const void *data, size_t len, ckpt_error *err)
{
    if (w->finished || len > w->data_bytes - w->data_written)
        return ckpt_fail(err, CKPT_ERR_ARG, "%s: more data written than the tensors hold", w->file.final_path);
    w->data_written += len;
    if (w->buffered + len <= WRITE_BUFFER_BYTES) {
        memcpy(w->buffer + w->buffered, data, len);
        w->buffered += len;
        return CKPT_OK;
    }
    int rc = flush_buffer(w, err);
    return rc ? rc : atomic_file_write(&w->file, data, len, err);
}

int ckpt_writer_finish(ckpt_writer *w, ckpt_error *err)
{
    if (w->finished)
        return ckpt_fail(err, CKPT_ERR_ARG, "%s: already finished", w->file.final_path);
    if (w->data_written != w->data_bytes)
        return ckpt_fail(err, CKPT_ERR_ARG, "%s: %llu of %llu data bytes written", w->file.final_path,
                         (unsigned long long)w->data_written, (unsigned long long)w->data_bytes);
    int rc = flush_buffer(w, err);
    if (!rc)
        rc = atomic_file_commit(&w->file, err);
    if (!rc)
        w->finished = true;
    return rc;
}

void ckpt_writer_free(ckpt_writer *w)
{
    if (!w)
        return;
    atomic_file_discard(&w->file);
    free(w->buffer);
    free(w);
}
