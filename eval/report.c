/* Writing lmr-eval's results. The JSON keys are the contract other tools read (DESIGN
 * section 7): top1, top5, avg_class_acc, head_acc, tail_acc, few_acc (+ medium_acc when a
 * medium group exists), and with multi-label data map, head_map, tail_map, few_map. A value of
 * -1 means "no class of that group is present in the evaluation data". Files are written to a
 * temporary name and renamed, so a reader never sees half a file. */
#include "report.h"

#include <csv.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "classes.h"

static int has_medium(const Report *r)
{
    for (int c = 0; c < r->n_classes; c++)
        if (r->groups[c] == LMR_GROUP_MEDIUM)
            return 1;
    return 0;
}

// --- table ---------------------------------------------------------------------------------

static void table_row(FILE *f, const Report *r, const char *label, size_t offset)
{
    fprintf(f, "%-16s", label);
    for (int i = 0; i < r->n_cols; i++) {
        double v = *(const double *)((const char *)&r->cols[i].res + offset);
        if (v < 0)
            fprintf(f, " %14s", "-");
        else // the nudge rounds halves alike whichever way the value was computed
            fprintf(f, " %14.4f", v + 1e-9);
    }
    fputc('\n', f);
}

#define ROW(label, field) table_row(f, r, label, offsetof(EvalResult, field))

void report_table(FILE *f, const Report *r)
{
    const EvalResult *m = &r->cols[0].res;
    int sizes[LMR_N_GROUPS];
    classes_group_sizes(r->groups, r->n_classes, sizes);
    fprintf(f, "clips: %lld labelled, %lld unlabelled (scored, not in the metrics); "
               "classes: %d, %d present\n",
            (long long)m->n_clips, (long long)m->n_unlabelled, r->n_classes, m->n_present);
    fprintf(f, "groups (%s): %s\n", r->groups_rule, r->groups_text ? r->groups_text : "");
    fprintf(f, "  head %d (%d present), ", sizes[LMR_GROUP_HEAD], m->group_present[LMR_GROUP_HEAD]);
    if (has_medium(r))
        fprintf(f, "medium %d (%d present), ", sizes[LMR_GROUP_MEDIUM], m->group_present[LMR_GROUP_MEDIUM]);
    int n_few = sizes[LMR_GROUP_FEW], subset = 0;
    if (n_few == 0 && r->train_counts) { // VideoLT's rule has no few group: few is part of tail
        for (int c = 0; c < r->n_classes; c++)
            n_few += r->train_counts[c] <= LMR_FEW_MAX;
        subset = n_few > 0;
    }
    fprintf(f, "tail %d (%d present), few %d (%d present%s)", sizes[LMR_GROUP_TAIL],
            m->group_present[LMR_GROUP_TAIL], n_few, m->group_present[LMR_GROUP_FEW],
            subset ? ", within tail" : "");
    int n_none = r->n_classes - sizes[LMR_GROUP_HEAD] - sizes[LMR_GROUP_MEDIUM] - sizes[LMR_GROUP_TAIL] -
                 sizes[LMR_GROUP_FEW];
    if (n_none > 0)
        fprintf(f, ", %d in no group (in avg_class_acc only)", n_none);
    fputc('\n', f);
    fprintf(f, "%-16s", "");
    for (int i = 0; i < r->n_cols; i++)
        fprintf(f, " %14.14s", r->cols[i].name);
    fputc('\n', f);
    ROW("top1", top1);
    ROW("top5", top5);
    ROW("avg_class_acc", avg_class_acc);
    ROW("head_acc", group_acc[LMR_GROUP_HEAD]);
    if (has_medium(r))
        ROW("medium_acc", group_acc[LMR_GROUP_MEDIUM]);
    ROW("tail_acc", group_acc[LMR_GROUP_TAIL]);
    ROW("few_acc", group_acc[LMR_GROUP_FEW]);
    if (r->multi_label) {
        ROW("map", map);
        ROW("head_map", group_map[LMR_GROUP_HEAD]);
        if (has_medium(r))
            ROW("medium_map", group_map[LMR_GROUP_MEDIUM]);
        ROW("tail_map", group_map[LMR_GROUP_TAIL]);
        ROW("few_map", group_map[LMR_GROUP_FEW]);
    }
}

// --- files ---------------------------------------------------------------------------------

static FILE *open_tmp(const char *path, char *tmp, size_t n, char *err, int *rc)
{
    snprintf(tmp, n, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        *rc = lmr_fail(err, -errno, "%s: cannot write: %s", tmp, strerror(errno));
    return f;
}

static int close_tmp(FILE *f, const char *tmp, const char *path, char *err)
{
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        remove(tmp);
        return lmr_fail(err, LMR_EIO, "%s: write failed", tmp);
    }
    if (rename(tmp, path) != 0)
        return lmr_fail(err, -errno, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    return 0;
}

void report_csv_field(FILE *f, const char *s)
{
    if (!s)
        return;
    if (strpbrk(s, ",\"\r\n"))
        csv_fwrite(f, s, strlen(s)); // quoted, quotes doubled
    else
        fputs(s, f);
}

static const char *name_of(const Report *r, int c)
{
    return r->class_names && c >= 0 && c < r->n_classes && r->class_names[c] ? r->class_names[c] : "";
}

static json_t *metrics_json(const Report *r, const ReportColumn *c)
{
    const EvalResult *m = &c->res;
    json_t *o = json_object();
    json_object_set_new(o, "model", json_string(c->path));
    json_object_set_new(o, "top1", json_real(m->top1));
    json_object_set_new(o, "top5", json_real(m->top5));
    json_object_set_new(o, "avg_class_acc", json_real(m->avg_class_acc));
    json_object_set_new(o, "head_acc", json_real(m->group_acc[LMR_GROUP_HEAD]));
    if (has_medium(r))
        json_object_set_new(o, "medium_acc", json_real(m->group_acc[LMR_GROUP_MEDIUM]));
    json_object_set_new(o, "tail_acc", json_real(m->group_acc[LMR_GROUP_TAIL]));
    json_object_set_new(o, "few_acc", json_real(m->group_acc[LMR_GROUP_FEW]));
    if (r->multi_label) {
        json_object_set_new(o, "map", json_real(m->map));
        json_object_set_new(o, "head_map", json_real(m->group_map[LMR_GROUP_HEAD]));
        if (has_medium(r))
            json_object_set_new(o, "medium_map", json_real(m->group_map[LMR_GROUP_MEDIUM]));
        json_object_set_new(o, "tail_map", json_real(m->group_map[LMR_GROUP_TAIL]));
        json_object_set_new(o, "few_map", json_real(m->group_map[LMR_GROUP_FEW]));
    }
    json_object_set_new(o, "n_clips", json_integer(m->n_clips));
    json_object_set_new(o, "n_unlabelled", json_integer(m->n_unlabelled));
    json_object_set_new(o, "n_classes", json_integer(r->n_classes));
    json_object_set_new(o, "n_classes_present", json_integer(m->n_present));
    return o;
}

int report_json(const char *path, const Report *r, json_t *extra, char *err)
{
    json_t *root = metrics_json(r, &r->cols[0]);
    if (!root)
        return lmr_fail(err, LMR_ENOMEM, "%s: out of memory", path);
    json_object_set_new(root, "groups", json_string(r->groups_rule));
    if (extra)
        json_object_update(root, extra);
    if (r->n_cols > 1) {
        json_t *arr = json_array();
        for (int i = 1; i < r->n_cols; i++)
            json_array_append_new(arr, metrics_json(r, &r->cols[i]));
        json_object_set_new(root, "compare", arr);
    }
    const size_t flags = JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8);
    char tmp[4096];
    int rc = 0;
    if (strcmp(path, "-") == 0) {
        if (json_dumpf(root, stdout, flags) != 0 || fputc('\n', stdout) == EOF || fflush(stdout) != 0)
            rc = lmr_fail(err, LMR_EIO, "standard output: write failed");
        json_decref(root);
        return rc;
    }
    FILE *f = open_tmp(path, tmp, sizeof tmp, err, &rc);
    if (f) {
        json_dumpf(root, f, flags);
        fputc('\n', f);
        rc = close_tmp(f, tmp, path, err);
    }
    json_decref(root);
    return rc;
}

int report_per_class(const char *path, const Report *r, int col, char *err)
{
    const ReportColumn *c = &r->cols[col];
    char tmp[4096];
    int rc = 0;
    FILE *f = open_tmp(path, tmp, sizeof tmp, err, &rc);
    if (!f)
        return rc;
    fprintf(f, "class,name,train_count,group,n_eval,correct,accuracy%s\n", r->multi_label ? ",ap" : "");
    for (int k = 0; k < r->n_classes; k++) {
        long long n = c->acc->class_n[k];
        fprintf(f, "%d,", k);
        report_csv_field(f, name_of(r, k));
        fprintf(f, ",%lld,%s,%lld,%lld,", r->train_counts ? (long long)r->train_counts[k] : -1LL,
                classes_group_name(r->groups[k]), n, (long long)c->acc->class_correct[k]);
        if (n)
            fprintf(f, "%.6f", c->res.class_acc[k]);
        if (r->multi_label) {
            fputc(',', f);
            if (c->res.class_ap[k] >= 0)
                fprintf(f, "%.6f", c->res.class_ap[k]);
        }
        fputc('\n', f);
    }
    return close_tmp(f, tmp, path, err);
}

int report_confusion(const char *path, const Report *r, int col, char *err)
{
    const EvalAcc *a = r->cols[col].acc;
    if (!a->confusion)
        return lmr_fail(err, LMR_EINVAL, "%s: no confusion matrix was counted", path);
    char tmp[4096];
    int rc = 0;
    FILE *f = open_tmp(path, tmp, sizeof tmp, err, &rc);
    if (!f)
        return rc;
    fprintf(f, "true,pred,count,true_name,pred_name\n");
    int64_t C = a->n_classes;
    for (int64_t t = 0; t < C; t++)
        for (int64_t p = 0; p < C; p++) {
            if (!a->confusion[t * C + p])
                continue;
            fprintf(f, "%lld,%lld,%lld,", (long long)t, (long long)p, (long long)a->confusion[t * C + p]);
            report_csv_field(f, name_of(r, (int)t));
            fputc(',', f);
            report_csv_field(f, name_of(r, (int)p));
            fputc('\n', f);
        }
    return close_tmp(f, tmp, path, err);
}

// --- predictions ---------------------------------------------------------------------------

void report_prediction_header(FILE *f)
{
    fprintf(f, "clip_id,labels,pred,top5,score,label_names,pred_name\n");
}

/* "a;b;c" as one CSV field: the names joined, then quoted as a whole when needed. */
static void names_field(FILE *f, const int32_t *labels, int n, const char *const *names, int C)
{
    char buf[4096];
    size_t len = 0;
    buf[0] = '\0';
    for (int l = 0; l < n && names; l++) {
        const char *s = labels[l] >= 0 && labels[l] < C && names[labels[l]] ? names[labels[l]] : "";
        int w = snprintf(buf + len, sizeof buf - len, "%s%s", l ? ";" : "", s);
        if (w < 0 || (size_t)w >= sizeof buf - len)
            break; // an absurdly long list of names is cut, never overrun
        len += (size_t)w;
    }
    report_csv_field(f, buf);
}

void report_prediction(FILE *f, const char *id, const int32_t *labels, int n_labels, const float *scores,
                       int n_classes, int views, const char *const *class_names)
{
    int top[5], k = n_classes < 5 ? n_classes : 5;
    eval_topk(scores, n_classes, k, top);
    report_csv_field(f, id ? id : "");
    fputc(',', f);
    for (int l = 0; l < n_labels; l++)
        fprintf(f, "%s%d", l ? ";" : "", labels[l]);
    fprintf(f, ",%d,", top[0]);
    for (int j = 0; j < k; j++)
        fprintf(f, "%s%d", j ? ";" : "", top[j]);
    fprintf(f, ",%.6f,", scores[top[0]] / views);
    names_field(f, labels, n_labels, class_names, n_classes);
    fputc(',', f);
    int32_t pred = top[0];
    names_field(f, &pred, 1, class_names, n_classes);
    fputc('\n', f);
}
