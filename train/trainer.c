/* The training loop of lmr-train. Set-up checks every input before the first step; each step
 * runs forward, LMR (stage lmr), loss and backward on preallocated buffers, then hands the
 * complete gradients to the sync hook (all-reduce) and AdamW. Checkpoints carry everything a
 * resumed run needs to finish bit-identical to an uninterrupted one. */
#include "trainer.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "checkpoint.h"
#include "classes.h"
#include "dist.h"
#include "loader.h"
#include "model.h"
#include "rng.h"
#include "sampler.h"

void train_options_default(TrainOptions *o)
{
    memset(o, 0, sizeof *o);
    o->epochs = 30;
    o->batch = 64;
    o->hidden = -1;
    o->smoothing = 0.2;
    o->sched.kind = SCHED_COSINE;
    o->sched.gamma = 0.1;
    o->adam = (AdamWConfig){.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.05, .clip = 0};
    lmr_preset(&o->lmr, "ssv2-lt");
    o->seed = 0;
    o->prefetch = 4;
    o->progress_every = 2.0;
    method_params_default(&o->mp);
}

const Method *train_method(const TrainOptions *o, char *err)
{
    const char *name = o->method ? o->method : o->stage == STAGE_INIT ? "ce" : o->lmr_off ? "crt" : "lmr";
    const Method *me = method_find(name);
    char names[256];
    MethodStage want = o->stage == STAGE_INIT ? METHOD_INIT : METHOD_FINETUNE;
    method_names(want, names, sizeof names);
    if (!me)
        lmr_fail(err, LMR_EINVAL, "--method: unknown '%s' (%s: %s)", name, want == METHOD_INIT ? "init" : "finetune",
                 names);
    else if (me->stage != want)
        lmr_fail(err, LMR_EINVAL, "--method %s is a %s method; --stage %s takes: %s", name,
                 me->stage == METHOD_INIT ? "stage-1 (--stage init)" : "stage-2 (--stage finetune)",
                 o->stage == STAGE_INIT ? "init" : "finetune", names);
    else if (o->lmr_off && strcmp(me->name, "crt") != 0)
        lmr_fail(err, LMR_EINVAL, "--lmr-off is --method crt; it does not go with --method %s", name);
    else if (o->loss_bce && me->loss)
        lmr_fail(err, LMR_EINVAL, "--loss bce does not go with --method %s (a loss of its own)", name);
    else if (o->freeze_rep && o->stage == STAGE_INIT)
        lmr_fail(err, LMR_EINVAL, "--freeze-rep is for stage-2 methods (--stage finetune)");
    else if (o->mp.focal_gamma >= 0 && strcmp(me->name, "focal") != 0 && strcmp(me->name, "cb") != 0)
        lmr_fail(err, LMR_EINVAL, "--focal-gamma is for --method focal or cb, not %s", name);
    else if (o->mp.lws_lr > 0 && strcmp(me->name, "lws") != 0)
        lmr_fail(err, LMR_EINVAL, "--lws-lr is for --method lws, not %s", name);
    else
        return me;
    return NULL;
}

// --- buffers ---------------------------------------------------------------------------------

/* Activations and per-step inputs in backend memory, sized once. */
typedef struct {
    float *x, *u, *mean, *rstd, *h;         /* input, LN, hidden */
    float *fn, *fmean, *frstd;              /* LN0 of the features (LMR) */
    float *R, *X, *wts, *dwts, *dr, *dfn;   /* LMR */
    float *z, *dz, *losses, *Y;             /* head and loss */
    float *dX, *dR, *df, *du;               /* backward */
    float *c, *a;
    int32_t *labels, *qclip, *partner;
    float *fg, *fng, *Rg, *Xg, *dXg, *dRg;  /* data-parallel: (Bg,F) whole-batch views, see dist.h */
} Acts;

/* Host-side scratch for the per-step draws and targets. */
typedef struct {
    float *c_class;  /* (C) LMR class weights */
    uint8_t *few;    /* (C) few-shot classes */
    uint8_t *ok;     /* (B) */
    float *c, *a;    /* (B) */
    int32_t *qclip, *partner; /* (B): each row's clip (dataset index), mixing partners */
    float *Y;        /* (B, C) */
    float *losses;   /* (B) */
} Host;

typedef struct {
    const TrainOptions *o;
    Dataset *train, *val;
    BackendCtx *ctx;
    Model model;
    LmrBank bank;
    Sampler sampler;
    Acts A;
    Host hs;
    LmrKeys keys; /* stage lmr: the bank's usable keys in one block, updated per push */
    const Method *method;
    MethodCtx mc;
    float smoothing; /* the init stage's label smoothing for this method */
    void *allocs[40];
    int n_allocs;
    int B, D, F, C, lmr_on, multi;
    int Bg, row0; /* data-parallel: global batch, this rank's rows row0 .. row0 + B (one rank: B, 0) */
    Dist *dist;   /* NULL: one process */
    long spe; /* steps per epoch */
    CkptInfo info;
    LrSchedule sched_copy; /* the options' schedule with rate and step counts filled in */
    char best_path[1024];
    FILE *log;
    char *provenance, *settings; /* the checkpoint's "provenance" and "settings" (owned JSON) */
} Trainer;

static int acts_alloc(Trainer *t, void *pp, size_t bytes)
{
    void **p = pp;
    int rc = backend_alloc(t->ctx, p, bytes);
    if (rc == 0)
        t->allocs[t->n_allocs++] = *p;
    return rc;
}

static int buffers_init(Trainer *t, int N)
{
    size_t B = (size_t)t->B, D = (size_t)t->D, F = (size_t)t->F, C = (size_t)t->C, H = (size_t)t->model.cfg.H;
    size_t Bg = (size_t)t->Bg;
    size_t fs = sizeof(float), Nn = (size_t)N;
    Acts *A = &t->A;
    struct {
        void *p;
        size_t bytes;
    } want[] = {
        {&A->x, B * D * fs},   {&A->u, B * D * fs},    {&A->mean, B * fs},    {&A->rstd, B * fs},
        {&A->h, B * (H ? H : 1) * fs}, {&A->fn, B * F * fs}, {&A->fmean, B * fs}, {&A->frstd, B * fs},
        {&A->R, B * F * fs},   {&A->X, B * F * fs},    {&A->wts, B * Nn * fs}, {&A->dwts, B * Nn * fs},
        {&A->dr, B * F * fs},  {&A->dfn, B * F * fs},  {&A->z, B * C * fs},   {&A->dz, B * C * fs},
        {&A->losses, B * fs},  {&A->Y, B * C * fs},    {&A->dX, B * F * fs},  {&A->dR, B * F * fs},
        {&A->df, B * F * fs},  {&A->du, B * D * fs},   {&A->c, B * fs},       {&A->a, Bg * fs},
        {&A->labels, B * 4},   {&A->qclip, B * 4},     {&A->partner, Bg * 4},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (acts_alloc(t, want[i].p, want[i].bytes) < 0)
            return LMR_ENOMEM;
    // data-parallel: the bank and the mixing see the whole batch (gathered); one rank uses its own
    float **whole[] = {&A->fg, &A->fng, &A->Rg, &A->Xg, &A->dXg, &A->dRg};
    for (size_t i = 0; i < sizeof whole / sizeof *whole; i++)
        if (Bg > B && t->lmr_on && acts_alloc(t, whole[i], Bg * F * fs) < 0)
            return LMR_ENOMEM;
    if (t->lmr_on) {
        if (lmr_keys_init(&t->keys, t->ctx, t->bank.K, t->bank.B, F) < 0)
            return LMR_ENOMEM;
    }
    // host draws and targets cover the global batch: every rank draws them alike
    B = Bg;
    Host *hs = &t->hs;
    hs->c_class = calloc(C, sizeof *hs->c_class);
    hs->few = calloc(C, 1);
    hs->ok = calloc(B, 1);
    hs->c = calloc(B, fs);
    hs->a = calloc(B, fs);
    hs->qclip = calloc(B, 4);
    hs->partner = calloc(B, 4);
    hs->Y = calloc(B * C, fs);
    hs->losses = calloc(B, fs);
    if (!hs->c_class || !hs->few || !hs->ok || !hs->c || !hs->a || !hs->qclip || !hs->partner || !hs->Y ||
        !hs->losses)
        return LMR_ENOMEM;
    return 0;
}

static void trainer_free(Trainer *t)
{
    for (int i = 0; i < t->n_allocs; i++)
        backend_release(t->ctx, t->allocs[i]);
    Host *hs = &t->hs;
    free(hs->c_class);
    free(hs->few);
    free(hs->ok);
    free(hs->c);
    free(hs->a);
    lmr_keys_free(&t->keys);
    free(hs->qclip);
    free(hs->partner);
    free(hs->Y);
    free(hs->losses);
    lmr_bank_free(&t->bank);
    method_free(&t->mc);
    sampler_free(&t->sampler);
    model_free(&t->model);
    backend_free(&t->ctx);
    if (t->log)
        fclose(t->log);
    free(t->provenance);
    free(t->settings);
}

static void note(const TrainOptions *o, int progress, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note(const TrainOptions *o, int progress, const char *fmt, ...)
{
    if (!o->note)
        return;
    char msg[LMR_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    o->note(o->note_user, progress, msg);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// --- one step --------------------------------------------------------------------------------

/* Targets (B,C) on the host for rows without LMR: one-hot / multi-hot/L, smoothed for softmax. */
static void plain_targets(Trainer *t, const Batch *b, float smoothing)
{
    Host *hs = &t->hs;
    for (int i = 0; i < t->B; i++)
        hs->partner[i] = i;
    // b holds the labels of the global batch: this rank's rows start at row0
    lmr_targets(hs->Y, b->lab, b->lab_off + t->row0, hs->partner, hs->a, 0, t->B, t->C, t->o->loss_bce);
    if (!t->o->loss_bce && smoothing > 0)
        for (size_t k = 0; k < (size_t)t->B * t->C; k++)
            hs->Y[k] = (1.0f - (float)smoothing) * hs->Y[k] + (float)smoothing / t->C;
}

/* LMR rows: class weight (mean over a clip's labels), whether the clip may serve as a key, and
 * the clip itself: a row never attends to a key made from its own clip (DESIGN 6.4), wherever it
 * sits in the bank (the class-balanced sampler draws with replacement). */
static void lmr_row_inputs(Trainer *t, const Batch *b)
{
    Host *hs = &t->hs;
    for (int i = 0; i < t->Bg; i++) { // the global batch: the bank holds every rank's rows
        float c = 0.0f;
        uint8_t ok = 1;
        for (int q = b->lab_off[i]; q < b->lab_off[i + 1]; q++) {
            c += hs->c_class[b->lab[q]];
            ok &= (uint8_t)!hs->few[b->lab[q]];
        }
        hs->c[i] = c / (float)(b->lab_off[i + 1] - b->lab_off[i]);
        hs->ok[i] = ok;
        hs->qclip[i] = (int32_t)b->clips[i]; // below INT32_MAX: checked at set-up
    }
}

/* A failed collective or device op: its message into err. */
static int step_fail(Trainer *t, int rc, char *err)
{
    const char *why = t->dist && t->dist->last_error[0] ? t->dist->last_error : backend_last_error(t->ctx);
    return lmr_fail(err, rc, "%s", why[0] ? why : lmr_strerror(rc));
}

/* A step input from the host: on the CPU the host rows themselves (they outlive the step), else
 * uploaded into dev. */
static const float *stage_in(BackendCtx *ctx, float *dev, const float *host, size_t bytes)
{
    if (backend_kind(ctx) == BACKEND_CPU)
        return host;
    backend_upload(ctx, dev, host, bytes);
    return dev;
}

static int train_step(Trainer *t, const Batch *b, double lr, long gstep, double *loss_out, char *err)
{
    BackendCtx *ctx = t->ctx;
    Acts *A = &t->A;
    Host *hs = &t->hs;
    const ModelViews *p = &t->model.p, *g = &t->model.g;
    int B = t->B, D = t->D, F = t->F, C = t->C, H = t->model.cfg.H, N = 0, n_mix = 0;
    // data-parallel (dist.h): b carries the labels of the global batch of Bg rows and the features of
    // this rank's B rows from row0; whole-batch tensors are gathered. One rank: Bg = B, row0 = 0.
    int Bg = t->Bg, row0 = t->row0, rc = 0;
    float *Xg = A->X, *dXg = A->dX, *dRg = A->dR;
    const float *Y = A->Y, *keys = t->bank.keys, *keys_n = t->bank.keys_n;
    const uint8_t *key_ok = t->bank.key_ok;
    const int32_t *key_clip = t->bank.key_clip;

    // forward: LN -> (Linear + tanh) -> features f
    const float *x = stage_in(ctx, A->x, b->x, (size_t)B * D * sizeof(float));
    const float *xm = method_input(&t->mc, b->epoch, b->step, b->x, A->x); // mixup: the mixed rows
    if (xm)
        x = xm;
    layernorm_forward(ctx, A->u, A->mean, A->rstd, x, p->ln_w, p->ln_b, B, D, MODEL_LN_EPS);
    float *f = A->u;
    if (H > 0) {
        linear_forward(ctx, A->h, A->u, p->w1, p->b1, B, D, H, ACT_TANH);
        f = A->h;
    }
    const float *head_in = f;
    if (t->lmr_on) {
        // steps 3-6: bank (current batch appended first), reconstruction, mixing, soft targets
        layernorm_forward(ctx, A->fn, A->fmean, A->frstd, f, NULL, NULL, B, F, MODEL_LN_EPS);
        const float *fg = f, *fng = A->fn, *Rg = A->R;
        size_t rows_bytes = (size_t)B * F * sizeof(float);
        if (Bg > B) { // data-parallel: the bank takes every rank's features
            if ((rc = dist_allgather(t->dist, A->fg, f, rows_bytes)) < 0 ||
                (rc = dist_allgather(t->dist, A->fng, A->fn, rows_bytes)) < 0)
                return step_fail(t, rc, err);
            fg = A->fg;
            fng = A->fng;
        }
        lmr_row_inputs(t, b);
        int slot = lmr_bank_push(&t->bank, fg, fng, hs->ok, hs->qclip);
        N = lmr_bank_keys(&t->bank);
        backend_upload(ctx, A->c, hs->c + row0, (size_t)B * sizeof(float));
        backend_upload(ctx, A->qclip, hs->qclip + row0, (size_t)B * sizeof(int32_t));
        if (t->keys.keys) { // the bank's usable keys in one block
            lmr_keys_push(&t->keys, &t->bank, slot, hs->ok);
            N = lmr_keys_count(&t->keys);
            keys = lmr_keys_f(&t->keys);
            keys_n = lmr_keys_fn(&t->keys);
            key_ok = t->keys.ones;
            key_clip = lmr_keys_clip(&t->keys);
        }
        lmr_forward(ctx, A->R, A->wts, f, A->fn, keys, keys_n, key_ok, key_clip, A->qclip, A->c, B, N, F);
        Rng r;
        rng_seed(&r, t->o->seed, RNG_MIX, (uint64_t)b->epoch, (uint64_t)b->step);
        n_mix = lmr_draw_mix(&r, t->info.lmr.p, Bg, hs->partner, hs->a);
        backend_upload(ctx, A->partner, hs->partner, (size_t)Bg * sizeof(int32_t));
        backend_upload(ctx, A->a, hs->a, (size_t)Bg * sizeof(float));
        if (Bg > B) { // a partner may live on another rank: mix over the gathered batch
            if ((rc = dist_allgather(t->dist, A->Rg, A->R, rows_bytes)) < 0)
                return step_fail(t, rc, err);
            Rg = A->Rg;
            Xg = A->Xg;
        }
        mix_forward(ctx, Xg, Rg, A->partner, A->a, n_mix, Bg, F);
        lmr_targets(hs->Y, b->lab, b->lab_off, hs->partner, hs->a, n_mix, Bg, C, t->o->loss_bce);
        Y = stage_in(ctx, A->Y, hs->Y + (size_t)row0 * C, (size_t)B * C * sizeof(float));
        head_in = Xg + (size_t)row0 * F;
    }
    if (!method_head_forward(&t->mc, A->z, head_in, p->w2))
        linear_forward(ctx, A->z, head_in, p->w2, p->b2, B, F, C, ACT_NONE);

    // loss and dlogits
    float smoothing = t->smoothing;
    if (!t->lmr_on && !t->method->loss && (t->multi || t->o->loss_bce)) {
        plain_targets(t, b, smoothing);
        Y = stage_in(ctx, A->Y, hs->Y, (size_t)B * C * sizeof(float));
    }
    if (t->method->loss) {
        if ((rc = method_loss(&t->mc, b->epoch, b->step, b->lab, b->lab_off, row0, A->z, A->dz, A->losses)) < 0)
            return step_fail(t, rc, err);
    } else if (t->o->loss_bce)
        bce_forward_backward(ctx, A->losses, A->dz, A->z, Y, B, C);
    else if (t->lmr_on || t->multi)
        ce_soft_forward_backward(ctx, A->losses, A->dz, A->z, Y, B, C);
    else {
        backend_upload(ctx, A->labels, b->label1 + row0, (size_t)B * sizeof(int32_t));
        ce_hard_forward_backward(ctx, A->losses, A->dz, A->z, A->labels, smoothing, B, C);
    }

    // backward
    if (!method_head_backward(&t->mc, A->dX, g->w2, g->b2, A->dz, head_in, p->w2))
        linear_backward(ctx, A->dX, g->w2, g->b2, A->dz, head_in, p->w2, NULL, B, F, C, ACT_NONE);
    float *df = A->dX;
    if (t->lmr_on) {
        if (Bg > B) { // this rank's rows of dX inside a zero global one; partners' parts summed over ranks
            backend_zero(ctx, A->dXg, (size_t)Bg * F * sizeof(float));
            backend_copy(ctx, A->dXg + (size_t)row0 * F, A->dX, (size_t)B * F * sizeof(float));
            dXg = A->dXg;
            dRg = A->dRg;
        }
        mix_backward(ctx, dRg, dXg, A->partner, A->a, n_mix, Bg, F);
        if (Bg > B && (rc = dist_allreduce(t->dist, dRg, (size_t)Bg * F, 0)) < 0)
            return step_fail(t, rc, err);
        lmr_backward(ctx, A->df, dRg + (size_t)row0 * F, A->wts, A->fn, A->frstd, keys, keys_n, A->c,
                     A->dwts, A->dr, A->dfn, B, N, F);
        df = A->df;
    }
    // the LN's input is data: on the cpu its gains and biases come with the layer's weight
    // gradient, without the (B,D) input gradient (A->du as scratch)
    if (t->mc.freeze_rep)
        ; // --freeze-rep (and lws): nothing below the classifier trains
    else if (H == 0)
        layernorm_backward(ctx, NULL, g->ln_w, g->ln_b, df, x, p->ln_w, A->mean, A->rstd, B, D);
    else if (ln_linear_backward(ctx, g->w1, g->b1, g->ln_w, g->ln_b, df, A->h, x, A->mean, A->rstd, p->ln_w,
                                p->ln_b, p->w1, A->du, B, D, H, ACT_TANH) < 0) {
        linear_backward(ctx, A->du, g->w1, g->b1, df, A->u, p->w1, A->h, B, D, H, ACT_TANH);
        layernorm_backward(ctx, NULL, g->ln_w, g->ln_b, A->du, x, p->ln_w, A->mean, A->rstd, B, D);
    }

    // every gradient is complete here: data-parallel all-reduce (the mean over ranks of the
    // per-rank means is the global batch's mean), then the optimiser
    if ((rc = dist_allreduce(t->dist, t->model.grads, t->model.n_params, 1)) < 0)
        return step_fail(t, rc, err);
    if (t->o->grad_sync) {
        rc = t->o->grad_sync(t->o->grad_sync_user, t->model.grads, t->model.n_params);
        if (rc < 0)
            return rc;
    }
    if ((rc = backend_download(ctx, hs->losses, A->losses, (size_t)B * sizeof(float))) < 0)
        return step_fail(t, rc, err);
    double loss = 0.0;
    for (int i = 0; i < B; i++)
        loss += hs->losses[i];
    if ((rc = dist_sum_host(t->dist, &loss, 1)) < 0) // every rank sees the same loss and stops alike
        return step_fail(t, rc, err);
    *loss_out = loss / Bg;
    if (!isfinite(*loss_out))
        return LMR_ENAN; // before the update: the parameters stay the last good ones
    method_optim_step(&t->mc, &t->model, &t->o->adam, lr, gstep);
    return 0;
}

// --- validation ------------------------------------------------------------------------------

int train_validate(Model *m, Dataset *d, const int64_t *train_counts, ValMetrics *out, char *err)
{
    int C = m->cfg.C, V = d->views, D = d->D, chunk = 64;
    int *groups = malloc((size_t)C * sizeof *groups);
    int64_t *n_c = calloc((size_t)C, sizeof *n_c), *hit_c = calloc((size_t)C, sizeof *hit_c);
    float *x = malloc((size_t)chunk * V * D * sizeof *x), *z = malloc((size_t)chunk * V * C * sizeof *z);
    double *score = malloc((size_t)C * sizeof *score);
    DatasetReader r;
    int rc = dataset_reader_init(&r);
    if (!groups || !n_c || !hit_c || !x || !z || !score || rc < 0) {
        rc = lmr_fail(err, LMR_ENOMEM, "validation: out of memory");
        goto done;
    }
    if ((rc = classes_partition(train_counts, C, LMR_HEAD_SHARE, LMR_FEW_MAX, groups)) < 0) {
        lmr_fail(err, rc, "validation: grouping the classes: %s", lmr_strerror(rc));
        goto done;
    }
    uint64_t hits = 0;
    for (uint64_t i0 = 0; i0 < d->n; i0 += (uint64_t)chunk) {
        int n = (int)(d->n - i0 < (uint64_t)chunk ? d->n - i0 : (uint64_t)chunk);
        for (int k = 0; k < n; k++)
            for (int v = 0; v < V; v++)
                if ((rc = dataset_read(d, &r, i0 + (uint64_t)k, v, x + ((size_t)k * V + v) * D, err)) < 0)
                    goto done;
        if ((rc = model_logits(m, x, n * V, z)) < 0) {
            lmr_fail(err, rc, "%s", m->last_error);
            goto done;
        }
        for (int k = 0; k < n; k++) {
            // softmax scores summed over views, then top-1
            memset(score, 0, (size_t)C * sizeof *score);
            for (int v = 0; v < V; v++) {
                const float *zz = z + ((size_t)k * V + v) * C;
                float mx = zz[0];
                for (int c = 1; c < C; c++)
                    mx = zz[c] > mx ? zz[c] : mx;
                double s = 0.0;
                for (int c = 0; c < C; c++)
                    s += exp((double)zz[c] - mx);
                for (int c = 0; c < C; c++)
                    score[c] += exp((double)zz[c] - mx) / s;
            }
            int best = 0;
            for (int c = 1; c < C; c++)
                best = score[c] > score[best] ? c : best;
            const int32_t *lab;
            int nl = dataset_n_labels(d, i0 + (uint64_t)k, &lab), hit = 0;
            for (int q = 0; q < nl; q++)
                hit |= lab[q] == best;
            hits += (uint64_t)hit;
            // per-class accuracy as lmr-eval counts it (DESIGN section 7): one shared definition
            char why[LMR_ERRLEN];
            if ((rc = classes_score_clip(score, C, lab, nl, n_c, hit_c, why)) < 0) {
                lmr_fail(err, rc, "validation clip %llu: %s", (unsigned long long)(i0 + (uint64_t)k), why);
                goto done;
            }
        }
    }
    double sum[LMR_N_GROUPS] = {0}, all = 0.0;
    int cnt[LMR_N_GROUPS] = {0}, present = 0;
    for (int c = 0; c < C; c++) {
        if (!n_c[c])
            continue;
        double acc = (double)hit_c[c] / (double)n_c[c];
        all += acc;
        present++;
        if (groups[c] >= 0) {
            sum[groups[c]] += acc;
            cnt[groups[c]]++;
        }
    }
    out->avg_class_acc = present ? all / present : -1;
    out->head_acc = cnt[LMR_GROUP_HEAD] ? sum[LMR_GROUP_HEAD] / cnt[LMR_GROUP_HEAD] : -1;
    out->tail_acc = cnt[LMR_GROUP_TAIL] ? sum[LMR_GROUP_TAIL] / cnt[LMR_GROUP_TAIL] : -1;
    out->few_acc = cnt[LMR_GROUP_FEW] ? sum[LMR_GROUP_FEW] / cnt[LMR_GROUP_FEW] : -1;
    out->top1 = (double)hits / (double)d->n;
    rc = 0;
done:
    dataset_reader_free(&r);
    free(groups);
    free(n_c);
    free(hit_c);
    free(x);
    free(z);
    free(score);
    return rc;
}

// --- set-up ----------------------------------------------------------------------------------

static int file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Model dims from the options and, for the lmr stage, the init checkpoint; every shape is checked
 * against the data before anything is trained. */
static int setup_model(Trainer *t, char *err)
{
    const TrainOptions *o = t->o;
    ModelConfig cfg = {.D = t->train->D, .H = o->hidden >= 0 ? o->hidden : 512, .C = t->train->C};
    if (o->stage == STAGE_LMR) {
        if (!o->init)
            return lmr_fail(err, LMR_EINVAL, "--stage lmr needs --init CKPT (the init stage's checkpoint)");
        CkptInfo ii;
        ModelConfig ic;
        int rc = checkpoint_read_info(o->init, &ii, &ic, err);
        if (rc < 0)
            return rc;
        if (ic.D != cfg.D || ic.C != cfg.C || (o->hidden >= 0 && o->hidden != ic.H))
            return lmr_fail(err, LMR_EMISMATCH,
                            "%s: init checkpoint has dims %d, hidden %d, classes %d; this run has dims %d, hidden %d, "
                            "classes %d",
                            o->init, ic.D, ic.H, ic.C, cfg.D, o->hidden >= 0 ? o->hidden : ic.H, cfg.C);
        cfg.H = ic.H;
        // the init head was trained on features of some backbone: these must be the same ones
        if (t->train->set) {
            char msg[LMR_ERRLEN];
            rc = checkpoint_check_features(o->init, shardset_meta(t->train->set), o->allow_other_features, msg);
            if (rc < 0)
                return lmr_fail(err, rc, "--init %s", msg);
            if (rc == CKPT_FEATURES_UNCHECKED)
                note(o, 0, "note: --init %s", msg);
            else if (rc == CKPT_FEATURES_OVERRIDDEN)
                note(o, 0, "WARNING: --init %s", msg);
        }
        if ((rc = checkpoint_file_digest(o->init, t->info.init_digest, err)) < 0)
            return rc;
    }
    int rc = model_init(&t->model, &cfg, t->ctx);
    if (rc < 0)
        return lmr_fail(err, rc, "%s", t->model.last_error);
    t->model.class_counts = malloc((size_t)cfg.C * sizeof *t->model.class_counts);
    if (!t->model.class_counts)
        return lmr_fail(err, LMR_ENOMEM, "out of memory");
    memcpy(t->model.class_counts, t->train->counts, (size_t)cfg.C * sizeof *t->model.class_counts);
    snprintf(t->model.loss, sizeof t->model.loss, "%s", o->loss_bce ? "bce" : "softmax");
    // weights are made on the host, then uploaded (a no-op copy on cpu)
    Model host;
    if ((rc = model_init(&host, &cfg, NULL)) < 0)
        return lmr_fail(err, rc, "%s", host.last_error);
    Rng r;
    if (o->stage == STAGE_INIT) {
        rng_seed(&r, o->seed, RNG_INIT, 0, 0);
        model_init_weights(&host, &r);
    } else {
        if ((rc = checkpoint_load_params(o->init, &host, err)) < 0) {
            model_free(&host);
            return rc;
        }
        rng_seed(&r, o->seed, RNG_HEAD, 0, 0);
        if (!t->method->keep_head)
            model_reinit_head(&host, &r);
    }
    backend_upload(t->ctx, t->model.params, host.params, host.n_params * sizeof(float));
    model_free(&host);
    t->F = t->model.F;
    return 0;
}

static int setup_checks(Trainer *t, char *err)
{
    const TrainOptions *o = t->o;
    Dataset *tr = t->train, *va = t->val;
    if (o->epochs <= 0 || o->batch <= 0)
        return lmr_fail(err, LMR_EINVAL, "--epochs and --batch must be positive");
    if (tr->n > (uint64_t)INT32_MAX) // the bank keeps each key's clip as an int32
        return lmr_fail(err, LMR_EINVAL, "--train holds %llu clips, more than lmr-train handles (%d)",
                        (unsigned long long)tr->n, INT32_MAX);
    if (va && va->D != tr->D)
        return lmr_fail(err, LMR_EMISMATCH, "--val features have dims %d, --train has %d", va->D, tr->D);
    if (va && va->C > tr->C)
        return lmr_fail(err, LMR_EMISMATCH, "--val has labels up to %d, --train has %d classes", va->C - 1, tr->C);
    // one line for all empty classes: a 1000-class set can have hundreds
    char list[160] = "";
    int n_empty = 0;
    size_t len = 0;
    for (int c = 0; c < tr->C; c++)
        if (tr->counts[c] == 0) {
            if (n_empty++ < 8 && len < sizeof list)
                len += (size_t)snprintf(list + len, sizeof list - len, "%s%d", len ? ", " : "", c);
        }
    if (n_empty == 1)
        note(o, 0, "warning: class %s has no training clips%s", list,
             o->stage == STAGE_LMR ? "; the class-balanced sampler skips it" : "");
    else if (n_empty > 1)
        note(o, 0, "warning: %d classes have no training clips (%s%s)%s", n_empty, list, n_empty > 8 ? ", ..." : "",
             o->stage == STAGE_LMR ? "; the class-balanced sampler skips them" : "");
    return 0;
}

void train_best_path(char *dst, size_t cap, const char *out)
{
    const char *ext = ".safetensors";
    size_t n = strlen(out), e = strlen(ext);
    if (n > e && strcmp(out + n - e, ext) == 0)
        snprintf(dst, cap, "%.*s.best%s", (int)(n - e), out, ext);
    else
        snprintf(dst, cap, "%s.best", out);
}

/* Reals in the settings JSON: 12 significant digits read back as the values typed. */
#define SETTINGS_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(12))

static const char *const sched_names[] = {"cosine", "step", "constant"};

/* Every resolved setting of the run, the checkpoint's "settings". Settings that take no part in
 * this run are left out (the LMR values in stage init or with --lmr-off, milestones and gamma
 * without --schedule step), so a resume compares only what changes the result. */
static char *settings_json(const Trainer *t)
{
    const TrainOptions *o = t->o;
    json_t *s = json_object();
    char seed[24];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    json_object_set_new(s, "stage", json_string(t->info.stage));
    json_object_set_new(s, "lmr_off", json_integer(o->lmr_off));
    json_object_set_new(s, "preset", json_string(o->preset ? o->preset : "ssv2-lt"));
    json_object_set_new(s, "epochs", json_integer(o->epochs));
    json_object_set_new(s, "batch", json_integer(t->Bg));
    json_object_set_new(s, "lr", json_real(t->info.lr));
    json_object_set_new(s, "schedule", json_string(sched_names[o->sched.kind]));
    if (o->sched.kind == SCHED_STEP) {
        json_t *ms = json_array();
        for (int i = 0; i < o->sched.n_milestones; i++)
            json_array_append_new(ms, json_integer(o->sched.milestones[i]));
        json_object_set_new(s, "milestones", ms);
        json_object_set_new(s, "gamma", json_real(o->sched.gamma));
    }
    json_object_set_new(s, "warmup", json_real(o->warmup_epochs));
    json_object_set_new(s, "smoothing", json_real(o->stage == STAGE_INIT && !o->loss_bce ? t->smoothing : 0.0));
    json_object_set_new(s, "method", json_string(t->method->name));
    json_object_set_new(s, "freeze_rep", json_integer(o->freeze_rep));
    json_t *mp = json_object();
    json_object_set_new(mp, "la_tau", json_real(o->mp.la_tau));
    json_object_set_new(mp, "cb_beta", json_real(o->mp.cb_beta));
    json_object_set_new(mp, "focal_gamma", json_real(o->mp.focal_gamma));
    json_object_set_new(mp, "ldam_s", json_real(o->mp.ldam_s));
    json_object_set_new(mp, "ldam_max_m", json_real(o->mp.ldam_max_m));
    json_object_set_new(mp, "drw_frac", json_real(o->mp.drw_frac));
    json_object_set_new(mp, "eql_gamma", json_real(o->mp.eql_gamma));
    json_object_set_new(mp, "eql_lambda", json_real(o->mp.eql_lambda));
    json_object_set_new(mp, "mixup_alpha", json_real(o->mp.mixup_alpha));
    json_object_set_new(mp, "lws_lr", json_real(o->mp.lws_lr));
    json_object_set_new(s, "method_params", mp);
    json_object_set_new(s, "weight_decay", json_real(o->adam.weight_decay));
    json_object_set_new(s, "beta1", json_real(o->adam.beta1));
    json_object_set_new(s, "beta2", json_real(o->adam.beta2));
    json_object_set_new(s, "adam_eps", json_real(o->adam.eps));
    json_object_set_new(s, "clip", json_real(o->adam.clip));
    json_object_set_new(s, "loss", json_string(o->loss_bce ? "bce" : "softmax"));
    json_object_set_new(s, "hidden", json_integer(t->model.cfg.H));
    json_object_set_new(s, "classes", json_integer(t->C));
    json_object_set_new(s, "seed", json_string(seed));
    if (t->lmr_on) {
        json_t *l = json_object();
        json_object_set_new(l, "l", json_real(o->lmr.l));
        json_object_set_new(l, "h", json_real(o->lmr.h));
        json_object_set_new(l, "d", json_real(o->lmr.d));
        json_object_set_new(l, "eps", json_real(o->lmr.eps));
        json_object_set_new(l, "p", json_real(o->lmr.p));
        json_object_set_new(l, "omega", json_integer(o->lmr.omega));
        json_object_set_new(l, "K", json_integer(o->lmr.K));
        json_object_set_new(l, "allow_nonmonotone", json_integer(o->lmr.allow_nonmonotone));
        json_object_set_new(s, "lmr", l);
    }
    json_object_set_new(s, "threads", json_integer(o->threads));
    json_object_set_new(s, "device", json_string(o->device == BACKEND_CUDA ? "cuda" : "cpu"));
    json_object_set_new(s, "tf32", json_integer(o->tf32));
    json_object_set_new(s, "ranks", json_integer(t->dist ? t->dist->size : 1));
    char *out = json_dumps(s, SETTINGS_JSON_FLAGS);
    json_decref(s);
    return out;
}

/* A settings value as the command line gives it, for a message. */
static void setting_text(const json_t *v, char *buf, size_t cap)
{
    if (!v)
        snprintf(buf, cap, "(not set)");
    else if (json_is_string(v))
        snprintf(buf, cap, "%s", json_string_value(v));
    else {
        char *d = json_dumps(v, JSON_ENCODE_ANY | SETTINGS_JSON_FLAGS);
        snprintf(buf, cap, "%s", d ? d : "?");
        free(d);
    }
}

/* The settings that change what a run computes, with the flag that sets each. */
static const struct {
    const char *key, *flag;
} result_settings[] = {
    {"stage", "--stage"}, {"lmr_off", "--lmr-off"}, {"batch", "--batch"}, {"lr", "--lr"},
    {"schedule", "--schedule"}, {"milestones", "--milestones"}, {"gamma", "--gamma"}, {"warmup", "--warmup"},
    {"smoothing", "--smoothing"}, {"weight_decay", "--weight-decay"}, {"beta1", "--beta1"}, {"beta2", "--beta2"},
    {"adam_eps", "--adam-eps"}, {"clip", "--clip"}, {"loss", "--loss"}, {"hidden", "--hidden"},
    {"classes", "--classes"}, {"seed", "--seed"}, {"lmr.l", "--lmr-l"}, {"lmr.h", "--lmr-h"}, {"lmr.d", "--lmr-d"},
    {"lmr.eps", "--lmr-eps"}, {"lmr.p", "--lmr-p"}, {"lmr.omega", "--lmr-omega"}, {"lmr.K", "--lmr-k"},
    {"lmr.allow_nonmonotone", "--lmr-allow-nonmonotone"}, {"method", "--method"}, {"freeze_rep", "--freeze-rep"},
    {"method_params.focal_gamma", "--focal-gamma"}, {"method_params.lws_lr", "--lws-lr"},
};

static const json_t *setting_get(const json_t *s, const char *key)
{
    if (strncmp(key, "lmr.", 4) == 0)
        return json_object_get(json_object_get(s, "lmr"), key + 4);
    if (strncmp(key, "method_params.", 14) == 0)
        return json_object_get(json_object_get(s, "method_params"), key + 14);
    return json_object_get(s, key);
}

/* Compare the settings a checkpoint was written with (stored JSON) with this run's: the first
 * that differs is named. @return 0 or LMR_EMISMATCH. */
static int settings_match(const Trainer *t, const char *stored, char *err)
{
    json_t *a = json_loads(stored, 0, NULL), *b = json_loads(t->settings, 0, NULL);
    int rc = 0;
    if (!json_is_object(a) || !b)
        rc = lmr_fail(err, LMR_EPARSE, "%s: metadata 'settings' is not a JSON object", t->o->out);
    for (size_t i = 0; rc == 0 && i < sizeof result_settings / sizeof *result_settings; i++) {
        const json_t *x = setting_get(a, result_settings[i].key), *y = setting_get(b, result_settings[i].key);
        if ((!x && !y) || (x && y && json_equal((json_t *)x, (json_t *)y)))
            continue;
        char was[64], now[64];
        setting_text(x, was, sizeof was);
        setting_text(y, now, sizeof now);
        rc = lmr_fail(err, LMR_EMISMATCH,
                      "--resume: %s was written with %s %s; this run has %s %s, which changes the result "
                      "(use the same value, or start a new run without --resume)",
                      t->o->out, result_settings[i].flag, was, result_settings[i].flag, now);
    }
    json_decref(a);
    json_decref(b);
    return rc;
}

/* A checkpoint without "settings" (an older lmr-train): the values its other keys hold. */
static int legacy_settings_match(const Trainer *t, const CkptInfo *in, char *err)
{
    const CkptInfo *me = &t->info;
    const char *what = NULL;
    char was[64] = "", now[64] = "";
    if (strcmp(in->stage, me->stage))
        what = "--stage", snprintf(was, sizeof was, "%s", in->stage), snprintf(now, sizeof now, "%s", me->stage);
    else if (in->lmr_off != me->lmr_off)
        what = "--lmr-off", snprintf(was, sizeof was, "%d", in->lmr_off), snprintf(now, sizeof now, "%d", me->lmr_off);
    else if (in->batch != me->batch)
        what = "--batch", snprintf(was, sizeof was, "%d", in->batch), snprintf(now, sizeof now, "%d", me->batch);
    else if (in->seed != me->seed)
        what = "--seed", snprintf(was, sizeof was, "%llu", (unsigned long long)in->seed),
        snprintf(now, sizeof now, "%llu", (unsigned long long)me->seed);
    else if (in->lr != me->lr)
        what = "--lr", snprintf(was, sizeof was, "%.12g", in->lr), snprintf(now, sizeof now, "%.12g", me->lr);
    else if (t->lmr_on && (in->lmr.l != me->lmr.l || in->lmr.h != me->lmr.h || in->lmr.d != me->lmr.d ||
                           in->lmr.eps != me->lmr.eps || in->lmr.p != me->lmr.p || in->lmr.omega != me->lmr.omega ||
                           in->lmr.K != me->lmr.K))
        what = "the LMR values (--lmr-*)";
    if (what)
        return lmr_fail(err, LMR_EMISMATCH,
                        "--resume: %s was written by another run (%s %s; this run %s): resuming would change the "
                        "result",
                        t->o->out, what, was, now);
    note(t->o, 0, "note: %s was written by an older lmr-train that did not record its settings: only the stage, "
                  "batch, seed, rate and LMR values are checked for --resume", t->o->out);
    return 0;
}

/* Resume: load the state saved in o->out when its settings match this run. --epochs may differ
 * with a constant or step schedule, whose rate at each step does not depend on the run's length:
 * the resumed run then computes what a run started with the new --epochs would have.
 * @return RESUMED, 0 nothing to resume (fresh start), LMR_DONE finished, or an error. */
#define RESUMED 2
static int try_resume(Trainer *t, char *err)
{
    const TrainOptions *o = t->o;
    if (!o->resume || !file_exists(o->out))
        return 0;
    CkptInfo in;
    ModelConfig c;
    char *stored = NULL;
    int rc = checkpoint_read_info(o->out, &in, &c, err);
    if (rc < 0 || (rc = checkpoint_read_meta(o->out, "settings", &stored, err)) < 0)
        return rc;
    rc = stored ? settings_match(t, stored, err) : legacy_settings_match(t, &in, err);
    free(stored);
    if (rc < 0)
        return rc;
    if (c.D != t->model.cfg.D || c.H != t->model.cfg.H || c.C != t->model.cfg.C)
        return lmr_fail(err, LMR_EMISMATCH, "--resume: %s has dims %d, hidden %d, classes %d; this run %d, %d, %d",
                        o->out, c.D, c.H, c.C, t->model.cfg.D, t->model.cfg.H, t->model.cfg.C);
    if (in.step_in_epoch >= t->spe || in.global_step != in.epoch * t->spe + in.step_in_epoch)
        return lmr_fail(err, LMR_ECORRUPT,
                        "--resume: %s: step %ld (epoch %ld, step %ld in it) does not fit %ld steps per epoch",
                        o->out, in.global_step, in.epoch, in.step_in_epoch, t->spe);
    if (in.epochs != o->epochs) {
        if (o->sched.kind == SCHED_COSINE)
            return lmr_fail(err, LMR_EMISMATCH,
                            "--resume: %s was written by another run with --epochs %ld (this one: %d); a cosine "
                            "schedule is fitted to the run's length, so it cannot be extended or cut (constant and "
                            "step schedules can)",
                            o->out, in.epochs, o->epochs);
        if (in.epoch > o->epochs)
            return lmr_fail(err, LMR_EMISMATCH, "--resume: %s has already trained %ld epochs, more than --epochs %d",
                            o->out, in.epoch, o->epochs);
    }
    if (strcmp(in.method, t->info.method) != 0 || in.freeze_rep != t->info.freeze_rep)
        return lmr_fail(err, LMR_EMISMATCH, "--resume: %s was written by --method %s%s; this run is --method %s%s",
                        o->out, in.method, in.freeze_rep ? " --freeze-rep" : "", t->info.method,
                        t->info.freeze_rep ? " --freeze-rep" : "");
    // loaded even when finished: a damaged or incomplete file is an error, not "complete"
    if ((rc = checkpoint_load_resume(o->out, &t->model, &t->bank, err)) < 0)
        return rc;
    if (in.epoch >= o->epochs)
        return LMR_DONE;
    if (in.epochs != o->epochs)
        note(o, 0, "%s: %s from %ld to %d epochs", o->out, in.epochs < o->epochs ? "extending" : "shortening",
             in.epochs, o->epochs);
    if (t->keys.keys && (rc = lmr_keys_rebuild(&t->keys, &t->bank)) < 0)
        return lmr_fail(err, rc, "%s", backend_last_error(t->ctx));
    t->info.epoch = in.epoch;
    t->info.step_in_epoch = in.step_in_epoch;
    t->info.global_step = in.global_step;
    t->info.best_metric = in.best_metric;
    return RESUMED;
}

/* The run's resolved configuration, before the first step: one line, two for LMR. */
static void print_config(const Trainer *t)
{
    const TrainOptions *o = t->o;
    const Dataset *d = t->train;
    int few = 0, empty = 0, omega = t->lmr_on ? o->lmr.omega : LMR_FEW_MAX;
    for (int c = 0; c < t->C; c++) {
        few += d->counts[c] > 0 && d->counts[c] <= omega;
        empty += d->counts[c] == 0;
    }
    char sched[96], smooth[40] = "";
    if (o->stage == STAGE_INIT && !o->loss_bce)
        snprintf(smooth, sizeof smooth, " (smoothing %g)", o->smoothing);
    if (o->sched.kind == SCHED_STEP) {
        int n = snprintf(sched, sizeof sched, "step x%g at epochs", o->sched.gamma);
        for (int i = 0; i < o->sched.n_milestones && n < (int)sizeof sched; i++)
            n += snprintf(sched + n, sizeof sched - (size_t)n, "%s%d", i ? "," : " ", o->sched.milestones[i]);
        if (!o->sched.n_milestones)
            snprintf(sched + n, sizeof sched - (size_t)n, " (none)");
    } else {
        snprintf(sched, sizeof sched, "%s", sched_names[o->sched.kind]);
    }
    note(o, 0,
         "stage %s%s: %llu clips, %d classes (%d few-shot with n <= %d%s), batch %d, %ld steps/epoch x %d epochs; "
         "lr %g %s, warmup %g, weight decay %g, %s loss%s, hidden %d, seed %llu",
         t->info.stage, o->stage == STAGE_LMR && o->lmr_off ? " (--lmr-off)" : "", (unsigned long long)d->n, t->C,
         few, omega, empty ? ", some empty" : "", t->Bg, t->spe, o->epochs, t->info.lr, sched, o->warmup_epochs,
         o->adam.weight_decay, o->loss_bce ? "bce" : "softmax", smooth, t->model.cfg.H, (unsigned long long)o->seed);
    if (t->lmr_on)
        note(o, 0, "LMR (preset %s, then the --lmr-* flags): l %g h %g d %g eps %g p %g omega %d K %d%s",
             o->preset ? o->preset : "ssv2-lt", o->lmr.l, o->lmr.h, o->lmr.d, o->lmr.eps, o->lmr.p, o->lmr.omega, o->lmr.K,
             o->lmr.allow_nonmonotone ? ", non-monotone weights allowed" : "");
}

static int save(Trainer *t, char *err)
{
    // never replace a good checkpoint with parameters that have overflowed
    if (!isfinite(backend_sumsq(t->ctx, t->model.params, t->model.n_params)))
        return lmr_fail(err, LMR_ENAN, "parameters became NaN/inf at step %ld: stopped; %s keeps the last good checkpoint",
                        t->info.global_step, t->o->out);
    if (!dist_is_root(t->dist)) // data-parallel: every rank holds the same state, rank 0 writes it
        return 0;
    return checkpoint_save(t->o->out, &t->model, &t->info, &t->bank, err);
}

// --- the run ---------------------------------------------------------------------------------

/* Validation reads a host model: a model living on a device is copied down first. */
static int validate(Trainer *t, ValMetrics *vm, char *err)
{
    if (backend_kind(t->ctx) == BACKEND_CPU)
        return train_validate(&t->model, t->val, t->train->counts, vm, err);
    Model host;
    int rc = model_init(&host, &t->model.cfg, NULL);
    if (rc < 0)
        return lmr_fail(err, rc, "%s", host.last_error);
    host.head_scale = t->model.head_scale; // a cosine classifier (ldam-drw)
    if ((rc = backend_download(t->ctx, host.params, t->model.params, host.n_params * sizeof(float))) < 0)
        lmr_fail(err, rc, "%s", backend_last_error(t->ctx));
    else
        rc = train_validate(&host, t->val, t->train->counts, vm, err);
    model_free(&host);
    return rc;
}

/* GEMM work of the training steps so far (validation left out): seconds and flops. */
typedef struct {
    double s, flops;
} GemmTime;

static void log_epoch(Trainer *t, long epoch, double loss, double lr, double sps, double secs, double train_s,
                      GemmTime gemm, const ValMetrics *vm)
{
    if (!t->log)
        return;
    fprintf(t->log,
            "{\"stage\":\"%s\",\"epoch\":%ld,\"step\":%ld,\"loss\":%.6f,\"lr\":%.6g,\"samples_per_s\":%.1f,"
            "\"seconds\":%.3f,\"from_memory\":%s",
            t->info.stage, epoch + 1, t->info.global_step, loss, lr, sps, secs, t->train->mem ? "true" : "false");
    if (gemm.s > 0 && train_s > 0) // cpu: the GEMMs' own rate, and their share of the step time
        fprintf(t->log, ",\"gemm_gflops\":%.2f,\"gemm_share\":%.4f", gemm.flops / gemm.s * 1e-9, gemm.s / train_s);
    if (vm)
        fprintf(t->log,
                ",\"val\":{\"avg_class_acc\":%.6f,\"head_acc\":%.6f,\"tail_acc\":%.6f,\"few_acc\":%.6f,\"top1\":%.6f}",
                vm->avg_class_acc, vm->head_acc, vm->tail_acc, vm->few_acc, vm->top1);
    fprintf(t->log, "}\n");
    fflush(t->log);
}

static void gather_run(void *ctx, size_t n, size_t work, void (*fn)(void *arg, size_t lo, size_t hi), void *arg)
{
    backend_parallel(ctx, n, work, fn, arg);
}

static int run_loop(Trainer *t, TrainResult *res, char *err)
{
    const TrainOptions *o = t->o;
    Loader *ld = NULL;
    // Features in memory: batches are a gather, made on this thread (depth 0) rather than by a
    // thread that would take a core from the math.
    int depth = t->train->mem ? 0 : o->prefetch;
    int rc = loader_open(&ld, t->train, &t->sampler, t->info.epoch, t->info.step_in_epoch, o->epochs, depth, err);
    if (rc < 0)
        return rc;
    if (backend_kind(t->ctx) == BACKEND_CPU) // the gather's row copies cut across the team too
        loader_set_runner(ld, gather_run, t->ctx);
    // paused: time in validation and checkpoint writes, left out of the training rate
    double t0 = now_s(), last_note = t0, epoch_t0 = t0, epoch_loss = 0.0, paused = 0.0;
    GemmTime g0, g_paused = {0, 0};
    backend_gemm_stats(t->ctx, &g0.s, &g0.flops);
    long run_steps = 0, epoch_steps = 0, total = (long)o->epochs * t->spe;
    Batch *b;
    while ((rc = loader_next(ld, &b, err)) == 0) {
        double lr = optim_lr(&t->sched_copy, t->info.global_step), loss = 0.0;
        rc = train_step(t, b, lr, t->info.global_step + 1, &loss, err);
        long epoch = b->epoch, step = b->step;
        loader_release(ld, b);
        if (rc == LMR_ENAN) {
            lmr_fail(err, rc, "loss is %s at epoch %ld step %ld (lr %.3g): stopped; %s keeps the last good checkpoint",
                     isnan(loss) ? "NaN" : "inf", epoch + 1, step + 1, lr, o->out);
            break;
        }
        if (rc < 0)
            break;
        t->info.global_step++;
        run_steps++;
        epoch_steps++;
        epoch_loss += loss;
        t->info.epoch = epoch;
        t->info.step_in_epoch = step + 1;
        if (t->info.step_in_epoch == t->spe) {
            t->info.epoch = epoch + 1;
            t->info.step_in_epoch = 0;
        }
        double now = now_s(), sps = (double)run_steps * t->Bg / (now - t0 - paused);
        if (o->progress_every > 0 && now - last_note >= o->progress_every) {
            double eta = sps > 0 ? (double)(total - t->info.global_step) * t->Bg / sps : 0;
            note(o, 1, "%s epoch %ld/%d step %ld/%ld loss %.4f %.0f samples/s ETA %d:%02d", t->info.stage, epoch + 1,
                 o->epochs, step + 1, t->spe, loss, sps, (int)(eta / 60), (int)eta % 60);
            last_note = now;
        }
        double p0 = now;
        GemmTime gp;
        backend_gemm_stats(t->ctx, &gp.s, &gp.flops);
        if (step + 1 == t->spe) { // end of an epoch: validate, log, checkpoint
            ValMetrics vm, *pv = NULL;
            if (t->val && dist_is_root(t->dist)) { // data-parallel: the ranks hold one model, rank 0 scores it
                if ((rc = validate(t, &vm, err)) < 0)
                    break;
                pv = &vm;
                if (vm.avg_class_acc > t->info.best_metric) {
                    t->info.best_metric = vm.avg_class_acc;
                    if ((rc = checkpoint_save(t->best_path, &t->model, &t->info, NULL, err)) < 0)
                        break;
                }
                note(o, 0, "%s epoch %ld/%d: loss %.4f, val avg class acc %.4f (few %.4f, best %.4f)", t->info.stage,
                     epoch + 1, o->epochs, epoch_loss / (double)epoch_steps, vm.avg_class_acc, vm.few_acc,
                     t->info.best_metric);
            }
            GemmTime gt = {gp.s - g0.s - g_paused.s, gp.flops - g0.flops - g_paused.flops};
            log_epoch(t, epoch, epoch_loss / (double)epoch_steps, lr, sps, now - epoch_t0, now - t0 - paused, gt, pv);
            res->final_loss = epoch_loss / (double)epoch_steps;
            epoch_loss = 0.0;
            epoch_steps = 0;
            epoch_t0 = now;
            if ((rc = save(t, err)) < 0)
                break;
            /* every clip's means now in the cache: the next epochs gather from memory, on this thread,
             * as with --preload (the same batches: the loader starts again at the next step) */
            if (t->info.epoch < o->epochs && dataset_cache_to_memory(t->train)) {
                loader_close(&ld);
                if ((rc = loader_open(&ld, t->train, &t->sampler, t->info.epoch, t->info.step_in_epoch, o->epochs, 0,
                                      err)) < 0)
                    break;
                if (backend_kind(t->ctx) == BACKEND_CPU)
                    loader_set_runner(ld, gather_run, t->ctx);
            }
        } else if (o->save_every > 0 && t->info.global_step % o->save_every == 0) {
            if ((rc = save(t, err)) < 0)
                break;
        }
        paused += now_s() - p0;
        GemmTime ga;
        backend_gemm_stats(t->ctx, &ga.s, &ga.flops);
        g_paused.s += ga.s - gp.s;
        g_paused.flops += ga.flops - gp.flops;
        if (o->stop_after > 0 && run_steps >= o->stop_after) {
            rc = save(t, err);
            break;
        }
    }
    res->steps = run_steps;
    res->samples_per_s = run_steps ? (double)run_steps * t->Bg / (now_s() - t0 - paused) : 0;
    res->best_metric = t->info.best_metric;
    loader_close(&ld);
    return rc == LMR_DONE ? 0 : rc;
}

int train_run(const TrainOptions *o, Dataset *train, Dataset *val, TrainResult *res, char *err)
{
    Trainer t;
    memset(&t, 0, sizeof t);
    memset(res, 0, sizeof *res);
    t.o = o;
    t.train = train;
    t.val = val;
    t.B = o->batch;
    t.D = train->D;
    t.C = train->C;
    t.multi = train->max_labels > 1;
    if (!(t.method = train_method(o, err)))
        return LMR_EINVAL;
    t.lmr_on = o->stage == STAGE_LMR && t.method->lmr_parts;
    t.smoothing = o->stage == STAGE_INIT && (t.method->ce_default || o->smoothing_set) ? (float)o->smoothing : 0.0f;
    int rc = setup_checks(&t, err);
    if (rc < 0)
        return rc;
    // data-parallel (dist.h): t.B becomes this rank's part of the global batch t.Bg
    t.dist = o->dist;
    t.Bg = o->batch;
    if ((rc = dist_slice(t.dist, t.Bg, &t.row0, &t.B, err)) < 0)
        return rc;
    if ((rc = backend_init(&t.ctx, o->device, o->threads, err)) < 0)
        return rc;
    if ((rc = dist_attach(t.dist, t.ctx, err)) < 0)
        goto done;
    if (o->tf32 && (rc = backend_set_tf32(t.ctx, 1)) < 0) {
        lmr_fail(err, rc, "%s", backend_last_error(t.ctx));
        goto done;
    }
    if ((rc = setup_model(&t, err)) < 0)
        goto done;
    if ((rc = sampler_init(&t.sampler, t.method->sampler, train, t.Bg,
                           o->seed)) < 0) {
        lmr_fail(err, rc, "%s", t.sampler.last_error);
        goto done;
    }
    t.sampler.row0 = t.row0; // the loader reads the features of this rank's rows only
    t.sampler.rows = t.B;
    t.spe = sampler_steps_per_epoch(&t.sampler);
    int K = t.lmr_on ? o->lmr.K : 1;
    if (K < 1) {
        rc = lmr_fail(err, LMR_EINVAL, "--lmr-k must be at least 1");
        goto done;
    }
    if ((rc = lmr_bank_init(&t.bank, t.ctx, K, t.Bg, t.F)) < 0 || (rc = buffers_init(&t, K * t.Bg)) < 0) {
        lmr_fail(err, rc, "out of memory for batch %d", t.Bg);
        goto done;
    }
    if (t.lmr_on && (t.method->lmr_parts & METHOD_LMR_RECON)) { // mixing alone: c = 0, R = f
        if ((rc = lmr_class_weights(&o->lmr, train->counts, t.C, t.hs.c_class, err)) < 0)
            goto done;
        int nonmono = 0;
        int64_t n_min = -1;
        for (int c = 0; c < t.C; c++) {
            t.hs.few[c] = train->counts[c] <= o->lmr.omega;
            if (train->counts[c] > 0 && ((double)train->counts[c] + o->lmr.eps) * o->lmr.d <= 1.0) {
                nonmono++;
                n_min = n_min < 0 || train->counts[c] < n_min ? train->counts[c] : n_min;
            }
        }
        if (nonmono) // accepted (--lmr-allow-nonmonotone, or the epic100-verbs preset): say what it means
            note(o, 0,
                 "note: %d class%s with (n + eps) * d <= 1 (the fewest clips: %lld): the LMR class weights are not "
                 "monotone in n, and the rarest classes get the lowest weight, as published for epic100-verbs",
                 nonmono, nonmono > 1 ? "es" : "", (long long)n_min);
    }
    // run description, also the checkpoint metadata
    CkptInfo *in = &t.info;
    snprintf(in->stage, sizeof in->stage, "%s", o->stage == STAGE_INIT ? "init" : "lmr");
    static const char *const sampler_names[] = {"instance", "class", "sqrt"};
    snprintf(in->sampler, sizeof in->sampler, "%s", sampler_names[t.method->sampler]);
    snprintf(in->method, sizeof in->method, "%s", t.method->name);
    in->lmr_off = o->stage == STAGE_LMR && !t.lmr_on;
    in->epochs = o->epochs;
    in->batch = t.Bg;
    in->seed = o->seed;
    in->lr = o->lr > 0 ? o->lr : (o->stage == STAGE_INIT ? 1e-3 : 1e-4);
    in->lmr = o->lmr;
    if (t.method->lmr_parts == METHOD_LMR_RECON)
        in->lmr.p = 0; // reconstruction alone: no row is mixed
    in->best_metric = -1;
    MethodSetup ms = {t.ctx, train->counts, t.C, t.B, t.Bg, t.D, t.F, o->epochs, o->seed, in->lr, o->init,
                      t.smoothing, o->freeze_rep, o->mp};
    if ((rc = method_init(&t.mc, t.method, &ms, err)) < 0)
        goto done;
    in->freeze_rep = t.mc.freeze_rep;
    t.model.head_scale = t.mc.head_scale;
    t.sched_copy = o->sched;
    t.sched_copy.lr = in->lr;
    t.sched_copy.steps_per_epoch = t.spe;
    t.sched_copy.total_steps = (long)o->epochs * t.spe;
    t.sched_copy.warmup_steps = (long)(o->warmup_epochs * (double)t.spe);
    train_best_path(t.best_path, sizeof t.best_path, o->out);
    // what the run trains on and how, for the checkpoint
    in->command = o->command;
    if (train->set && !(t.provenance = checkpoint_provenance_json(shardset_meta(train->set)))) {
        rc = lmr_fail(err, LMR_ENOMEM, "out of memory");
        goto done;
    }
    in->provenance = t.provenance;
    if ((rc = dataset_digest(train, in->train_digest, err)) < 0)
        goto done;
    if (!(t.settings = settings_json(&t))) {
        rc = lmr_fail(err, LMR_ENOMEM, "out of memory");
        goto done;
    }
    in->settings = t.settings;
    if (!o->quiet)
        print_config(&t);

    rc = try_resume(&t, err);
    if (rc < 0 || rc == LMR_DONE)
        goto done;
    if (rc == RESUMED)
        note(o, 0, "resuming %s at epoch %ld step %ld", o->out, in->epoch + 1, in->step_in_epoch);
    else if (file_exists(o->out))
        note(o, 0, "note: %s exists and is replaced by a new run (--resume continues it instead)", o->out);
    if (o->log_path && dist_is_root(t.dist) && !(t.log = fopen(o->log_path, rc == RESUMED ? "a" : "w"))) {
        rc = lmr_fail(err, LMR_EIO, "%s: cannot open the log", o->log_path);
        goto done;
    }
    rc = run_loop(&t, res, err);
done:
    trainer_free(&t);
    return rc;
}
