/*
 * torch_save.h: just enough of torch.save's zip format (pickle protocol 2,
 * stored entries) for the benchmark generators to write large .bin and
 * Megatron files without Python.  Not a general writer: bf16 tensors only.
 */
#ifndef CKPT_BENCH_TORCH_SAVE_H
#define CKPT_BENCH_TORCH_SAVE_H

#include "formats/torch/zip.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- a pickle, built in memory ---- */

struct pickle {
    uint8_t *bytes;
    size_t len, cap;
};

static void pk_put(struct pickle *p, const void *data, size_t n)
{
    if (p->len + n > p->cap) {
        p->cap = (p->len + n) * 2;
        if (!(p->bytes = realloc(p->bytes, p->cap))) {
            perror("pickle");
            exit(1);
        }
    }
    memcpy(p->bytes + p->len, data, n);
    p->len += n;
}

static void pk_op(struct pickle *p, char op)
{
    pk_put(p, &op, 1);
}

static void pk_global(struct pickle *p, const char *module_and_name)   /* "module\nname\n" */
{
    pk_op(p, 'c');
    pk_put(p, module_and_name, strlen(module_and_name));
}

static void pk_str(struct pickle *p, const char *s)
{
    uint32_t n = (uint32_t)strlen(s);
    uint8_t le[4] = {(uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24)};
    pk_op(p, 'X');
    pk_put(p, le, 4);
    pk_put(p, s, n);
}

static void pk_int(struct pickle *p, uint64_t v)
{
    uint8_t le[9];
    size_t n = 0;
    do {
        le[n++] = (uint8_t)v;
        v >>= 8;
    } while (v);
    if (le[n - 1] & 0x80)
        le[n++] = 0;   /* LONG1 is two's complement: keep it positive */
    pk_op(p, (char)0x8a);
    uint8_t count = (uint8_t)n;
    pk_put(p, &count, 1);
    pk_put(p, le, n);
}

static void pk_float(struct pickle *p, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    uint8_t be[8];
    for (int i = 0; i < 8; i++)
        be[i] = (uint8_t)(bits >> (56 - 8 * i));
    pk_op(p, 'G');
    pk_put(p, be, 8);
}

/* "args": argparse.Namespace(), then the caller's name/value pairs, then pk_args_end: Megatron's args. */
static void pk_args_begin(struct pickle *p)
{
    pk_str(p, "args");
    pk_global(p, "argparse\nNamespace\n");
    pk_put(p, ")R}(", 4);   /* called with no arguments, its BUILD state a dict */
}

static void pk_args_end(struct pickle *p)
{
    pk_put(p, "ub", 2);
}

static void pk_arg_int(struct pickle *p, const char *name, uint64_t v)
{
    pk_str(p, name);
    pk_int(p, v);
}

/* torch._utils._rebuild_tensor_v2 of a contiguous bf16 tensor whose bytes are entry data/KEY. */
static void pk_tensor(struct pickle *p, unsigned key, const uint64_t *shape, unsigned rank)
{
    char name[16];
    uint64_t numel = 1, stride = 1;
    for (unsigned i = 0; i < rank; i++)
        numel *= shape[i];
    snprintf(name, sizeof name, "%u", key);
    pk_global(p, "torch._utils\n_rebuild_tensor_v2\n");
    pk_op(p, '(');
    pk_op(p, '(');
    pk_str(p, "storage");
    pk_global(p, "torch\nBFloat16Storage\n");
    pk_str(p, name);
    pk_str(p, "cpu");
    pk_int(p, numel);
    pk_op(p, 't');
    pk_op(p, 'Q');   /* BINPERSID */
    pk_int(p, 0);
    pk_op(p, '(');
    for (unsigned i = 0; i < rank; i++)
        pk_int(p, shape[i]);
    pk_op(p, 't');
    pk_op(p, '(');
    uint64_t strides[8];
    for (unsigned i = rank; i-- > 0;) {
        strides[i] = stride;
        stride *= shape[i];
    }
    for (unsigned i = 0; i < rank; i++)
        pk_int(p, strides[i]);
    pk_op(p, 't');
    pk_op(p, (char)0x89);   /* NEWFALSE: requires_grad */
    pk_global(p, "collections\nOrderedDict\n");
    pk_op(p, ')');
    pk_op(p, 'R');
    pk_op(p, 't');
    pk_op(p, 'R');
}

/* ---- the zip around it: stored entries, CRCs patched in after each entry's bytes ---- */

struct zip_out {
    FILE *f;
    const char *path;
    struct {
        char name[64];
        uint64_t offset, size;
        uint32_t crc;
    } entries[4096];
    unsigned count;
};

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void zo_write(struct zip_out *z, const void *data, size_t n)
{
    if (fwrite(data, 1, n, z->f) != n) {
        perror(z->path);
        exit(1);
    }
}

static void zo_begin(struct zip_out *z, const char *name)
{
    if (z->count == sizeof z->entries / sizeof z->entries[0]) {
        fprintf(stderr, "%s: too many entries\n", z->path);
        exit(1);
    }
    snprintf(z->entries[z->count].name, sizeof z->entries[z->count].name, "%s", name);
    z->entries[z->count].offset = (uint64_t)ftello(z->f);
    z->entries[z->count].size = 0;
    z->entries[z->count].crc = 0;
    uint8_t h[30] = {0};
    put_le(h, 0x04034b50, 4);
    put_le(h + 4, 20, 2);
    put_le(h + 26, strlen(name), 2);
    zo_write(z, h, sizeof h);
    zo_write(z, name, strlen(name));
}

static void zo_data(struct zip_out *z, const void *data, size_t n)
{
    z->entries[z->count].crc = zip_crc32(z->entries[z->count].crc, data, n);
    z->entries[z->count].size += n;
    zo_write(z, data, n);
}

static void zo_end(struct zip_out *z)
{
    uint8_t patch[12];
    put_le(patch, z->entries[z->count].crc, 4);
    put_le(patch + 4, z->entries[z->count].size, 4);
    put_le(patch + 8, z->entries[z->count].size, 4);
    off_t end = ftello(z->f);
    fseeko(z->f, (off_t)z->entries[z->count].offset + 14, SEEK_SET);
    zo_write(z, patch, sizeof patch);
    fseeko(z->f, end, SEEK_SET);
    z->count++;
}

static void zo_finish(struct zip_out *z)
{
    uint64_t start = (uint64_t)ftello(z->f);
    for (unsigned i = 0; i < z->count; i++) {
        uint8_t c[46] = {0};
        put_le(c, 0x02014b50, 4);
        put_le(c + 4, 20, 2);
        put_le(c + 6, 20, 2);
        put_le(c + 16, z->entries[i].crc, 4);
        put_le(c + 20, z->entries[i].size, 4);
        put_le(c + 24, z->entries[i].size, 4);
        put_le(c + 28, strlen(z->entries[i].name), 2);
        put_le(c + 42, z->entries[i].offset, 4);
        zo_write(z, c, sizeof c);
        zo_write(z, z->entries[i].name, strlen(z->entries[i].name));
    }
    uint64_t size = (uint64_t)ftello(z->f) - start;
    uint8_t e[22] = {0};
    put_le(e, 0x06054b50, 4);
    put_le(e + 8, z->count, 2);
    put_le(e + 10, z->count, 2);
    put_le(e + 12, size, 4);
    put_le(e + 16, start, 4);
    zo_write(z, e, sizeof e);
    if (fclose(z->f) != 0) {
        perror(z->path);
        exit(1);
    }
}

/* Opens a torch.save file and writes its pickle; the caller then writes entries archive/data/0, 1, ... */
static void zo_open(struct zip_out *z, const char *path, const struct pickle *p)
{
    z->path = path;
    z->count = 0;
    if (!(z->f = fopen(path, "wb"))) {
        perror(path);
        exit(1);
    }
    zo_begin(z, "archive/data.pkl");
    zo_data(z, p->bytes, p->len);
    zo_end(z);
}

/* Writes archive/version and the central directory: entries must stay under 4 GiB (no zip64 here). */
static void zo_close(struct zip_out *z)
{
    zo_begin(z, "archive/version");
    zo_data(z, "3\n", 2);
    zo_end(z);
    zo_finish(z);
}

/* DIR/latest_checkpointed_iteration.txt naming iteration 1, and DIR/iter_0000001/: a Megatron-LM legacy folder. */
static int megatron_folder(const char *dir)
{
    char path[4096];
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/latest_checkpointed_iteration.txt", dir);
    FILE *latest = fopen(path, "w");
    if (!latest)
        return 1;
    fprintf(latest, "1\n");
    fclose(latest);
    snprintf(path, sizeof path, "%s/iter_0000001", dir);
    return mkdir(path, 0755) != 0;
}

#endif
