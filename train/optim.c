/* LR schedules and the AdamW step over the whole parameter block. */
#include "optim.h"

#include <math.h>

double optim_lr(const LrSchedule *s, long t)
{
    if (s->warmup_steps > 0 && t < s->warmup_steps)
        return s->lr * (double)(t + 1) / (double)s->warmup_steps;
    switch (s->kind) {
    case SCHED_COSINE: {
        long span = s->total_steps - s->warmup_steps;
        double x = span > 0 ? (double)(t - s->warmup_steps) / (double)span : 0.0;
        return 0.5 * s->lr * (1.0 + cos(M_PI * (x > 1.0 ? 1.0 : x)));
    }
    case SCHED_STEP: {
        long epoch = s->steps_per_epoch > 0 ? t / s->steps_per_epoch : 0;
        double lr = s->lr;
        for (int i = 0; i < s->n_milestones; i++)
            if (epoch >= s->milestones[i])
                lr *= s->gamma;
        return lr;
    }
    default:
        return s->lr;
    }
}

double optim_step(Model *m, const AdamWConfig *c, double lr, long t)
{
    // the norm costs a pass over every gradient: only when clipping asks for it
    double norm = c->clip > 0 ? sqrt(backend_sumsq(m->ctx, m->grads, m->n_params)) : -1.0;
    float scale = 1.0f;
    if (c->clip > 0 && norm > c->clip)
        scale = (float)(c->clip / (norm + 1e-6));
    adamw_update(m->ctx, m->params, m->grads, m->m, m->v, m->n_params, (float)lr, (float)c->beta1,
                 (float)c->beta2, (float)c->eps, (float)c->weight_decay, t, scale);
    return norm;
}
