/* quant_names.c: see quant_names.h; msModelSlim's names are those of its saver (save/ascendv1.py L167-181). */
#include "quant_names.h"

#include <stdbool.h>
#include <strings.h>

static const char *const words[] = {"none", "w8a8-dynamic", "w8a16"};   /* by ckpt_quant */
static const char *const names[] = {"FLOAT", "W8A8_DYNAMIC", "W8A16"};

static bool known(ckpt_quant quant)
{
    return quant >= CKPT_QUANT_NONE && quant <= CKPT_QUANT_W8A16;
}

const char *quant_word(ckpt_quant quant)
{
    return known(quant) ? words[quant] : words[CKPT_QUANT_NONE];
}

const char *ckpt_quant_name(ckpt_quant quant)
{
    return known(quant) ? names[quant] : names[CKPT_QUANT_NONE];
}

int ckpt_quant_parse(const char *name, ckpt_quant *out)
{
    for (int q = CKPT_QUANT_NONE; q <= CKPT_QUANT_W8A16; q++) {
        if (strcasecmp(name, words[q]) == 0 || strcasecmp(name, names[q]) == 0) {
            *out = (ckpt_quant)q;
            return CKPT_OK;
        }
    }
    return CKPT_ERR_ARG;
}
