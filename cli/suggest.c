/*
 * suggest.c: "did you mean": the choice a refused word most likely meant.
 * Spellings of the field first (fp16 and float16 for f16, 910b and
 * Ascend910B for ascend-910b), then typos (an edit or two), as git does.
 */
#include "cli.h"

#include <ctype.h>
#include <stdarg.h>
#include <string.h>

/* Lower case, without separators or the words people add ("ascend", "torch."), fp/float/half as f. */
static void normalize(const char *in, char *out, size_t size)
{
    static const char *const prefixes[] = {"torch.", "ascend", "atlas", NULL};
    static const char *const words[][2] = {{"bfloat", "bf"}, {"float", "f"}, {"half", "f16"}, {"fp", "f"}};
    char low[128];
    size_t n = 0;
    for (const char *p = in; *p && n + 1 < sizeof low; p++)
        low[n++] = (char)tolower((unsigned char)*p);
    low[n] = '\0';
    const char *s = low;
    for (int i = 0; prefixes[i]; i++)
        if (strncmp(s, prefixes[i], strlen(prefixes[i])) == 0)
            s += strlen(prefixes[i]);
    size_t o = 0;
    while (*s && o + 4 < size) {
        if (*s == '-' || *s == '_' || *s == ' ' || *s == '.') {
            s++;
            continue;
        }
        size_t k = 0;
        while (k < sizeof words / sizeof words[0] && strncmp(s, words[k][0], strlen(words[k][0])) != 0)
            k++;
        if (k < sizeof words / sizeof words[0] && (s == low || !isalpha((unsigned char)s[-1]))) {
            size_t len = strlen(words[k][1]);
            memcpy(out + o, words[k][1], len);
            o += len;
            s += strlen(words[k][0]);
            if (!isdigit((unsigned char)*s) && strcmp(words[k][1], "f") == 0 && o + 2 < size) {
                memcpy(out + o, "32", 2);   /* "float" alone is float32 */
                o += 2;
            }
            continue;
        }
        out[o++] = *s++;
    }
    out[o] = '\0';
}

/* Whether a and b hold different numbers ("f16", "f32"): then no edit makes one the other's typo. */
static int numbers_differ(const char *a, const char *b)
{
    char da[64], db[64];
    size_t i = 0, j = 0;
    for (; *a && i + 1 < sizeof da; a++)
        if (isdigit((unsigned char)*a))
            da[i++] = *a;
    for (; *b && j + 1 < sizeof db; b++)
        if (isdigit((unsigned char)*b))
            db[j++] = *b;
    da[i] = db[j] = '\0';
    return i && j && strcmp(da, db) != 0;
}

/* Levenshtein distance, capped: anything past 3 is "far". */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *cli_suggest(const char *given, const char *const *choices)
{
    char want[128], have[128];
    normalize(given, want, sizeof want);
    for (size_t i = 0; choices[i]; i++) {
        normalize(choices[i], have, sizeof have);
        if (*want && strcmp(want, have) == 0)
            return choices[i];
    }
    const char *best = NULL;
    size_t best_d = 3, len = strlen(want), prefixed = 0;
    for (size_t i = 0; len >= 3 && choices[i]; i++) {   /* "w8a8" for "w8a8-dynamic": the start of one choice */
        normalize(choices[i], have, sizeof have);
        if (strncmp(have, want, len) == 0 && prefixed++ == 0)
            best = choices[i];
    }
    if (prefixed == 1)
        return best;
    best = NULL;
    for (size_t i = 0; choices[i]; i++) {
        normalize(choices[i], have, sizeof have);
        size_t d = distance(want, have);
        /* two edits of a long word, one of a short one: "nd" is not a typo of "none" */
        if (d < best_d && d <= (len >= 5 ? 2u : 1u) && !numbers_differ(want, have)) {
            best = choices[i];
            best_d = d;
        }
    }
    return best;
}

int cli_choice_error(const char *command, const char *option, const char *given, const char *const *choices)
{
    char list[256] = "";
    size_t n = 0, count = 0;
    while (choices[count])
        count++;
    for (size_t i = 0; i < count && n < sizeof list; i++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", choices[i],
                              i + 2 < count ? ", " : i + 1 < count ? " or " : "");
    const char *guess = cli_suggest(given, choices);
    if (guess)
        return cli_usage_error(command, "%s takes %s, not '%s'; did you mean '%s'?", option, list, given, guess);
    return cli_usage_error(command, "%s takes %s, not '%s'", option, list, given);
}

int cli_unknown_option(const char *command, const char *arg, const struct option *options)
{
    const char *names[128];
    size_t n = 0;
    if (strncmp(arg, "--", 2) == 0) {
        size_t len = strcspn(arg + 2, "=");
        for (const struct option *o = options; o->name && n + 1 < sizeof names / sizeof names[0]; o++) {
            if (strlen(o->name) == len && strncmp(o->name, arg + 2, len) == 0 && o->has_arg == required_argument)
                return cli_usage_error(command, "--%s needs a value", o->name);
            names[n++] = o->name;
        }
        names[n] = NULL;
        char word[128];
        snprintf(word, sizeof word, "%.*s", (int)len, arg + 2);
        const char *guess = cli_suggest(word, names);
        if (guess)
            return cli_usage_error(command, "unknown option '%s'; did you mean '--%s'?", arg, guess);
    }
    return cli_usage_error(command, "unknown option '%s'", arg);
}
