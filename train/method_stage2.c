/* Stage-2 methods around LMR (DESIGN section 6), all class-balanced from an init checkpoint:
 * lmr (reconstruction and mixing), crt (Kang et al. 2020's classifier re-training: a new
 * classifier, plain cross-entropy; --freeze-rep keeps the representation as in the paper), and
 * LMR's two halves alone, the paper's ablations. */
#include "method.h"

const Method method_lmr = {
    .name = "lmr",
    .stage = METHOD_FINETUNE,
    .sampler = SAMPLER_CLASS,
    .lmr_parts = METHOD_LMR_RECON | METHOD_LMR_MIX,
    .help = "LMR: reconstruction from the memory bank and mixing, new classifier",
};

const Method method_crt = {
    .name = "crt",
    .stage = METHOD_FINETUNE,
    .sampler = SAMPLER_CLASS,
    .help = "classifier re-training: class-balanced, new classifier, cross-entropy (--lmr-off)",
};

const Method method_lmr_mix_only = {
    .name = "lmr-mix-only",
    .stage = METHOD_FINETUNE,
    .sampler = SAMPLER_CLASS,
    .lmr_parts = METHOD_LMR_MIX,
    .help = "LMR's mixing alone (no reconstruction)",
};

const Method method_lmr_recon_only = {
    .name = "lmr-recon-only",
    .stage = METHOD_FINETUNE,
    .sampler = SAMPLER_CLASS,
    .lmr_parts = METHOD_LMR_RECON,
    .help = "LMR's reconstruction alone (no mixing)",
};
