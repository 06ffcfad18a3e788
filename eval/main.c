/* lmr-eval: score every clip of a shard set with one or more checkpoints and report top-1/top-5,
 * per-class, head/tail/few and (multi-label) mAP metrics (DESIGN section 7). Clips are read in
 * batches (batch.h: worker threads decode and average the features), then each checkpoint
 * scores the whole batch with one forward. Before anything is read, no output may name an
 * input; a checkpoint trained on another backbone's features is refused (provenance.h); a clip
 * whose features or scores are not finite stops the run with its id. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "annotations.h"
#include "batch.h"
#include "classes.h"
#include "checkpoint.h"
#include "fileid.h"
#include "metrics.h"
#include "plot.h"
#include "provenance.h"
#include "posthoc.h"
#include "record.h"
#include "safetensors.h"
#include "report.h"
#include "score.h"
#include "shard.h"
#include "summarize.h"

#define MAX_MODELS 4
#define BATCH 256
#define PATH_LEN 4096

typedef struct {
    const char *models[MAX_MODELS];
    int n_models;
    const char **data;
    int n_data;
    const char *class_groups, *tail_classes, *groups_rule, *json, *per_class, *confusion, *plot, *predictions;
    const char *device;
    double head_share;
    int threads, quiet, allow_other_features;
    Posthoc posthoc;    /* --posthoc (main checkpoint only) */
    const char **tune;  /* --tune-on SHARD... */
    int n_tune;
} Opts;

static void usage(FILE *f)
{
    fprintf(f,
        "usage: lmr-eval --model CKPT --data SHARD [SHARD...] [options]\n"
        "Score every clip of the shards (softmax per view, summed over views) and report top-1/top-5,\n"
        "per-class accuracy, head/tail/few-shot group means and, for multi-label data, mAP.\n"
        "  --model CKPT         checkpoint written by lmr-train\n"
        "  --data SHARD...      one or more shard files (LMDB or HDF5) of features records\n"
        "  --compare CKPT       also score this checkpoint, side by side (repeatable, up to %d)\n"
        "groups (few = <= 20 training clips, taken out of head/tail, unless said otherwise):\n"
        "  --head-share X       head = most frequent classes holding <= X of training clips (0.5)\n"
        "  --class-groups F     CSV class,group (head/tail/few/medium), e.g. scripts/class-groups/;\n"
        "                       a list without a few group gets few = <= 20 training clips\n"
        "  --tail-classes F     EPIC_100_tail_{verbs,nouns}.csv: listed = tail, others head\n"
        "  --groups videolt     VideoLT's rule: tail <= 100, medium 101-500, head > 500 (few within tail)\n"
        "  --groups share       the --head-share rule (the default)\n"
        "outputs (never an input's path; each written whole, through F.tmp):\n"
        "  --json F             metrics as JSON (- = stdout; the table then goes to stderr)\n"
        "  --per-class F.csv    per-class table of --model; F.STEM.csv for each --compare\n"
        "  --confusion F.csv    true,pred,count of --model; F.STEM.csv for each --compare\n"
        "  --predictions F.csv  every clip's top-5 under --model (unlabelled clips included)\n"
        "  --plot F.png|F.pdf|F.svg   per-class accuracy against training count\n"
        "  --allow-other-features  score a checkpoint trained on another backbone's features\n"
        "  --device cpu|cuda    --threads N (threads reading records and scoring, 0 = all cores)\n"
        "post-hoc corrections of --model's classifier:\n"
        "  --posthoc P          tau-norm[:t] | la[:t] | ncm\n"
        "  --tune-on SHARD...   pick t there (0..2 step 0.1, best avg class acc); ncm's class means\n"
        "                       (normally the training shard; never the evaluated one)\n"
        "  lmr-eval --summarize RUN.json... [--out PREFIX] [--plot F] [--baseline M]: one table\n"
        "                       of many --json runs (methods x seeds), see --summarize --help\n"
        "  --quiet  --help  --version\n", MAX_MODELS - 1);
}

static int parse_args(int argc, char **argv, Opts *o)
{
    enum { O_MODEL = 256, O_DATA, O_TAIL, O_COMPARE, O_GROUPS_FILE, O_SHARE, O_GROUPS, O_JSON, O_PER_CLASS,
           O_CONFUSION, O_PLOT, O_PRED, O_DEVICE, O_THREADS, O_QUIET, O_ALLOW, O_HELP, O_VERSION, O_POSTHOC, O_TUNE };
    static const struct option longs[] = {
        {"model", required_argument, 0, O_MODEL}, {"data", required_argument, 0, O_DATA},
        {"compare", required_argument, 0, O_COMPARE}, {"class-groups", required_argument, 0, O_GROUPS_FILE},
        {"tail-classes", required_argument, 0, O_TAIL},
        {"head-share", required_argument, 0, O_SHARE}, {"groups", required_argument, 0, O_GROUPS},
        {"json", required_argument, 0, O_JSON}, {"per-class", required_argument, 0, O_PER_CLASS},
        {"confusion", required_argument, 0, O_CONFUSION}, {"plot", required_argument, 0, O_PLOT},
        {"predictions", required_argument, 0, O_PRED}, {"device", required_argument, 0, O_DEVICE},
        {"threads", required_argument, 0, O_THREADS}, {"quiet", no_argument, 0, O_QUIET},
        {"allow-other-features", no_argument, 0, O_ALLOW},
        {"help", no_argument, 0, O_HELP}, {"version", no_argument, 0, O_VERSION}, 
        {"posthoc", required_argument, 0, O_POSTHOC}, {"tune-on", required_argument, 0, O_TUNE}, {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->head_share = LMR_HEAD_SHARE;
    o->device = "cpu";
    o->n_models = 1;
    o->data = calloc((size_t)argc, sizeof *o->data);
    o->tune = calloc((size_t)argc, sizeof *o->tune);
    if (!o->data || !o->tune)
        return 1;
    char *end;
    int opt;
    opterr = 0; // one wording across the tools, below
    while ((opt = getopt_long(argc, argv, ":", longs, NULL)) != -1) {
        switch (opt) {
        case O_MODEL: o->models[0] = optarg; break;
        case O_DATA:
            o->data[o->n_data++] = optarg;
            while (optind < argc && argv[optind][0] != '-') // --data A B C
                o->data[o->n_data++] = argv[optind++];
            break;
        case O_COMPARE:
            if (o->n_models == MAX_MODELS) {
                fprintf(stderr, "lmr-eval: at most %d --compare\n", MAX_MODELS - 1);
                return 2;
            }
            o->models[o->n_models++] = optarg;
            break;
        case O_GROUPS_FILE: o->class_groups = optarg; break;
        case O_TAIL: o->tail_classes = optarg; break;
        case O_SHARE:
            o->head_share = strtod(optarg, &end);
            if (*end || !(o->head_share >= 0 && o->head_share <= 1)) {
                fprintf(stderr, "lmr-eval: --head-share wants a number in [0, 1], not '%s'\n", optarg);
                return 2;
            }
            break;
        case O_GROUPS:
            if (strcmp(optarg, "videolt") != 0 && strcmp(optarg, "share") != 0) {
                fprintf(stderr, "lmr-eval: --groups videolt|share, not '%s'\n", optarg);
                return 2;
            }
            o->groups_rule = optarg;
            break;
        case O_JSON: o->json = optarg; break;
        case O_PER_CLASS: o->per_class = optarg; break;
        case O_CONFUSION: o->confusion = optarg; break;
        case O_PLOT: o->plot = optarg; break;
        case O_PRED: o->predictions = optarg; break;
        case O_DEVICE: o->device = optarg; break;
        case O_THREADS:
            o->threads = (int)strtol(optarg, &end, 10);
            if (*end || o->threads < 0) {
                fprintf(stderr, "lmr-eval: --threads wants a count, not '%s'\n", optarg);
                return 2;
            }
            break;
        case O_QUIET: o->quiet = 1; break;
        case O_ALLOW: o->allow_other_features = 1; break;
        case O_POSTHOC: {
            char perr[LMR_ERRLEN];
            if (posthoc_parse(optarg, &o->posthoc, perr) < 0) {
                fprintf(stderr, "lmr-eval: %s\n", perr);
                return 2;
            }
            break;
        }
        case O_TUNE:
            o->tune[o->n_tune++] = optarg;
            while (optind < argc && argv[optind][0] != '-') // --tune-on A B
                o->tune[o->n_tune++] = argv[optind++];
            break;
        case O_HELP: usage(stdout); exit(0);
        case O_VERSION: printf("lmr-eval %s\n", LMR_VERSION); exit(0);
        case ':':
            fprintf(stderr, "lmr-eval: option '%s' needs a value (see --help)\n", argv[optind - 1]);
            return 2;
        default: {
            const char *a = argv[optind - 1], *eq = strchr(a, '=');
            if (optopt)
                fprintf(stderr, "lmr-eval: unknown option '-%c' (see --help)\n", optopt);
            else
                fprintf(stderr, "lmr-eval: unknown option '%.*s' (see --help)\n", eq ? (int)(eq - a) : (int)strlen(a), a);
            return 2;
        }
        }
    }
    if (optind < argc) {
        fprintf(stderr, "lmr-eval: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!o->models[0] || o->n_data == 0) {
        fprintf(stderr, "lmr-eval: --model and --data are required (see --help)\n");
        return 2;
    }
    if (o->n_tune && !o->posthoc.kind) {
        fprintf(stderr, "lmr-eval: --tune-on goes with --posthoc\n");
        return 2;
    }
    if (o->posthoc.kind == POSTHOC_NCM && !o->n_tune) {
        fprintf(stderr, "lmr-eval: --posthoc ncm needs --tune-on SHARD (the class means; normally the training shard)\n");
        return 2;
    }
    for (int i = 0; i < o->n_tune; i++)
        for (int j = 0; j < o->n_data; j++)
            if (lmr_same_file(o->tune[i], o->data[j])) {
                fprintf(stderr, "lmr-eval: --tune-on %s is the evaluated shard %s: tune on another one\n", o->tune[i],
                        o->data[j]);
                return 2;
            }
    if (strcmp(o->device, "cpu") != 0 && strcmp(o->device, "cuda") != 0) {
        fprintf(stderr, "lmr-eval: --device cpu|cuda, not '%s'\n", o->device);
        return 2;
    }
    if (o->plot && plot_format(o->plot) < 0) {
        fprintf(stderr, "lmr-eval: --plot wants a file name ending in .png, .pdf or .svg, not '%s'\n", o->plot);
        return 2;
    }
    const char *files[] = {o->per_class, o->confusion, o->predictions, o->plot};
    const char *flags[] = {"--per-class", "--confusion", "--predictions", "--plot"};
    for (int i = 0; i < 4; i++)
        if (files[i] && (!files[i][0] || strcmp(files[i], "-") == 0)) {
            fprintf(stderr, "lmr-eval: %s wants a file name (only --json writes to stdout, as -)\n", flags[i]);
            return 2;
        }
    if (o->threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        o->threads = n > 0 ? (int)n : 1;
    }
    return 0;
}

// --- the run -------------------------------------------------------------------------------

typedef struct {
    Opts o;
    ShardSet *set;
    Scorer sc[MAX_MODELS];
    EvalAcc acc[MAX_MODELS];
    EvalResult res[MAX_MODELS];
    Provenance prov[MAX_MODELS];
    char stem[MAX_MODELS][128];                 /* column titles: the checkpoints' file stems */
    char per_class[MAX_MODELS][PATH_LEN];       /* --per-class file of each checkpoint */
    char confusion[MAX_MODELS][PATH_LEN];       /* --confusion file of each checkpoint */
    ClipBatch batch;
    int views, D, C, multi_label;
    int *groups;
    int few_by_count;                           /* few = training count <= LMR_FEW_MAX */
    const char *const *class_names;             /* [C] borrowed (shards or checkpoint), or NULL */
    char rule[600], rule_text[1200];
    FILE *pred;
    char pred_tmp[PATH_LEN + 8];
    char err[LMR_ERRLEN];
} Run;

static const char *base_name(const char *path, char *buf, size_t n)
{
    const char *b = strrchr(path, '/');
    snprintf(buf, n, "%s", b ? b + 1 : path);
    char *dot = strstr(buf, ".safetensors");
    if (dot && dot != buf)
        *dot = '\0';
    return buf;
}

/* The file of checkpoint i for an output F: F itself for --model, F.STEM.EXT for a --compare
 * (F.STEM-i.EXT when two of them share a stem). */
static void model_output(const Run *r, const char *path, int i, char *out, size_t n)
{
    if (i == 0) {
        snprintf(out, n, "%s", path);
        return;
    }
    char stem[160];
    snprintf(stem, sizeof stem, "%s", r->stem[i]);
    for (int j = 1; j < i; j++)
        if (strcmp(r->stem[j], r->stem[i]) == 0)
            snprintf(stem, sizeof stem, "%s-%d", r->stem[i], i);
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    if (dot && (!slash || dot > slash + 1))
        snprintf(out, n, "%.*s.%s%s", (int)(dot - path), path, stem, dot);
    else
        snprintf(out, n, "%s.%s", path, stem);
}

/* No output may overwrite an input (compared by device and inode, staging files included) or
 * another output: checked before anything is opened, so a mistyped path costs nothing. */
static int run_check_paths(Run *r)
{
    const Opts *o = &r->o;
    for (int i = 0; i < o->n_models; i++) {
        base_name(o->models[i], r->stem[i], sizeof r->stem[i]);
        if (o->per_class)
            model_output(r, o->per_class, i, r->per_class[i], PATH_LEN);
        if (o->confusion)
            model_output(r, o->confusion, i, r->confusion[i], PATH_LEN);
    }
    int n_in = 0, n_out = 0;
    const char **in = calloc((size_t)(o->n_models + o->n_data + 2), sizeof *in);
    const char *out[3 * MAX_MODELS + 3];
    if (!in)
        return lmr_fail(r->err, LMR_ENOMEM, "out of memory");
    for (int i = 0; i < o->n_models; i++)
        in[n_in++] = o->models[i];
    for (int i = 0; i < o->n_data; i++)
        in[n_in++] = o->data[i];
    in[n_in++] = o->class_groups;
    in[n_in++] = o->tail_classes;
    out[n_out++] = o->json;
    out[n_out++] = o->predictions;
    out[n_out++] = o->plot;
    for (int i = 0; i < o->n_models; i++) {
        out[n_out++] = o->per_class ? r->per_class[i] : NULL;
        out[n_out++] = o->confusion ? r->confusion[i] : NULL;
    }
    int rc = lmr_check_outputs(in, n_in, out, n_out, r->err);
    free(in);
    return rc;
}

/* The checkpoint's provenance against the shards' (checkpoint_check_features, as lmr-train --init
 * does): refused when it was trained on another backbone's features or weights, unless
 * --allow-other-features (then said loudly). Its class names are kept for the outputs. */
static int check_features(Run *r, int i, const ShardMeta *m)
{
    int rc = provenance_read(&r->prov[i], r->o.models[i], r->err);
    if (rc < 0)
        return rc;
    char msg[LMR_ERRLEN];
    rc = checkpoint_check_features(r->o.models[i], m, r->o.allow_other_features, msg);
    if (rc < 0)
        return lmr_fail(r->err, rc, "%s", msg);
    if (rc == CKPT_FEATURES_OVERRIDDEN)
        fprintf(stderr, "lmr-eval: WARNING: %s\n", msg);
    else if (rc == CKPT_FEATURES_UNCHECKED && !r->o.quiet)
        fprintf(stderr, "lmr-eval: note: %s\n", msg);
    return 0;
}

/* Class names for the outputs: the shards' (from --labels at extraction), else a checkpoint's. */
static void pick_class_names(Run *r, const ShardMeta *m)
{
    if (m->n_class_names == r->C)
        r->class_names = (const char *const *)m->class_names;
    for (int i = 0; i < r->o.n_models && !r->class_names; i++)
        if (r->prov[i].n_class_names == r->C)
            r->class_names = (const char *const *)r->prov[i].class_names;
    if (m->n_class_names > 0 && m->n_class_names != r->C && !r->o.quiet)
        fprintf(stderr, "lmr-eval: note: %s names %d classes, the checkpoint has %d: its names are "
                "not used\n", r->o.data[0], m->n_class_names, r->C);
}

/* Open the shards and checkpoints and check they fit each other. */
static int run_open(Run *r)
{
    int rc = shardset_open(&r->set, r->o.data, r->o.n_data, r->err);
    if (rc < 0)
        return rc;
    const ShardMeta *m = shardset_meta(r->set);
    if (shardset_count(r->set) == 0)
        return lmr_fail(r->err, LMR_EINVAL, "%s: no clips in the shard%s", r->o.data[0],
                        r->o.n_data > 1 ? " set" : "");
    if (m->kind != LMR_KIND_FEATURES)
        return lmr_fail(r->err, LMR_EMISMATCH, "%s: holds frames, not features: extract with a "
                        "backbone (--backbone pool|resnet50) first", r->o.data[0]);
    r->views = (int)m->dims[0];
    r->D = (int)m->dims[2];
    r->multi_label = m->multi_label;
    for (int i = 0; i < r->o.n_models; i++) {
        Scorer *s = &r->sc[i];
        if ((rc = scorer_open(s, r->o.models[i], r->o.device, r->o.threads, r->err)) < 0)
            return rc;
        if (scorer_dim(s) != r->D)
            return lmr_fail(r->err, LMR_EMISMATCH, "%s: the checkpoint reads %d-dim features, the "
                            "shards hold %d-dim ones (backbone %s)", r->o.models[i], scorer_dim(s),
                            r->D, m->backbone);
        if (i == 0)
            r->C = scorer_classes(s);
        if (scorer_classes(s) != r->C)
            return lmr_fail(r->err, LMR_EMISMATCH, "%s: %d classes, but %s has %d", r->o.models[i],
                            scorer_classes(s), r->o.models[0], r->C);
        if (m->n_classes > 0 && m->n_classes != r->C)
            return lmr_fail(r->err, LMR_EMISMATCH, "%s: %d classes, but the shards have %d",
                            r->o.models[i], r->C, m->n_classes);
        if ((rc = check_features(r, i, m)) < 0)
            return rc;
        if ((rc = eval_acc_init(&r->acc[i], r->C, r->multi_label, r->o.confusion != NULL)) < 0)
            return lmr_fail(r->err, rc, "out of memory for %d classes", r->C);
    }
    pick_class_names(r, m);
    return 0;
}

/* EPIC's tail list: listed classes are tail, the others head; few (<= LMR_FEW_MAX training
 * clips) overrides both, keeping the groups disjoint. */
static int read_tail_list(Run *r, const int64_t *counts)
{
    AnnotClasses ac;
    annot_classes_init(&ac);
    int32_t *ids = NULL;
    int n = 0;
    int rc = annot_epic_tail_read(&ac, r->o.tail_classes, r->C, 0, &ids, &n);
    if (rc < 0) {
        lmr_fail(r->err, rc, "%s", ac.last_error);
        annot_classes_free(&ac);
        return rc;
    }
    for (int c = 0; c < r->C; c++)
        r->groups[c] = LMR_GROUP_HEAD;
    for (int i = 0; i < n; i++)
        r->groups[ids[i]] = LMR_GROUP_TAIL;
    for (int c = 0; c < r->C && counts; c++)
        if (counts[c] <= LMR_FEW_MAX)
            r->groups[c] = LMR_GROUP_FEW;
    r->few_by_count = counts != NULL;
    snprintf(r->rule, sizeof r->rule, "tail list %s (%d classes)", r->o.tail_classes, n);
    if (counts)
        snprintf(r->rule_text, sizeof r->rule_text, "tail = the listed classes, head = the others; "
                 "few = <= %d training clips, taken out of both", LMR_FEW_MAX);
    else
        snprintf(r->rule_text, sizeof r->rule_text, "tail = the listed classes, head = the others "
                 "(no class counts in the checkpoint: no few group)");
    free(ids);
    annot_classes_free(&ac);
    return 0;
}

/* Groups from the main checkpoint's training counts (or a file). In VideoLT mode the few
 * group is still reported: the classes with <= LMR_FEW_MAX clips, a subset of tail. */
static int run_groups(Run *r)
{
    const int64_t *counts = model_class_counts(&r->sc[0].model);
    r->groups = malloc((size_t)r->C * sizeof *r->groups);
    if (!r->groups)
        return LMR_ENOMEM;
    for (int i = 1; i < r->o.n_models && counts; i++) {
        const int64_t *other = model_class_counts(&r->sc[i].model);
        if (other && memcmp(other, counts, (size_t)r->C * sizeof *counts) != 0 && !r->o.quiet)
            fprintf(stderr, "lmr-eval: warning: %s was trained on other class counts than %s; "
                    "groups follow %s\n", r->o.models[i], r->o.models[0], r->o.models[0]);
    }
    if (r->o.class_groups) {
        int rc = classes_read_groups(r->o.class_groups, r->C, r->groups, r->err);
        if (rc < 0)
            return rc;
        snprintf(r->rule, sizeof r->rule, "file %s", r->o.class_groups);
        snprintf(r->rule_text, sizeof r->rule_text, "as the file lists them; a class it leaves out "
                 "is in no group");
        int n[LMR_N_GROUPS];
        classes_group_sizes(r->groups, r->C, n);
        if (n[LMR_GROUP_FEW] == 0 && counts) { // a list without a few group: few = count <= 20
            for (int c = 0; c < r->C; c++)
                if (counts[c] <= LMR_FEW_MAX)
                    r->groups[c] = LMR_GROUP_FEW;
            r->few_by_count = 1;
            snprintf(r->rule_text, sizeof r->rule_text, "as the file lists them (a class it leaves "
                     "out is in no group), but few = <= %d training clips, taken out of head/tail "
                     "(the file has no few group)", LMR_FEW_MAX);
        }
        return 0;
    }
    if (r->o.tail_classes)
        return read_tail_list(r, counts);
    if (!counts) {
        for (int c = 0; c < r->C; c++)
            r->groups[c] = LMR_GROUP_NONE;
        snprintf(r->rule, sizeof r->rule, "none");
        snprintf(r->rule_text, sizeof r->rule_text, "the checkpoint has no class counts");
        return 0;
    }
    r->few_by_count = 1;
    if (r->o.groups_rule && strcmp(r->o.groups_rule, "videolt") == 0) {
        classes_partition_videolt(counts, r->C, r->groups);
        snprintf(r->rule, sizeof r->rule, "videolt");
        snprintf(r->rule_text, sizeof r->rule_text, "VideoLT's rule: head > 500, medium 101-500, "
                 "tail <= 100 training clips; few (<= %d) is reported within tail, not taken out "
                 "of it", LMR_FEW_MAX);
        return 0;
    }
    snprintf(r->rule, sizeof r->rule, "head-share %.2f", r->o.head_share);
    snprintf(r->rule_text, sizeof r->rule_text, "few = <= %d training clips; head = the most "
             "frequent other classes holding <= %.0f%% of the training clips; tail = the rest",
             LMR_FEW_MAX, 100.0 * r->o.head_share);
    return classes_partition(counts, r->C, r->o.head_share, LMR_FEW_MAX, r->groups);
}

/* --posthoc: t chosen on the tuning shards when not given (else 1), the correction written into the
 * main checkpoint's model (and its GPU copy). */
static int run_posthoc(Run *r)
{
    Posthoc *ph = &r->o.posthoc;
    Scorer *s = &r->sc[0];
    int rc;
    if (ph->kind == POSTHOC_NCM) {
        int missing = 0;
        if ((rc = posthoc_ncm(&s->model, r->o.tune, r->o.n_tune, r->o.threads, &missing, r->err)) < 0)
            return rc;
        printf("posthoc: ncm, class means from %s%s", r->o.tune[0], r->o.n_tune > 1 ? " ..." : "");
        if (missing)
            printf(" (%d classes without clips there: never predicted)", missing);
        printf("\n");
        return 0;
    }
    if (!ph->tau_given && r->o.n_tune) {
        double acc = 0;
        if ((rc = posthoc_tune(&s->model, ph->kind, r->o.tune, r->o.n_tune, r->o.threads, &ph->tau, &acc, r->err)) < 0)
            return rc;
        printf("posthoc: %s t = %.1f (tuned on %s%s: avg class acc %.4f)\n", posthoc_name(ph->kind), ph->tau,
               r->o.tune[0], r->o.n_tune > 1 ? " ..." : "", acc);
    } else {
        printf("posthoc: %s t = %g%s\n", posthoc_name(ph->kind), ph->tau, ph->tau_given ? "" : " (no --tune-on)");
    }
    if ((rc = posthoc_apply(&s->model, ph->kind, ph->tau, r->err)) < 0)
        return rc;
    if (s->on_device && (rc = backend_upload(s->ctx, s->d_params, s->model.params,
                                             s->model.n_params * sizeof(float))) < 0)
        return lmr_fail(r->err, rc, "%s: cannot copy the corrected model to the GPU", r->o.models[0]);
    return 0;
}

/* The run file gets the method, seed and per-class accuracies --summarize folds: from the
 * checkpoint's metadata, where older or hand-made checkpoints may lack them. */
static int run_tags(Run *r, json_t **tags)
{
    StFile f;
    int rc = st_open(&f, r->o.models[0]);
    if (rc < 0)
        return lmr_fail(r->err, rc, "%s", f.last_error);
    const char *m = st_meta(&f, "method"), *stage = st_meta(&f, "stage"), *off = st_meta(&f, "lmr_off");
    const char *seed = st_meta(&f, "seed");
    if (!m && stage) // before methods: the stage says which
        m = strcmp(stage, "init") == 0 ? "ce" : off && strcmp(off, "1") == 0 ? "crt" : "lmr";
    char method[64] = "";
    if (m && r->o.posthoc.kind)
        snprintf(method, sizeof method, "%s+%s", m, posthoc_name(r->o.posthoc.kind));
    else if (m)
        snprintf(method, sizeof method, "%s", m);
    uint64_t sd = seed ? strtoull(seed, NULL, 10) : 0;
    int has_seed = seed != NULL;
    st_close(&f);
    *tags = summarize_tags(method[0] ? method : NULL, has_seed ? sd : UINT64_MAX, posthoc_name(r->o.posthoc.kind),
                           r->o.posthoc.kind == POSTHOC_NCM ? -1 : r->o.posthoc.tau, &r->res[0],
                           model_class_counts(&r->sc[0].model), r->C);
    return *tags ? 0 : lmr_fail(r->err, LMR_ENOMEM, "out of memory");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int all_finite(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

/* --predictions is written to F.tmp while the clips are scored, renamed when complete. */
static int open_predictions(Run *r)
{
    snprintf(r->pred_tmp, sizeof r->pred_tmp, "%s.tmp", r->o.predictions);
    r->pred = fopen(r->pred_tmp, "w");
    if (!r->pred)
        return lmr_fail(r->err, -errno, "%s: cannot write: %s", r->pred_tmp, strerror(errno));
    report_prediction_header(r->pred);
    return 0;
}

static int close_predictions(Run *r, int ok)
{
    if (!r->pred)
        return 0;
    int bad = ferror(r->pred);
    bad |= fclose(r->pred) != 0;
    r->pred = NULL;
    if (!ok || bad) {
        remove(r->pred_tmp);
        return ok ? lmr_fail(r->err, LMR_EIO, "%s: write failed", r->pred_tmp) : 0;
    }
    if (rename(r->pred_tmp, r->o.predictions) != 0)
        return lmr_fail(r->err, -errno, "%s: cannot rename to %s: %s", r->pred_tmp, r->o.predictions,
                        strerror(errno));
    return 0;
}

/* Score one batch with every checkpoint. A clip whose features or scores are not finite would
 * rank as class 0 and count as a prediction: it stops the run, named. */
static int score_batch(Run *r, int nb, float *scores)
{
    const ClipRow *rows = r->batch.rows;
    size_t row_len = (size_t)r->views * (size_t)r->D;
    for (int k = 0; k < nb; k++)
        if (!all_finite(r->batch.x + (size_t)k * row_len, row_len))
            return lmr_fail(r->err, LMR_ENAN, "%s: clip %s: its features are not finite (NaN or "
                            "infinite): not scored", r->o.data[0], rows[k].id ? rows[k].id : "?");
    for (int i = 0; i < r->o.n_models; i++) {
        int rc = scorer_run(&r->sc[i], r->batch.x, nb, r->views, scores);
        if (rc < 0)
            return lmr_fail(r->err, rc, "%s", r->sc[i].last_error);
        for (int k = 0; k < nb; k++) {
            const float *s = scores + (size_t)k * r->C;
            const char *id = rows[k].id ? rows[k].id : "?";
            if (!all_finite(s, (size_t)r->C))
                return lmr_fail(r->err, LMR_ENAN, "clip %s: %s gives scores that are not finite "
                                "(features too large?): not scored", id, r->o.models[i]);
            if ((rc = eval_acc_add(&r->acc[i], s, rows[k].labels, rows[k].n_labels)) < 0)
                return lmr_fail(r->err, rc, "clip %s: %s", id, r->acc[i].last_error);
            if (i == 0 && r->pred)
                report_prediction(r->pred, rows[k].id, rows[k].labels, rows[k].n_labels, s, r->C,
                                  r->views, r->class_names);
        }
    }
    return 0;
}

static int run_score(Run *r)
{
    uint64_t n = shardset_count(r->set);
    float *scores = malloc((size_t)BATCH * r->C * sizeof *scores);
    if (!scores)
        return lmr_fail(r->err, LMR_ENOMEM, "out of memory for a batch");
    // Ids are kept for every clip: --predictions writes them and errors name them.
    int rc = clipbatch_init(&r->batch, r->set, r->views, r->D, BATCH, r->o.threads, 1, r->err);
    if (rc == 0 && r->o.predictions)
        rc = open_predictions(r);
    int tty = isatty(STDERR_FILENO);
    double t0 = now_s(), last = t0;
    for (uint64_t start = 0; rc == 0 && start < n; start += BATCH) {
        int nb = n - start < BATCH ? (int)(n - start) : BATCH;
        if ((rc = clipbatch_read(&r->batch, start, nb, r->err)) < 0 || (rc = score_batch(r, nb, scores)) < 0)
            break;
        double t = now_s();
        if (!r->o.quiet && (tty ? t - last > 0.5 : t - last > 10.0)) {
            uint64_t done_n = start + (uint64_t)nb;
            double rate = (double)done_n / (t - t0);
            fprintf(stderr, "lmr-eval: %llu/%llu clips, %.0f clips/s, ETA %.0f s%s",
                    (unsigned long long)done_n, (unsigned long long)n, rate,
                    (double)(n - done_n) / rate, tty ? "\r" : "\n");
            last = t;
        }
    }
    if (!r->o.quiet && tty && now_s() - t0 > 0.5)
        fprintf(stderr, "\n");
    free(scores);
    return rc;
}

static int run_finish(Run *r)
{
    const int64_t *counts = model_class_counts(&r->sc[0].model);
    int videolt = r->o.groups_rule && strcmp(r->o.groups_rule, "videolt") == 0 && !r->o.class_groups &&
                  !r->o.tail_classes;
    int *few = NULL;
    if (videolt && counts) {
        few = malloc((size_t)r->C * sizeof *few);
        if (!few)
            return LMR_ENOMEM;
        for (int c = 0; c < r->C; c++)
            few[c] = counts[c] <= LMR_FEW_MAX ? LMR_GROUP_FEW : LMR_GROUP_NONE;
    }
    for (int i = 0; i < r->o.n_models; i++) {
        int rc = eval_finish(&r->acc[i], r->groups, &r->res[i]);
        if (rc == 0 && few) {
            EvalResult fr;
            rc = eval_finish(&r->acc[i], few, &fr);
            if (rc == 0) {
                r->res[i].group_acc[LMR_GROUP_FEW] = fr.group_acc[LMR_GROUP_FEW];
                r->res[i].group_map[LMR_GROUP_FEW] = fr.group_map[LMR_GROUP_FEW];
                r->res[i].group_present[LMR_GROUP_FEW] = fr.group_present[LMR_GROUP_FEW];
                eval_result_free(&fr);
            }
        }
        if (rc < 0) {
            free(few);
            return lmr_fail(r->err, rc, "out of memory computing the metrics");
        }
    }
    free(few);
    return 0;
}

/* One line under the plot: what data, which group rule. */
static void plot_caption(const Run *r, char *buf, size_t n)
{
    const ShardMeta *m = shardset_meta(r->set);
    char data[160];
    base_name(r->o.data[0], data, sizeof data);
    snprintf(buf, n, "data: %s%s (%s%s%s, %s features); groups: %s", data, r->o.n_data > 1 ? " ..." : "",
             m->dataset[0] ? m->dataset : "dataset unknown", m->split[0] ? " " : "", m->split,
             m->backbone[0] ? m->backbone : "unknown", r->rule);
}

static int write_plot(Run *r, const ReportColumn *cols)
{
    const int64_t *counts = model_class_counts(&r->sc[0].model);
    PlotPanel panels[MAX_MODELS];
    for (int i = 0; i < r->o.n_models; i++)
        panels[i] = (PlotPanel){cols[i].name, r->C, counts, r->res[i].class_acc, r->groups,
                                r->res[i].avg_class_acc, r->class_names, r->few_by_count ? LMR_FEW_MAX : 0};
    char caption[1024];
    plot_caption(r, caption, sizeof caption);
    int rc = plot_write(r->o.plot, panels, r->o.n_models, caption, r->err);
    plot_cleanup();
    return rc;
}

static int run_report(Run *r)
{
    ReportColumn cols[MAX_MODELS];
    for (int i = 0; i < r->o.n_models; i++)
        cols[i] = (ReportColumn){r->stem[i], r->o.models[i], &r->acc[i], r->res[i]};
    Report rep = {r->C, model_class_counts(&r->sc[0].model), r->groups, r->rule, r->rule_text, r->class_names,
                  r->multi_label, (uint64_t)r->o.n_data, cols, r->o.n_models};
    // With --json - the JSON alone goes to stdout, so that it can be piped; the table to stderr.
    FILE *out = r->o.json && strcmp(r->o.json, "-") == 0 ? stderr : stdout;
    report_table(out, &rep);
    int rc = 0;
    if (r->o.json) {
        json_t *tags = NULL;
        if ((rc = run_tags(r, &tags)) == 0)
            rc = report_json(r->o.json, &rep, tags, r->err);
        json_decref(tags);
        if (rc < 0)
            return rc;
    }
    for (int i = 0; i < r->o.n_models && r->o.per_class; i++)
        if ((rc = report_per_class(r->per_class[i], &rep, i, r->err)) < 0)
            return rc;
    for (int i = 0; i < r->o.n_models && r->o.confusion; i++)
        if ((rc = report_confusion(r->confusion[i], &rep, i, r->err)) < 0)
            return rc;
    if (r->o.plot) {
        if ((rc = write_plot(r, cols)) < 0)
            return rc;
        if (!r->o.quiet)
            fprintf(out, "plot: %s\n", r->o.plot);
    }
    return 0;
}

static void run_close(Run *r)
{
    for (int i = 0; i < MAX_MODELS; i++) {
        scorer_close(&r->sc[i]);
        eval_acc_free(&r->acc[i]);
        eval_result_free(&r->res[i]);
        provenance_free(&r->prov[i]);
    }
    clipbatch_free(&r->batch);
    shardset_close(&r->set);
    free(r->groups);
    free(r->o.data);
    free(r->o.tune);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--summarize") == 0)
            return summarize_main(argc, argv);
    Run *r = calloc(1, sizeof *r); // large: keep it off the stack
    if (!r) {
        fprintf(stderr, "lmr-eval: out of memory\n");
        return 1;
    }
    int rc = parse_args(argc, argv, &r->o);
    if (rc) {
        free(r->o.data);
        free(r->o.tune);
        free(r);
        return rc;
    }
    rc = run_check_paths(r);
    if (rc == 0)
        rc = run_open(r);
    if (rc == 0 && r->o.plot && !model_class_counts(&r->sc[0].model))
        rc = lmr_fail(r->err, LMR_EINVAL, "%s: %s has no class counts to plot against", r->o.plot,
                      r->o.models[0]);
    if (rc == 0 && r->o.posthoc.kind)
        rc = run_posthoc(r);
    if (rc == 0 && (rc = run_groups(r)) < 0 && !r->err[0])
        lmr_fail(r->err, rc, "cannot form the class groups");
    if (rc == 0)
        rc = run_score(r);
    if (rc == 0)
        rc = run_finish(r);
    if (rc == 0)
        rc = run_report(r);
    int prc = close_predictions(r, rc == 0);
    if (rc == 0)
        rc = prc;
    if (rc < 0)
        fprintf(stderr, "lmr-eval: %s\n", r->err[0] ? r->err : lmr_strerror(rc));
    run_close(r);
    free(r);
    return rc == LMR_EUSAGE ? 2 : rc < 0 ? 1 : 0;
}
