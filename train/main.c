/* lmr-train: the command line of DESIGN section 8 over train/trainer.h. Parses options (a preset
 * first, then every flag over it), opens the shard sets, checks them, trains, and prints one line
 * per problem as `lmr-train: reason`. Exit 0 ok, 1 failure, 2 bad usage. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset.h"
#include "dist.h"
#include "fileid.h"
#include "trainer.h"

#define MAX_PATHS 256

static void usage(FILE *f)
{
    fprintf(f,
            "usage: lmr-train --stage init|finetune|lmr --train SHARD... --out CKPT [options]\n"
            "  --val SHARD...          validate each epoch; best checkpoint kept as CKPT stem + .best.safetensors\n"
            "  --init CKPT             init checkpoint (stage lmr)\n"
            "  --lmr-off               stage lmr as plain cRT (class-balanced, new classifier, no LMR)\n"
            "  --method M              init: ce (default) la cb focal ldam-drw eql srs cbs mixup\n"
            "                          finetune (--init CKPT): lmr (default; --stage lmr) crt lws lmr-mix-only\n"
            "                          lmr-recon-only; only ce smooths labels unless --smoothing is given\n"
            "  --focal-gamma G         focal (2) and cb (0: plain CB softmax; > 0: CB-focal)\n"
            "  --lws-lr LR             lws: rate of the per-class scales (0.05)\n"
            "  --freeze-rep            stage 2: LayerNorm and pre-logits frozen, the classifier trains\n"
            "  --preset P              epic100-verbs | ssv2-lt | videolt-lt (LMR values; default ssv2-lt)\n"
            "  --epochs E (30) --batch B (64) --lr LR (init 1e-3, lmr 1e-4) --hidden H (512; 0 = none)\n"
            "  --schedule cosine|step|constant (cosine) --milestones E1,E2 --gamma G (0.1) --warmup EPOCHS (0)\n"
            "  --smoothing S (0.2, init) --weight-decay W (0.05) --beta1 (0.9) --beta2 (0.999) --adam-eps (1e-8)\n"
            "  --clip NORM (off) --loss softmax|bce (softmax) --classes C (from the shards)\n"
            "  --lmr-l L --lmr-h H --lmr-d D --lmr-eps E --lmr-p P --lmr-omega N (20) --lmr-k K (8)\n"
            "  --lmr-allow-nonmonotone  accept (n + eps) * d <= 1 (the published epic100-verbs setting)\n"
            "  --allow-other-features  --init trained on features of another backbone or weights: a warning, not an error\n"
            "  --device cpu|cuda --threads N --seed S (0) --resume --save-every STEPS --preload\n"
            "  --prefetch N (4 batches read ahead by a loader thread; 0, and with --preload: none)\n"
            "  --cache-mb N            keep the per-clip means of the first N MiB of clips in memory once\n"
            "                          read (default: a quarter of the available memory; 0 = off)\n"
            "  --log F.jsonl --quiet --help --version\n"
            "  --tf32                  cuda: TF32 tensor-core GEMMs (faster, ~3 decimal digits)\n"
            "  data-parallel: mpirun -np N lmr-train ... (--batch is the global batch, a multiple of N)\n");
}

typedef struct {
    int tty;
    int quiet;
    int silent; /* data-parallel ranks other than 0: rank 0 speaks for all */
} NoteCtx;

static void on_note(void *user, int progress, const char *msg)
{
    NoteCtx *n = user;
    if ((n->quiet && progress) || n->silent)
        return;
    if (progress && n->tty)
        fprintf(stderr, "\rlmr-train: %s\033[K", msg);
    else
        fprintf(stderr, "%slmr-train: %s\n", n->tty ? "\r" : "", msg);
}

/* Numeric options: each value must be finite, inside its range and, for counts, a whole number;
 * the first that is not ends the run with exit 2 naming that flag alone. */
typedef struct {
    const char *name;
    int integral;
    double lo, hi;          /* allowed range */
    int lo_open, hi_open;   /* that end itself excluded */
    const char *rule;       /* the range as a message says it */
} NumOpt;

#define BIG 1e15
static const NumOpt num_opts[] = {
    {"--epochs", 1, 1, 1e6, 0, 0, "an integer >= 1"},
    {"--batch", 1, 1, 1 << 24, 0, 0, "an integer >= 1"},
    {"--lr", 0, 0, HUGE_VAL, 1, 0, "a finite number > 0"},
    {"--hidden", 1, 0, 1 << 20, 0, 0, "an integer >= 0"},
    {"--threads", 1, 1, 4096, 0, 0, "an integer >= 1"},
    {"--classes", 1, 1, 1 << 24, 0, 0, "an integer >= 1"},
    {"--smoothing", 0, 0, 1, 0, 1, "a number in [0, 1)"},
    {"--gamma", 0, 0, BIG, 1, 0, "a finite number > 0"},
    {"--warmup", 0, 0, 1e6, 0, 0, "a finite number of epochs >= 0"},
    {"--weight-decay", 0, 0, BIG, 0, 0, "a finite number >= 0"},
    {"--beta1", 0, 0, 1, 0, 1, "a number in [0, 1)"},
    {"--beta2", 0, 0, 1, 0, 1, "a number in [0, 1)"},
    {"--adam-eps", 0, 0, 1, 1, 0, "a number in (0, 1]"},
    {"--clip", 0, 0, BIG, 0, 0, "a finite number >= 0 (0: off)"},
    {"--lmr-l", 0, 0, 1, 0, 0, "a number in [0, 1]"},
    {"--lmr-h", 0, 0, 1, 0, 0, "a number in [0, 1]"},
    {"--lmr-d", 0, 0, BIG, 1, 0, "a finite number > 0"},
    {"--lmr-eps", 0, 0, BIG, 0, 0, "a finite number >= 0"},
    {"--lmr-p", 0, 0, 1, 0, 0, "a number in [0, 1]"},
    {"--lmr-omega", 1, 0, 1e9, 0, 0, "an integer >= 0"},
    {"--lmr-k", 1, 1, 4096, 0, 0, "an integer in [1, 4096]"},
    {"--save-every", 1, 0, BIG, 0, 0, "an integer >= 0 (0: off)"},
    {"--stop-after", 1, 0, BIG, 0, 0, "an integer >= 0 (0: off)"},
    {"--prefetch", 1, 0, 256, 0, 0, "an integer in [0, 256]"},
    {"--cache-mb", 1, 0, 1 << 30, 0, 0, "an integer >= 0 (0: off)"},
    {"--focal-gamma", 0, 0, BIG, 0, 0, "a finite number >= 0"},
    {"--lws-lr", 0, 0, BIG, 1, 0, "a finite number > 0"},
    {NULL, 0, 0, 0, 0, 0, NULL},
};

/* A value for o: a number (strtod's syntax), finite, in range, whole for counts. 1e-400
 * underflows to 0 and is judged as 0. @return 0, or -1 after saying why. */
static int parse_num(const NumOpt *o, const char *s, double *out)
{
    char *end;
    double x = strtod(s, &end);
    int bad = !*s || *end || !isfinite(x) || x < o->lo || x > o->hi || (o->lo_open && x == o->lo) ||
              (o->hi_open && x == o->hi) || (o->integral && x != floor(x));
    if (bad) {
        fprintf(stderr, "lmr-train: %s must be %s, got '%s'\n", o->name, o->rule, s);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_milestones(LrSchedule *s, const char *arg)
{
    const char *p = arg;
    s->n_milestones = 0;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 1000000 || errno || s->n_milestones == OPTIM_MAX_MILESTONES)
            return -1;
        s->milestones[s->n_milestones++] = (int)v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return 0;
}

/* Options that say where to write or steer a run but not its result: left out of the command a
 * checkpoint records, so an interrupted and resumed run, or the same run written elsewhere,
 * records what an uninterrupted one does. */
static int run_control(const char *a, int *takes_value)
{
    static const char *const flag[] = {"--resume", "--quiet", "--preload", NULL};
    static const char *const valued[] = {"--out", "--stop-after", "--save-every", "--log", "--prefetch", "--cache-mb", NULL};
    for (int i = 0; flag[i]; i++)
        if (!strcmp(a, flag[i]))
            return *takes_value = 0, 1;
    for (int i = 0; valued[i]; i++)
        if (!strcmp(a, valued[i]))
            return *takes_value = 1, 1;
    return 0;
}

/* The command line as a shell would take it back (words with other than [A-Za-z0-9_./=,:+-]
 * single-quoted), run-control options left out. Owned; NULL when out of memory. */
static char *command_line(int argc, char **argv)
{
    size_t cap = 16;
    for (int i = 0; i < argc; i++)
        cap += 4 * strlen(argv[i]) + 3;
    char *s = malloc(cap), *p = s;
    if (!s)
        return NULL;
    const char *name = strrchr(argv[0], '/');
    p += sprintf(p, "%s", name ? name + 1 : argv[0]);
    for (int i = 1; i < argc; i++) {
        int val = 0;
        if (run_control(argv[i], &val)) {
            i += val;
            continue;
        }
        const char *a = argv[i];
        int plain = *a != 0;
        for (const char *c = a; *c; c++)
            plain &= (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                     strchr("_./=,:+-", *c) != NULL;
        *p++ = ' ';
        if (plain) {
            p += sprintf(p, "%s", a);
            continue;
        }
        *p++ = '\'';
        for (const char *c = a; *c; c++)
            p += *c == '\'' ? sprintf(p, "'\\''") : sprintf(p, "%c", *c);
        *p++ = '\'';
        *p = 0;
    }
    return s;
}

int main(int argc, char **argv)
{
    TrainOptions o;
    train_options_default(&o);
    const char *train[MAX_PATHS], *val[MAX_PATHS];
    int n_train = 0, n_val = 0, classes = 0, stage_set = 0, preload = 0;
    long long cache_mb = -1; /* -1: the default, a quarter of MemAvailable */
    NoteCtx nc = {.tty = isatty(2), .quiet = 0};
    o.note = on_note;
    o.note_user = &nc;

    // the preset first, so that single flags override it wherever they stand
    for (int i = 1; i < argc - 1; i++)
        if (strcmp(argv[i], "--preset") == 0) {
            if (lmr_preset(&o.lmr, argv[i + 1]) < 0) {
                fprintf(stderr, "lmr-train: --preset: unknown '%s' (epic100-verbs, ssv2-lt, videolt-lt)\n",
                        argv[i + 1]);
                return 2;
            }
            o.preset = argv[i + 1];
        }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        double x = 0;
#define NEEDV()                                                           \
    do {                                                                  \
        if (!v) {                                                         \
            fprintf(stderr, "lmr-train: %s needs a value\n", a);          \
            return 2;                                                     \
        }                                                                 \
        i++;                                                              \
    } while (0)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--version")) {
            printf("lmr-train %s\n", LMR_VERSION);
            return 0;
        } else if (!strcmp(a, "--train") || !strcmp(a, "--val")) {
            int *n = a[2] == 't' ? &n_train : &n_val;
            const char **list = a[2] == 't' ? train : val;
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
                if (*n == MAX_PATHS) {
                    fprintf(stderr, "lmr-train: %s: more than %d shards\n", a, MAX_PATHS);
                    return 2;
                }
                list[(*n)++] = argv[++i];
            }
        } else if (!strcmp(a, "--stage")) {
            NEEDV();
            if (strcmp(v, "init") && strcmp(v, "lmr") && strcmp(v, "finetune")) {
                fprintf(stderr, "lmr-train: --stage: '%s' is not init, finetune or lmr\n", v);
                return 2;
            }
            o.stage = strcmp(v, "init") ? STAGE_LMR : STAGE_INIT;
            stage_set = 1;
        } else if (!strcmp(a, "--out")) {
            NEEDV();
            o.out = v;
        } else if (!strcmp(a, "--init")) {
            NEEDV();
            o.init = v;
        } else if (!strcmp(a, "--log")) {
            NEEDV();
            o.log_path = v;
        } else if (!strcmp(a, "--preset")) {
            NEEDV();
        } else if (!strcmp(a, "--method")) {
            NEEDV();
            o.method = v;
        } else if (!strcmp(a, "--freeze-rep")) {
            o.freeze_rep = 1;
        } else if (!strcmp(a, "--lmr-off")) {
            o.lmr_off = 1;
        } else if (!strcmp(a, "--allow-other-features")) {
            o.allow_other_features = 1;
        } else if (!strcmp(a, "--lmr-allow-nonmonotone")) {
            o.lmr.allow_nonmonotone = 1;
        } else if (!strcmp(a, "--resume")) {
            o.resume = 1;
        } else if (!strcmp(a, "--quiet")) {
            nc.quiet = 1;
            o.quiet = 1;
        } else if (!strcmp(a, "--preload")) {
            preload = 1;
        } else if (!strcmp(a, "--tf32")) {
            o.tf32 = 1;
        } else if (!strcmp(a, "--device")) {
            NEEDV();
            if (strcmp(v, "cpu") && strcmp(v, "cuda")) {
                fprintf(stderr, "lmr-train: --device: '%s' is not cpu or cuda\n", v);
                return 2;
            }
            o.device = strcmp(v, "cpu") ? BACKEND_CUDA : BACKEND_CPU;
        } else if (!strcmp(a, "--schedule")) {
            NEEDV();
            if (!strcmp(v, "cosine"))
                o.sched.kind = SCHED_COSINE;
            else if (!strcmp(v, "step"))
                o.sched.kind = SCHED_STEP;
            else if (!strcmp(v, "constant"))
                o.sched.kind = SCHED_CONSTANT;
            else {
                fprintf(stderr, "lmr-train: --schedule: '%s' is not cosine, step or constant\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--milestones")) {
            NEEDV();
            if (parse_milestones(&o.sched, v) < 0) {
                fprintf(stderr, "lmr-train: --milestones: '%s' is not a list of up to %d epochs\n", v,
                        OPTIM_MAX_MILESTONES);
                return 2;
            }
        } else if (!strcmp(a, "--loss")) {
            NEEDV();
            if (strcmp(v, "softmax") && strcmp(v, "bce")) {
                fprintf(stderr, "lmr-train: --loss: '%s' is not softmax or bce\n", v);
                return 2;
            }
            o.loss_bce = !strcmp(v, "bce");
        } else if (!strcmp(a, "--seed")) {
            NEEDV();
            char *end;
            errno = 0;
            o.seed = strtoull(v, &end, 10);
            if (*v < '0' || *v > '9' || *end || errno) { // strtoull takes "-1" as 2^64 - 1
                fprintf(stderr, "lmr-train: --seed must be an integer in [0, 2^64), got '%s'\n", v);
                return 2;
            }
        } else {
            // numeric options
            int k = 0;
            while (num_opts[k].name && strcmp(num_opts[k].name, a))
                k++;
            if (!num_opts[k].name) {
                fprintf(stderr, "lmr-train: unknown option '%s' (see --help)\n", a);
                return 2;
            }
            NEEDV();
            if (parse_num(&num_opts[k], v, &x) < 0)
                return 2;
            switch (k) {
            case 0: o.epochs = (int)x; break;
            case 1: o.batch = (int)x; break;
            case 2: o.lr = x; break;
            case 3: o.hidden = (int)x; break;
            case 4: o.threads = (int)x; break;
            case 5: classes = (int)x; break;
            case 6: o.smoothing = x; o.smoothing_set = 1; break;
            case 7: o.sched.gamma = x; break;
            case 8: o.warmup_epochs = x; break;
            case 9: o.adam.weight_decay = x; break;
            case 10: o.adam.beta1 = x; break;
            case 11: o.adam.beta2 = x; break;
            case 12: o.adam.eps = x; break;
            case 13: o.adam.clip = x; break;
            case 14: o.lmr.l = x; break;
            case 15: o.lmr.h = x; break;
            case 16: o.lmr.d = x; break;
            case 17: o.lmr.eps = x; break;
            case 18: o.lmr.p = x; break;
            case 19: o.lmr.omega = (int)x; break;
            case 20: o.lmr.K = (int)x; break;
            case 21: o.save_every = (long)x; break;
            case 22: o.stop_after = (long)x; break;
            case 23: o.prefetch = (int)x; break;
            case 24: cache_mb = (long long)x; break;
            case 25: o.mp.focal_gamma = x; break;
            case 26: o.mp.lws_lr = x; break;
            }
        }
#undef NEEDV
    }
    if (!stage_set || n_train == 0 || !o.out) {
        fprintf(stderr, "lmr-train: --stage, --train and --out are required\n");
        usage(stderr);
        return 2;
    }
    if (o.stage == STAGE_LMR && !o.init) {
        fprintf(stderr, "lmr-train: --stage lmr needs --init CKPT (the init stage's checkpoint)\n");
        return 2;
    }
    if (o.stage == STAGE_INIT && o.init) {
        fprintf(stderr, "lmr-train: --init is for --stage lmr; the init stage starts from random weights\n");
        return 2;
    }
    // nothing this run writes may be one of its inputs (compared by file identity, .tmp siblings too)
    char best[1024];
    train_best_path(best, sizeof best, o.out);
    const char *ins[2 * MAX_PATHS + 1], *outs[3] = {o.out, o.log_path, n_val ? best : NULL};
    int n_in = 0;
    for (int i = 0; i < n_train; i++)
        ins[n_in++] = train[i];
    for (int i = 0; i < n_val; i++)
        ins[n_in++] = val[i];
    if (o.init)
        ins[n_in++] = o.init;
    char uerr[LMR_ERRLEN];
    if (lmr_check_outputs(ins, n_in, outs, 3, uerr) < 0) {
        fprintf(stderr, "lmr-train: %s\n", uerr);
        return 2;
    }
    {
        char merr[LMR_ERRLEN];
        if (!train_method(&o, merr)) { // a method of the other stage or a flag it does not take
            fprintf(stderr, "lmr-train: %s\n", merr);
            return 2;
        }
    }
    if (o.device == BACKEND_CUDA && !backend_available(BACKEND_CUDA)) {
#ifdef LMR_HAVE_CUDA
        fprintf(stderr, "lmr-train: --device cuda: no CUDA device\n");
#else
        fprintf(stderr, "lmr-train: --device cuda: not built with CUDA\n");
#endif
        return 1;
    }
    if (nc.quiet)
        o.progress_every = 0;
    char *cmd = command_line(argc, argv);
    o.command = cmd;

    char err[LMR_ERRLEN] = "";
    // data-parallel: started by an MPI launcher (Open MPI, MPICH/Hydra, Slurm PMI/PMIx)?
    int launched = getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
    Dist dist;
    int rc = dist_init(&dist, launched, o.device == BACKEND_CUDA, &argc, &argv, err);
    if (rc < 0) {
        fprintf(stderr, "lmr-train: %s\n", err);
        dist_free(&dist);
        return 1;
    }
    o.dist = &dist;
    nc.silent = dist.rank > 0;
    Dataset tr, va;
    memset(&tr, 0, sizeof tr);
    memset(&va, 0, sizeof va);
    TrainResult res;
    if ((rc = dataset_open(&tr, train, n_train, classes, err)) < 0) {
        fprintf(stderr, "lmr-train: --train: %s\n", err);
        goto out;
    }
    if (n_val && (rc = dataset_open(&va, val, n_val, tr.C, err)) < 0) {
        fprintf(stderr, "lmr-train: --val: %s\n", err);
        goto out;
    }
    if (preload && ((rc = dataset_preload(&tr, err)) < 0 || (n_val && (rc = dataset_preload(&va, err)) < 0))) {
        fprintf(stderr, "lmr-train: %s\n", err);
        goto out;
    }
    if (!preload) {
        uint64_t mb = cache_mb >= 0 ? (uint64_t)cache_mb : dataset_cache_default_mb();
        if ((rc = dataset_cache(&tr, mb, err)) < 0) {
            fprintf(stderr, "lmr-train: %s\n", err);
            goto out;
        }
        /* the validation set gets what the training set leaves */
        uint64_t used = (tr.cache_n * ((uint64_t)tr.views * (uint64_t)tr.D * sizeof(float) + 1) + (1u << 20) - 1) >> 20;
        if (n_val && mb > used && (rc = dataset_cache(&va, mb - used, err)) < 0) {
            fprintf(stderr, "lmr-train: %s\n", err);
            goto out;
        }
        if (!nc.quiet && !nc.silent && shardset_walked(tr.set))
            fprintf(stderr, "lmr-train: note: %d training shard%s without a current index: opened by reading every "
                    "record (lmr-pack --reindex SHARD writes it)\n", shardset_walked(tr.set),
                    shardset_walked(tr.set) == 1 ? "" : "s");
    }
    rc = train_run(&o, &tr, n_val ? &va : NULL, &res, err);
    if (nc.tty && !nc.quiet && !nc.silent)
        fprintf(stderr, "\n");
    if (rc == LMR_DONE) {
        if (!nc.silent)
            fprintf(stderr, "lmr-train: %s is already complete\n", o.out);
        rc = 0;
    } else if (rc < 0) {
        if (dist.size > 1)
            fprintf(stderr, "lmr-train: rank %d: %s\n", dist.rank, err);
        else
            fprintf(stderr, "lmr-train: %s\n", err);
    } else if (!nc.quiet && !nc.silent) {
        fprintf(stderr, "lmr-train: %s: %ld steps, final loss %.4f, %.0f samples/s%s\n", o.out, res.steps,
                res.final_loss, res.samples_per_s, res.best_metric >= 0 ? "" : "");
        if (res.best_metric >= 0)
            fprintf(stderr, "lmr-train: best val avg class acc %.4f\n", res.best_metric);
    }
out:
    dataset_close(&tr);
    dataset_close(&va);
    if (rc < 0)
        dist_abort(&dist, 1); // the other ranks would wait in their next collective
    dist_free(&dist);
    free(cmd);
    return rc < 0 ? 1 : 0;
}
