/* ce: the instance-balanced init of DESIGN section 6, label smoothing 0.2; the trainer's own
 * cross-entropy (no hooks), so its checkpoints are those of earlier releases bit for bit. */
#include "method.h"

const Method method_ce = {
    .name = "ce",
    .stage = METHOD_INIT,
    .sampler = SAMPLER_INSTANCE,
    .ce_default = 1,
    .help = "cross-entropy, instance-balanced, label smoothing 0.2 (the default init)",
};
