/* Evaluation metrics: counts per class while clips stream in, then group means and average
 * precision at the end. Ranking ties always go to the lower class index, so top-1 and top-k
 * agree with each other and with the per-class counts. Average precision follows
 * scikit-learn's average_precision_score (tied scores form one threshold) so the two can be
 * compared number for number. */
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// --- accumulation --------------------------------------------------------------------------

int eval_acc_init(EvalAcc *a, int n_classes, int keep_scores, int confusion)
{
    memset(a, 0, sizeof *a);
    if (n_classes <= 0)
        return LMR_FAIL(a, LMR_EINVAL, "eval: %d classes", n_classes);
    a->n_classes = n_classes;
    a->keep_scores = keep_scores;
    a->class_n = calloc((size_t)n_classes, sizeof *a->class_n);
    a->class_correct = calloc((size_t)n_classes, sizeof *a->class_correct);
    if (confusion)
        a->confusion = calloc((size_t)n_classes * (size_t)n_classes, sizeof *a->confusion);
    a->label_off = calloc(1, sizeof *a->label_off);
    a->dscores = malloc((size_t)n_classes * sizeof *a->dscores);
    if (!a->class_n || !a->class_correct || (confusion && !a->confusion) || !a->label_off || !a->dscores) {
        eval_acc_free(a);
        return LMR_ENOMEM;
    }
    return 0;
}

void eval_acc_free(EvalAcc *a)
{
    if (!a)
        return;
    free(a->class_n);
    free(a->class_correct);
    free(a->confusion);
    if (a->spill)
        fclose(a->spill);
    free(a->label_scores);
    free(a->labels);
    free(a->label_off);
    free(a->dscores);
    memset(a, 0, sizeof *a);
}

/* Does class i rank ahead of class j? Higher score first, then the lower index. */
static int ranks_before(const float *s, int i, int j)
{
    return s[i] > s[j] || (s[i] == s[j] && i < j);
}

void eval_topk(const float *scores, int n_classes, int k, int *out)
{
    if (k > n_classes)
        k = n_classes;
    int n = 0;
    // Insertion into a sorted list of at most k entries: k is small (5).
    for (int c = 0; c < n_classes; c++) {
        if (n == k && !ranks_before(scores, c, out[k - 1]))
            continue;
        int pos = n < k ? n++ : k - 1;
        while (pos > 0 && ranks_before(scores, c, out[pos - 1])) {
            out[pos] = out[pos - 1];
            pos--;
        }
        out[pos] = c;
    }
}

void eval_sum_softmax(const float *logits, int n_views, int n_classes, float *out)
{
    for (int c = 0; c < n_classes; c++)
        out[c] = 0.0f;
    for (int v = 0; v < n_views; v++) {
        const float *z = logits + (int64_t)v * n_classes;
        float zmax = z[0];
        for (int c = 1; c < n_classes; c++)
            zmax = z[c] > zmax ? z[c] : zmax;
        double sum = 0.0;
        for (int c = 0; c < n_classes; c++)
            sum += exp((double)(z[c] - zmax));
        for (int c = 0; c < n_classes; c++)
            out[c] += (float)(exp((double)(z[c] - zmax)) / sum);
    }
}

static int keep_clip(EvalAcc *a, const float *scores, const int32_t *labels, int n_labels)
{
    int64_t C = a->n_classes, n = a->n_labelled;
    if (!a->spill) {
        const char *dir = getenv("TMPDIR");
        char path[4096];
        snprintf(path, sizeof path, "%s/lmr_eval_scores_XXXXXX", dir && dir[0] ? dir : "/tmp");
        int fd = mkstemp(path);
        if (fd < 0 || !(a->spill = fdopen(fd, "w+b"))) {
            int e = errno;
            if (fd >= 0)
                close(fd), unlink(path);
            return LMR_FAIL(a, -e, "eval: a temporary file for the scores in %s: %s", path, strerror(e));
        }
        unlink(path); /* gone with the last close */
    }
    if (n + 1 > a->cap_clips) {
        int64_t cap = a->cap_clips ? a->cap_clips * 2 : 256;
        int64_t *off = realloc(a->label_off, (size_t)(cap + 1) * sizeof *off);
        if (!off)
            return LMR_ENOMEM;
        a->label_off = off;
        a->cap_clips = cap;
    }
    int64_t used = a->label_off[n];
    if (used + n_labels > a->cap_labels) {
        int64_t cap = a->cap_labels ? a->cap_labels * 2 : 512;
        while (cap < used + n_labels)
            cap *= 2;
        int32_t *l = realloc(a->labels, (size_t)cap * sizeof *l);
        if (!l)
            return LMR_ENOMEM;
        a->labels = l;
        float *ls = realloc(a->label_scores, (size_t)cap * sizeof *ls);
        if (!ls)
            return LMR_ENOMEM;
        a->label_scores = ls;
        a->cap_labels = cap;
    }
    if (fwrite(scores, sizeof *scores, (size_t)C, a->spill) != (size_t)C)
        return LMR_FAIL(a, -(errno ? errno : EIO), "eval: writing the scores to a temporary file: %s",
                        strerror(errno ? errno : EIO));
    memcpy(a->labels + used, labels, (size_t)n_labels * sizeof *labels);
    for (int i = 0; i < n_labels; i++)
        a->label_scores[used + i] = scores[labels[i]];
    a->label_off[n + 1] = used + n_labels;
    return 0;
}

int eval_acc_add(EvalAcc *a, const float *scores, const int32_t *labels, int n_labels)
{
    for (int c = 0; c < a->n_classes; c++)
        a->dscores[c] = scores[c]; // exact: the ranking is the float ranking
    // Checks the labels and the scores before counting anything: a refused clip counts nowhere.
    int k = classes_score_clip(a->dscores, a->n_classes, labels, n_labels, a->class_n, a->class_correct,
                               a->last_error);
    if (k < 0)
        return k;
    a->n_scored++;
    if (k == 0)
        return 0;
    if (a->keep_scores)
        LMR_TRY(keep_clip(a, scores, labels, n_labels)); // out of memory ends the run
    int top[5];
    int n_top = a->n_classes < 5 ? a->n_classes : 5;
    eval_topk(scores, a->n_classes, n_top, top);
    int hit1 = 0, hit5 = 0;
    for (int i = 0; i < n_labels; i++)
        for (int j = 0; j < n_top; j++)
            if (top[j] == labels[i])
                hit5 = 1, hit1 |= j == 0;
    a->top1_hits += hit1;
    a->top5_hits += hit5;
    for (int i = 0; i < n_labels && a->confusion; i++) {
        int dup = 0; // a label listed twice counts once, as in classes_score_clip
        for (int j = 0; j < i; j++)
            dup |= labels[j] == labels[i];
        if (!dup)
            a->confusion[(int64_t)labels[i] * a->n_classes + top[0]]++;
    }
    a->n_labelled++;
    return 0;
}

// --- results -------------------------------------------------------------------------------

static int cmp_pair_desc(const void *pa, const void *pb)
{
    const EvalScorePair *a = pa, *b = pb;
    return (a->score < b->score) - (a->score > b->score);
}

double eval_average_precision(EvalScorePair *pairs, int64_t n)
{
    int64_t n_pos = 0;
    for (int64_t i = 0; i < n; i++)
        n_pos += pairs[i].positive != 0;
    if (n_pos == 0)
        return -1.0;
    qsort(pairs, (size_t)n, sizeof *pairs, cmp_pair_desc);
    double ap = 0.0, prev_recall = 0.0;
    int64_t tp = 0, seen = 0;
    for (int64_t i = 0; i < n;) {
        int64_t j = i; // a run of equal scores is one threshold
        while (j < n && pairs[j].score == pairs[i].score) {
            tp += pairs[j].positive != 0;
            j++;
        }
        seen = j;
        double recall = (double)tp / (double)n_pos;
        ap += (recall - prev_recall) * ((double)tp / (double)seen);
        prev_recall = recall;
        i = j;
    }
    return ap;
}

/* Mean of v over classes with v >= 0 in each group, and over all of them. */
static void group_means(const double *v, const int *groups, int C, double *all, double *per,
                        int *n_all, int *n_per)
{
    double sum = 0, gsum[LMR_N_GROUPS] = {0};
    int n = 0, gn[LMR_N_GROUPS] = {0};
    for (int c = 0; c < C; c++) {
        if (v[c] < 0)
            continue;
        sum += v[c];
        n++;
        int g = groups ? groups[c] : LMR_GROUP_NONE;
        if (g >= 0 && g < LMR_N_GROUPS)
            gsum[g] += v[c], gn[g]++;
    }
    *all = n ? sum / n : -1.0;
    for (int g = 0; g < LMR_N_GROUPS; g++)
        per[g] = gn[g] ? gsum[g] / gn[g] : -1.0;
    if (n_all)
        *n_all = n;
    if (n_per)
        memcpy(n_per, gn, sizeof gn);
}

static int cmp_float_desc(const void *pa, const void *pb)
{
    float a = *(const float *)pa, b = *(const float *)pb;
    return (a < b) - (a > b);
}

/* Average precision of every class from one pass over the spilled scores. Only the thresholds
 * at a positive's score move the recall, so per class it needs those (desc, with the positives
 * at each) and, for each, the number of clips scoring at least it: a clip's score of class c adds
 * one to every threshold of c at or below it (a difference array). The sum runs over the same
 * thresholds in the same order as eval_average_precision's, with the same terms: the same bits. */
static int compute_ap(const EvalAcc *a, double *class_ap)
{
    int64_t N = a->n_labelled, C = a->n_classes, L = a->label_off[N];
    int64_t *start = calloc((size_t)C + 1, sizeof *start), *fill = calloc((size_t)C, sizeof *fill);
    float *thr = malloc((size_t)(L ? L : 1) * sizeof *thr);
    int64_t *npos = malloc((size_t)(L ? L : 1) * sizeof *npos), *ge = calloc((size_t)(L ? L : 1), sizeof *ge);
    int64_t *m = calloc((size_t)C, sizeof *m), *active = malloc((size_t)C * sizeof *active);
    float *row = malloc((size_t)C * sizeof *row);
    int rc = 0;
    if (!start || !fill || !thr || !npos || !ge || !m || !active || !row) {
        rc = LMR_ENOMEM;
        goto out;
    }
    /* each clip's distinct labels: positives per class, then their scores by class */
    for (int pass = 0; pass < 2; pass++) {
        for (int64_t i = 0; i < N; i++)
            for (int64_t l = a->label_off[i]; l < a->label_off[i + 1]; l++) {
                int dup = 0;
                for (int64_t k = a->label_off[i]; k < l && !dup; k++)
                    dup = a->labels[k] == a->labels[l];
                if (dup)
                    continue;
                int c = a->labels[l];
                if (pass == 0)
                    start[c + 1]++;
                else
                    thr[start[c] + fill[c]++] = a->label_scores[l];
            }
        if (pass == 0)
            for (int64_t c = 0; c < C; c++)
                start[c + 1] += start[c];
    }
    int64_t n_active = 0;
    for (int64_t c = 0; c < C; c++) { /* distinct scores, best first, with their positives, in place */
        float *t = thr + start[c];
        int64_t n = start[c + 1] - start[c], k = 0;
        if (!n)
            continue;
        qsort(t, (size_t)n, sizeof *t, cmp_float_desc);
        for (int64_t i = 0; i < n; i++) {
            if (k && t[k - 1] == t[i]) {
                npos[start[c] + k - 1]++;
                continue;
            }
            t[k] = t[i];
            npos[start[c] + k++] = 1;
        }
        m[c] = k;
        active[n_active++] = c;
    }
    if (fseek(a->spill, 0, SEEK_SET)) {
        rc = -errno;
        goto out;
    }
    for (int64_t i = 0; i < N; i++) {
        if (fread(row, sizeof *row, (size_t)C, a->spill) != (size_t)C) {
            rc = ferror(a->spill) ? -EIO : LMR_ECORRUPT;
            goto out;
        }
        for (int64_t q = 0; q < n_active; q++) {
            int64_t c = active[q], lo = 0, hi = m[c];
            const float *t = thr + start[c];
            float s = row[c];
            while (lo < hi) { /* the first threshold at or below s (t descends) */
                int64_t mid = lo + (hi - lo) / 2;
                if (t[mid] <= s)
                    hi = mid;
                else
                    lo = mid + 1;
            }
            if (lo < m[c])
                ge[start[c] + lo]++;
        }
    }
    for (int64_t c = 0; c < C; c++) {
        class_ap[c] = -1.0;
        if (a->class_n[c] == 0 || m[c] == 0)
            continue;
        int64_t n_pos = start[c + 1] - start[c], tp = 0, seen = 0;
        double ap = 0.0, prev_recall = 0.0;
        for (int64_t j = 0; j < m[c]; j++) {
            tp += npos[start[c] + j];
            seen += ge[start[c] + j];
            double recall = (double)tp / (double)n_pos;
            ap += (recall - prev_recall) * ((double)tp / (double)seen);
            prev_recall = recall;
        }
        class_ap[c] = ap;
    }
out:
    free(start), free(fill), free(thr), free(npos), free(ge), free(m), free(active), free(row);
    return rc;
}

int eval_finish(const EvalAcc *a, const int *groups, EvalResult *r)
{
    memset(r, 0, sizeof *r);
    int C = a->n_classes;
    r->n_classes = C;
    r->n_clips = a->n_labelled;
    r->n_unlabelled = a->n_scored - a->n_labelled;
    r->top1 = a->n_labelled ? (double)a->top1_hits / (double)a->n_labelled : -1.0;
    r->top5 = a->n_labelled ? (double)a->top5_hits / (double)a->n_labelled : -1.0;
    r->class_acc = malloc((size_t)C * sizeof *r->class_acc);
    r->class_ap = malloc((size_t)C * sizeof *r->class_ap);
    if (!r->class_acc || !r->class_ap) {
        eval_result_free(r);
        return LMR_ENOMEM;
    }
    for (int c = 0; c < C; c++) {
        r->class_acc[c] = a->class_n[c] ? (double)a->class_correct[c] / (double)a->class_n[c] : -1.0;
        r->class_ap[c] = -1.0;
    }
    group_means(r->class_acc, groups, C, &r->avg_class_acc, r->group_acc, &r->n_present,
                r->group_present);
    r->map = -1.0;
    for (int g = 0; g < LMR_N_GROUPS; g++)
        r->group_map[g] = -1.0;
    if (a->keep_scores && a->n_labelled) {
        int rc = compute_ap(a, r->class_ap);
        if (rc < 0) {
            eval_result_free(r);
            return rc;
        }
        group_means(r->class_ap, groups, C, &r->map, r->group_map, NULL, NULL);
    }
    return 0;
}

void eval_result_free(EvalResult *r)
{
    if (!r)
        return;
    free(r->class_acc);
    free(r->class_ap);
    r->class_acc = r->class_ap = NULL;
}
