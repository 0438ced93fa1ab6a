/* report_file.c: see report_file.h. */
#include "report_file.h"

#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int cannot(const char *command, const char *path, int error)
{
    fprintf(stderr, "ckpt %s: cannot write %s: %s\n", command, path, strerror(error));
    return EXIT_OUTPUT;
}

int report_file_open(struct report_file *r, const char *command, const char *path)
{
    *r = (struct report_file){0};
    if (strcmp(path, "-") == 0) {
        r->out = stdout;
        return EXIT_OK;
    }
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {   /* followed: a device, a FIFO, a link to one */
        if (S_ISDIR(st.st_mode))
            return cannot(command, path, EISDIR);
        r->out = fopen(path, "w");
        return r->out ? EXIT_OK : cannot(command, path, errno);
    }
    /* a regular file (through any links) or none: replace it whole, never write into it */
    char *real = realpath(path, NULL);
    r->target = real ? real : strdup(path);
    const char *slash = r->target ? strrchr(r->target, '/') : NULL;
    int dir_len = slash ? (int)(slash - r->target) : 1;
    if (!r->target || asprintf(&r->temp, "%.*s/.%s.XXXXXX", dir_len, slash ? r->target : ".",
                               slash ? slash + 1 : r->target) < 0) {
        free(r->target);
        r->temp = r->target = NULL;
        return cannot(command, path, ENOMEM);
    }
    int fd = mkstemp(r->temp);
    if (fd < 0 || fchmod(fd, 0644) != 0 || !(r->out = fdopen(fd, "w"))) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
            unlink(r->temp);
        }
        free(r->temp);
        free(r->target);
        r->temp = r->target = NULL;
        return cannot(command, path, e);
    }
    return EXIT_OK;
}

int report_file_commit(struct report_file *r, const char *command, const char *path)
{
    int bad = ferror(r->out) | fflush(r->out), e = errno;
    if (r->out == stdout)
        return bad ? cannot(command, path, e) : EXIT_OK;
    if (!bad && r->target && fsync(fileno(r->out)) != 0)
        bad = 1, e = errno;
    if (fclose(r->out) != 0 && !bad)
        bad = 1, e = errno;
    r->out = NULL;
    if (!bad && r->target && rename(r->temp, r->target) != 0)
        bad = 1, e = errno;
    if (!bad && r->target) {   /* the rename itself on disk: fsync the folder the temporary was made in */
        char *slash = strrchr(r->temp, '/');
        *slash = '\0';
        int dfd = open(r->temp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    if (r->temp && bad)
        unlink(r->temp);
    free(r->temp);
    free(r->target);
    r->temp = r->target = NULL;
    return bad ? cannot(command, path, e) : EXIT_OK;
}
