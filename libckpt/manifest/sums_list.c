/*
 * sums_list.c: a checksum list read back (sums.h).  The list is input like
 * any other: it may come with a download from anyone, so every line is
 * bounded, every digit checked and every path kept inside the folder it
 * describes before anything is opened.
 */
#include "sums.h"

#include "libckpt/common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Keeps `path` inside its folder: relative, no "..", "." and empty components dropped. */
static int clean_path(const char *path, char **out, const char *origin, size_t line, ckpt_error *err)
{
    if (!*path)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%zu: empty file name", origin, line);
    if (*path == '/')
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%zu: absolute path %s: a list names files inside the folder",
                         origin, line, path);
    size_t len = strlen(path);
    char *s = malloc(len + 1), *w = s;
    if (!s)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    for (const char *p = path; *p;) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            free(s);
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%zu: path %s climbs out of the folder with '..'", origin, line,
                             path);
        }
        if (n && !(n == 1 && *p == '.')) {
            if (w != s)
                *w++ = '/';
            memcpy(w, p, n);
            w += n;
        }
        p += n + (end != NULL);
    }
    *w = '\0';
    if (w == s) {
        free(s);
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%zu: path %s names the folder itself, not a file", origin, line,
                         path);
    }
    *out = s;
    return CKPT_OK;
}

int sums_list_add(struct sums_list *l, const char *path, ckpt_sums_format format, const char *hex, const char *origin,
                  size_t line, ckpt_error *err)
{
    if (l->count >= SUMS_MAX_FILES)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s:%zu: more than %d files listed", origin, line, SUMS_MAX_FILES);
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct sums_entry *grown = reallocarray(l->items, cap, sizeof *grown);
        if (!grown)
            return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory reading %s", origin);
        l->items = grown;
        l->cap = cap;
    }
    struct sums_entry *e = &l->items[l->count];
    memset(e, 0, sizeof *e);
    size_t want = sums_hex_len(format);
    if (strnlen(hex, want + 1) != want)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%zu: the %s digest is not %zu hex digits", origin, line,
                         sums_format_name(format), want);
    for (size_t i = 0; i < want; i++) {
        char c = hex[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%zu: bad hex digit in the %s digest", origin, line,
                             sums_format_name(format));
        e->hex[i] = c;
    }
    int rc = clean_path(path, &e->path, origin, line, err);
    if (rc)
        return rc;
    e->format = format;
    e->line = line;
    l->count++;
    return CKPT_OK;
}

/* Undoes GNU coreutils' escaping of a name ("\\\\", "\\n", "\\r") in place; false on another escape. */
static bool unescape(char *s)
{
    char *w = s;
    for (char *p = s; *p; p++) {
        if (*p != '\\') {
            *w++ = *p;
            continue;
        }
        p++;
        if (*p == '\\')
            *w++ = '\\';
        else if (*p == 'n')
            *w++ = '\n';
        else if (*p == 'r')
            *w++ = '\r';
        else
            return false;
    }
    *w = '\0';
    return true;
}

static size_t hex_run(const char *s)
{
    size_t n = 0;
    while ((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f') || (s[n] >= 'A' && s[n] <= 'F'))
        n++;
    return n;
}

/* One line of text (NUL-terminated, no newline). */
static int parse_line(struct sums_list *l, char *text, const char *origin, size_t line, ckpt_error *err)
{
    const char *p = text;
    while (*p == ' ' || *p == '\t')
        p++;
    if (!*p || *p == '#')
        return CKPT_OK;
    bool escaped = *text == '\\';
    if (escaped)
        text++;
    ckpt_sums_format format;
    char *path, *hex;
    if (strncmp(text, "SHA256 (", 8) == 0 || strncmp(text, "XXH128 (", 8) == 0) {
        format = text[0] == 'S' ? CKPT_SUMS_SHA256 : CKPT_SUMS_XXH128;
        char *end = NULL;
        for (char *q = strstr(text + 8, ") = "); q; q = strstr(q + 1, ") = "))
            end = q;   /* the last one: a name may hold ") = " itself */
        if (!end)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%zu: a tagged line needs 'ALGO (NAME) = DIGEST'", origin,
                             line);
        *end = '\0';
        path = text + 8;
        hex = end + 4;
    } else {
        size_t n = hex_run(text);
        if (n != 32 && n != 64)
            return ckpt_fail(err, CKPT_ERR_FORMAT,
                             "%s:%zu: a digest of %zu hex digits: expected 32 (XXH3-128) or 64 (SHA-256)", origin,
                             line, n);
        if (text[n] != ' ' || (text[n + 1] != ' ' && text[n + 1] != '*'))
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%zu: the digest must be followed by two spaces (or ' *')",
                             origin, line);
        format = n == 64 ? CKPT_SUMS_SHA256 : CKPT_SUMS_XXH128;
        text[n] = '\0';
        hex = text;
        path = text + n + 2;
    }
    if (escaped && !unescape(path))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%zu: an escaped name holds an unknown escape", origin, line);
    return sums_list_add(l, path, format, hex, origin, line, err);
}

/* One JSON entry: a path, a digest of `format` and a size, each checked. */
static int add_json(struct sums_list *l, const char *path, ckpt_sums_format format, const char *hex,
                    const json_t *size, const char *origin, size_t entry, ckpt_error *err)
{
    if (!path || !hex || !json_is_integer(size) || json_integer_value(size) < 0)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%zu: the entry needs a path, a %s digest and a size", origin,
                         entry, sums_format_name(format));
    int rc = sums_list_add(l, path, format, hex, origin, entry, err);
    if (!rc) {
        l->items[l->count - 1].has_size = true;
        l->items[l->count - 1].size = (uint64_t)json_integer_value(size);
    }
    return rc;
}

/*
 * A Hugging Face Hub listing: the tree API's array (huggingface_hub's list_repo_tree reads it:
 * {"type": "file", "path", "size", "oid": git blob id, "lfs": {"oid": SHA-256, "size"}}, folders
 * {"type": "directory"} skipped) or model info's "siblings" ({"rfilename", "size", "blobId",
 * "lfs": {"sha256", "size"}}, when asked with files_metadata).  An LFS file is checked by its
 * SHA-256, any other by its git blob id.
 */
static int parse_hub_entry(struct sums_list *l, const json_t *e, bool tree, const char *origin, size_t entry,
                           ckpt_error *err)
{
    const char *type = json_string_value(json_object_get(e, "type"));
    if (tree && type && strcmp(type, "directory") == 0)
        return CKPT_OK;
    if (tree && (!type || strcmp(type, "file") != 0))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%zu: an entry of type neither file nor directory", origin, entry);
    const char *path = json_string_value(json_object_get(e, tree ? "path" : "rfilename"));
    const json_t *lfs = json_object_get(e, "lfs");
    if (json_is_object(lfs))
        return add_json(l, path, CKPT_SUMS_SHA256, json_string_value(json_object_get(lfs, tree ? "oid" : "sha256")),
                        json_object_get(lfs, "size"), origin, entry, err);
    if (lfs && !json_is_null(lfs))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%zu: \"lfs\" is not an object", origin, entry);
    return add_json(l, path, SUMS_GIT_BLOB, json_string_value(json_object_get(e, tree ? "oid" : "blobId")),
                    json_object_get(e, "size"), origin, entry, err);
}

/*
 * A source manifest's tensors (its "target" null: ckpt manifest create), kept to name the tensors
 * of a file that differs; tensors of a conversion's manifest are stored bytes, checked by verify.
 */
static int parse_tensors(struct sums_list *l, const json_t *root, const char *origin, ckpt_error *err)
{
    const json_t *tensors = json_object_get(root, "tensors");
    if (!json_is_null(json_object_get(root, "target")) || !json_is_array(tensors))
        return CKPT_OK;
    size_t n = json_array_size(tensors);
    l->tensors = calloc(n + 1, sizeof *l->tensors);
    if (!l->tensors)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory reading %s", origin);
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(tensors, i);
        const char *name = json_string_value(json_object_get(t, "name"));
        const char *file = json_string_value(json_object_get(t, "file"));
        const char *hex = json_string_value(json_object_get(t, "xxh3_128"));
        if (json_object_get(t, "alias_of"))
            continue;   /* shares another's bytes: checked with it */
        struct sums_tensor *st = &l->tensors[l->tensor_count];
        if (!name || !file || !hex || strlen(hex) != 32 || strspn(hex, "0123456789abcdef") != 32)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensors[%zu] needs a name, a file and an xxh3_128", origin,
                             i);
        int rc = clean_path(file, &st->file, origin, i + 1, err);
        if (rc)
            return rc;
        if (!(st->name = strdup(name)))
            return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory reading %s", origin);
        memcpy(st->hex, hex, 33);
        l->tensor_count++;
    }
    return CKPT_OK;
}

/* JSON lists: a ckpt-manifest.json ("files", each with its XXH3-128) or a Hub listing. */
static int parse_json(struct sums_list *l, const char *text, size_t len, const char *origin, ckpt_error *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%d: invalid JSON: %s", origin, jerr.line, jerr.text);
    const json_t *files = json_object_get(root, "files"), *siblings = json_object_get(root, "siblings");
    const json_t *list = json_is_array(root) ? root : json_is_array(files) ? files : siblings;
    int rc = json_is_array(list) ? CKPT_OK
                                 : ckpt_fail(err, CKPT_ERR_FORMAT,
                                             "%s: a JSON list must be a ckpt-manifest.json (\"files\") or a Hugging "
                                             "Face Hub listing (a tree array, or \"siblings\")",
                                             origin);
    for (size_t i = 0; !rc && i < json_array_size(list); i++) {
        const json_t *e = json_array_get(list, i);
        if (!json_is_object(e))
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%zu: an entry that is not an object", origin, i + 1);
        else if (list == files)
            rc = add_json(l, json_string_value(json_object_get(e, "path")), CKPT_SUMS_XXH128,
                          json_string_value(json_object_get(e, "xxh3_128")), json_object_get(e, "size"), origin, i + 1,
                          err);
        else
            rc = parse_hub_entry(l, e, list == root, origin, i + 1, err);
    }
    if (!rc && l->count == 0)
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: no file with a checksum", origin);
    if (!rc && list == files)
        rc = parse_tensors(l, root, origin, err);
    json_decref(root);
    return rc;
}

static int by_path(const void *a, const void *b)
{
    const struct sums_entry *x = *(const struct sums_entry *const *)a, *y = *(const struct sums_entry *const *)b;
    int c = strcmp(x->path, y->path);
    return c ? c : x->line < y->line ? -1 : x->line > y->line;
}

static int refuse_duplicates(const struct sums_list *l, const char *origin, ckpt_error *err)
{
    const struct sums_entry **sorted = malloc((l->count + 1) * sizeof *sorted);
    if (!sorted)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory reading %s", origin);
    for (size_t i = 0; i < l->count; i++)
        sorted[i] = &l->items[i];
    qsort(sorted, l->count, sizeof *sorted, by_path);
    int rc = CKPT_OK;
    for (size_t i = 1; i < l->count && !rc; i++)
        if (strcmp(sorted[i]->path, sorted[i - 1]->path) == 0)
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%zu: %s is listed again (first on line %zu)", origin,
                           sorted[i]->line, sorted[i]->path, sorted[i - 1]->line);
    free(sorted);
    return rc;
}

static int read_whole(const char *file, char **text, size_t *len, ckpt_error *err)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ckpt_fail(err, errno == ENOENT ? CKPT_ERR_NOT_FOUND : CKPT_ERR_READ, "%s: cannot open: %s", file,
                         strerror(errno));
    struct stat st;
    int rc = CKPT_OK;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        rc = ckpt_fail(err, CKPT_ERR_ARG, "%s: not a regular file", file);
    else if ((uint64_t)st.st_size > SUMS_FILE_MAX)
        rc = ckpt_fail(err, CKPT_ERR_LIMIT, "%s: a checksum list larger than %llu MiB", file,
                       (unsigned long long)(SUMS_FILE_MAX >> 20));
    char *buf = rc ? NULL : malloc((size_t)st.st_size + 1);
    if (!rc && !buf)
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory reading %s", file);
    size_t got = 0;
    while (!rc && got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = ckpt_fail(err, CKPT_ERR_READ, "%s: read failed: %s", file, n < 0 ? strerror(errno) : "file shrank");
        else
            got += (size_t)n;
    }
    close(fd);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[got] = '\0';
    *text = buf;
    *len = got;
    return CKPT_OK;
}

int sums_list_read(const char *file, struct sums_list *out, ckpt_error *err)
{
    memset(out, 0, sizeof *out);
    char *text = NULL;
    size_t len = 0;
    int rc = read_whole(file, &text, &len, err);
    if (rc)
        return rc;
    size_t first = strspn(text, " \t\r\n");
    if (text[first] == '{' || text[first] == '[') {
        rc = parse_json(out, text, len, file, err);
    } else {
        size_t line = 0;
        for (char *p = text; !rc && p < text + len; line++) {
            char *nl = memchr(p, '\n', (size_t)(text + len - p));
            size_t n = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
            if (n > SUMS_LINE_MAX)
                rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%zu: line longer than %d bytes", file, line + 1,
                               SUMS_LINE_MAX);
            else if (memchr(p, '\0', n))
                rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s:%zu: line holds a NUL byte", file, line + 1);
            if (rc)
                break;
            p[n] = '\0';
            if (n && p[n - 1] == '\r')
                p[n - 1] = '\0';   /* a list saved with CRLF line ends */
            rc = parse_line(out, p, file, line + 1, err);
            p += n + 1;
        }
        if (!rc && out->count == 0)
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: no checksum lines", file);
    }
    if (!rc)
        rc = refuse_duplicates(out, file, err);
    free(text);
    return rc;
}

void sums_list_free(struct sums_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i].path);
    free(l->items);
    for (size_t i = 0; i < l->tensor_count; i++) {
        free(l->tensors[i].name);
        free(l->tensors[i].file);
    }
    free(l->tensors);
    memset(l, 0, sizeof *l);
}
