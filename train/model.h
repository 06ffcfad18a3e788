/* The classifier head of DESIGN section 6: mean over T (done by the loader) -> LayerNorm (eps 1e-6,
 * affine) -> Linear+tanh "pre_logits" (hidden H; H = 0 drops it) -> Linear "head" (C classes).
 * Parameters, gradients and the two Adam moments are each ONE contiguous block; a table of
 * (name, shape, offset) sets the named views, and the same table drives checkpoint writing,
 * loading and the tests. Evaluation (lmr-eval) uses model_load + model_logits. */
#ifndef LMR_TRAIN_MODEL_H
#define LMR_TRAIN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "lmr_error.h"

#define MODEL_LN_EPS 1e-6f

struct Rng; /* rng.h */
#define MODEL_MAX_TENSORS 6

typedef struct {
    int D; /* input feature dim */
    int H; /* hidden (pre-logits) dim; 0 = no hidden layer, features are LN(x) of dim D */
    int C; /* classes */
} ModelConfig;

typedef struct {
    const char *name; /* checkpoint name, e.g. "pre_logits.weight" */
    int ndim;
    int64_t shape[2]; /* as in the checkpoint: PyTorch's (out,in); in memory a 2-D weight is (in,out) */
    size_t offset, numel; /* in floats, inside each block */
} ModelTensor;

/* Named views into one block (params, grads or a moment). NULL when the layer is absent. */
typedef struct {
    float *ln_w, *ln_b; /* (D) */
    float *w1, *b1;     /* (D,H) input-major (backend.h), (H) */
    float *w2, *b2;     /* (F,C), (C) with F = H or D */
} ModelViews;

typedef struct Model {
    ModelConfig cfg;
    int F; /* dim of the features f the classifier reads: H, or D when H = 0 */
    ModelTensor tensors[MODEL_MAX_TENSORS];
    int n_tensors;
    size_t n_params;
    BackendCtx *ctx;               /* borrowed; NULL = host memory, cpu ops (evaluation) */
    float *params, *grads, *m, *v; /* each n_params floats, one allocation (backend memory) */
    ModelViews p, g;
    /* from the checkpoint (model_load) or set by the trainer */
    int64_t *class_counts; /* (C) training clips per class; owned */
    char loss[8];          /* "softmax" or "bce": how the head was trained */
    float head_scale;      /* > 0: cosine classifier, z = head_scale <f/|f|, w_c/|w_c|> (bias unused) */
    float *head_center;    /* (F) or NULL: subtracted from f before the cosine head (lmr-eval --posthoc ncm); owned */
    /* evaluation workspace, grown on demand */
    float *ws;
    size_t ws_len;
    char last_error[LMR_ERRLEN];
} Model;

/** Fill the tensor table for cfg and allocate the four zeroed blocks through ctx (NULL = host,
 *  and then grads/m/v are not allocated). @return 0, LMR_EINVAL, LMR_ENOMEM. */
int model_init(Model *m, const ModelConfig *cfg, BackendCtx *ctx);
/** Free everything; NULL-safe and idempotent. */
void model_free(Model *m);
/** Number of floats in one block for cfg (the `sizes` function the table derives from). */
size_t model_param_count(const ModelConfig *cfg);
/** Named views of any block laid out like the parameters (grads, m, v). */
void model_views(const Model *m, float *block, ModelViews *out);
/** One tensor between its in-memory layout and the checkpoint's (2-D weights transposed from
 *  input-major to PyTorch's (out,in) and back; the rest copied). t->numel floats each side. */
void model_tensor_to_file(const ModelTensor *t, const float *mem, float *file);
void model_tensor_from_file(const ModelTensor *t, const void *file, float *mem);

/** LayerNorm gain 1, bias 0; pre_logits PyTorch-default uniform(+-1/sqrt(D)); head as
 *  model_reinit_head. Draws from rng. */
void model_init_weights(Model *m, struct Rng *rng);
/** Re-initialise the classifier: weight truncated normal (std 0.02, cut at +-2 std), bias 0. */
void model_reinit_head(Model *m, struct Rng *rng);

/** Load the tensors and metadata of a checkpoint written by lmr-train into a host model
 *  (model_init is done here from the checkpoint's dims; m must be zeroed or freed).
 *  @return 0, -errno, LMR_EPARSE, LMR_ECORRUPT, LMR_EMISMATCH; err names the file and tensor. */
int model_load(Model *m, const char *ckpt, char *err);

/** Evaluation forward: x (B,D) already averaged over T -> logits (B,C). Host models only.
 *  @return 0, LMR_ENOMEM, LMR_EINVAL. */
int model_logits(Model *m, const float *x, int B, float *logits);

static inline int model_classes(const Model *m) { return m->cfg.C; }
static inline int model_dim(const Model *m) { return m->cfg.D; }
static inline int model_hidden(const Model *m) { return m->cfg.H; }
/** Training clips per class (C entries), borrowed until model_free; NULL when unknown. */
static inline const int64_t *model_class_counts(const Model *m) { return m->class_counts; }

#endif
