/*
 * pool.c — the model runtime's thread pool (rt.h, "thread pool").
 *
 * SPMD, as in ggml: kgr_pool_run(fn, arg) runs fn(arg, ith, nth) on the
 * caller (ith 0) and on n_threads - 1 workers, and returns when all have
 * returned. Inside fn, kgr_barrier(pool, ith) holds each thread until all nth
 * have reached it.
 *
 * Both waits (a thread in a barrier; an idle worker waiting for the next run)
 * work the same way: spin on a 32-bit generation counter with a pause
 * instruction for KGR_SPIN rounds, then sleep on it with a futex. A thread
 * that advances a counter wakes the sleepers with FUTEX_WAKE only when some
 * thread has said (through the counter's `sleepers` field) that it is going to
 * sleep, so the hot path makes no system call.
 *
 * The barrier is a generation counter: each arriving thread reads the
 * generation, then increments the arrival count; the last to arrive resets
 * the count and advances the generation, which releases the others. A thread
 * cannot be let through early: the generation only moves after all nth
 * increments. The end of every run is one more barrier, so when
 * kgr_pool_run returns every worker has returned from fn and is back waiting
 * for the next generation of `run`.
 *
 * One thread at a time may call kgr_pool_run on a pool (the model's API is
 * not thread safe per model either). Workers start with every signal blocked,
 * so the host program's signal handlers never run on them.
 */
#include "rt.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * KGR_SPIN: the spin rounds (an atomic load and a pause) a waiting thread
 * starts with before it sleeps on the futex (then adapted: below).
 * Measured on a 2-core AMD EPYC (Zen 3, KVM) shared with other jobs: a round costs 24 ns (pause is ~60 cycles there;
 * ~140 on Intel since Skylake, ~10 before); a barrier between two running
 * threads costs 0.1-0.25 us; the same barrier when the early thread has
 * gone to sleep (futex wait + wake + the scheduler waking it) costs 6-11 us.
 * 256 rounds (~6 us there, ~13 us on recent Intel) once covered the usual
 * imbalance between threads within one op of a decode step; with the x16
 * kernels they often do not, hence the adaptive budget below.
 * A waiting thread never yields, because of what happens
 * when there are fewer free cores than threads: the late thread is then
 * descheduled, and a waiter that spins holds a core it could give it, while
 * sched_yield hands the core to the competing process for its whole slice
 * (milliseconds). SmolLM2-135M Q4_1, 2-thread decode (tg64) beside one busy
 * process (`python3 -c 'while True: pass'`) on a 2-core Sapphire Rapids VM
 * that other jobs also used (~1.3 cores; bench/bench_contention.py's
 * conditions, variants interleaved, 4 rounds): 2048 rounds yielding every
 * 128 (the earlier setting) 3.7 tok/s (3.2-4.3); 2048 without yields 18.2
 * (17.2-22.1); 256 without yields 30.5 (24.2-84.0); 32 without yields 32.7
 * (25.4-34.6); beside the other jobs alone, all four 38-54 tok/s (noise).
 * Idle workers wait the same way: between decode steps (sampling: 5-100
 * us) they are often still spinning when the next step starts, and an
 * idle model stops using CPU after at most KGR_SPIN_MAX rounds (~100 us
 * on the EPYC VM).
 */
#ifndef KGR_SPIN
#define KGR_SPIN 256
#endif
/*
 * The budget adapts per thread between KGR_SPIN_MIN and KGR_SPIN_MAX: a
 * wait that ended while spinning doubles it, one that had to sleep halves
 * it. On a quiet machine waits end spinning and the budget sits at the
 * top; beside a busy process (the late thread descheduled) they sleep and
 * it falls to the bottom. Measured, SmolLM2-shaped Q4_0 2-thread decode on
 * the 2-core EPYC VM (tg128, quiet / tg64 beside `python3 -c 'while
 * True: pass'`, interleaved, 2 rounds): fixed 256 rounds 127-195 / 119-130
 * tok/s, fixed 1024 311-322 / 87-90, fixed 2048 350-420 / 83-93: the
 * ops of a decode step got shorter than the imbalance 256 rounds cover
 * (README, Performance, for the adaptive budget's figures).
 */
#define KGR_SPIN_MIN 128
#define KGR_SPIN_MAX 4096
static _Thread_local int spin_budget = KGR_SPIN;

#define KGR_CACHELINE 64

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* A futex word and the count of threads sleeping (or about to sleep) on it,
 * alone in their cache line. */
typedef struct {
    alignas(KGR_CACHELINE) _Atomic uint32_t gen;
    _Atomic uint32_t sleepers;
} kgr_wait;

/* Per-worker start data, padded so workers never share a line. */
typedef struct {
    alignas(KGR_CACHELINE) struct kgr_pool *pool;
    int ith;
} kgr_worker;

struct kgr_pool {
    int n;
    pthread_t *threads; /* n - 1 */
    kgr_worker *workers; /* n - 1 */
    /* the current run: written by the caller before it advances run.gen */
    kgr_fn fn;
    void *arg;
    int stop;
    kgr_wait run; /* advanced once per kgr_pool_run (and once by kgr_pool_free) */
    alignas(KGR_CACHELINE) _Atomic uint32_t arrived; /* threads in the current barrier */
    kgr_wait bar;                                    /* advanced once per barrier */
};

static void futex_wait(_Atomic uint32_t *addr, uint32_t val)
{
    /* EINTR / EAGAIN: the caller re-checks the value */
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake_all(_Atomic uint32_t *addr)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Waits until w->gen != seen: spin_budget rounds of spinning, then the
 * futex. Acquire: what the advancing thread wrote before advancing is
 * visible. */
static void wait_past(kgr_wait *w, uint32_t seen)
{
    const int budget = spin_budget;
    for (int i = 0; i < budget; i++) {
        if (atomic_load_explicit(&w->gen, memory_order_acquire) != seen) {
            if (budget < KGR_SPIN_MAX) spin_budget = 2 * budget;
            return;
        }
        cpu_relax();
    }
    if (budget > KGR_SPIN_MIN) spin_budget = budget / 2;
    /* Announce the sleep before the last check (seq_cst on both sides: the
     * advancer either sees sleepers > 0 and wakes, or we see its new gen;
     * and FUTEX_WAIT itself re-checks gen atomically in the kernel). */
    atomic_fetch_add_explicit(&w->sleepers, 1, memory_order_seq_cst);
    while (atomic_load_explicit(&w->gen, memory_order_seq_cst) == seen) futex_wait(&w->gen, seen);
    atomic_fetch_sub_explicit(&w->sleepers, 1, memory_order_relaxed);
}

/* Advances w->gen (release) and wakes the sleepers, if any. */
static void advance(kgr_wait *w)
{
    atomic_fetch_add_explicit(&w->gen, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&w->sleepers, memory_order_seq_cst)) futex_wake_all(&w->gen);
}

void kgr_barrier(kgr_pool *p, int ith)
{
    (void)ith;
    if (p->n <= 1) return;
    uint32_t gen = atomic_load_explicit(&p->bar.gen, memory_order_acquire);
    /* acq_rel: the last arriver sees everything the others wrote before it */
    if (atomic_fetch_add_explicit(&p->arrived, 1, memory_order_acq_rel) == (uint32_t)p->n - 1) {
        /* nobody touches `arrived` again until they see the new generation */
        atomic_store_explicit(&p->arrived, 0, memory_order_relaxed);
        advance(&p->bar);
        return;
    }
    wait_past(&p->bar, gen);
}

static void *worker_main(void *vw)
{
    kgr_worker *w = vw;
    kgr_pool *p = w->pool;
    uint32_t seen = 0; /* run.gen is 0 when the workers start */
    for (;;) {
        wait_past(&p->run, seen);
        seen++; /* only the caller advances run.gen, once per run, after waiting for us */
        if (p->stop) return NULL;
        p->fn(p->arg, w->ith, p->n);
        kgr_barrier(p, w->ith);
    }
}

int kgr_pool_init(kgr_pool **out, int n_threads, char *err, size_t errcap)
{
    *out = NULL;
    if (n_threads < 1 || n_threads > 4096) return kgr_msg(err, errcap, "thread pool: bad thread count %d", n_threads);
    kgr_pool *p = aligned_alloc(KGR_CACHELINE, sizeof *p);
    if (!p) return kgr_msg(err, errcap, "thread pool: out of memory");
    memset(p, 0, sizeof *p);
    p->n = n_threads;
    if (n_threads == 1) {
        *out = p;
        return 0;
    }
    p->threads = calloc((size_t)n_threads - 1, sizeof *p->threads);
    p->workers = aligned_alloc(KGR_CACHELINE, ((size_t)n_threads - 1) * sizeof *p->workers);
    if (!p->threads || !p->workers) {
        free(p->threads);
        free(p->workers);
        free(p);
        return kgr_msg(err, errcap, "thread pool: out of memory");
    }

    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int started = 0, rc = 0;
    for (; started < n_threads - 1; started++) {
        p->workers[started].pool = p;
        p->workers[started].ith = started + 1;
        rc = pthread_create(&p->threads[started], NULL, worker_main, &p->workers[started]);
        if (rc) break;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        p->n = started + 1; /* kgr_pool_free stops the ones that started */
        kgr_pool_free(p);
        return kgr_msg(err, errcap, "thread pool: cannot start thread %d of %d: %s", started + 1, n_threads,
                       strerror(rc));
    }
    *out = p;
    return 0;
}

int kgr_pool_threads(const kgr_pool *p) { return p->n; }

void kgr_pool_run(kgr_pool *p, kgr_fn fn, void *arg)
{
    if (p->n <= 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    advance(&p->run); /* release: fn and arg are visible to the workers */
    fn(arg, 0, p->n);
    kgr_barrier(p, 0); /* every worker has returned from fn */
}

void kgr_pool_free(kgr_pool *p)
{
    if (!p) return;
    if (p->n > 1) {
        p->stop = 1;
        advance(&p->run);
        for (int i = 0; i < p->n - 1; i++) pthread_join(p->threads[i], NULL);
    }
    free(p->threads);
    free(p->workers);
    free(p);
}
