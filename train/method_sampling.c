/* Re-sampling baselines, plain cross-entropy (the trainer's own, no label smoothing unless
 * --smoothing): srs draws a class with P(c) proportional to sqrt(n_c) (square-root sampling,
 * Mahajan et al. 2018), cbs uniformly over the classes with clips (class-balanced sampling,
 * Kang et al. 2020), both from the first epoch. */
#include "method.h"

const Method method_srs = {
    .name = "srs",
    .stage = METHOD_INIT,
    .sampler = SAMPLER_SQRT,
    .help = "square-root sampling, P(c) ~ sqrt(n_c), cross-entropy",
};

const Method method_cbs = {
    .name = "cbs",
    .stage = METHOD_INIT,
    .sampler = SAMPLER_CLASS,
    .help = "class-balanced sampling from the start, cross-entropy",
};
