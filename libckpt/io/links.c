/* links.c: see links.h. */
#include "links.h"

#include "libckpt/common/error.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* REPO when `folder` (resolved) is REPO/snapshots/REV and REPO/blobs is a folder (huggingface_hub's cache layout). */
static char *hf_cache_repo(const char *folder)
{
    const char *rev = strrchr(folder, '/');
    if (!rev || rev == folder)
        return NULL;
    const char *snapshots = rev - 1;
    while (snapshots > folder && *snapshots != '/')
        snapshots--;
    if (*snapshots != '/' || (size_t)(rev - snapshots) != sizeof "/snapshots" - 1 ||
        strncmp(snapshots, "/snapshots", sizeof "/snapshots" - 1) != 0 || snapshots == folder)
        return NULL;
    char *repo = strndup(folder, (size_t)(snapshots - folder)), *blobs = NULL;
    if (!repo || asprintf(&blobs, "%s/blobs", repo) < 0 || !is_dir(blobs)) {
        free(repo);
        repo = NULL;
    }
    free(blobs);
    return repo;
}

char *links_root(const char *src_path)
{
    char *real = realpath(src_path, NULL);
    if (!real)
        return NULL;
    if (!is_dir(real)) {   /* a file: its folder */
        char *slash = strrchr(real, '/');
        if (slash)
            slash[slash == real ? 1 : 0] = '\0';
    }
    /* the folder SRC names, before its own links are resolved: a snapshot's file links into blobs/ */
    char *named = NULL, *folder = NULL;
    if (is_dir(src_path))
        folder = realpath(src_path, NULL);
    else if ((named = strdup(src_path)) != NULL) {
        char *slash = strrchr(named, '/');
        const char *dir = ".";
        if (slash == named)
            dir = "/";
        else if (slash) {
            *slash = '\0';
            dir = named;
        }
        folder = realpath(dir, NULL);
    }
    char *repo = folder ? hf_cache_repo(folder) : NULL;
    free(named);
    free(folder);
    if (repo) {
        free(real);
        return repo;
    }
    return real;
}

int links_check(const char *root, const char *path, ckpt_error *err)
{
    if (!root)
        return CKPT_OK;
    char *real = realpath(path, NULL);
    if (!real)
        return CKPT_OK;
    size_t n = strlen(root);
    bool inside = strcmp(root, "/") == 0 || (strncmp(real, root, n) == 0 && (real[n] == '/' || real[n] == '\0'));
    int rc = inside ? CKPT_OK
                    : ckpt_fail(err, CKPT_ERR_FORMAT,
                                "%s: a link leading out of the checkpoint (to %s, outside %s); copy the file in instead",
                                path, real, root);
    free(real);
    return rc;
}

/* Folders below SRC walked for links: a checkpoint's files sit at most this deep (iter_N/mp_rank_TT/file). */
#define LINKS_MAX_DEPTH 4

static int check_folder(const char *root, const char *dir, int depth, ckpt_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return CKPT_OK;
    int rc = CKPT_OK;
    struct dirent *e;
    while (!rc && (e = readdir(d)) != NULL) {
        char *path = NULL;
        struct stat st;
        if (e->d_name[0] == '.' || asprintf(&path, "%s/%s", dir, e->d_name) < 0)
            continue;
        if (lstat(path, &st) != 0)
            ;   /* gone since it was listed: nothing to follow */
        else if (S_ISLNK(st.st_mode))
            rc = links_check(root, path, err);
        else if (S_ISDIR(st.st_mode) && depth < LINKS_MAX_DEPTH)
            rc = check_folder(root, path, depth + 1, err);
        free(path);
    }
    closedir(d);
    return rc;
}

int links_check_folder(const char *root, const char *dir, ckpt_error *err)
{
    return root ? check_folder(root, dir, 1, err) : CKPT_OK;
}
