/* nemo2_config.h: a NeMo 2 checkpoint's model shape (context/model.yaml) as megatron.* metadata. */
#ifndef CKPT_NEMO2_CONFIG_H
#define CKPT_NEMO2_CONFIG_H

#include "libckpt/catalog/source.h"

/*
 * Reads the `config:` block of DIR/context/model.yaml (nothing when the
 * file is absent) and records megatron.* metadata through the Megatron
 * args helper; the padded vocabulary is the rows of the already declared
 * embedding.word_embeddings.weight.  The file joins the source.
 */
int nemo2_config_record(struct ckpt_source *src, const char *dir, ckpt_error *err);

#endif
