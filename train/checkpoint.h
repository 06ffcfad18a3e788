/* lmr-train checkpoints: safetensors files (DESIGN section 6) with the model's tensors named by
 * the model table, metadata (stage, epoch, step, classes, class counts, dims, LMR parameters),
 * and for --resume the Adam moments, the memory bank and the sampler position as extra tensors
 * and keys. Written atomically (temp file, fsync, rename); same state, same bytes. */
#ifndef LMR_TRAIN_CHECKPOINT_H
#define LMR_TRAIN_CHECKPOINT_H

#include <stdint.h>

#include "lmr.h"
#include "model.h"
#include "shard.h"

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
    /* what the run was trained on and how (written when set; NULL / "" left out) */
    const char *provenance; /* JSON object: the training shards' features (checkpoint_provenance_json) */
    const char *settings;   /* JSON object: every resolved setting of the run */
    const char *command;    /* the command line */
    char train_digest[17];  /* hex XXH3-64 of the training set's ids, labels and counts (dataset_digest) */
    char init_digest[17];   /* hex XXH3-64 of the --init checkpoint file */
} CkptInfo;

/* Metadata keys of a checkpoint (safetensors __metadata__, all strings): format, lmr_version,
 * stage, lmr_off, sampler, epochs, epoch, step_in_epoch, step, batch, seed, lr, classes, dims,
 * hidden, loss, class_counts (JSON list), lmr (JSON object), best_metric, provenance, settings,
 * command, train_digest, init_digest; resume files also bank.n_filled, bank.n_pushed. */

/** Write a checkpoint. With bank non-NULL the resume state (Adam moments, bank, position) is
 *  included. m->class_counts must be set. Nothing is written when a copy from the device fails.
 *  @return 0, -errno, LMR_ENOMEM, a backend error; err names the file. */
int checkpoint_save(const char *path, const Model *m, const CkptInfo *info, const LmrBank *bank, char *err);

/** Read a checkpoint's info (metadata only; the string fields are left NULL / ""), every value
 *  checked: counts whole and in range, epoch <= epochs, rates finite.
 *  @return 0, -errno, LMR_EPARSE (not a checkpoint, or a value that is not what its key needs),
 *  LMR_ENOTFOUND; err names the file and the key. */
int checkpoint_read_info(const char *path, CkptInfo *info, ModelConfig *cfg, char *err);

/** One metadata value as an owned copy (free()), or *out NULL when the key is absent.
 *  @return 0, -errno, LMR_EPARSE, LMR_ENOMEM. */
int checkpoint_read_meta(const char *path, const char *key, char **out, char *err);

/** The provenance JSON a checkpoint records for features described by m: dataset, split, mode,
 *  frames, size, backbone, weights_checksum, and class_names when the shards name the classes. Owned (free()); NULL when out of memory. */
char *checkpoint_provenance_json(const ShardMeta *m);

/* checkpoint_check_features results other than errors */
#define CKPT_FEATURES_UNCHECKED 1  /* the checkpoint or the shards do not say: msg is a note */
#define CKPT_FEATURES_OVERRIDDEN 2 /* they differ and allow was set: msg is a warning */

/** Whether features described by m (the shards a run reads) come from the backbone and weights the
 *  checkpoint at ckpt_path was trained on (its "provenance"). msg (LMR_ERRLEN) says what was
 *  found. @return 0 (same), CKPT_FEATURES_UNCHECKED (the checkpoint records no provenance, or one
 *  side leaves the backbone/weights unsaid), CKPT_FEATURES_OVERRIDDEN (they differ and allow is
 *  set), LMR_EMISMATCH (they differ: msg names both), or an error reading the checkpoint. */
int checkpoint_check_features(const char *ckpt_path, const ShardMeta *m, int allow, char *msg);

/** Hex XXH3-64 of a whole file. @return 0, -errno; err names the file. */
int checkpoint_file_digest(const char *path, char hex[17], char *err);

/** Restore params, Adam moments and the bank (shapes must match m and bank; every value finite).
 *  @return 0, LMR_ENOTFOUND (no resume state), LMR_EMISMATCH, LMR_ENAN; err names the tensor. */
int checkpoint_load_resume(const char *path, Model *m, LmrBank *bank, char *err);

/** Copy the model tensors of a checkpoint into m (same dims, hidden and classes required; every
 *  value finite). @return 0, -errno, LMR_EMISMATCH (err names both shapes), LMR_ENAN. */
int checkpoint_load_params(const char *path, Model *m, char *err);

#endif
