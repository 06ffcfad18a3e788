/* lmr-train checkpoints: safetensors files (DESIGN section 6) with the model's tensors named by
 * the model table, metadata (stage, epoch, step, classes, class counts, dims, LMR parameters),
 * and for --resume the Adam moments, the memory bank and the sampler position as extra tensors
 * and keys. Written atomically (temp file, fsync, rename); same state, same bytes. */
#ifndef LMR_TRAIN_CHECKPOINT_H
#define LMR_TRAIN_CHECKPOINT_H

#include <stdint.h>

#include "lmr.h"
#include "model.h"

#define CKPT_FORMAT "lmr-checkpoint-1"

typedef struct {
    char stage[8];       /* "init" or "lmr" */
    int lmr_off;         /* lmr stage trained as plain cRT */
    char sampler[12];    /* "instance", "class" or "sqrt" */
    char method[24];     /* --method (method.h); older checkpoints: ce, lmr or crt from stage and lmr_off */
    int freeze_rep;      /* stage 2 trained the classifier only */
    long epochs;         /* epochs of the run */
    long epoch;          /* epoch of the next step (== epochs when finished) */
    long step_in_epoch;  /* next step inside that epoch */
    long global_step;    /* steps done (AdamW's t) */
    int batch;
    uint64_t seed;
    double lr;
    LmrParams lmr;
    double best_metric;  /* best validation avg class accuracy so far (-1: none) */
} CkptInfo;

/** Write a checkpoint. With bank non-NULL the resume state (Adam moments, bank, position) is
 *  included. m->class_counts must be set. @return 0, -errno, LMR_ENOMEM; err names the file. */
int checkpoint_save(const char *path, const Model *m, const CkptInfo *info, const LmrBank *bank, char *err);

/** Read a checkpoint's info (metadata only). @return 0, -errno, LMR_EPARSE, LMR_ENOTFOUND. */
int checkpoint_read_info(const char *path, CkptInfo *info, ModelConfig *cfg, char *err);

/** Restore params, Adam moments and the bank (shapes must match m and bank).
 *  @return 0, LMR_ENOTFOUND (no resume state), LMR_EMISMATCH; err names the tensor. */
int checkpoint_load_resume(const char *path, Model *m, LmrBank *bank, char *err);

/** Copy the model tensors of a checkpoint into m (same dims, hidden and classes required).
 *  @return 0, -errno, LMR_EMISMATCH (err names both shapes). */
int checkpoint_load_params(const char *path, Model *m, char *err);

#endif
