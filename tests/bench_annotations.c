/* bench_annotations DATASET ANNOTATIONS [LABELS]: time annotations_load alone (no output), for
 * bench/annotations.sh. Prints "rows skipped wall_seconds cpu_seconds" (the box may be shared). */
#include <stdio.h>
#include <time.h>

#include "annotations.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_annotations DATASET ANNOTATIONS [LABELS]\n");
        return 2;
    }
    Manifest m;
    manifest_init(&m);
    AnnotOpts o;
    annot_opts_init(&o);
    o.dataset = argv[1];
    o.annotations = argv[2];
    o.labels = argc > 3 ? argv[3] : NULL;
    struct timespec a, b, ca, cb;
    clock_gettime(CLOCK_MONOTONIC, &a);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ca);
    int rc = annotations_load(&m, &o);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cb);
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (rc < 0) {
        fprintf(stderr, "bench_annotations: %s\n", m.last_error);
        manifest_free(&m);
        return 1;
    }
    printf("%zu %zu %.4f %.4f\n", m.n_rows, m.n_skipped,
           (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec),
           (double)(cb.tv_sec - ca.tv_sec) + 1e-9 * (double)(cb.tv_nsec - ca.tv_nsec));
    manifest_free(&m);
    return 0;
}
