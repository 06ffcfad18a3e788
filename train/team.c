/* The team: one job slot written by the caller, published by bumping an epoch counter; members
 * spin on the counter for a while, then sleep on a condition variable. Sleeping and waking pair
 * up through seq_cst atomics (a sleeper count and a "caller waiting" flag checked after each
 * store), so no wake-up is lost and no lock is taken while both sides are busy. */
#include "team.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "lmr_error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* Spins before sleeping: a few hundred microseconds, longer than the gap between two ops of a
 * step and short enough not to hold a core through a data wait. Every YIELD_EVERY spins the
 * thread yields, so that on a busy machine a thread that has work (the loader, a member that lost
 * its core, another process) runs meanwhile: three times the throughput beside a CPU hog. */
#define SPIN 16384
#define YIELD_EVERY 64

static void spin_pause(int i)
{
    if (i % YIELD_EVERY == 0)
        sched_yield();
    else
        CPU_RELAX();
}

typedef struct {
    pthread_t thread;
    struct Team *team;
    int index;
    atomic_ulong done; /* last epoch finished */
} Member;

struct Team {
    int parts;
    Member *m; /* parts - 1 */
    atomic_ulong epoch;
    atomic_int quit, sleepers, caller_waiting;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    /* the current job, written before epoch is bumped */
    TeamFn fn;
    void *arg;
    size_t n, align;
};

int team_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

size_t team_cut(size_t n, size_t align, int parts, int k)
{
    if (k <= 0)
        return 0;
    if (k >= parts)
        return n;
    size_t a = align ? align : 1;
    size_t c = (n / (size_t)parts * (size_t)k + n % (size_t)parts * (size_t)k / (size_t)parts + a - 1) / a * a;
    return c < n ? c : n;
}

static unsigned long wait_epoch(Team *t, unsigned long seen)
{
    unsigned long e;
    for (int i = 1; i <= SPIN; i++) {
        if ((e = atomic_load(&t->epoch)) != seen || atomic_load(&t->quit))
            return e;
        spin_pause(i);
    }
    pthread_mutex_lock(&t->mu);
    atomic_fetch_add(&t->sleepers, 1);
    while ((e = atomic_load(&t->epoch)) == seen && !atomic_load(&t->quit))
        pthread_cond_wait(&t->go, &t->mu);
    atomic_fetch_sub(&t->sleepers, 1);
    pthread_mutex_unlock(&t->mu);
    return e;
}

static void *member_main(void *p)
{
    Member *me = p;
    Team *t = me->team;
    unsigned long seen = 0;
    for (;;) {
        unsigned long e = wait_epoch(t, seen);
        if (atomic_load(&t->quit))
            break;
        seen = e;
        size_t lo = team_cut(t->n, t->align, t->parts, me->index);
        size_t hi = team_cut(t->n, t->align, t->parts, me->index + 1);
        if (lo < hi)
            t->fn(t->arg, lo, hi);
        atomic_store(&me->done, e);
        if (atomic_load(&t->caller_waiting)) {
            pthread_mutex_lock(&t->mu);
            pthread_cond_broadcast(&t->done);
            pthread_mutex_unlock(&t->mu);
        }
    }
    return NULL;
}

static int all_done(Team *t, unsigned long e)
{
    for (int k = 0; k < t->parts - 1; k++)
        if (atomic_load(&t->m[k].done) != e)
            return 0;
    return 1;
}

void team_run(Team *t, size_t n, size_t align, TeamFn fn, void *arg)
{
    t->fn = fn;
    t->arg = arg;
    t->n = n;
    t->align = align;
    unsigned long e = atomic_load(&t->epoch) + 1;
    atomic_store(&t->epoch, e);
    if (atomic_load(&t->sleepers)) {
        pthread_mutex_lock(&t->mu);
        pthread_cond_broadcast(&t->go);
        pthread_mutex_unlock(&t->mu);
    }
    size_t hi = team_cut(n, align, t->parts, 1);
    if (hi > 0)
        fn(arg, 0, hi);
    for (int i = 1; i <= SPIN && !all_done(t, e); i++)
        spin_pause(i);
    if (all_done(t, e))
        return;
    pthread_mutex_lock(&t->mu);
    atomic_store(&t->caller_waiting, 1);
    while (!all_done(t, e))
        pthread_cond_wait(&t->done, &t->mu);
    atomic_store(&t->caller_waiting, 0);
    pthread_mutex_unlock(&t->mu);
}

int team_parts(const Team *t)
{
    return t ? t->parts : 1;
}

static void stop_members(Team *t, int started)
{
    atomic_store(&t->quit, 1);
    pthread_mutex_lock(&t->mu);
    pthread_cond_broadcast(&t->go);
    pthread_mutex_unlock(&t->mu);
    for (int k = 0; k < started; k++)
        pthread_join(t->m[k].thread, NULL);
}

int team_init(Team **tp, int parts)
{
    *tp = NULL;
    if (parts < 2)
        return LMR_EINVAL;
    Team *t = calloc(1, sizeof *t);
    if (!t || !(t->m = calloc((size_t)parts - 1, sizeof *t->m))) {
        free(t);
        return LMR_ENOMEM;
    }
    t->parts = parts;
    if (pthread_mutex_init(&t->mu, NULL) || pthread_cond_init(&t->go, NULL) || pthread_cond_init(&t->done, NULL)) {
        free(t->m);
        free(t);
        return LMR_ENOMEM;
    }
    for (int k = 0; k < parts - 1; k++) {
        t->m[k].team = t;
        t->m[k].index = k + 1;
        if (pthread_create(&t->m[k].thread, NULL, member_main, &t->m[k])) {
            t->parts = k + 1; // only the started ones are joined
            stop_members(t, k);
            team_free(&t);
            return LMR_ENOMEM;
        }
    }
    *tp = t;
    return 0;
}

void team_free(Team **tp)
{
    Team *t = tp ? *tp : NULL;
    if (!t)
        return;
    if (!atomic_load(&t->quit))
        stop_members(t, t->parts - 1);
    pthread_cond_destroy(&t->done);
    pthread_cond_destroy(&t->go);
    pthread_mutex_destroy(&t->mu);
    free(t->m);
    free(t);
    *tp = NULL;
}
