/*
 * test_decode.c: the values verify --against and diff measure errors with
 * (libckpt/kernels/decode.c, and its AVX2/F16C loops on this machine).
 * Every f16 and bf16 bit pattern against the values their formats define,
 * computed here from sign, exponent and mantissa (IEEE 754 binary16;
 * bf16 is the top half of binary32), and the error maxima against the
 * plain definition, on values with zeros, infinities and NaNs mixed in.
 */
#include "helpers.h"

#include "libckpt/kernels/decode.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double binary16(unsigned h)
{
    int sign = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e == 0x1f ? (m ? NAN : INFINITY) : e == 0 ? ldexp(m, -24) : ldexp(m + 1024, e - 25);
    return sign ? -v : v;
}

static double bfloat16(unsigned h)
{
    int sign = h >> 15, e = (h >> 7) & 0xff, m = h & 0x7f;
    double v = e == 0xff ? (m ? NAN : INFINITY) : e == 0 ? ldexp(m, -133) : ldexp(m + 128, e - 134);
    return sign ? -v : v;
}

static bool same_value(double a, double b)
{
    return (isnan(a) && isnan(b)) || (a == b && signbit(a) == signbit(b));
}

START_TEST(every_f16_and_bf16_pattern)
{
    uint16_t *bits = malloc(65536 * 2);
    double *out = malloc(65536 * sizeof *out);
    for (unsigned h = 0; h < 65536; h++)
        bits[h] = (uint16_t)h;
    for (int bf = 0; bf < 2; bf++) {
        /* odd counts and offsets: the vector loop's tail and unaligned starts */
        for (unsigned start = 0; start < 65536; start += 4099) {
            unsigned n = 65536 - start < 4099 ? 65536 - start : 4099;
            decode_f64(bf ? CKPT_DTYPE_BF16 : CKPT_DTYPE_F16, bits + start, out + start, n);
        }
        for (unsigned h = 0; h < 65536; h++) {
            double want = bf ? bfloat16(h) : binary16(h);
            ck_assert_msg(same_value(out[h], want), "%s 0x%04x: %.17g, not %.17g", bf ? "bf16" : "f16", h, out[h],
                          want);
        }
    }
    free(bits);
    free(out);
}
END_TEST

START_TEST(error_maxima_are_the_definition)
{
    enum { N = 1003 };
    double *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    uint64_t seed = 42;
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < N; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            double x = ldexp((double)(seed >> 11) / 9007199254740992.0 - 0.5, (int)(seed % 40) - 20);
            a[i] = seed % 17 == 0 ? 0 : x;
            b[i] = a[i] * (1 + ldexp((double)((seed >> 20) & 0xff) - 128, -12));
            if (seed % 29 == 0)
                b[i] = seed % 2 ? NAN : -INFINITY;
            if (seed % 31 == 0)
                a[i] = INFINITY;
        }
        double abs_err = round % 3 ? 0 : 1e-9, rel_err = round % 3 ? 0 : 1e-4, want_abs = abs_err, want_rel = rel_err;
        for (int i = 0; i < N; i++) {
            if (!isfinite(a[i]) || !isfinite(b[i]))
                continue;
            want_abs = fmax(want_abs, fabs(b[i] - a[i]));
            if (a[i] != 0)
                want_rel = fmax(want_rel, fabs(b[i] - a[i]) / fabs(a[i]));
        }
        error_update(a, b, N - round % 4, &abs_err, &rel_err);   /* odd lengths too */
        if (round % 4 == 0) {
            ck_assert(abs_err == want_abs && rel_err == want_rel);
        } else {   /* the shorter run: the definition over the same prefix */
            double pa = round % 3 ? 0 : 1e-9, pr = round % 3 ? 0 : 1e-4;
            for (int i = 0; i < N - round % 4; i++) {
                if (!isfinite(a[i]) || !isfinite(b[i]))
                    continue;
                pa = fmax(pa, fabs(b[i] - a[i]));
                if (a[i] != 0)
                    pr = fmax(pr, fabs(b[i] - a[i]) / fabs(a[i]));
            }
            ck_assert(abs_err == pa && rel_err == pr);
        }
    }
    free(a);
    free(b);
}
END_TEST

static Suite *decode_suite(void)
{
    Suite *s = suite_create("decode");
    TCase *tc = tcase_create("decode");
    tcase_add_test(tc, every_f16_and_bf16_pattern);
    tcase_add_test(tc, error_maxima_are_the_definition);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_main(decode_suite());
}
