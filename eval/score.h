/* A checkpoint ready to score clips: the model loaded from safetensors, and the device it runs on
 * (host OpenBLAS, or the CUDA backend when lmr was built with it and a GPU is present). Turns
 * per-view features into clip scores: softmax (sigmoid for heads trained with BCE) summed over
 * the views. */
#ifndef LMR_EVAL_SCORE_H
#define LMR_EVAL_SCORE_H

#include "backend.h"
#include "lmr_error.h"
#include "model.h"

typedef struct {
    Model model;       /* host copy, loaded from the checkpoint */
    BackendCtx *ctx;   /* owned */
    int on_device;     /* 1 when the forward runs on the cuda backend */
    ModelViews dv;     /* parameter views in device memory (on_device) */
    float *d_params, *d_x, *d_u, *d_h, *d_mean, *d_rstd, *d_logits; /* device buffers */
    int cap_rows;      /* rows the device buffers hold */
    float *logits;     /* (cap_host, C) host logits */
    int cap_host;
    int sigmoid;       /* score with sigmoid instead of softmax (loss "bce") */
    char path[512];
    char last_error[LMR_ERRLEN];
} Scorer;

/** Load ckpt for device "cpu" or "cuda" with threads compute threads (0 = library default).
 *  @return 0, the model_load errors, LMR_ENAN (a weight is NaN or infinite), LMR_ENODEV ("not
 *  built with CUDA" / "no GPU"), LMR_EINVAL (unknown device); err says which. */
int scorer_open(Scorer *s, const char *ckpt, const char *device, int threads, char *err);
void scorer_close(Scorer *s);

/** Scores of n clips: x holds n * views rows of D features (averaged over T), clip-major;
 *  scores (n, C) receive the per-view probabilities summed over the views.
 *  @return 0, LMR_ENOMEM, LMR_EGPU; last_error says which. */
int scorer_run(Scorer *s, const float *x, int n, int views, float *scores);

static inline int scorer_classes(const Scorer *s) { return model_classes(&s->model); }
static inline int scorer_dim(const Scorer *s) { return model_dim(&s->model); }

#endif
