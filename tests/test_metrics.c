/* eval/metrics: hand-computed cases (an absent class, an empty group, ties, several views,
 * unlabelled and multi-label clips, a non-finite score), and (with --sklearn) average precision
 * against scikit-learn run through LMR_PYTHON on random multi-label scores with many ties. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "metrics.h"

#define C7 7

static void add(EvalAcc *a, const float *s, int label)
{
    int32_t l = label;
    CHECK_RC(eval_acc_add(a, s, &l, label < 0 ? 0 : 1), 0);
}

static void test_topk(void)
{
    TEST(1, "top-k with ties goes to the lower index");
    float s[] = {0.5f, 0.9f, 0.9f, 0.1f, 0.9f};
    int top[5];
    eval_topk(s, 5, 3, top);
    CHECK(top[0] == 1 && top[1] == 2 && top[2] == 4);
    eval_topk(s, 5, 9, top); // k clamped to C
    CHECK(top[3] == 0 && top[4] == 3);
}

static void test_groups(void)
{
    TEST(2, "groups as lmr-eval uses them: head-share rule with an empty head, VideoLT rule");
    int64_t counts[C7] = {1000, 500, 100, 50, 15, 5, 3};
    int g[C7];
    CHECK_RC(classes_partition(counts, C7, 0.95, LMR_FEW_MAX, g), 0);
    int want95[C7] = {LMR_GROUP_HEAD, LMR_GROUP_HEAD, LMR_GROUP_TAIL, LMR_GROUP_TAIL,
                      LMR_GROUP_FEW, LMR_GROUP_FEW, LMR_GROUP_FEW};
    CHECK(memcmp(g, want95, sizeof g) == 0);
    CHECK_RC(classes_partition(counts, C7, 0.5, LMR_FEW_MAX, g), 0); // 1000/1673 > 0.5
    for (int c = 0; c < 4; c++)
        CHECK(g[c] == LMR_GROUP_TAIL);
    int64_t vc[4] = {100, 101, 500, 501};
    classes_partition_videolt(vc, 4, g);
    CHECK(g[0] == LMR_GROUP_TAIL && g[1] == LMR_GROUP_MEDIUM && g[2] == LMR_GROUP_MEDIUM &&
          g[3] == LMR_GROUP_HEAD);
}

static void test_hand_case(void)
{
    TEST(3, "accuracy, groups, absent class, tie, unlabelled clip, confusion");
    int64_t counts[C7] = {1000, 500, 100, 50, 15, 5, 3};
    EvalAcc a;
    CHECK_RC(eval_acc_init(&a, C7, 0, 1), 0);
    float c1[C7] = {.7f, .2f, .1f, 0, 0, 0, 0};             // 0 -> 0
    float c2[C7] = {.1f, .6f, .2f, .05f, .05f, 0, .01f};    // 0 -> 1, top-5 hit
    float c3[C7] = {.1f, .8f, .1f, 0, 0, 0, 0.01f};         // 1 -> 1
    float c4[C7] = {.3f, .2f, .2f, 0, .1f, .1f, .1f};       // 3 -> 0, rank 7: top-5 miss
    float c5[C7] = {.1f, 0, .4f, 0, .4f, .1f, 0};           // 4 ties with 2: top-1 is 2
    float c6[C7] = {0, 0, .1f, 0, .2f, .7f, 0};             // 5 -> 5
    float c7[C7] = {1, 0, 0, 0, 0, 0, 0};                   // unlabelled
    add(&a, c1, 0), add(&a, c2, 0), add(&a, c3, 1), add(&a, c4, 3), add(&a, c5, 4);
    add(&a, c6, 5), add(&a, c7, -1);
    int32_t bad = 7;
    CHECK_RC(eval_acc_add(&a, c1, &bad, 1), LMR_ERANGE);
    int g[C7];
    CHECK_RC(classes_partition(counts, C7, 0.95, LMR_FEW_MAX, g), 0);
    EvalResult r;
    CHECK_RC(eval_finish(&a, g, &r), 0);
    CHECK(r.n_clips == 6 && r.n_unlabelled == 1); // the rejected clip counts nowhere
    CHECK_CLOSE(r.top1, 3.0 / 6, 1e-12, 0);
    CHECK_CLOSE(r.top5, 5.0 / 6, 1e-12, 0);
    CHECK_CLOSE(r.class_acc[0], 0.5, 1e-12, 0);
    CHECK(r.class_acc[2] == -1.0 && r.class_acc[6] == -1.0); // absent classes
    CHECK(r.n_present == 5);
    CHECK_CLOSE(r.avg_class_acc, (0.5 + 1 + 0 + 0 + 1) / 5, 1e-12, 0);
    CHECK_CLOSE(r.group_acc[LMR_GROUP_HEAD], 0.75, 1e-12, 0);
    CHECK_CLOSE(r.group_acc[LMR_GROUP_TAIL], 0.0, 1e-12, 0); // only class 3 present
    CHECK_CLOSE(r.group_acc[LMR_GROUP_FEW], 0.5, 1e-12, 0);
    CHECK(r.group_acc[LMR_GROUP_MEDIUM] == -1.0);
    CHECK(r.map == -1.0);
    CHECK(a.confusion[0 * C7 + 0] == 1 && a.confusion[0 * C7 + 1] == 1 && a.confusion[4 * C7 + 2] == 1);
    CHECK(a.confusion[3 * C7 + 0] == 1 && a.confusion[5 * C7 + 5] == 1);
    eval_result_free(&r);

    CHECK_RC(classes_partition(counts, C7, 0.5, LMR_FEW_MAX, g), 0); // empty head group
    CHECK_RC(eval_finish(&a, g, &r), 0);
    CHECK(r.group_acc[LMR_GROUP_HEAD] == -1.0 && r.group_present[LMR_GROUP_HEAD] == 0);
    CHECK_CLOSE(r.group_acc[LMR_GROUP_TAIL], (0.5 + 1 + 0) / 3, 1e-12, 0);
    eval_result_free(&r);
    eval_acc_free(&a);
    eval_acc_free(&a); // idempotent
}

static void test_views(void)
{
    TEST(4, "several views: softmax per view, summed");
    // View 0 prefers class 0 by a little, view 1 prefers class 1 by a lot: the sum picks 1,
    // where summing logits would too, but averaging argmaxes would tie.
    float logits[2 * 3] = {1.0f, 0.9f, 0.0f, 0.0f, 3.0f, 0.0f};
    float s[3];
    eval_sum_softmax(logits, 2, 3, s);
    double e0 = exp(1.0) + exp(0.9) + 1.0, e1 = 2.0 + exp(3.0);
    CHECK_CLOSE(s[0], exp(1.0) / e0 + 1.0 / e1, 1e-6, 0);
    CHECK_CLOSE(s[1], exp(0.9) / e0 + exp(3.0) / e1, 1e-6, 0);
    CHECK_CLOSE(s[0] + s[1] + s[2], 2.0, 1e-6, 0);
    float big[2] = {1000.0f, -1000.0f}; // no overflow
    eval_sum_softmax(big, 1, 2, s);
    CHECK_CLOSE(s[0], 1.0, 1e-6, 0);
}

static void test_multilabel(void)
{
    TEST(5, "multi-label: k labels, each correct when among the k best scores, counted once");
    EvalAcc a;
    CHECK_RC(eval_acc_init(&a, 4, 1, 0), 0);
    // By hand. Clip 1: labels {2,3,3} = {2,3}, top-2 {3,2}: both correct (3 counted once).
    // Clip 2: {2}, top-1 0: wrong. Clip 3: {0,3}, top-2 {0,1}: 0 correct, 3 wrong (the old rule
    // credited 3 because the top-1 is a label). Clip 4: {1,2}, top-2 {3,2}: 2 correct, 1 wrong
    // (the old rule credited neither: the top-1 is not a label).
    float s1[4] = {.1f, .2f, .3f, .4f}, s2[4] = {.4f, .3f, .2f, .1f}, s3[4] = {.5f, .3f, .15f, .05f};
    int32_t l1[3] = {2, 3, 3}, l2[1] = {2}, l3[2] = {0, 3}, l4[2] = {1, 2};
    CHECK_RC(eval_acc_add(&a, s1, l1, 3), 0);
    CHECK_RC(eval_acc_add(&a, s2, l2, 1), 0);
    CHECK_RC(eval_acc_add(&a, s3, l3, 2), 0);
    CHECK_RC(eval_acc_add(&a, s1, l4, 2), 0);
    float nan_s[4] = {.1f, NAN, .3f, .4f};
    CHECK_RC(eval_acc_add(&a, nan_s, l2, 1), LMR_ENAN); // refused, counted nowhere
    EvalResult r;
    CHECK_RC(eval_finish(&a, NULL, &r), 0);
    int64_t want_n[4] = {1, 1, 3, 2}, want_c[4] = {1, 0, 2, 1};
    CHECK(memcmp(a.class_n, want_n, sizeof want_n) == 0);
    CHECK(memcmp(a.class_correct, want_c, sizeof want_c) == 0);
    CHECK(r.n_clips == 4);
    CHECK_CLOSE(r.top1, 0.5, 1e-12, 0); // clips 1 and 3: the top-1 is one of the labels
    CHECK_CLOSE(r.avg_class_acc, (1.0 + 0.0 + 2.0 / 3 + 0.5) / 4, 1e-12, 0);
    // AP by hand: class 0: the positive ranks first -> 1. Class 1: two negatives at .3, then a
    // tie at .2 of one positive and one negative -> 1/4. Class 2: all positives first -> 1.
    // Class 3: a tie at .4 (one positive), then a negative, then a positive -> .5*.5 + .5*.5.
    CHECK_CLOSE(r.class_ap[0], 1.0, 1e-12, 0);
    CHECK_CLOSE(r.class_ap[1], 0.25, 1e-12, 0);
    CHECK_CLOSE(r.class_ap[2], 1.0, 1e-12, 0);
    CHECK_CLOSE(r.class_ap[3], 0.5, 1e-12, 0);
    CHECK_CLOSE(r.map, (1.0 + 0.25 + 1.0 + 0.5) / 4, 1e-12, 0);
    eval_result_free(&r);
    eval_acc_free(&a);

    EvalScorePair p1[4] = {{.6f, 0}, {.9f, 1}, {.7f, 1}, {.8f, 0}};
    CHECK_CLOSE(eval_average_precision(p1, 4), 0.5 + 0.5 * 2.0 / 3.0, 1e-12, 0);
    EvalScorePair p2[3] = {{.9f, 1}, {.5f, 1}, {.9f, 0}}; // a tie at the top is one threshold
    CHECK_CLOSE(eval_average_precision(p2, 3), 0.5 * 0.5 + 0.5 * 2.0 / 3.0, 1e-12, 0);
    EvalScorePair p3[2] = {{.9f, 0}, {.5f, 0}};
    CHECK(eval_average_precision(p3, 2) == -1.0);
}

static const char sklearn_script[] =
    "import sys\n"
    "import numpy as np\n"
    "from sklearn.metrics import average_precision_score\n"
    "d = np.loadtxt(sys.argv[1], ndmin=2)\n"
    "C = d.shape[1] // 2\n"
    "s, y = d[:, :C], d[:, C:]\n"
    "for c in range(C):\n"
    "    print(average_precision_score(y[:, c], s[:, c]) if y[:, c].any() else -1.0)\n";

static uint64_t lcg(uint64_t *x)
{
    *x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
    return *x >> 33;
}

/* @return 0 when run, 77 when skipped (no python or no scikit-learn). */
static int test_map_sklearn(void)
{
    TEST(6, "average precision against scikit-learn (ties, absent classes, multi-label)");
    const char *py = getenv("LMR_PYTHON");
    if (!py || !*py) {
        printf("skipped: LMR_PYTHON not set\n");
        return 77;
    }
    char probe[512];
    snprintf(probe, sizeof probe, "'%s' -c 'import numpy, sklearn' 2>/dev/null", py);
    if (system(probe) != 0) {
        printf("skipped: %s has no scikit-learn (scripts/deps.sh --test installs it)\n", py);
        return 77;
    }
    char dir[] = "/tmp/lmr-test-metrics-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char data[256], script[256], out[256], cmd[1024];
    snprintf(data, sizeof data, "%s/scores.txt", dir);
    snprintf(script, sizeof script, "%s/ap.py", dir);
    snprintf(out, sizeof out, "%s/ap.txt", dir);
    enum { N = 300, C = 9 };
    EvalAcc a;
    CHECK_RC(eval_acc_init(&a, C, 1, 0), 0);
    FILE *f = fopen(data, "w");
    CHECK(f != NULL);
    uint64_t seed = 42;
    for (int i = 0; i < N && f; i++) {
        float s[C];
        int32_t l[3];
        int n_l = 1 + (int)(lcg(&seed) % 3), y[C] = {0};
        for (int c = 0; c < C; c++)
            s[c] = (float)(lcg(&seed) % 8) / 8.0f; // few levels: many ties
        for (int j = 0; j < n_l; j++) {
            l[j] = (int32_t)(lcg(&seed) % (C - 1)); // class C-1 never appears
            y[l[j]] = 1;
            s[l[j]] += 0.25f; // some signal
        }
        CHECK_RC(eval_acc_add(&a, s, l, n_l), 0);
        for (int c = 0; c < C; c++)
            fprintf(f, "%.9g ", s[c]);
        for (int c = 0; c < C; c++)
            fprintf(f, "%d%c", y[c], c == C - 1 ? '\n' : ' ');
    }
    if (f)
        fclose(f);
    f = fopen(script, "w");
    if (f) {
        fputs(sklearn_script, f);
        fclose(f);
    }
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s' > '%s'", py, script, data, out);
    int rc = system(cmd);
    CHECK(rc == 0);
    EvalResult r;
    CHECK_RC(eval_finish(&a, NULL, &r), 0);
    f = fopen(out, "r");
    double ref_sum = 0;
    int n_ref = 0;
    for (int c = 0; c < C && f; c++) {
        double ref;
        CHECK(fscanf(f, "%lf", &ref) == 1);
        CHECK_CLOSE(r.class_ap[c], ref, 1e-9, 1e-6);
        if (ref >= 0)
            ref_sum += ref, n_ref++;
    }
    if (f)
        fclose(f);
    CHECK(n_ref == C - 1);
    CHECK_CLOSE(r.map, ref_sum / n_ref, 1e-9, 1e-6);
    printf("  mAP %.6f (scikit-learn %.6f)\n", r.map, n_ref ? ref_sum / n_ref : -1.0);
    eval_result_free(&r);
    eval_acc_free(&a);
    unlink(data), unlink(script), unlink(out), rmdir(dir);
    return 0;
}

/* Average precision from the spilled scores against eval_average_precision on every class's
 * column kept here in memory: the same bits (many ties, a label listed twice, an absent class, a
 * class whose positives all score 0). */
static void test_map_streamed(void)
{
    TEST(7, "average precision from the scores spilled to a file: the same bits as on the whole column");
    enum { N = 3000, C = 37 };
    EvalAcc a;
    CHECK_RC(eval_acc_init(&a, C, 1, 0), 0);
    CHECK(a.spill == NULL);
    float *all = malloc(sizeof(float) * N * C);
    unsigned char *pos = calloc(N * C, 1);
    uint64_t seed = 7;
    for (int i = 0; i < N; i++) {
        float *s = all + (size_t)i * C;
        int32_t l[4];
        int n_l = 1 + (int)(lcg(&seed) % 4);
        for (int c = 0; c < C; c++)
            s[c] = (float)(lcg(&seed) % 16) / 16.0f;
        for (int j = 0; j < n_l; j++) {
            l[j] = j == 3 ? l[0] : (int32_t)(lcg(&seed) % (C - 1)); /* class C-1 never; a repeat */
            pos[(size_t)i * C + l[j]] = 1;
            if (l[j] == 5)
                s[5] = 0.0f;
            else
                s[l[j]] += 0.125f * (float)(lcg(&seed) % 3);
        }
        CHECK_RC(eval_acc_add(&a, s, l, n_l), 0);
    }
    CHECK(a.spill != NULL);
    EvalResult r;
    CHECK_RC(eval_finish(&a, NULL, &r), 0);
    EvalScorePair *pairs = malloc(sizeof *pairs * N);
    int same = 1;
    for (int c = 0; c < C; c++) {
        for (int i = 0; i < N; i++)
            pairs[i] = (EvalScorePair){all[(size_t)i * C + c], pos[(size_t)i * C + c]};
        double want = eval_average_precision(pairs, N);
        same &= memcmp(&want, &r.class_ap[c], sizeof want) == 0;
        if (c == C - 1)
            CHECK(want == -1.0 && r.class_ap[c] == -1.0);
    }
    CHECK(same);
    CHECK(r.class_ap[5] > 0 && r.class_ap[5] < 1);
    /* and a second finish reads the file again: the same numbers */
    EvalResult r2;
    CHECK_RC(eval_finish(&a, NULL, &r2), 0);
    CHECK(memcmp(r.class_ap, r2.class_ap, sizeof(double) * C) == 0);
    eval_result_free(&r), eval_result_free(&r2);
    eval_acc_free(&a);
    free(pairs), free(all), free(pos);
}

/* `test_metrics` runs the hand-computed cases; `test_metrics --sklearn` the comparison with
 * scikit-learn, a ctest of its own so that a missing scikit-learn shows as a skip (77). */
int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--sklearn") == 0) {
        if (test_map_sklearn() == 77)
            return 77;
        CHECK_DONE();
    }
    test_topk();
    test_groups();
    test_hand_case();
    test_views();
    test_multilabel();
    test_map_streamed();
    CHECK_DONE();
}
