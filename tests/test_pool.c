/*
 * test_pool.c — the model runtime's thread pool (runtime/model/pool.c):
 * every thread runs once per kgr_pool_run with the right (ith, nth); a
 * barrier lets no thread through before all have arrived (each phase reads
 * what every thread wrote in the phase before, and threads work unevenly, so
 * an early release changes the result); barriers that must sleep on the
 * futex (one thread late by milliseconds) still hold; 100k barriers in a row
 * keep their count; idle workers use no CPU; free joins idle workers.
 */
#include "kt.h"
#include "rt.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAXT 8

/* more threads than cores: every barrier waits for the scheduler, so the
 * long loops run only up to the number of cores */
static int ncpu(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

/* ── ith / nth ── */

typedef struct {
    _Atomic int seen[MAXT + 1];
    _Atomic int bad_nth;
    _Atomic int bad_ith;
    int want_nth;
} who_arg;

static void who_fn(void *va, int ith, int nth)
{
    who_arg *a = va;
    if (nth != a->want_nth) atomic_fetch_add(&a->bad_nth, 1);
    if (ith < 0 || ith >= nth || ith > MAXT) atomic_fetch_add(&a->bad_ith, 1);
    else atomic_fetch_add(&a->seen[ith], 1);
}

KT_TEST(pool_ith_nth)
{
    char err[256];
    kgr_pool *p;
    KT_CHECK(kgr_pool_init(&p, 0, err, sizeof err) == -1 && p == NULL && strstr(err, "thread"));
    KT_CHECK(kgr_pool_init(&p, -3, err, sizeof err) == -1 && p == NULL);
    kgr_pool_free(NULL);
    for (int n = 1; n <= MAXT; n++) {
        KT_REQUIRE(kgr_pool_init(&p, n, err, sizeof err) == 0);
        KT_CHECK(kgr_pool_threads(p) == n);
        who_arg a;
        memset(&a, 0, sizeof a);
        a.want_nth = n;
        const int runs = 200;
        for (int r = 0; r < runs; r++) kgr_pool_run(p, who_fn, &a);
        KT_CHECKF(a.bad_nth == 0 && a.bad_ith == 0, "n=%d: %d wrong nth, %d wrong ith", n, a.bad_nth, a.bad_ith);
        for (int i = 0; i < n; i++) KT_CHECKF(a.seen[i] == runs, "n=%d: thread %d ran %d times, not %d", n, i, a.seen[i], runs);
        KT_CHECKF(a.seen[n] == 0, "n=%d: ith %d ran", n, n);
        kgr_pool_free(p);
    }
}

/* ── phases that depend on every thread's previous phase ──
 * x has 4 slots per thread. Phase k: thread i rewrites its slots from the
 * whole of x (read into a private buffer, then a barrier, then written), so
 * the final x is a function of every earlier phase. A thread released early
 * reads a mix of old and new values. Threads burn uneven, changing amounts of
 * time before each barrier so that such a mix really happens. */

#define SLOTS 4
typedef struct {
    kgr_pool *p;
    int phases;
    uint64_t x[MAXT * SLOTS];
    _Atomic uint64_t sink;
} phase_arg;

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    return h;
}

static void burn(uint64_t amount)
{
    volatile uint64_t v = 0;
    for (uint64_t i = 0; i < amount; i++) v += i;
}

/* new slot value of thread i, slot j, phase k, from the whole old x */
static uint64_t phase_value(const uint64_t *x, int nslots, int i, int j, int k)
{
    uint64_t h = (uint64_t)k * 1000003u + (uint64_t)(i * SLOTS + j);
    for (int s = 0; s < nslots; s++) h = mix(h + x[s] * (uint64_t)(2 * s + 1));
    return h;
}

static void phase_fn(void *va, int ith, int nth)
{
    phase_arg *a = va;
    uint64_t mine[SLOTS];
    for (int k = 0; k < a->phases; k++) {
        /* uneven work: which thread is slow changes from phase to phase */
        burn(mix((uint64_t)(k * 31 + ith)) % 4 == 0 ? 2000 : 20);
        for (int j = 0; j < SLOTS; j++) mine[j] = phase_value(a->x, nth * SLOTS, ith, j, k);
        kgr_barrier(a->p, ith); /* everyone has read the old x */
        for (int j = 0; j < SLOTS; j++) a->x[ith * SLOTS + j] = mine[j];
        kgr_barrier(a->p, ith); /* everyone has written the new x */
    }
}

static void phase_reference(uint64_t *x, int n, int phases)
{
    uint64_t nx[MAXT * SLOTS];
    for (int k = 0; k < phases; k++) {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < SLOTS; j++) nx[i * SLOTS + j] = phase_value(x, n * SLOTS, i, j, k);
        memcpy(x, nx, sizeof(uint64_t) * (size_t)n * SLOTS);
    }
}

KT_TEST(pool_barrier_phases)
{
    char err[256];
    for (int n = 1; n <= MAXT; n++) {
        kgr_pool *p;
        KT_REQUIRE(kgr_pool_init(&p, n, err, sizeof err) == 0);
        static phase_arg a;
        uint64_t ref[MAXT * SLOTS];
        memset(&a, 0, sizeof a);
        a.p = p;
        bool fits = n <= 2 || n <= ncpu();
        a.phases = fits ? 300 : 40;
        for (int s = 0; s < n * SLOTS; s++) ref[s] = a.x[s] = (uint64_t)s * 7 + 1;
        int bad = 0;
        const int runs = fits ? 20 : 3;
        for (int r = 0; r < runs; r++) {
            kgr_pool_run(p, phase_fn, &a);
            phase_reference(ref, n, a.phases);
            if (memcmp(ref, a.x, sizeof(uint64_t) * (size_t)n * SLOTS)) bad++;
            memcpy(a.x, ref, sizeof ref); /* resynchronize */
        }
        KT_CHECKF(bad == 0, "%d threads: %d of %d runs differ from the sequential reference", n, bad, runs);
        kgr_pool_free(p);
    }
}

/* ── a barrier count that cannot be overtaken ──
 * Before barrier k every thread increments c; after it, c must be at least
 * nth*(k+1) (all arrived) and below nth*(k+2) (nobody can be past the next). */
typedef struct {
    kgr_pool *p;
    int iters, late_every;
    _Atomic long c;
    _Atomic long bad;
} count_arg;

static void count_fn(void *va, int ith, int nth)
{
    count_arg *a = va;
    for (long k = 0; k < a->iters; k++) {
        if (a->late_every && k % a->late_every == 0 && ith == (int)(k / a->late_every) % nth) usleep(3000);
        atomic_fetch_add_explicit(&a->c, 1, memory_order_relaxed);
        kgr_barrier(a->p, ith);
        long c = atomic_load_explicit(&a->c, memory_order_relaxed);
        if (c < nth * (k + 1) || c >= nth * (k + 2)) atomic_fetch_add(&a->bad, 1);
    }
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

KT_TEST(pool_barrier_stress)
{
    char err[256];
    int ns[] = {2, 3, 4, 8};
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        int n = ns[t];
        kgr_pool *p;
        KT_REQUIRE(kgr_pool_init(&p, n, err, sizeof err) == 0);
        static count_arg a;
        memset(&a, 0, sizeof a);
        a.p = p;
        a.iters = n == 2 ? 100000 : n <= ncpu() ? 20000 : 500;
        double t0 = now_s();
        kgr_pool_run(p, count_fn, &a);
        double dt = now_s() - t0;
        KT_CHECKF(a.bad == 0, "%d threads: %ld of %d barriers let a thread through early", n, (long)a.bad, a.iters);
        KT_CHECKF(a.c == (long)n * a.iters, "%d threads: count %ld, want %ld", n, (long)a.c, (long)n * a.iters);
        if (n == 2) printf("    2 threads: %d barriers in %.1f ms (%.0f ns each)\n", a.iters, dt * 1e3, dt / a.iters * 1e9);
        kgr_pool_free(p);
    }
}

/* A thread late by 3 ms: the others give up spinning and sleep on the futex,
 * and must be woken, in barriers and between runs. */
KT_TEST(pool_barrier_sleep)
{
    char err[256];
    for (int n = 2; n <= 4; n++) {
        kgr_pool *p;
        KT_REQUIRE(kgr_pool_init(&p, n, err, sizeof err) == 0);
        static count_arg a;
        memset(&a, 0, sizeof a);
        a.p = p;
        a.iters = 2 * n;
        a.late_every = 2;
        for (int r = 0; r < 2; r++) {
            a.c = 0;
            kgr_pool_run(p, count_fn, &a);
            KT_CHECKF(a.bad == 0 && a.c == (long)n * a.iters, "%d threads: bad %ld, count %ld", n, (long)a.bad, (long)a.c);
            usleep(5000); /* the workers go to sleep between runs */
        }
        kgr_pool_free(p);
    }
}

/* Idle workers sleep: little CPU time while the pool waits for a run. */
KT_TEST(pool_idle_no_cpu)
{
    char err[256];
    kgr_pool *p;
    KT_REQUIRE(kgr_pool_init(&p, 4, err, sizeof err) == 0);
    who_arg a;
    memset(&a, 0, sizeof a);
    a.want_nth = 4;
    kgr_pool_run(p, who_fn, &a);
    usleep(20000); /* past the spinning */
    struct timespec c0, c1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    double t0 = now_s();
    usleep(100000);
    double wall = now_s() - t0;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    double cpu = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) * 1e-9;
    /* three spinning workers would use ~3x the wall time (or all the cores) */
    KT_CHECKF(cpu < 0.1 * wall, "idle pool used %.1f ms of CPU in %.1f ms", cpu * 1e3, wall * 1e3);
    kgr_pool_run(p, who_fn, &a); /* wakes from the futex */
    KT_CHECK(a.seen[0] == 2 && a.seen[1] == 2 && a.seen[2] == 2 && a.seen[3] == 2);
    kgr_pool_free(p);
}

/* free: right after init (workers may not even have started waiting), after
 * a run while they still spin, and long after (asleep). */
KT_TEST(pool_free_idle)
{
    char err[256];
    for (int mode = 0; mode < 3; mode++)
        for (int n = 1; n <= MAXT; n++) {
            kgr_pool *p;
            KT_REQUIRE(kgr_pool_init(&p, n, err, sizeof err) == 0);
            who_arg a;
            memset(&a, 0, sizeof a);
            a.want_nth = n;
            if (mode >= 1) kgr_pool_run(p, who_fn, &a);
            if (mode == 2 && n > 1) usleep(5000);
            kgr_pool_free(p);
            if (mode >= 1) KT_CHECKF(a.seen[n - 1] == 1, "mode %d, %d threads", mode, n);
        }
}
