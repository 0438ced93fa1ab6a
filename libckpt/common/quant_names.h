/* quant_names.h: the spellings of the quantization types (the public ckpt_quant_name, ckpt_quant_parse). */
#ifndef CKPT_COMMON_QUANT_NAMES_H
#define CKPT_COMMON_QUANT_NAMES_H

#include "ckpt.h"

/* The CLI's and the rules' spelling: "none", "w8a8-dynamic", "w8a16". */
const char *quant_word(ckpt_quant quant);

#endif
