/* What a checkpoint says about the data it was trained on: the metadata key "provenance" is a
 * JSON object (dataset, split, mode, frames, size, backbone, weights_checksum, class_names)
 * written by lmr-train from its training shards; lmr-eval names classes with it when the shards
 * do not. Whether the features match is checkpoint_check_features' business (train/checkpoint.h).
 * Class names may also be a metadata key of their own ("class_names", a JSON array of strings). */
#ifndef LMR_EVAL_PROVENANCE_H
#define LMR_EVAL_PROVENANCE_H

#include <stddef.h>

#include "lmr_error.h"
#include "shard.h"

typedef struct {
    char **class_names;         /* [n_class_names] owned, NULL when the checkpoint has none */
    int n_class_names;
} Provenance;

/** Read the provenance and class names of a checkpoint (p need not be initialised).
 *  @return 0 (also when the checkpoint names no classes), the st_open errors,
 *  LMR_EPARSE ("provenance" or "class_names" is not what it should be), LMR_ENOMEM; err names
 *  the file. @note free with provenance_free. */
int provenance_read(Provenance *p, const char *ckpt, char *err);
void provenance_free(Provenance *p);

#endif
