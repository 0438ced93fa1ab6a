/*
 * report_file.h: the file a report option names (--junit FILE).  "-" is
 * standard output.  An existing path that is not a regular file (a device, a
 * FIFO, a link to one: /dev/null, /dev/stdout) is opened and written in
 * place, never replaced.  A regular file, or a new name, is written to a
 * temporary file beside it that is flushed, fsynced and renamed over it, so
 * a reader sees the old report or the new one, never half of one; a link to
 * a regular file keeps the link and replaces its target.
 */
#ifndef CKPT_CLI_REPORT_FILE_H
#define CKPT_CLI_REPORT_FILE_H

#include <stdio.h>

struct report_file {
    FILE *out;
    char *target;   /* the regular file replaced at commit, or NULL when written in place */
    char *temp;     /* its temporary beside it */
};

/* Opens the report named `path`; prints "ckpt COMMAND: ..." and returns EXIT_OUTPUT when it cannot. */
int report_file_open(struct report_file *r, const char *command, const char *path);

/* Finishes the report (renaming it into place); EXIT_OK, or EXIT_OUTPUT after a message. */
int report_file_commit(struct report_file *r, const char *command, const char *path);

#endif
