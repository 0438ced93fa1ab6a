/*
 * global.c: what every command shares beyond its own options: the global
 * flags (-q, -v, --progress, -j), the progress line's switch, and Ctrl-C,
 * which stops every command the same way and gives the same exit status.
 */
#include "cli.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct cli_global cli_global = {.progress = CLI_PROGRESS_AUTO};

static volatile sig_atomic_t caught;       /* the signal that asked to stop, or 0 */
static volatile sig_atomic_t cancellable;  /* a run is on that stops at its next callback */
static void (*cancel_hook)(void);

int cli_parse_global_option(const char *command, int code, const char *value)
{
    static const char *const modes[] = {"auto", "always", "never", NULL};
    switch (code) {
    case 'q': cli_global.quiet = 1; return EXIT_OK;
    case 'v': cli_global.verbose = 1; return EXIT_OK;
    case CLI_OPT_PROGRESS:
        for (int i = 0; modes[i]; i++) {
            if (strcmp(value, modes[i]) == 0) {
                cli_global.progress = (enum cli_progress_mode)i;
                return EXIT_OK;
            }
        }
        return cli_choice_error(command, "--progress", value, modes);
    case 'j': {
        char *end;
        long v = strtol(value, &end, 10);
        if (*end || end == value || v < 1 || v > 256)
            return cli_usage_error(command, "--jobs takes 1 to 256, not '%s'", value);
        cli_global.jobs = (unsigned)v;
        return EXIT_OK;
    }
    default: return cli_usage_error(command, "unknown option");
    }
}

int cli_parse_leading_globals(int argc, char **argv)
{
    static const struct {
        const char *name;
        int code, takes_value;
    } flags[] = {{"quiet", 'q', 0}, {"verbose", 'v', 0}, {"progress", CLI_OPT_PROGRESS, 1}, {"jobs", 'j', 1}};
    int i = 1;
    while (i < argc && argv[i][0] == '-') {
        const char *arg = argv[i], *value = NULL;
        int code = 0, takes = 0;
        if (arg[1] == '-') {   /* --name, --name=value, --name value */
            size_t n = strcspn(arg + 2, "=");
            for (size_t k = 0; k < sizeof flags / sizeof flags[0] && !code; k++)
                if (strlen(flags[k].name) == n && strncmp(arg + 2, flags[k].name, n) == 0)
                    code = flags[k].code, takes = flags[k].takes_value;
            if (code && arg[2 + n] == '=')
                value = arg + 3 + n;
        } else if (arg[1] && strspn(arg + 1, "qv") == strlen(arg + 1)) {   /* -q, -v, -qv */
            for (const char *p = arg + 1; *p; p++)
                cli_parse_global_option("", *p, NULL);
            i++;
            continue;
        } else if (arg[1] == 'j') {   /* -j N, -jN */
            code = 'j', takes = 1;
            value = arg[2] ? arg + 2 : NULL;
        }
        if (!code)
            return i;   /* -h, -V, or a mistake main names */
        if (takes && !value) {
            if (i + 1 >= argc)
                return -cli_usage_error("", "%s needs a value", arg);
            value = argv[++i];
        } else if (!takes && value) {
            return -cli_usage_error("", "%.*s takes no value", (int)(strchr(arg, '=') - arg), arg);
        }
        int status = cli_parse_global_option("", code, value);
        if (status)
            return -status;
        i++;
    }
    return i;
}

int cli_want_progress(int json)
{
    if (cli_global.quiet || cli_global.progress == CLI_PROGRESS_NEVER)
        return 0;
    if (cli_global.progress == CLI_PROGRESS_ALWAYS)
        return 1;
    return !json && isatty(STDERR_FILENO);
}

/* ---- Ctrl-C ---- */

static void on_signal(int sig)
{
    caught = sig;
    if (!cancellable)
        _exit(128 + sig);   /* nothing to stop cleanly: outputs are atomic, a temporary folder is found later */
    if (cancel_hook)
        cancel_hook();
}

void cli_catch_interrupts(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;   /* a second Ctrl-C stops at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

void cli_cancellable(void (*hook)(void))
{
    cancel_hook = hook;
    cancellable = 1;
}

int cli_interrupted(void)
{
    /* tests: CKPT_TEST_INTERRUPT=N raises SIGINT at the Nth callback, so that Ctrl-C is tested without timing */
    static long calls, at = -1;
    if (at < 0) {
        const char *env = getenv("CKPT_TEST_INTERRUPT");
        at = env ? atol(env) : 0;
    }
    if (at > 0 && ++calls == at)
        raise(SIGINT);
    return caught != 0;
}

int cli_exit_signal(void)
{
    return caught ? 128 + caught : 0;
}

static int open_event(void *payload, const ckpt_event *ev)
{
    (void)payload;
    (void)ev;
    return cli_interrupted();
}

void cli_open_options_default(ckpt_open_options *opts)
{
    ckpt_open_options_default(opts);
    opts->events = open_event;
}
