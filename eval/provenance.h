/* What a checkpoint says about the features it was trained on, checked against the shards
 * lmr-eval scores: the checkpoint metadata key "provenance" is a JSON object (dataset, split,
 * mode, frames, size, backbone, weights_checksum), written by lmr-train from its training
 * shards. Also the class names a checkpoint carries (metadata "class_names", a JSON array of
 * strings, or the same key inside "provenance"). */
#ifndef LMR_EVAL_PROVENANCE_H
#define LMR_EVAL_PROVENANCE_H

#include <stddef.h>

#include "lmr_error.h"
#include "shard.h"

typedef struct {
    int present;                /* the checkpoint has a "provenance" key */
    char dataset[64], split[32];
    char backbone[64];          /* "" when the key does not say */
    char weights_checksum[24];  /* "" when the key does not say (or no weights: pool) */
    char **class_names;         /* [n_class_names] owned, NULL when the checkpoint has none */
    int n_class_names;
} Provenance;

/** Read the provenance and class names of a checkpoint (p need not be initialised).
 *  @return 0 (also when the checkpoint has neither: p->present = 0), the st_open errors,
 *  LMR_EPARSE ("provenance" or "class_names" is not what it should be), LMR_ENOMEM; err names
 *  the file. @note free with provenance_free. */
int provenance_read(Provenance *p, const char *ckpt, char *err);
void provenance_free(Provenance *p);

/** Compare the checkpoint's backbone and weights checksum with the shards' metadata.
 *  A field is compared when both sides know it.
 *  @param[out] note  a one-line remark when nothing could be compared ("" otherwise).
 *  @return 0 (same features, or not checkable), LMR_EMISMATCH (err names the field and both
 *  values: the checkpoint was trained on other features). */
int provenance_check(const Provenance *p, const ShardMeta *m, const char *ckpt, const char *data,
                     char *note, size_t note_len, char *err);

#endif
