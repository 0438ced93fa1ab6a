/* findings.h: collecting verify/diff findings and printing them as text, JSON or JUnit XML. */
#ifndef CKPT_CLI_FINDINGS_H
#define CKPT_CLI_FINDINGS_H

#include "convert_options.h"

struct finding_copy {
    ckpt_finding f;
    char *file, *tensor, *message, *option, *value;
    const char *error;   /* the check could not run: the status name ("format error"), reported as check "error" */
    const char *origin;  /* static: "command line", "default" or "manifest" */
};

struct findings {
    struct finding_copy *items;
    size_t count, cap;
    int verbose;          /* print passing checks too */
    int quiet_text;       /* collect only (for --json) */
    struct cli_progress *progress;   /* a progress line to erase before printing, or NULL */
    const struct cli_convert *conv;  /* the conversion options given (verify --against), or NULL */
    int oom;
};

/* The ckpt_finding_fn: copies the finding and prints failures as they come. */
int findings_collect(void *payload, const ckpt_finding *f);

/* The final report: a summary line, or the JSON document. */
int findings_print(const struct findings *fs, const char *command, const ckpt_verify_summary *s, int json);

/*
 * Records that the command could not run (exit 3): one more failing finding,
 * check "error", whose message names the problem, so that --json and --junit
 * still show CI what happened.  Counts it in *s.
 */
void findings_add_error(struct findings *fs, const ckpt_error *err, ckpt_verify_summary *s);

/* Writes JUnit XML (one test case per check) to `path` (report_file.h: "-", in place, or atomically); EXIT_OUTPUT on failure. */
int findings_write_junit(const struct findings *fs, const char *suite, const ckpt_verify_summary *s,
                         const char *path);

void findings_free(struct findings *fs);

const char *check_name(ckpt_check check);

#endif
