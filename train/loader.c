/* Prefetching loader: a producer thread fills a ring of batch slots in (epoch, step) order; the
 * consumer takes them in the same order. All memory is allocated at open. */
#include "loader.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    Batch b;
    int rc;
    char err[LMR_ERRLEN];
} Slot;

struct Loader {
    Dataset *d;
    Sampler *s;
    DatasetReader reader;
    Slot *slots;
    int depth;
    long next_epoch, next_step;  /* producer position */
    long n_epochs, steps_per_epoch;
    long produced, consumed;     /* batches */
    long total;                  /* batches to produce */
    int stop, thread_started;
    int inline_mode;             /* depth 0: batches made in loader_next, no thread */
    LoaderRunFn run;             /* inline, features in memory: how the row copies are cut */
    void *run_user;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static int slot_alloc(Slot *s, int B, int D, int max_labels)
{
    Batch *b = &s->b;
    b->B = B;
    b->D = D;
    b->x = malloc((size_t)B * D * sizeof *b->x);
    b->clips = malloc((size_t)B * sizeof *b->clips);
    b->views = malloc((size_t)B * sizeof *b->views);
    b->label1 = malloc((size_t)B * sizeof *b->label1);
    b->lab = malloc((size_t)B * (size_t)max_labels * sizeof *b->lab);
    b->lab_off = malloc((size_t)(B + 1) * sizeof *b->lab_off);
    return b->x && b->clips && b->views && b->label1 && b->lab && b->lab_off ? 0 : LMR_ENOMEM;
}

static void slot_free(Slot *s)
{
    Batch *b = &s->b;
    free(b->x);
    free(b->clips);
    free(b->views);
    free(b->label1);
    free(b->lab);
    free(b->lab_off);
}

/* Rows [lo, hi) of an in-memory batch: plain copies, safe on any thread. */
typedef struct {
    const Loader *l;
    Batch *b;
} Gather;

static void gather_rows(void *arg, size_t lo, size_t hi)
{
    const Gather *g = arg;
    const Sampler *s = g->l->s;
    char err[LMR_ERRLEN];
    for (size_t r = lo; r < hi; r++) {
        size_t i = (size_t)s->row0 + r;
        dataset_read(g->l->d, NULL, g->b->clips[i], g->b->views[i], g->b->x + r * g->b->D, err);
    }
}

static void fill(Loader *l, Slot *s, long epoch, long step)
{
    Batch *b = &s->b;
    b->epoch = epoch;
    b->step = step;
    sampler_batch(l->s, epoch, step, b->clips, b->views);
    s->rc = 0;
    int o = 0;
    for (int i = 0; i < b->B; i++) {
        const int32_t *lab;
        int k = dataset_n_labels(l->d, b->clips[i], &lab);
        b->lab_off[i] = o;
        memcpy(b->lab + o, lab, (size_t)k * sizeof *lab);
        o += k;
        b->label1[i] = lab[0];
        // labels of the whole batch, features of this rank's rows only (data-parallel, dist.h)
        int r = i - l->s->row0;
        if (!l->run && !s->rc && r >= 0 && r < l->s->rows)
            s->rc = dataset_read(l->d, &l->reader, b->clips[i], b->views[i], b->x + (size_t)r * b->D, s->err);
    }
    b->lab_off[b->B] = o;
    if (l->run) { // features in memory: reads cannot fail
        Gather g = {l, b};
        l->run(l->run_user, (size_t)l->s->rows, (size_t)l->s->rows * b->D, gather_rows, &g);
    }
}

/* The batch at (next_epoch, next_step) is made: move on to the next one. Under mu with a thread. */
static void advance(Loader *l)
{
    if (++l->next_step == l->steps_per_epoch) {
        l->next_step = 0;
        l->next_epoch++;
    }
    l->produced++;
}

static void *producer(void *arg)
{
    Loader *l = arg;
    pthread_mutex_lock(&l->mu);
    while (!l->stop && l->produced < l->total) {
        if (l->produced - l->consumed >= l->depth) {
            pthread_cond_wait(&l->cv, &l->mu);
            continue;
        }
        Slot *s = &l->slots[l->produced % l->depth];
        long epoch = l->next_epoch, step = l->next_step;
        pthread_mutex_unlock(&l->mu);
        fill(l, s, epoch, step); // the slot is ours until `produced` moves past it
        pthread_mutex_lock(&l->mu);
        advance(l);
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int loader_open(Loader **out, Dataset *d, Sampler *s, long epoch0, long step0, long n_epochs, int depth,
                char *err)
{
    *out = NULL;
    Loader *l = calloc(1, sizeof *l);
    if (!l)
        return lmr_fail(err, LMR_ENOMEM, "out of memory for the loader");
    l->d = d;
    l->s = s;
    l->inline_mode = depth == 0;
    l->depth = depth > 0 ? depth : 1;
    l->steps_per_epoch = sampler_steps_per_epoch(s);
    l->next_epoch = epoch0;
    l->next_step = step0;
    l->n_epochs = n_epochs;
    l->total = (n_epochs - epoch0) * l->steps_per_epoch - step0;
    if (l->total < 0)
        l->total = 0;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    int rc = dataset_reader_init(&l->reader);
    l->slots = calloc((size_t)l->depth, sizeof *l->slots);
    if (rc < 0 || !l->slots) {
        loader_close(&l);
        return lmr_fail(err, LMR_ENOMEM, "out of memory for the loader");
    }
    for (int i = 0; i < l->depth; i++)
        if (slot_alloc(&l->slots[i], s->B, d->D, d->max_labels > 0 ? d->max_labels : 1) < 0) {
            loader_close(&l);
            return lmr_fail(err, LMR_ENOMEM, "out of memory for %d batches in flight", depth);
        }
    if (l->inline_mode) {
        *out = l;
        return 0;
    }
    if ((rc = pthread_create(&l->thread, NULL, producer, l)) != 0) {
        loader_close(&l);
        return lmr_fail(err, -rc, "loader thread: %s", strerror(rc));
    }
    l->thread_started = 1;
    *out = l;
    return 0;
}

void loader_set_runner(Loader *l, LoaderRunFn run, void *user)
{
    if (l->inline_mode && l->d->mem) { // a loader thread, or reads from shards: its own way
        l->run = run;
        l->run_user = user;
    }
}

int loader_next(Loader *l, Batch **b, char *err)
{
    *b = NULL;
    pthread_mutex_lock(&l->mu);
    if (l->consumed >= l->total) {
        pthread_mutex_unlock(&l->mu);
        return LMR_DONE;
    }
    if (l->inline_mode) { // no thread: the one slot is made here
        fill(l, &l->slots[0], l->next_epoch, l->next_step);
        advance(l);
    }
    while (l->produced <= l->consumed)
        pthread_cond_wait(&l->cv, &l->mu);
    Slot *s = &l->slots[l->consumed % l->depth];
    pthread_mutex_unlock(&l->mu);
    if (s->rc < 0)
        return lmr_fail(err, s->rc, "%s", s->err);
    *b = &s->b;
    return 0;
}

void loader_release(Loader *l, Batch *b)
{
    (void)b;
    pthread_mutex_lock(&l->mu);
    l->consumed++;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

void loader_close(Loader **pl)
{
    Loader *l = pl ? *pl : NULL;
    if (!l)
        return;
    if (l->thread_started) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
    }
    if (l->slots)
        for (int i = 0; i < l->depth; i++)
            slot_free(&l->slots[i]);
    free(l->slots);
    dataset_reader_free(&l->reader);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
    *pl = NULL;
}
