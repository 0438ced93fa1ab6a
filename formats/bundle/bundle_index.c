/*
 * bundle_index.c: the header, plan, table, footer and frame trailers of a
 * bundle, encoded and parsed; see bundle_format.h and docs/bundle.md.
 * Everything parsed here comes from a file someone else made: every count
 * and length is checked against the bytes that are there before it is used.
 */
#include "bundle_format.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zstd.h>

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- header, footer, trailer ---- */

void bundle_header_encode(uint8_t out[BUNDLE_HEADER_BYTES], const struct bundle_header *h)
{
    memset(out, 0, BUNDLE_HEADER_BYTES);
    memcpy(out, BUNDLE_MAGIC, BUNDLE_MAGIC_BYTES);
    put32(out + 8, h->version);
    put32(out + 12, h->kind);
    put64(out + 16, h->set_id);
    put32(out + 24, h->part);
    put32(out + 28, h->parts);
    put32(out + 32, h->volume);
    put64(out + 40, h->plan_bytes);
    put64(out + 56, XXH3_64bits(out, 56));
}

int bundle_header_parse(const uint8_t in[BUNDLE_HEADER_BYTES], struct bundle_header *h, const char *path,
                        ckpt_error *err)
{
    if (memcmp(in, BUNDLE_MAGIC, BUNDLE_MAGIC_BYTES) != 0)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: not a ckpt bundle (no bundle header)", path);
    if (ckpt_load_le64(in + 56) != XXH3_64bits(in, 56))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: the bundle header is damaged (its checksum differs)", path);
    h->version = ckpt_load_le32(in + 8);
    h->kind = ckpt_load_le32(in + 12);
    h->set_id = ckpt_load_le64(in + 16);
    h->part = ckpt_load_le32(in + 24);
    h->parts = ckpt_load_le32(in + 28);
    h->volume = ckpt_load_le32(in + 32);
    h->plan_bytes = ckpt_load_le64(in + 40);
    if (h->version != BUNDLE_VERSION)
        return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: bundle format version %u (this ckpt reads version %d)", path,
                         h->version, BUNDLE_VERSION);
    bool parted = h->parts && h->part >= 1 && h->part <= h->parts, unparted = !h->parts && !h->part;
    bool fits = h->kind == BUNDLE_KIND_BUNDLE ? unparted && !h->volume && h->plan_bytes
              : h->kind == BUNDLE_KIND_PART   ? parted && !h->volume && h->plan_bytes
              : h->kind == BUNDLE_KIND_VOLUME ? (parted || unparted) && h->volume && !h->plan_bytes
                                              : false;
    if (!fits || ckpt_load_le32(in + 36) || ckpt_load_le64(in + 48))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: the bundle header's fields contradict each other", path);
    return CKPT_OK;
}

void bundle_footer_encode(uint8_t out[BUNDLE_FOOTER_BYTES], uint64_t table_offset, uint64_t table_bytes,
                          uint64_t table_hash)
{
    put64(out, table_offset);
    put64(out + 8, table_bytes);
    put64(out + 16, table_hash);
    memcpy(out + 24, BUNDLE_FOOTER_MAGIC, 8);
}

int bundle_footer_parse(const uint8_t in[BUNDLE_FOOTER_BYTES], uint64_t file_size, uint64_t *table_offset,
                        uint64_t *table_bytes, uint64_t *table_hash, const char *path, ckpt_error *err)
{
    if (memcmp(in + 24, BUNDLE_FOOTER_MAGIC, 8) != 0)
        return ckpt_fail(err, CKPT_ERR_FORMAT,
                         "%s: truncated or damaged: the table that ends a bundle is missing (%llu bytes); unpacking "
                         "recovers the files whose frames come before the cut", path,
                         (unsigned long long)file_size);
    *table_offset = ckpt_load_le64(in);
    *table_bytes = ckpt_load_le64(in + 8);
    *table_hash = ckpt_load_le64(in + 16);
    uint64_t end;
    if (!ckpt_add_u64(*table_offset, *table_bytes, &end) || !ckpt_add_u64(end, BUNDLE_FOOTER_BYTES, &end) ||
        end != file_size || *table_offset < BUNDLE_HEADER_BYTES)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: the footer places the table at bytes %llu+%llu, outside the file",
                         path, (unsigned long long)*table_offset, (unsigned long long)*table_bytes);
    return CKPT_OK;
}

void bundle_trailer_encode(uint8_t out[BUNDLE_TRAILER_BYTES], uint32_t file, uint64_t file_offset, uint64_t hash)
{
    put32(out, BUNDLE_TRAILER_MAGIC);
    put32(out + 4, BUNDLE_TRAILER_BYTES - 8);
    put32(out + 8, file);
    put32(out + 12, 0);
    put64(out + 16, file_offset);
    put64(out + 24, hash);
}

bool bundle_trailer_parse(const uint8_t in[BUNDLE_TRAILER_BYTES], uint32_t *file, uint64_t *file_offset,
                          uint64_t *hash)
{
    if (ckpt_load_le32(in) != BUNDLE_TRAILER_MAGIC || ckpt_load_le32(in + 4) != BUNDLE_TRAILER_BYTES - 8 ||
        ckpt_load_le32(in + 12) != 0)
        return false;
    *file = ckpt_load_le32(in + 8);
    *file_offset = ckpt_load_le64(in + 16);
    *hash = ckpt_load_le64(in + 24);
    return true;
}

/* ---- encoding ---- */

static void reserve(struct bundle_bytes *b, size_t more)
{
    if (b->failed || b->len + more <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    uint8_t *grown = realloc(b->data, cap);
    if (!grown) {
        b->failed = true;
        return;
    }
    b->data = grown;
    b->cap = cap;
}

static void emit(struct bundle_bytes *b, const void *p, size_t n)
{
    reserve(b, n);
    if (!b->failed && n) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
    }
}

static void emit32(struct bundle_bytes *b, uint32_t v)
{
    uint8_t p[4];
    put32(p, v);
    emit(b, p, 4);
}

static void emit64(struct bundle_bytes *b, uint64_t v)
{
    uint8_t p[8];
    put64(p, v);
    emit(b, p, 8);
}

static void emit_str(struct bundle_bytes *b, const char *s)
{
    size_t n = strlen(s);
    emit32(b, (uint32_t)n);
    emit(b, s, n);
}

void bundle_bytes_free(struct bundle_bytes *b)
{
    free(b->data);
    *b = (struct bundle_bytes){0};
}

int bundle_plan_encode(const struct bundle_index *ix, struct bundle_bytes *out, ckpt_error *err)
{
    emit32(out, ix->flags);
    emit64(out, ix->frame_bytes);
    emit_str(out, ix->format ? ix->format : "");
    emit32(out, (uint32_t)ix->file_count);
    for (size_t i = 0; i < ix->file_count; i++) {
        const struct bundle_file *f = &ix->files[i];
        emit_str(out, f->path);
        emit64(out, f->size);
        emit32(out, f->flags);
        emit32(out, (uint32_t)f->segment_count);
        for (size_t s = f->first_segment; s < f->first_segment + f->segment_count; s++) {
            const struct bundle_segment *g = &ix->segments[s];
            emit64(out, g->length);
            uint8_t kind_width[4] = {g->kind, g->width, 0, 0};
            emit(out, kind_width, 4);
            emit32(out, g->name_count);
            for (uint32_t n = 0; n < g->name_count; n++)
                emit_str(out, g->names[n]);
        }
    }
    return out->failed ? ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory encoding a bundle plan") : CKPT_OK;
}

int bundle_table_encode(const struct bundle_index *ix, struct bundle_bytes *out, ckpt_error *err)
{
    emit32(out, (uint32_t)(ix->volume_count - 1));
    for (size_t v = 1; v < ix->volume_count; v++) {
        emit_str(out, ix->volumes[v].name);
        emit64(out, ix->volumes[v].size);
        emit(out, ix->volumes[v].hash, 16);
    }
    for (size_t i = 0; i < ix->frame_count; i++) {
        emit32(out, ix->frames[i].volume);
        emit32(out, ix->frames[i].csize);
        emit64(out, ix->frames[i].offset);
    }
    for (size_t i = 0; i < ix->file_count; i++)
        emit(out, ix->files[i].hash, 16);
    for (size_t i = 0; i < ix->segment_count; i++)
        emit(out, ix->segments[i].hash, 16);
    return out->failed ? ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory encoding a bundle table") : CKPT_OK;
}

/* ---- parsing ---- */

struct cursor {
    const uint8_t *p;
    size_t left;
    const char *path, *what;
    ckpt_error *err;
};

static int short_of(struct cursor *c)
{
    return ckpt_fail(c->err, CKPT_ERR_FORMAT, "%s: the bundle's %s ends early (damaged)", c->path, c->what);
}

static int take(struct cursor *c, size_t n, const uint8_t **out)
{
    if (n > c->left)
        return short_of(c);
    *out = c->p;
    c->p += n;
    c->left -= n;
    return CKPT_OK;
}

static int take32(struct cursor *c, uint32_t *v)
{
    const uint8_t *p = NULL;
    int rc = take(c, 4, &p);
    if (!rc)
        *v = ckpt_load_le32(p);
    return rc;
}

static int take64(struct cursor *c, uint64_t *v)
{
    const uint8_t *p = NULL;
    int rc = take(c, 8, &p);
    if (!rc)
        *v = ckpt_load_le64(p);
    return rc;
}

/* A string of at most `max` bytes without NUL, copied. */
static int take_str(struct cursor *c, size_t max, char **out)
{
    uint32_t n;
    const uint8_t *p = NULL;
    int rc = take32(c, &n);
    if (!rc && n > max)
        rc = ckpt_fail(c->err, CKPT_ERR_FORMAT, "%s: a name of %u bytes in the bundle's %s (at most %zu)", c->path, n,
                       c->what, max);
    if (!rc)
        rc = take(c, n, &p);
    if (!rc && memchr(p, 0, n))
        rc = ckpt_fail(c->err, CKPT_ERR_FORMAT, "%s: a name with a NUL byte in the bundle's %s", c->path, c->what);
    if (rc)
        return rc;
    if (!(*out = malloc((size_t)n + 1)))
        return ckpt_fail(c->err, CKPT_ERR_NOMEM, "%s: out of memory", c->path);
    memcpy(*out, p, n);
    (*out)[n] = '\0';
    return CKPT_OK;
}

/* A path that names a file inside the bundle: relative, no empty, "." or ".." component. */
static bool inside_path(const char *p)
{
    if (!*p || *p == '/')
        return false;
    for (const char *s = p; *s;) {
        size_t n = strcspn(s, "/");
        if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            return false;
        s += n;
        if (*s == '/' && !*++s)
            return false;
    }
    return true;
}

static int by_path(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* No two files share a path, and no file sits where another's folder would be ("a" and "a/b"). */
static int check_paths(const struct bundle_index *ix, const char *path, ckpt_error *err)
{
    if (ix->file_count < 2)
        return CKPT_OK;
    char **sorted = malloc(ix->file_count * sizeof *sorted);
    if (!sorted)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < ix->file_count; i++)
        sorted[i] = ix->files[i].path;
    qsort(sorted, ix->file_count, sizeof *sorted, by_path);
    int rc = CKPT_OK;
    for (size_t i = 0; i + 1 < ix->file_count && !rc; i++)
        if (strcmp(sorted[i], sorted[i + 1]) == 0)
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: the bundle holds %.200s twice", path, sorted[i]);
    char prefix[4096];
    for (size_t i = 0; i < ix->file_count && !rc; i++) {
        const char *p = sorted[i];
        for (const char *slash = strchr(p, '/'); slash && !rc; slash = strchr(slash + 1, '/')) {
            size_t n = (size_t)(slash - p);
            memcpy(prefix, p, n);
            prefix[n] = '\0';
            const char *key = prefix;
            if (bsearch(&key, sorted, ix->file_count, sizeof *sorted, by_path))
                rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: the bundle holds %.200s both as a file and as a folder",
                               path, prefix);
        }
    }
    free(sorted);
    return rc;
}

static int grow(void **array, size_t *cap, size_t need, size_t elem, const char *path, ckpt_error *err)
{
    if (need <= *cap)
        return CKPT_OK;
    size_t cap2 = *cap ? *cap : 16;
    while (cap2 < need)
        cap2 *= 2;
    void *grown = reallocarray(*array, cap2, elem);
    if (!grown)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory reading the bundle's plan", path);
    *array = grown;
    *cap = cap2;
    return CKPT_OK;
}

/* Reads one segment of file `fi`, starting at byte `at` of it, and the frames it implies. */
static int parse_segment(struct bundle_index *ix, struct cursor *c, size_t fi, uint64_t at, size_t *frame_cap,
                         uint64_t *name_bytes, const ckpt_limits *limits)
{
    struct bundle_segment *g = &ix->segments[ix->segment_count];
    memset(g, 0, sizeof *g);
    const uint8_t *kw = NULL;
    int rc = take64(c, &g->length);
    if (!rc)
        rc = take(c, 4, &kw);
    if (!rc)
        rc = take32(c, &g->name_count);
    if (rc)
        return rc;
    g->file = (uint32_t)fi;
    g->offset = at;
    g->kind = kw[0];
    g->width = kw[1];
    const char *file = ix->files[fi].path;
    if (g->kind > SEGMENT_TENSOR || kw[2] || kw[3] || (g->width && g->kind != SEGMENT_TENSOR) ||
        (g->width != 0 && g->width != 2 && g->width != 4 && g->width != 8) || (g->width && g->length % g->width) ||
        g->length == 0 || (g->kind == SEGMENT_BYTES && g->name_count))
        return ckpt_fail(c->err, CKPT_ERR_FORMAT, "%s: file %.200s: a segment the bundle format does not allow",
                         c->path, file);
    if (g->name_count > c->left / 4)
        return short_of(c);
    if (!(g->names = calloc(g->name_count ? g->name_count : 1, sizeof *g->names)))
        return ckpt_fail(c->err, CKPT_ERR_NOMEM, "%s: out of memory", c->path);
    ix->segment_count++;   /* owns its names from here on, for bundle_index_free */
    for (uint32_t n = 0; n < g->name_count; n++) {
        if ((rc = take_str(c, 65536, &g->names[n])))
            return rc;
        *name_bytes += strlen(g->names[n]) + 1;
        if (*name_bytes > limits->max_header_bytes)
            return ckpt_fail(c->err, CKPT_ERR_LIMIT,
                             "%s: the bundle's tensor names are over the header limit of %llu (max_header_bytes)",
                             c->path, (unsigned long long)limits->max_header_bytes);
    }
    uint64_t frames = g->length / ix->frame_bytes + (g->length % ix->frame_bytes != 0);
    /* every frame needs 16 bytes in a table no larger than the header limit */
    if (frames > limits->max_header_bytes / 16 || ix->frame_count + frames > limits->max_header_bytes / 16)
        return ckpt_fail(c->err, CKPT_ERR_LIMIT,
                         "%s: the bundle's frames need a table over the header limit of %llu (max_header_bytes)",
                         c->path, (unsigned long long)limits->max_header_bytes);
    if ((rc = grow((void **)&ix->frames, frame_cap, ix->frame_count + frames, sizeof *ix->frames, c->path, c->err)))
        return rc;
    g->first_frame = ix->frame_count;
    g->frame_count = (size_t)frames;
    for (uint64_t k = 0; k < frames; k++) {
        uint64_t off = k * ix->frame_bytes, left = g->length - off;
        ix->frames[ix->frame_count++] = (struct bundle_frame){0, at + off, BUNDLE_ABSENT, 0,
                                                              (uint32_t)(left < ix->frame_bytes ? left : ix->frame_bytes),
                                                              (uint32_t)(ix->segment_count - 1)};
    }
    return CKPT_OK;
}

static int parse_file(struct bundle_index *ix, struct cursor *c, size_t *segment_cap, size_t *frame_cap,
                      uint64_t *name_bytes, const ckpt_limits *limits)
{
    struct bundle_file *f = &ix->files[ix->file_count];
    memset(f, 0, sizeof *f);
    uint32_t segments;
    int rc = take_str(c, 4095, &f->path);
    if (rc)
        return rc;
    ix->file_count++;
    if (!inside_path(f->path))
        return ckpt_fail(c->err, CKPT_ERR_FORMAT, "%s: the bundle names a file %.200s outside itself", c->path,
                         f->path);
    if ((rc = take64(c, &f->size)) || (rc = take32(c, &f->flags)) || (rc = take32(c, &segments)))
        return rc;
    if (f->flags & ~BUNDLE_FILE_WAS_LINK)
        return ckpt_fail(c->err, CKPT_ERR_FORMAT, "%s: file %.200s has unknown flags", c->path, f->path);
    if (!ckpt_add_u64(ix->data_bytes, f->size, &ix->data_bytes))
        return ckpt_fail(c->err, CKPT_ERR_FORMAT, "%s: the bundle's files add up to more than 2^64 bytes", c->path);
    if (segments > c->left / 16)
        return short_of(c);
    if ((rc = grow((void **)&ix->segments, segment_cap, ix->segment_count + segments, sizeof *ix->segments, c->path,
                   c->err)))
        return rc;
    f->first_segment = ix->segment_count;
    f->segment_count = segments;
    f->first_frame = ix->frame_count;
    uint64_t at = 0;
    for (uint32_t s = 0; s < segments && !rc; s++) {
        rc = parse_segment(ix, c, ix->file_count - 1, at, frame_cap, name_bytes, limits);
        if (!rc && (!ckpt_add_u64(at, ix->segments[ix->segment_count - 1].length, &at) || at > f->size))
            rc = ckpt_fail(c->err, CKPT_ERR_FORMAT, "%s: file %.200s: its segments reach past its %llu bytes", c->path,
                           f->path, (unsigned long long)f->size);
    }
    if (!rc && at != f->size)
        rc = ckpt_fail(c->err, CKPT_ERR_FORMAT, "%s: file %.200s: its segments cover %llu of its %llu bytes", c->path,
                       f->path, (unsigned long long)at, (unsigned long long)f->size);
    f->frame_count = ix->frame_count - f->first_frame;
    return rc;
}

int bundle_plan_parse(struct bundle_index *ix, const uint8_t *plan, size_t len, const ckpt_limits *limits,
                      const char *path, ckpt_error *err)
{
    memset(ix, 0, sizeof *ix);
    ckpt_limits defaults;
    if (!limits) {
        ckpt_limits_default(&defaults);
        limits = &defaults;
    }
    struct cursor c = {plan, len, path, "plan", err};
    uint32_t files;
    int rc = take32(&c, &ix->flags);
    if (!rc)
        rc = take64(&c, &ix->frame_bytes);
    if (!rc)
        rc = take_str(&c, 64, &ix->format);
    if (!rc)
        rc = take32(&c, &files);
    if (rc)
        return rc;
    if (ix->flags & ~BUNDLE_SOURCE_IS_FILE || ix->frame_bytes < BUNDLE_FRAME_MIN ||
        ix->frame_bytes > BUNDLE_FRAME_MAX || ix->frame_bytes % 8)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: the bundle's plan has unknown flags or a frame size of %llu",
                         path, (unsigned long long)ix->frame_bytes);
    if (files == 0 || ((ix->flags & BUNDLE_SOURCE_IS_FILE) && files != 1))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: the bundle's plan lists %u files", path, files);
    if (files > limits->max_tensors || files > c.left / 20)
        return files > c.left / 20 ? short_of(&c)
                                   : ckpt_fail(err, CKPT_ERR_LIMIT, "%s: %u files in one bundle (max_tensors)", path,
                                               files);
    if (!(ix->files = calloc(files, sizeof *ix->files)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    size_t segment_cap = 0, frame_cap = 0;
    uint64_t name_bytes = 0;
    for (uint32_t i = 0; i < files && !rc; i++)
        rc = parse_file(ix, &c, &segment_cap, &frame_cap, &name_bytes, limits);
    if (!rc && c.left)
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: %zu bytes after the bundle's plan", path, c.left);
    return rc ? rc : check_paths(ix, path, err);
}

/* No volume listed twice (sorted, not compared pairwise: a table may list 99,999). */
static int check_volume_names(const struct bundle_index *ix, const char *path, ckpt_error *err)
{
    size_t n = ix->volume_count - 1;
    if (n < 2)
        return CKPT_OK;
    char **sorted = malloc(n * sizeof *sorted);
    if (!sorted)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    for (size_t v = 0; v < n; v++)
        sorted[v] = ix->volumes[v + 1].name;
    qsort(sorted, n, sizeof *sorted, by_path);
    int rc = CKPT_OK;
    for (size_t v = 0; v + 1 < n && !rc; v++)
        if (strcmp(sorted[v], sorted[v + 1]) == 0)
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: the bundle lists volume %.200s twice", path, sorted[v]);
    free(sorted);
    return rc;
}

int bundle_table_parse(struct bundle_index *ix, const uint8_t *table, size_t len, bool part, const char *path,
                       ckpt_error *err)
{
    struct cursor c = {table, len, path, "table", err};
    uint32_t volumes;
    int rc = take32(&c, &volumes);
    if (rc)
        return rc;
    if (volumes >= BUNDLE_MAX_VOLUMES || volumes > c.left / 28)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: the bundle's table lists %u volumes", path, volumes);
    if (!(ix->volumes = calloc((size_t)volumes + 1, sizeof *ix->volumes)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    ix->volume_count = 1;
    for (uint32_t v = 1; v <= volumes && !rc; v++) {
        struct bundle_volume *vol = &ix->volumes[v];
        const uint8_t *h = NULL;
        rc = take_str(&c, BUNDLE_MAX_NAME, &vol->name);
        if (rc)
            break;
        ix->volume_count++;
        if (!*vol->name || strchr(vol->name, '/') || strcmp(vol->name, ".") == 0 || strcmp(vol->name, "..") == 0)
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: the bundle names a volume %.200s outside its folder", path,
                           vol->name);
        if (!rc)
            rc = take64(&c, &vol->size);
        if (!rc && !(rc = take(&c, 16, &h)))
            memcpy(vol->hash, h, 16);
    }
    if (!rc)
        rc = check_volume_names(ix, path, err);
    if (rc)
        return rc;
    uint64_t need = (uint64_t)ix->frame_count * 16 + (uint64_t)ix->file_count * 16 + (uint64_t)ix->segment_count * 16;
    if (c.left != need)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: the bundle's table has %zu bytes for its frames and hashes, not %llu",
                         path, c.left, (unsigned long long)need);
    for (size_t i = 0; i < ix->frame_count; i++) {
        struct bundle_frame *fr = &ix->frames[i];
        const uint8_t *p = NULL;
        take(&c, 16, &p);
        fr->volume = ckpt_load_le32(p);
        fr->csize = ckpt_load_le32(p + 4);
        fr->offset = ckpt_load_le64(p + 8);
        if (fr->volume == BUNDLE_ABSENT && part)
            continue;
        if (fr->volume >= ix->volume_count)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: frame %zu lies in volume %u of %zu", path, i, fr->volume,
                             ix->volume_count);
    }
    for (size_t i = 0; i < ix->file_count; i++) {
        const uint8_t *p = NULL;
        take(&c, 16, &p);
        memcpy(ix->files[i].hash, p, 16);
    }
    for (size_t i = 0; i < ix->segment_count; i++) {
        const uint8_t *p = NULL;
        take(&c, 16, &p);
        memcpy(ix->segments[i].hash, p, 16);
    }
    return CKPT_OK;
}

int bundle_check_places(const struct bundle_index *ix, const uint64_t *start, const uint64_t *end, const char *path,
                        ckpt_error *err)
{
    uint64_t *at = malloc(ix->volume_count * sizeof *at);
    if (!at)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    memcpy(at, start, ix->volume_count * sizeof *at);
    uint64_t packed = 0;
    int rc = CKPT_OK;
    for (size_t i = 0; i < ix->frame_count && !rc; i++) {
        const struct bundle_frame *fr = &ix->frames[i];
        if (fr->volume == BUNDLE_ABSENT)
            continue;
        uint64_t bound = ZSTD_compressBound(fr->length) + BUNDLE_TRAILER_BYTES, stop;
        if (fr->offset != at[fr->volume] || fr->csize <= BUNDLE_TRAILER_BYTES || fr->csize > bound ||
            !ckpt_add_u64(fr->offset, fr->csize, &stop) || stop > end[fr->volume]) {
            char what[600];
            bundle_describe_frame(ix, i, what, sizeof what);
            rc = ckpt_fail(err, CKPT_ERR_FORMAT,
                           "%s: the table places frame %zu (%s) at bytes %llu+%u of %s, where it cannot be", path, i,
                           what, (unsigned long long)fr->offset, fr->csize,
                           fr->volume ? ix->volumes[fr->volume].name : "the bundle");
            break;
        }
        at[fr->volume] = stop;
        packed += fr->csize;
    }
    for (size_t v = 0; v < ix->volume_count && !rc; v++)
        if (at[v] != end[v])
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: %s holds %llu bytes that no frame accounts for", path,
                           v ? ix->volumes[v].name : "the bundle", (unsigned long long)(end[v] - at[v]));
    free(at);
    if (!rc && ix->data_bytes > BUNDLE_RATIO_FLOOR && ix->data_bytes / BUNDLE_MAX_RATIO > packed)
        rc = ckpt_fail(err, CKPT_ERR_FORMAT,
                       "%s: %llu bytes of frames claim to inflate to %llu bytes, over %d times: a bomb, not a checkpoint",
                       path, (unsigned long long)packed, (unsigned long long)ix->data_bytes, BUNDLE_MAX_RATIO);
    return rc;
}

size_t bundle_segment_at(const struct bundle_index *ix, size_t file, uint64_t offset)
{
    const struct bundle_file *f = &ix->files[file];
    size_t lo = f->first_segment, hi = f->first_segment + f->segment_count;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix->segments[mid].offset <= offset)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

size_t bundle_frame_at(const struct bundle_index *ix, size_t file, uint64_t offset)
{
    const struct bundle_segment *g = &ix->segments[bundle_segment_at(ix, file, offset)];
    return g->first_frame + (size_t)((offset - g->offset) / ix->frame_bytes);
}

/* A min-heap of parts by (bytes so far, part): the next file goes to its top. */
struct part_load {
    uint64_t bytes;
    unsigned part;
};

static bool lighter(const struct part_load *a, const struct part_load *b)
{
    return a->bytes < b->bytes || (a->bytes == b->bytes && a->part < b->part);
}

static void sift_down(struct part_load *h, unsigned n, unsigned i)
{
    for (;;) {
        unsigned l = 2 * i + 1, r = l + 1, least = i;
        if (l < n && lighter(&h[l], &h[least]))
            least = l;
        if (r < n && lighter(&h[r], &h[least]))
            least = r;
        if (least == i)
            return;
        struct part_load t = h[i];
        h[i] = h[least];
        h[least] = t;
        i = least;
    }
}

int bundle_assign_parts(const struct bundle_index *ix, unsigned parts, unsigned *file_part)
{
    struct part_load *heap = calloc(parts, sizeof *heap);
    if (!heap)
        return CKPT_ERR_NOMEM;
    for (unsigned p = 0; p < parts; p++)
        heap[p] = (struct part_load){0, p};   /* all zero: already a heap */
    for (size_t i = 0; i < ix->file_count; i++) {
        file_part[i] = heap[0].part;
        heap[0].bytes += ix->files[i].size;   /* the plan checked that the sizes add up without overflow */
        sift_down(heap, parts, 0);
    }
    free(heap);
    return CKPT_OK;
}

void bundle_describe_frame(const struct bundle_index *ix, size_t frame, char *out, size_t cap)
{
    const struct bundle_frame *fr = &ix->frames[frame];
    const struct bundle_segment *g = &ix->segments[fr->segment];
    const struct bundle_file *f = &ix->files[g->file];
    int n = snprintf(out, cap, "bytes %llu+%u of %.200s", (unsigned long long)fr->file_offset, fr->length, f->path);
    if (g->name_count && n > 0 && (size_t)n < cap)
        snprintf(out + n, cap - (size_t)n, ", tensor %.200s%s", g->names[0], g->name_count > 1 ? " and others" : "");
}

void bundle_index_free(struct bundle_index *ix)
{
    for (size_t i = 0; i < ix->file_count; i++)
        free(ix->files[i].path);
    for (size_t i = 0; i < ix->segment_count; i++) {
        for (uint32_t n = 0; n < ix->segments[i].name_count && ix->segments[i].names; n++)
            free(ix->segments[i].names[n]);
        free(ix->segments[i].names);
    }
    for (size_t v = 0; v < ix->volume_count; v++)
        free(ix->volumes[v].name);
    free(ix->files);
    free(ix->segments);
    free(ix->frames);
    free(ix->volumes);
    free(ix->format);
    memset(ix, 0, sizeof *ix);
}
