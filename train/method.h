/* Long-tail methods of lmr-train (DESIGN section 6): one table of small descriptors, like
 * FFmpeg's codec table. A method names its stage, its sampler, the LMR parts it runs, and the
 * hooks it needs; the trainer calls the hooks at fixed points of a step and keeps its own code
 * (cross-entropy, LMR, AdamW) for everything a method leaves NULL. Each method lives in one
 * method_<name>.c; adding one means one file and one line in method_table.c.
 *
 * Losses run on the host, row by row: a device backend downloads the logits and uploads the
 * gradient (the per-row work is O(C), against the O(F C) GEMM before it). Every loss of a method
 * is defined on soft targets T (a row: the clip's labels as multi-hot / L, smoothed when asked),
 * so single- and multi-label data take the same code; with one label and no smoothing each
 * reduces to its paper's formula.
 *
 * Conventions: losses[i] is the row's loss, dz (B,C) is d(mean loss)/dz as everywhere in
 * backend.h (the 1/B and any class weight included). */
#ifndef LMR_TRAIN_METHOD_H
#define LMR_TRAIN_METHOD_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "lmr_error.h"
#include "model.h"
#include "optim.h"
#include "sampler.h"

/* Generator streams of the methods' draws (rng.h's lmr-train streams end below 32). */
enum { METHOD_RNG_EQL = 32, METHOD_RNG_MIXUP = 33 };

typedef enum { METHOD_INIT = 0, METHOD_FINETUNE = 1 } MethodStage;

/* Stage-2 LMR parts a method runs (DESIGN section 6: steps 3-5 reconstruction, step 6 mixing). */
enum { METHOD_LMR_RECON = 1, METHOD_LMR_MIX = 2 };

/* Tunables with the canonical defaults (method_params_default); a negative value where noted
 * means "the method's own default". */
typedef struct {
    double la_tau;        /* logit adjustment strength (1: Balanced Softmax) */
    double cb_beta;       /* class-balanced effective number, 0.9999 */
    double focal_gamma;   /* < 0: 2 for focal, 0 for cb (plain CB softmax); cb with gamma > 0 is CB-focal */
    double ldam_s;        /* cosine classifier scale, 30 */
    double ldam_max_m;    /* largest margin, 0.5 */
    double drw_frac;      /* deferred re-weighting from this fraction of the epochs on, 0.8 */
    double eql_gamma;     /* P(beta_k = 1), 0.9 */
    double eql_lambda;    /* tail threshold on the class frequency, 0.005 */
    double mixup_alpha;   /* Beta(alpha, alpha), 1 */
    double lws_lr;        /* <= 0: METHOD_LWS_LR */
} MethodParams;

/* lws: the scales' learning rate when --lws-lr is not given (measured, see method_lws.c). */
#define METHOD_LWS_LR 0.05

void method_params_default(MethodParams *p);

typedef struct MethodCtx MethodCtx;

/* One batch's loss on the host: z (B,C) logits, T (B,C) soft targets, the labels of row i
 * lab[off[i] .. off[i+1]); the hook writes losses (B) and dz (B,C) = d loss_i / d z_i (no 1/B:
 * the caller applies it and the class weights). */
typedef struct {
    int B, C;
    const float *z, *T;
    const int32_t *lab, *off;
    long epoch, step;
    int row0;       /* the rows' index in the global batch (data-parallel draws) */
    float *losses, *dz;
} MethodLoss;

typedef struct Method {
    const char *name;
    MethodStage stage;
    SamplerKind sampler;
    int lmr_parts;   /* stage 2: METHOD_LMR_* bits; 0 = no LMR */
    int keep_head;   /* stage 2: keep the init's classifier (else re-initialised) */
    int ce_default;  /* label smoothing defaults to --smoothing's 0.2 (ce only); others train without */
    const char *help;
    /* Per-class tables and scratch (m->counts, m->C are set). @return 0 or an LMR_E* code. */
    int (*init)(MethodCtx *m, char *err);
    void (*free)(MethodCtx *m);
    /* Class weights in use at this epoch: (C) or NULL; *by_sum 1 divides by the batch's summed
     * weight (PyTorch's weighted mean), 0 by B. */
    const float *(*class_weights)(const MethodCtx *m, long epoch, int *by_sum);
    /* The loss on the host; NULL: the trainer's own cross-entropy. */
    void (*loss)(const MethodCtx *m, MethodLoss *L);
    /* The input batch x (B,D) host -> xo (B,D) host; also remembers what targets() needs. */
    void (*input)(MethodCtx *m, long epoch, long step, const float *x, float *xo, int B, int D);
    /* Rewrite the targets (B,C) after input() (mixup's soft targets). */
    void (*targets)(const MethodCtx *m, float *T, int B, int C);
    /* Classifier forward/backward replacing the linear head (host memory f, w): z (B,C). */
    void (*head_forward)(MethodCtx *m, float *z, const float *f, const float *w, int B, int F, int C);
    /* df (B,F), dw (F,C) written from dz (B,C) (already 1/B-scaled). */
    void (*head_backward)(MethodCtx *m, float *df, float *dw, const float *dz, const float *f, const float *w,
                          int B, int F, int C);
    /* After the head's backward, before the optimiser: the method's own update; returns 1 when
     * it replaces AdamW over the model (lws). */
    int (*step)(MethodCtx *m, Model *model, const AdamWConfig *adam, double lr, long t);
} Method;

struct MethodCtx {
    const Method *m;
    MethodParams p;
    BackendCtx *ctx;        /* borrowed */
    int C, B, Bg, D, F;     /* classes; local and global batch; feature dims */
    int epochs;
    uint64_t seed;
    double lr;              /* the stage's base rate */
    const char *init_path;  /* stage 2: the init checkpoint */
    float smoothing;
    int freeze_rep;         /* stage 2: LayerNorm and pre-logits frozen */
    float head_scale;       /* > 0: the method trains a cosine classifier of this scale (set by init;
                               the trainer's model and the checkpoint carry it) */
    BackendCtx *hctx;       /* the context for host-memory ops: ctx on cpu, NULL (one thread) on a device */
    const int64_t *counts;  /* (C) borrowed */
    /* per-class tables (filled by the method's init or the core) */
    float *log_prior;       /* (C) log pi_c (empty classes: log of half a clip) */
    float *cb_w;            /* (C) class-balanced weights, sum C */
    float *margin;          /* (C) LDAM margins */
    uint8_t *rare;          /* (C) EQL: pi_c < lambda */
    /* host scratch, sized once */
    float *T, *zh, *dzh, *lh, *xh, *w, *wh; /* (Bg,C) (B,C) (B,C) (B) (B,D) (Bg) (F,C) */
    float *fh, *dfh, *dwh;  /* (B,F) (B,F) (F,C): host copies for head hooks on a device */
    /* mixup: this step's draws */
    int32_t *perm;          /* (B) */
    float lam;
    void *priv;             /* a method's own state */
    char last_error[LMR_ERRLEN];
};

/** The method named name, NULL when unknown. */
const Method *method_find(const char *name);
/** Names of every method of a stage, space-separated, into buf. */
void method_names(MethodStage stage, char *buf, size_t cap);

typedef struct {
    BackendCtx *ctx;
    const int64_t *counts;
    int C, B, Bg, D, F, epochs;
    uint64_t seed;
    double lr;
    const char *init_path;
    float smoothing;
    int freeze_rep;
    MethodParams p;
} MethodSetup;

/** Prepare m for method me over a run. @return 0, LMR_ENOMEM, LMR_EINVAL; err says why. */
int method_init(MethodCtx *m, const Method *me, const MethodSetup *s, char *err);
void method_free(MethodCtx *m);

/** The loss of this method on backend-memory logits z (B,C) of the rows row0 .. row0 + B of the
 *  global batch whose labels are lab/off (Bg rows); writes losses (B) and dz (B,C) in backend
 *  memory. @return 0 or a backend error. */
int method_loss(MethodCtx *m, long epoch, long step, const int32_t *lab, const int32_t *off, int row0,
                const float *z, float *dz, float *losses);
/** The same on host memory, for B rows whose labels are lab/off (the tests' entry point). */
void method_loss_host(MethodCtx *m, long epoch, long step, const int32_t *lab, const int32_t *off, int row0,
                      int B, const float *z, float *dz, float *losses);
/** The input hook on backend memory: returns the features the step uses (x itself, or xo
 *  filled). x is the batch's host rows. */
const float *method_input(MethodCtx *m, long epoch, long step, const float *x, float *xo);
/** Head hooks on backend memory; 0 when the method keeps the linear head. */
int method_head_forward(MethodCtx *m, float *z, const float *f, const float *w);
int method_head_backward(MethodCtx *m, float *df, float *dw, float *db, const float *dz, const float *f,
                         const float *w);
/** The optimiser step: the method's own, or AdamW over the trainable part of the model (the
 *  classifier only with freeze_rep). */
void method_optim_step(MethodCtx *m, Model *model, const AdamWConfig *adam, double lr, long t);

/* --- the per-class tables, exposed for the tests ------------------------------------------ */
/** Cui et al. 2019: w_c = (1 - beta) / (1 - beta^n_c), normalised to sum to the number of
 *  classes with clips; 0 for a class without clips. */
void method_cb_weights(const int64_t *counts, int C, double beta, float *w);
/** Cao et al. 2019: m_c = k / n_c^(1/4), k so that the largest margin is max_m; 0 for a class
 *  without clips. */
void method_ldam_margins(const int64_t *counts, int C, double max_m, float *m);
/** The first epoch (0-based) of deferred re-weighting: floor(frac * epochs). */
int method_drw_epoch(int epochs, double frac);
/** log pi_c = log(n_c / N); a class without clips gets log(0.5 / N). */
void method_log_prior(const int64_t *counts, int C, float *lp);

/* Loss rows shared by several methods (method_core.c). Row: z, T (C); writes d (C) = d loss / dz
 * and returns the loss. adj (C) added to z first (NULL: none). */
float method_ce_row(const float *z, const float *adj, const float *T, float *d, int C);
/* Focal on a softmax: - sum_c T_c (1 - p_c)^gamma log p_c. */
float method_focal_row(const float *z, const float *T, float gamma, float *d, int C);

#endif
