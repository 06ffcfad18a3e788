/* Per-class counts and class groups. The default head/tail split follows DESIGN section 7: sort
 * classes by training count, take the most frequent ones while they hold at most head_share of
 * the clips; few-shot classes (count <= few_max) are set aside first so the groups stay disjoint. */
#include "classes.h"

#include <csv.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const group_names[LMR_N_GROUPS] = {"head", "tail", "few", "medium"};

const char *classes_group_name(int g) { return g >= 0 && g < LMR_N_GROUPS ? group_names[g] : "none"; }

int classes_group_parse(const char *name)
{
    for (int g = 0; g < LMR_N_GROUPS; g++)
        if (strcasecmp(name, group_names[g]) == 0)
            return g;
    if (strcasecmp(name, "few-shot") == 0 || strcasecmp(name, "fewshot") == 0 || strcasecmp(name, "few_shot") == 0)
        return LMR_GROUP_FEW;
    return LMR_GROUP_NONE;
}

int classes_count(const ShardSet *s, int n_classes, int64_t *counts)
{
    memset(counts, 0, sizeof(int64_t) * (size_t)(n_classes > 0 ? n_classes : 0));
    uint64_t n = shardset_count(s);
    for (uint64_t i = 0; i < n; i++) {
        const int32_t *l;
        int nl = shardset_labels(s, i, &l);
        for (int k = 0; k < nl; k++)
            if (l[k] >= 0 && l[k] < n_classes)
                counts[l[k]]++;
    }
    return 0;
}

typedef struct {
    int64_t count;
    int idx;
} ClassRank;

static int rank_cmp(const void *pa, const void *pb)
{
    const ClassRank *a = pa, *b = pb;
    if (a->count != b->count)
        return a->count > b->count ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

int classes_partition(const int64_t *counts, int n_classes, double head_share, int64_t few_max, int *groups)
{
    if (n_classes < 0 || !(head_share >= 0.0 && head_share <= 1.0))
        return LMR_EINVAL;
    if (n_classes == 0)
        return 0;
    ClassRank *r = malloc(sizeof *r * (size_t)n_classes);
    if (!r)
        return LMR_ENOMEM;
    int64_t total = 0;
    int n = 0;
    for (int c = 0; c < n_classes; c++) {
        total += counts[c];
        groups[c] = counts[c] <= few_max ? LMR_GROUP_FEW : LMR_GROUP_TAIL;
        if (groups[c] != LMR_GROUP_FEW)
            r[n++] = (ClassRank){counts[c], c};
    }
    qsort(r, (size_t)n, sizeof *r, rank_cmp);
    int64_t head = 0;
    for (int k = 0; k < n; k++) {
        if ((double)(head + r[k].count) > head_share * (double)total)
            break;
        head += r[k].count;
        groups[r[k].idx] = LMR_GROUP_HEAD;
    }
    free(r);
    return 0;
}

void classes_partition_videolt(const int64_t *counts, int n_classes, int *groups)
{
    for (int c = 0; c < n_classes; c++)
        groups[c] = counts[c] <= 100 ? LMR_GROUP_TAIL : counts[c] <= 500 ? LMR_GROUP_MEDIUM : LMR_GROUP_HEAD;
}

void classes_group_sizes(const int *groups, int n_classes, int *n_in_group)
{
    memset(n_in_group, 0, sizeof(int) * LMR_N_GROUPS);
    for (int c = 0; c < n_classes; c++)
        if (groups[c] >= 0 && groups[c] < LMR_N_GROUPS)
            n_in_group[groups[c]]++;
}

// --- per-class accuracy of one clip ---------------------------------------------------------

/* Is label i of the list a repeat of an earlier one? */
static int repeated(const int32_t *labels, int i)
{
    for (int j = 0; j < i; j++)
        if (labels[j] == labels[i])
            return 1;
    return 0;
}

/* Does class c rank among the k best scores? Classes ahead of c: a higher score, or the same
 * score and a lower index (the order eval_topk and the trainer's argmax use). */
static int in_top_k(const double *s, int n_classes, int c, int k)
{
    int ahead = 0;
    for (int j = 0; j < n_classes && ahead < k; j++)
        ahead += s[j] > s[c] || (s[j] == s[c] && j < c);
    return ahead < k;
}

int classes_score_clip(const double *scores, int n_classes, const int32_t *labels, int n_labels,
                       int64_t *n_eval, int64_t *correct, char *err)
{
    int k = 0;
    for (int i = 0; i < n_labels; i++) {
        if (labels[i] < 0 || labels[i] >= n_classes)
            return lmr_fail(err, LMR_ERANGE, "label %d outside the %d classes", (int)labels[i], n_classes);
        k += !repeated(labels, i);
    }
    if (k == 0)
        return 0;
    for (int c = 0; c < n_classes; c++)
        if (!isfinite(scores[c]))
            return lmr_fail(err, LMR_ENAN, "the score of class %d is %g", c, scores[c]);
    for (int i = 0; i < n_labels; i++) {
        if (repeated(labels, i))
            continue;
        n_eval[labels[i]]++;
        correct[labels[i]] += in_top_k(scores, n_classes, labels[i], k);
    }
    return k;
}

// --- class,group CSV (libcsv) ----------------------------------------------------------------

typedef struct {
    const char *path;
    int n_classes, *groups;
    long line, field, n_listed;
    char cls[64], grp[64];
    int rc;
    char *err;
} GroupsCsv;

static void groups_field(void *s, size_t len, void *user)
{
    GroupsCsv *g = user;
    char *dst = g->field == 0 ? g->cls : g->field == 1 ? g->grp : NULL;
    if (dst) {
        size_t n = s && len < 63 ? len : s ? 63 : 0;
        memcpy(dst, s, n);
        dst[n] = 0;
    }
    g->field++;
}

static void groups_row(int c, void *user)
{
    (void)c;
    GroupsCsv *g = user;
    g->line++;
    long fields = g->field;
    g->field = 0;
    if (g->rc || (fields == 1 && !g->cls[0]))
        return; /* after an error, or a blank line */
    char *end;
    long cls = strtol(g->cls, &end, 10);
    int numeric = g->cls[0] && *end == 0;
    if (!numeric && g->line == 1)
        return; /* header */
    if (fields != 2 || !numeric) {
        g->rc = lmr_fail(g->err, LMR_EPARSE, "%s:%ld: expected `class,group` with a class index", g->path, g->line);
        return;
    }
    if (cls < 0 || cls >= g->n_classes) {
        g->rc = lmr_fail(g->err, LMR_ERANGE, "%s:%ld: class %ld outside 0..%d", g->path, g->line, cls,
                         g->n_classes - 1);
        return;
    }
    int grp = classes_group_parse(g->grp);
    if (grp == LMR_GROUP_NONE) {
        g->rc = lmr_fail(g->err, LMR_EPARSE, "%s:%ld: unknown group \"%s\" (head, medium, tail, few)", g->path,
                         g->line, g->grp);
        return;
    }
    if (g->groups[cls] != LMR_GROUP_NONE) {
        g->rc = lmr_fail(g->err, LMR_EPARSE, "%s:%ld: class %ld is listed twice", g->path, g->line, cls);
        return;
    }
    g->groups[cls] = grp;
    g->n_listed++;
}

int classes_read_groups(const char *path, int n_classes, int *groups, char *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return lmr_fail(err, -errno, "%s: %s", path, strerror(errno));
    for (int c = 0; c < n_classes; c++)
        groups[c] = LMR_GROUP_NONE;
    struct csv_parser p;
    if (csv_init(&p, CSV_APPEND_NULL | CSV_EMPTY_IS_NULL) != 0) {
        fclose(f);
        return LMR_ENOMEM;
    }
    GroupsCsv g = {.path = path, .n_classes = n_classes, .groups = groups, .err = err};
    char buf[4096];
    size_t n;
    while (!g.rc && (n = fread(buf, 1, sizeof buf, f)) > 0)
        if (csv_parse(&p, buf, n, groups_field, groups_row, &g) != n && !g.rc)
            g.rc = lmr_fail(err, LMR_EPARSE, "%s:%ld: %s", path, g.line + 1, csv_strerror(csv_error(&p)));
    if (!g.rc)
        csv_fini(&p, groups_field, groups_row, &g);
    csv_free(&p);
    int rd = ferror(f);
    fclose(f);
    if (!g.rc && rd)
        g.rc = lmr_fail(err, LMR_EIO, "%s: read error", path);
    if (!g.rc && g.n_listed == 0)
        g.rc = lmr_fail(err, LMR_EPARSE, "%s: no `class,group` line: the file lists no class", path);
    return g.rc;
}
