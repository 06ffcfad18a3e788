/* methods_synth TRAIN.lmdb VAL.lmdb [TUNE.lmdb]: a small synthetic long-tailed feature set as
 * shards (train: imbalance 50; val and tune: 30 clips per class), for the comparison pipeline's
 * end-to-end test and for checking the trainer against another build. */
#include <stdio.h>
#include <stdlib.h>

#include "train_synth.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: methods_synth TRAIN VAL [TUNE]\n");
        return 2;
    }
    SynthSpec spec = {.C = 12, .D = 24, .views = 2, .T = 2, .n_max = 120, .imb = 50, .sep = 4, .noise = 5,
                      .frame_noise = 0.3, .seed = 11, .sample_seed = 12};
    for (int k = 1; k < argc; k++) {
        SynthSpec s = spec;
        if (k > 1) {
            s.fixed_per_class = 30;
            s.sample_seed = 20 + (uint64_t)k;
        }
        Synth y;
        synth_make(&s, &y);
        int rc = synth_write_shard(&s, &y, argv[k], 0);
        synth_free(&y);
        if (rc < 0)
            return 1;
    }
    return 0;
}
