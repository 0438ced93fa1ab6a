/* fuzz_rules.c: any text as a rules file, then applied to a few names and a [96, 8] shape. */
#include "libckpt/plan/rules.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct ruleset rs = {0};
    if (ruleset_parse(&rs, text, "fuzz", NULL) == CKPT_OK) {
        static const char *const names[] = {"model.layers.0.mlp.down_proj.weight", "lm_head.weight", "", "a*b?c$1"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            struct rule_decision d;
            static const uint64_t shape[2] = {96, 8};
            if (ruleset_decide(&rs, NULL, names[i], CKPT_DTYPE_BF16, &d, NULL) != CKPT_OK)
                continue;
            for (size_t part = 0; part < d.parts; part++) {
                ckpt_row_select rows;
                rule_rows(&d, part, names[i], 2, shape, &rows, NULL);
            }
            rule_decision_free(&d);
        }
    }
    ruleset_free(&rs);
    free(text);
    return 0;
}
