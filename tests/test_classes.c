/* Class groups: the default head/tail/few partition on hand-computed cases, ties, edge shares,
 * VideoLT's rule, the class,group CSV reader with its errors, and the per-class accuracy of a
 * clip (single- and multi-label, ties, repeated labels) on a hand-computed case. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "classes.h"

enum { H = LMR_GROUP_HEAD, T = LMR_GROUP_TAIL, F = LMR_GROUP_FEW, M = LMR_GROUP_MEDIUM, X = LMR_GROUP_NONE };

static int same(const int *a, const int *b, int n)
{
    for (int i = 0; i < n; i++)
        if (a[i] != b[i]) {
            fprintf(stderr, "  class %d: group %s, want %s\n", i, classes_group_name(a[i]), classes_group_name(b[i]));
            return 0;
        }
    return 1;
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

int main(void)
{
    TEST(1, "default partition: few <= 20, head <= 50% of clips, tail the rest");
    /* total 264; non-few by count: 0 (100), 1 (50), 2 (30), 6 (25), 7 (21); 100 <= 132 < 150 */
    int64_t counts[10] = {100, 50, 30, 10, 5, 3, 25, 21, 0, 20};
    int g[10];
    CHECK_RC(classes_partition(counts, 10, 0.5, 20, g), 0);
    CHECK(same(g, (int[]){H, T, T, F, F, F, T, T, F, F}, 10));
    TEST(2, "head share 0.6 (158.4 clips): classes 0 and 1; 0: no head; 1: every non-few class");
    CHECK_RC(classes_partition(counts, 10, 0.6, 20, g), 0);
    CHECK(same(g, (int[]){H, H, T, F, F, F, T, T, F, F}, 10));
    CHECK_RC(classes_partition(counts, 10, 0.0, 20, g), 0);
    CHECK(same(g, (int[]){T, T, T, F, F, F, T, T, F, F}, 10));
    CHECK_RC(classes_partition(counts, 10, 1.0, 20, g), 0);
    CHECK(same(g, (int[]){H, H, H, F, F, F, H, H, F, F}, 10));
    TEST(3, "ties go to the lower class index; the boundary is inclusive (exactly half is head)");
    int64_t tie[4] = {10, 10, 10, 10};
    CHECK_RC(classes_partition(tie, 4, 0.5, 0, g), 0);
    CHECK(same(g, (int[]){H, H, T, T}, 4));
    int64_t tie2[4] = {5, 30, 30, 40}; /* total 105: 40 <= 52.5 < 70 */
    CHECK_RC(classes_partition(tie2, 4, 0.5, 20, g), 0);
    CHECK(same(g, (int[]){F, T, T, H}, 4));
    CHECK_RC(classes_partition(counts, 10, 1.5, 20, g), LMR_EINVAL);
    CHECK_RC(classes_partition(counts, 0, 0.5, 20, g), 0);
    int sizes[LMR_N_GROUPS];
    classes_partition(counts, 10, 0.5, 20, g);
    classes_group_sizes(g, 10, sizes);
    CHECK(sizes[H] == 1 && sizes[T] == 4 && sizes[F] == 5 && sizes[M] == 0);

    TEST(4, "VideoLT rule: tail <= 100 < medium <= 500 < head");
    int64_t v[6] = {100, 101, 500, 501, 0, 100000};
    classes_partition_videolt(v, 6, g);
    CHECK(same(g, (int[]){T, M, M, H, T, H}, 6));

    TEST(5, "group names");
    CHECK(classes_group_parse("Head") == H && classes_group_parse("few-shot") == F &&
          classes_group_parse("MEDIUM") == M && classes_group_parse("tail") == T && classes_group_parse("x") == X);
    CHECK(strcmp(classes_group_name(F), "few") == 0 && strcmp(classes_group_name(X), "none") == 0);

    TEST(6, "class,group CSV: header, quotes, CRLF, blank lines, unlisted classes; errors name FILE:LINE");
    char dir[] = "/tmp/lmr_test_classes_XXXXXX", path[128];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/groups.csv", dir);
    char err[LMR_ERRLEN] = "";
    int g5[5];
    write_file(path, "class,group\r\n0,head\r\n\r\n\"2\",\"tail\"\r\n3,few-shot\r\n4,medium\r\n");
    CHECK_RC(classes_read_groups(path, 5, g5, err), 0);
    CHECK(same(g5, (int[]){H, X, T, F, M}, 5));
    write_file(path, "0,head\n7,tail\n");
    CHECK_RC(classes_read_groups(path, 5, g5, err), LMR_ERANGE);
    CHECK(strstr(err, "groups.csv:2") != NULL);
    write_file(path, "class,group\n0,head\n1,bogus\n");
    CHECK_RC(classes_read_groups(path, 5, g5, err), LMR_EPARSE);
    CHECK(strstr(err, "groups.csv:3") != NULL && strstr(err, "bogus") != NULL);
    write_file(path, "0,head\n1\n");
    CHECK_RC(classes_read_groups(path, 5, g5, err), LMR_EPARSE);
    write_file(path, "class,group\n0,head\n1,tail\n0,few\n"); /* a class listed twice */
    CHECK_RC(classes_read_groups(path, 5, g5, err), LMR_EPARSE);
    CHECK(strstr(err, "groups.csv:4") != NULL && strstr(err, "twice") != NULL);
    write_file(path, "");
    CHECK_RC(classes_read_groups(path, 5, g5, err), LMR_EPARSE);
    CHECK(strstr(err, "no class") != NULL);
    write_file(path, "class,group\n\n");
    CHECK_RC(classes_read_groups(path, 5, g5, err), LMR_EPARSE);
    unlink(path);
    CHECK(classes_read_groups(path, 5, g5, err) == -2); /* -ENOENT */
    rmdir(dir);

    TEST(7, "one clip's per-class accuracy: k labels, c correct when among the k best scores");
    /* ranking of s: 1 (0.4), 3 (0.4: the tie goes to the lower index), 2, 0, 4 */
    double s[5] = {0.1, 0.4, 0.3, 0.4, 0.05};
    int64_t n_eval[5] = {0}, correct[5] = {0};
    CHECK_RC(classes_score_clip(s, 5, (int32_t[]){2, 3}, 2, n_eval, correct, err), 2); /* top-2 {1,3}: 3 */
    CHECK_RC(classes_score_clip(s, 5, (int32_t[]){1, 4, 1}, 3, n_eval, correct, err), 2); /* 1 once */
    CHECK_RC(classes_score_clip(s, 5, (int32_t[]){3}, 1, n_eval, correct, err), 1); /* top-1 is 1 */
    CHECK_RC(classes_score_clip(s, 5, (int32_t[]){0, 1, 2, 3, 4}, 5, n_eval, correct, err), 5);
    CHECK_RC(classes_score_clip(s, 5, NULL, 0, n_eval, correct, err), 0); /* unlabelled */
    CHECK_RC(classes_score_clip(s, 5, (int32_t[]){1, 5}, 2, n_eval, correct, err), LMR_ERANGE);
    CHECK(strstr(err, "label 5") != NULL);
    CHECK_RC(classes_score_clip(s, 5, (int32_t[]){-1}, 1, n_eval, correct, err), LMR_ERANGE);
    double bad[5] = {0.1, NAN, 0.3, 0.4, 0.05};
    CHECK_RC(classes_score_clip(bad, 5, (int32_t[]){0}, 1, n_eval, correct, err), LMR_ENAN);
    bad[1] = INFINITY;
    CHECK_RC(classes_score_clip(bad, 5, (int32_t[]){0}, 1, n_eval, correct, err), LMR_ENAN);
    /* by hand: n_eval {1,2,2,3,2}, correct {1,2,1,2,1}; the errors counted nothing */
    int64_t want_n[5] = {1, 2, 2, 3, 2}, want_c[5] = {1, 2, 1, 2, 1};
    CHECK(memcmp(n_eval, want_n, sizeof want_n) == 0);
    CHECK(memcmp(correct, want_c, sizeof want_c) == 0);
    for (int c = 0; c < 5; c++)
        if (n_eval[c] != want_n[c] || correct[c] != want_c[c])
            fprintf(stderr, "  class %d: %lld/%lld, want %lld/%lld\n", c, (long long)correct[c],
                    (long long)n_eval[c], (long long)want_c[c], (long long)want_n[c]);

    TEST(8, "the LMR paper's lists (scripts/class-groups) read, with the release's group sizes");
    const char *src = getenv("LMR_SRC");
    CHECK(src != NULL);
    if (src) {
        int ge[97], gs[174];
        snprintf(path, sizeof path, "%s/scripts/class-groups/epic100-verbs.csv", src);
        CHECK_RC(classes_read_groups(path, 97, ge, err), 0);
        classes_group_sizes(ge, 97, sizes);
        CHECK(sizes[H] == 19 && sizes[T] == 60 && sizes[F] == 17 && sizes[M] == 0 && ge[93] == X);
        CHECK(ge[0] == H && ge[16] == T && ge[71] == F && ge[96] == F);
        snprintf(path, sizeof path, "%s/scripts/class-groups/ssv2-lt.csv", src);
        CHECK_RC(classes_read_groups(path, 174, gs, err), 0);
        classes_group_sizes(gs, 174, sizes);
        CHECK(sizes[H] == 14 && sizes[T] == 103 && sizes[F] == 56 && sizes[M] == 0 && gs[163] == X);
        CHECK(gs[109] == H && gs[100] == T && gs[4] == F && gs[137] == F);
    }
    CHECK_DONE();
}
