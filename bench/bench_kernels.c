/*
 * bench_kernels.c — decode-product throughput of specialized kernels beside
 * this machine's memory bandwidth, measured in the same run.
 *
 *   bench-kernels [--quick] [--json OUT.json]
 *   bench-kernels --triad THREADS     (only the triad and read bandwidth, one JSON line)
 *   bench-kernels --fma-peak THREADS  (only the FP32 FMA peak, one JSON line:
 *                                      {"threads":N,"gflops":X,"isa":"avx512"|"avx2"|"sse"})
 *
 * For each weight type and shape (SmolLM2-135M and TinyLlama-1.1B matrices)
 * the mm template is specialized for M = 1 through the real generator path
 * (bitcode -> constant wrapper -> optimizer (gen.h GEN_OPT_PIPELINE) -> object -> LLJIT) and run by 1 and 2
 * threads in SPMD style (every thread calls the instance with its ith, a
 * barrier between calls). Enough copies of the weights are cycled through to
 * exceed the last-level cache, so each call streams its weights from DRAM,
 * as a real decode step does. GB/s counts weight bytes only.
 *
 * The limit: a STREAM-style triad (a = b + s*c, doubles, 3 x 256 MiB,
 * counted as 24 bytes per element, as STREAM does) with the same threads;
 * a read-only sum is reported beside it, since products mostly read.
 * Also: the cold compile time of one instance, median of several, and the
 * FP32 FMA peak of the same threads (register-only FMA chains, no memory).
 */
#include "bench.h"
#include "gen.h"
#include "tune_bench.h"
#include "kernel.h"

#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ─────────────────────────── SPMD team ─────────────────────────── */

typedef void (*work_fn)(void *ctx, int ith, int nth);

typedef struct team {
    int nth;
    pthread_t th[8];
    atomic_int arrived;
    atomic_int gen;
    atomic_int stop;
    work_fn fn;
    void *ctx;
} team;

static void barrier(team *t)
{
    int g = atomic_load(&t->gen);
    if (atomic_fetch_add(&t->arrived, 1) == t->nth - 1) {
        atomic_store(&t->arrived, 0);
        atomic_fetch_add(&t->gen, 1);
    } else {
        while (atomic_load(&t->gen) == g) __builtin_ia32_pause();
    }
}

typedef struct worker { team *t; int ith; } worker;
static worker workers[8];

static void *worker_main(void *arg)
{
    worker *w = arg;
    for (;;) {
        barrier(w->t); /* start */
        if (atomic_load(&w->t->stop)) return NULL;
        w->t->fn(w->t->ctx, w->ith, w->t->nth);
        barrier(w->t); /* done */
    }
}

static void team_start(team *t, int nth)
{
    memset(t, 0, sizeof *t);
    t->nth = nth;
    for (int i = 1; i < nth; i++) {
        workers[i] = (worker){t, i};
        pthread_create(&t->th[i], NULL, worker_main, &workers[i]);
    }
}

/* Runs fn(ctx, ith, nth) on every thread (the caller is thread 0). */
static void team_run(team *t, work_fn fn, void *ctx)
{
    t->fn = fn;
    t->ctx = ctx;
    barrier(t);
    fn(ctx, 0, t->nth);
    barrier(t);
}

static void team_stop(team *t)
{
    atomic_store(&t->stop, 1);
    barrier(t);
    for (int i = 1; i < t->nth; i++) pthread_join(t->th[i], NULL);
}

/* ─────────────────────────── bandwidth ─────────────────────────── */

enum { STREAM_N = 32 << 20 }; /* doubles per array: 256 MiB */

typedef struct stream { double *a, *b, *c, sum[8]; } stream;

static void triad(void *ctx, int ith, int nth)
{
    stream *s = ctx;
    int64_t lo, hi;
    kgt_split(STREAM_N, 4096, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) s->a[i] = s->b[i] + 3.0 * s->c[i];
}

/* read-only: a sum with 4 independent vector accumulators (a scalar loop
 * is add-latency-bound, not memory-bound); AVX2 when the CPU has it, since
 * this file is built for the baseline ISA */
typedef double v4d __attribute__((vector_size(32)));
#define READSUM_BODY                                                           \
    stream *s = ctx;                                                           \
    int64_t lo, hi;                                                            \
    kgt_split(STREAM_N, 4096, ith, nth, &lo, &hi);                             \
    v4d a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, v;                             \
    for (int64_t i = lo; i + 16 <= hi; i += 16) {                              \
        memcpy(&v, s->b + i, 32); a0 += v;                                     \
        memcpy(&v, s->b + i + 4, 32); a1 += v;                                 \
        memcpy(&v, s->b + i + 8, 32); a2 += v;                                 \
        memcpy(&v, s->b + i + 12, 32); a3 += v;                                \
    }                                                                          \
    v4d t = a0 + a1 + a2 + a3;                                                 \
    s->sum[ith] = t[0] + t[1] + t[2] + t[3];

__attribute__((target("avx2"))) static void readsum_avx2(void *ctx, int ith, int nth) { READSUM_BODY }
static void readsum_base(void *ctx, int ith, int nth) { READSUM_BODY }
static void readsum(void *ctx, int ith, int nth)
{
    if (__builtin_cpu_supports("avx2")) readsum_avx2(ctx, ith, nth);
    else readsum_base(ctx, ith, nth);
}

/* best of `reps` (STREAM reports the best), GB/s */
static double measure_bw(team *t, stream *s, work_fn fn, double bytes, int reps)
{
    double best = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        team_run(t, fn, s);
        double gbs = bytes / (bench_now() - t0) / 1e9;
        if (gbs > best) best = gbs;
    }
    return best;
}

/* ─────────────────────────── FP32 FMA peak ─────────────────────────── */

/* Each thread runs independent chains acc = acc * a + b on the widest
 * vectors the CPU has: enough chains (16 of 16 lanes, 12 of 8 lanes) to cover
 * the FMA latency on every FMA port. a < 1 and b > 0 keep every chain near
 * its fixed point b / (1 - a) = 1: finite and never denormal. This file is
 * built for the baseline ISA, so the loops carry target attributes and the
 * widest is picked at run time. The chains are written out one by one (no
 * array) so that they live in registers. */
#define FMA_A 0.9999f
#define FMA_B 0.0001f

#define FMA_X16(S) S(0) S(1) S(2) S(3) S(4) S(5) S(6) S(7) S(8) S(9) S(10) S(11) S(12) S(13) S(14) S(15)
#define FMA_X12(S) S(0) S(1) S(2) S(3) S(4) S(5) S(6) S(7) S(8) S(9) S(10) S(11)

/* n iterations of 16 chains x 16 lanes; returns the sum of the lanes */
__attribute__((target("avx512f"))) static float fma_loop_avx512(int64_t n, float a_, float b_)
{
    __m512 a = _mm512_set1_ps(a_), b = _mm512_set1_ps(b_);
#define DECL(i) __m512 c##i = _mm512_set1_ps((float)(i) * 0.01f);
#define STEP(i) c##i = _mm512_fmadd_ps(c##i, a, b);
#define SUM(i) s = _mm512_add_ps(s, c##i);
    FMA_X16(DECL)
    for (int64_t k = 0; k < n; k++) { FMA_X16(STEP) }
    __m512 s = _mm512_setzero_ps();
    FMA_X16(SUM)
#undef DECL
#undef STEP
#undef SUM
    return _mm512_reduce_add_ps(s);
}

/* n iterations of 12 chains x 8 lanes */
__attribute__((target("avx2,fma"))) static float fma_loop_avx2(int64_t n, float a_, float b_)
{
    __m256 a = _mm256_set1_ps(a_), b = _mm256_set1_ps(b_);
#define DECL(i) __m256 c##i = _mm256_set1_ps((float)(i) * 0.01f);
#define STEP(i) c##i = _mm256_fmadd_ps(c##i, a, b);
#define SUM(i) s = _mm256_add_ps(s, c##i);
    FMA_X12(DECL)
    for (int64_t k = 0; k < n; k++) { FMA_X12(STEP) }
    __m256 s = _mm256_setzero_ps();
    FMA_X12(SUM)
#undef DECL
#undef STEP
#undef SUM
    float v[8];
    _mm256_storeu_ps(v, s);
    return v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
}

/* no FMA instruction: 12 chains x 4 lanes of a multiply and an add (still
 * 2 FLOPs per lane and step) */
static float fma_loop_sse(int64_t n, float a_, float b_)
{
    __m128 a = _mm_set1_ps(a_), b = _mm_set1_ps(b_);
#define DECL(i) __m128 c##i = _mm_set1_ps((float)(i) * 0.01f);
#define STEP(i) c##i = _mm_add_ps(_mm_mul_ps(c##i, a), b);
#define SUM(i) s = _mm_add_ps(s, c##i);
    FMA_X12(DECL)
    for (int64_t k = 0; k < n; k++) { FMA_X12(STEP) }
    __m128 s = _mm_setzero_ps();
    FMA_X12(SUM)
#undef DECL
#undef STEP
#undef SUM
    float v[4];
    _mm_storeu_ps(v, s);
    return v[0] + v[1] + v[2] + v[3];
}

typedef struct fma_isa {
    const char *name;
    int lanes, chains;
    float (*loop)(int64_t n, float a, float b);
} fma_isa;

static fma_isa fma_pick(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return (fma_isa){"avx512", 16, 16, fma_loop_avx512};
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return (fma_isa){"avx2", 8, 12, fma_loop_avx2};
    return (fma_isa){"sse", 4, 12, fma_loop_sse};
}

/* a and b are read through volatiles so the compiler knows nothing of them;
 * every run's sum is stored to a volatile (fma_sink, fma_worker.sink) so no
 * loop can be dropped */
static volatile float fma_a = FMA_A, fma_b = FMA_B;
static volatile float fma_sink;

enum { FMA_TRIALS = 5 };

typedef struct fma_team {
    fma_isa isa;
    int64_t iters;  /* per thread and trial */
    pthread_barrier_t bar;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int go;         /* 0: wait; 1: run the trials; -1: a thread failed to start, quit */
} fma_team;

typedef struct fma_worker { fma_team *t; int cpu; volatile float sink; } fma_worker;

static void *fma_worker_main(void *arg)
{
    fma_worker *w = arg;
    if (w->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(w->cpu, &set);
        (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set); /* best effort */
    }
    pthread_mutex_lock(&w->t->mu);
    while (!w->t->go) pthread_cond_wait(&w->t->cv, &w->t->mu);
    int go = w->t->go;
    pthread_mutex_unlock(&w->t->mu);
    if (go < 0) return NULL;
    float a = fma_a, b = fma_b;
    for (int r = 0; r < FMA_TRIALS; r++) {
        pthread_barrier_wait(&w->t->bar); /* all start together */
        w->sink = w->t->isa.loop(w->t->iters, a, b);
        pthread_barrier_wait(&w->t->bar); /* all done */
    }
    return NULL;
}

/* The i-th CPU this process may run on (CPU i when all are allowed), or -1 */
static int fma_cpu(int i)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set)) return i < CPU_SETSIZE ? i : -1;
    int n = CPU_COUNT(&set);
    if (n <= 0) return -1;
    i %= n;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set) && i-- == 0) return c;
    return -1;
}

/* FP32 GFLOP/s of nth threads running the chains above (thread i pinned to
 * the i-th CPU this process may use), best of FMA_TRIALS trials of
 * about 0.3 s; FLOPs = 2 x lanes x steps x chains x threads. The ISA used
 * goes to *isa_name. Returns -1 if the threads could not be started. */
static double fma_peak(int nth, const char **isa_name)
{
    fma_team t;
    t.isa = fma_pick();
    *isa_name = t.isa.name;
    /* calibrate on this thread: double until a run takes 50 ms */
    float a = fma_a, b = fma_b;
    int64_t n = 1 << 14;
    double dt;
    for (;;) {
        double t0 = bench_now();
        fma_sink = t.isa.loop(n, a, b);
        dt = bench_now() - t0;
        if (dt > 0.05 || n > ((int64_t)1 << 40)) break;
        n *= 2;
    }
    t.iters = (int64_t)((double)n * 0.3 / dt) + 1;
    if (pthread_barrier_init(&t.bar, NULL, (unsigned)nth + 1)) return -1;
    pthread_mutex_init(&t.mu, NULL);
    pthread_cond_init(&t.cv, NULL);
    t.go = 0;
    fma_worker *w = calloc((size_t)nth, sizeof *w);
    pthread_t *th = calloc((size_t)nth, sizeof *th);
    int started = 0;
    if (w && th)
        for (; started < nth; started++) {
            w[started] = (fma_worker){&t, fma_cpu(started), 0};
            if (pthread_create(&th[started], NULL, fma_worker_main, &w[started])) break;
        }
    pthread_mutex_lock(&t.mu);
    t.go = started == nth ? 1 : -1;
    pthread_cond_broadcast(&t.cv);
    pthread_mutex_unlock(&t.mu);
    double best = -1;
    if (started == nth)
        for (int r = 0; r < FMA_TRIALS; r++) {
            pthread_barrier_wait(&t.bar);
            double t0 = bench_now();
            pthread_barrier_wait(&t.bar);
            double s = bench_now() - t0;
            double gf = 2.0 * t.isa.lanes * t.isa.chains * (double)t.iters * nth / s / 1e9;
            if (gf > best) best = gf;
        }
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&t.bar);
    pthread_mutex_destroy(&t.mu);
    pthread_cond_destroy(&t.cv);
    free(w);
    free(th);
    return best;
}

/* ─────────────────────────── products ─────────────────────────── */

typedef struct mmrun {
    gen_kfn f;
    void **w;      /* copies of the weights */
    int ncopies, cur;
    void *x, *y;
} mmrun;

static void mm_call(void *ctx, int ith, int nth)
{
    mmrun *m = ctx;
    void *p[6] = {m->w[m->cur], m->x, m->y, NULL, NULL, NULL};
    m->f(p, NULL, ith, nth);
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (uint32_t)rng;
}

typedef struct result {
    const char *model;
    const char *type;
    int64_t K, N;
    int nth;
    double gbs, tps_us;
} result;

static int mm_bench(team *t, const gen_target *tg, const char *model, int wtype, int64_t K, int64_t N, bool quick,
                    result *res)
{
    const kg_type_info *ti = kg_type_get((uint32_t)wtype);
    bool quant = wtype != KGT_F32 && wtype != KGT_F16 && wtype != KGT_BF16;
    gen_kinst k;
    memset(&k, 0, sizeof k);
    snprintf(k.tmpl, sizeof k.tmpl, "mm");
    snprintf(k.sym, sizeof k.sym, "b_%s_%lld_%lld", ti->name, (long long)K, (long long)N);
    const char *names[] = {"wtype", "act", "M", "N", "K", "flags"};
    int64_t vals[] = {wtype, quant ? KGT_ACT_Q8 : KGT_ACT_F32, 1, N, K, 0};
    for (int i = 0; i < 6; i++) {
        snprintf(k.params[i].name, sizeof k.params[i].name, "%s", names[i]);
        k.params[i].i = vals[i];
    }
    k.n_params = 6;
    void *obj;
    size_t n;
    gen_jit *j;
    mmrun m = {0};
    if (gen_compile(tg, &k, 1, GEN_EMIT_OBJ, &obj, &n) || gen_jit_create(&j) || gen_jit_add(j, obj, n) ||
        gen_jit_lookup(j, k.sym, &m.f)) {
        fprintf(stderr, "bench: %s: %s\n", k.sym, kg_last_error());
        return -1;
    }
    free(obj);
    uint64_t wbytes = (uint64_t)N * (K / ti->blck) * ti->size;
    m.ncopies = (int)((quick ? 64ull << 20 : 384ull << 20) / wbytes) + 1; /* well past the LLC */
    if (m.ncopies > 4096) m.ncopies = 4096;
    m.w = calloc((size_t)m.ncopies, sizeof *m.w);
    for (int c = 0; c < m.ncopies; c++) {
        m.w[c] = aligned_alloc(64, (wbytes + 63) & ~63ull);
        gen_fill_weights(m.w[c], wbytes, wtype, rnd());
    }
    size_t xbytes = quant ? (size_t)(K / 32) * sizeof(kgt_q8a) : (size_t)K * 4;
    m.x = aligned_alloc(64, (xbytes + 63) & ~63ull);
    memset(m.x, 0, xbytes);
    if (quant)
        for (int64_t b = 0; b < K / 32; b++) {
            kgt_q8a *q = (kgt_q8a *)m.x + b;
            q->d = 0.02f;
            for (int i = 0; i < 32; i++) q->qs[i] = (int8_t)(rnd() % 255 - 127);
        }
    else
        for (int64_t i = 0; i < K; i++) ((float *)m.x)[i] = (float)(rnd() % 2000) * 1e-3f - 1.0f;
    m.y = aligned_alloc(64, ((size_t)N * 4 + 63) & ~63ull);
    for (int r = 0; r < 2; r++) for (m.cur = 0; m.cur < m.ncopies; m.cur++) team_run(t, mm_call, &m); /* warm-up */
    int rounds = quick ? 3 : 7;
    double samples[16];
    for (int r = 0; r < rounds; r++) {
        double t0 = bench_now();
        for (m.cur = 0; m.cur < m.ncopies; m.cur++) team_run(t, mm_call, &m);
        samples[r] = (bench_now() - t0) / m.ncopies;
    }
    double med = bench_median(samples, rounds);
    *res = (result){model, ti->name, K, N, t->nth, wbytes / med / 1e9, med * 1e6};
    for (int c = 0; c < m.ncopies; c++) free(m.w[c]);
    free(m.w);
    free(m.x);
    free(m.y);
    gen_jit_destroy(j);
    return 0;
}

/* ─────────────────────────── main ─────────────────────────── */

static double compile_ms(const gen_target *tg, int wtype, int64_t K, int64_t N)
{
    gen_kinst k;
    memset(&k, 0, sizeof k);
    snprintf(k.tmpl, sizeof k.tmpl, "mm");
    snprintf(k.sym, sizeof k.sym, "cold");
    const char *names[] = {"wtype", "act", "M", "N", "K", "flags"};
    int64_t vals[] = {wtype, KGT_ACT_Q8, 1, N, K, 0};
    for (int i = 0; i < 6; i++) {
        snprintf(k.params[i].name, sizeof k.params[i].name, "%s", names[i]);
        k.params[i].i = vals[i];
    }
    k.n_params = 6;
    double s[7];
    for (int r = 0; r < 7; r++) {
        void *obj;
        size_t n;
        double t0 = bench_now();
        if (gen_compile(tg, &k, 1, GEN_EMIT_OBJ, &obj, &n)) return -1;
        s[r] = (bench_now() - t0) * 1e3;
        free(obj);
    }
    return bench_median(s, 7);
}

/* the same instance from the cache: median of 101 gets (compiled into a
 * private cache first) */
static double cache_fetch_ms(const gen_target *tg, size_t *bytes)
{
    char dir[] = "/tmp/kgen-bench-cache-XXXXXX";
    if (!mkdtemp(dir)) return -1;
    kg_cache *c = NULL;
    gen_kinst k;
    memset(&k, 0, sizeof k);
    snprintf(k.tmpl, sizeof k.tmpl, "mm");
    snprintf(k.sym, sizeof k.sym, "cached");
    const char *names[] = {"wtype", "act", "M", "N", "K", "flags"};
    int64_t vals[] = {KGT_Q4_0, KGT_ACT_Q8, 1, 5632, 2048, 0};
    for (int i = 0; i < 6; i++) {
        snprintf(k.params[i].name, sizeof k.params[i].name, "%s", names[i]);
        k.params[i].i = vals[i];
    }
    k.n_params = 6;
    double s[101], med = -1;
    void *obj;
    size_t n;
    bool hit;
    if (kg_cache_open(dir, &c) == KG_OK && gen_compile_cached(c, tg, &k, 1, GEN_EMIT_OBJ, &obj, &n, &hit) == KG_OK) {
        free(obj);
        int r = 0;
        for (; r < 101; r++) {
            double t0 = bench_now();
            if (gen_compile_cached(c, tg, &k, 1, GEN_EMIT_OBJ, &obj, &n, &hit) || !hit) break;
            s[r] = (bench_now() - t0) * 1e3;
            free(obj);
        }
        if (r == 101) med = bench_median(s, 101);
        *bytes = n;
        kg_cache_clear(c, NULL, NULL);
    }
    kg_cache_close(c);
    rmdir(dir);
    return med;
}

int main(int argc, char **argv)
{
    bool quick = false;
    const char *json = NULL;
    int triad_only = 0, fma_only = 0; /* 1..: that measurement alone; -1: asked with a bad count */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = true;
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
        else if (!strcmp(argv[i], "--triad") && i + 1 < argc) triad_only = atoi(argv[++i]) > 0 ? atoi(argv[i]) : -1;
        else if (!strcmp(argv[i], "--fma-peak") && i + 1 < argc) fma_only = atoi(argv[++i]) > 0 ? atoi(argv[i]) : -1;
        else {
            fprintf(stderr, "usage: bench-kernels [--quick] [--json OUT] | --triad THREADS | --fma-peak THREADS\n");
            return 2;
        }
    }
    if (fma_only) { /* the FP32 FMA peak alone, for bench/bench_encoder.py: one JSON line */
        if (fma_only < 1 || fma_only > 256) { fprintf(stderr, "bench-kernels: --fma-peak 1..256\n"); return 2; }
        const char *isa;
        double gf = fma_peak(fma_only, &isa);
        if (gf <= 0) { fprintf(stderr, "bench-kernels: --fma-peak: could not start %d threads\n", fma_only); return 1; }
        printf("{\"threads\":%d,\"gflops\":%.3f,\"isa\":\"%s\"}\n", fma_only, gf, isa);
        return 0;
    }
    if (triad_only) { /* the bandwidth limit alone, for bench/bench_peer.py: one JSON line */
        if (triad_only < 1 || triad_only > 8) { fprintf(stderr, "bench-kernels: --triad 1..8\n"); return 2; } /* team.th[8] */
        stream s = {aligned_alloc(64, STREAM_N * 8), aligned_alloc(64, STREAM_N * 8), aligned_alloc(64, STREAM_N * 8), {0}};
        for (int64_t i = 0; i < STREAM_N; i++) s.a[i] = 0, s.b[i] = 1, s.c[i] = 2;
        team t;
        team_start(&t, triad_only);
        double tri = measure_bw(&t, &s, triad, 24.0 * STREAM_N, 5), rd = measure_bw(&t, &s, readsum, 8.0 * STREAM_N, 5);
        team_stop(&t);
        printf("{\"threads\":%d,\"triad_gbs\":%.3f,\"read_gbs\":%.3f}\n", triad_only, tri, rd);
        free(s.a); free(s.b); free(s.c);
        return 0;
    }
    gen_target tg;
    if (gen_target_host(&tg)) { fprintf(stderr, "bench: %s\n", kg_last_error()); return 1; }
    static const struct { const char *model; int64_t K, N; } shapes[] = {
        {"SmolLM2", 576, 576}, {"SmolLM2", 576, 1536}, {"SmolLM2", 1536, 576}, {"SmolLM2", 576, 49152},
        {"TinyLlama", 2048, 2048}, {"TinyLlama", 2048, 5632}, {"TinyLlama", 5632, 2048}, {"TinyLlama", 2048, 32000},
    };
    static const int types[] = {KGT_Q4_0, KGT_Q4_1, KGT_Q8_0, KGT_Q4_K, KGT_Q6_K, KGT_F16,    KGT_BF16, KGT_F32,
                                KGT_Q5_0, KGT_Q5_1, KGT_Q5_K, KGT_Q3_K, KGT_Q2_K, KGT_IQ4_NL, KGT_IQ4_XS};
    stream s = {aligned_alloc(64, STREAM_N * 8), aligned_alloc(64, STREAM_N * 8), aligned_alloc(64, STREAM_N * 8), {0}};
    for (int64_t i = 0; i < STREAM_N; i++) s.a[i] = 0, s.b[i] = 1, s.c[i] = 2;

    FILE *js = json ? fopen(json, "w") : NULL;
    if (json && !js) { perror(json); return 1; }
    if (js) fprintf(js, "{\"bench\":\"kernels\",\"cpu\":\"%s\",\"isa\":\"%s\",\"quick\":%s,\"threads\":[", tg.cpu,
                    gen_isa_name(tg.isa), quick ? "true" : "false");
    printf("kgen kernel bench: %s (%s templates), decode products (M=1), weights streamed from DRAM\n", tg.cpu,
           gen_isa_name(tg.isa));
    for (int nth = 1; nth <= 2; nth++) {
        const char *fisa; /* before the team starts: its idle workers spin */
        double fma = fma_peak(nth, &fisa);
        team t;
        team_start(&t, nth);
        double tri = measure_bw(&t, &s, triad, 24.0 * STREAM_N, quick ? 3 : 5);
        double rd = measure_bw(&t, &s, readsum, 8.0 * STREAM_N, quick ? 3 : 5);
        char fmatxt[32] = "null";
        if (fma > 0) snprintf(fmatxt, sizeof fmatxt, "%.2f", fma);
        printf("\n%d thread%s: triad %.1f GB/s, read %.1f GB/s; FP32 FMA peak %s GFLOP/s (%s)\n", nth,
               nth > 1 ? "s" : "", tri, rd, fma > 0 ? fmatxt : "unknown", fisa);
        printf("  %-10s %-5s %6s %6s %10s %9s %8s %8s\n", "model", "type", "K", "N", "us/call", "GB/s", "%triad", "%read");
        if (js) fprintf(js, "%s{\"n\":%d,\"triad_gbs\":%.2f,\"read_gbs\":%.2f,\"fma_gflops\":%s,\"fma_isa\":\"%s\",\"mm\":[",
                        nth > 1 ? "," : "", nth, tri, rd, fmatxt, fisa);
        int first = 1;
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
            for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
                if (quick && (shapes[si].N > 6000 || (types[ti] != KGT_Q4_0 && types[ti] != KGT_Q8_0))) continue;
                if (shapes[si].K % kg_type_get((uint32_t)types[ti])->blck) continue; /* rows of whole blocks only */
                result r;
                if (mm_bench(&t, &tg, shapes[si].model, types[ti], shapes[si].K, shapes[si].N, quick, &r)) continue;
                printf("  %-10s %-5s %6lld %6lld %10.1f %9.1f %7.0f%% %7.0f%%\n", r.model, r.type, (long long)r.K,
                       (long long)r.N, r.tps_us, r.gbs, 100 * r.gbs / tri, 100 * r.gbs / rd);
                if (js) fprintf(js, "%s{\"model\":\"%s\",\"type\":\"%s\",\"K\":%lld,\"N\":%lld,\"us\":%.3f,\"gbs\":%.3f}",
                                first ? "" : ",", r.model, r.type, (long long)r.K, (long long)r.N, r.tps_us, r.gbs);
                first = 0;
                fflush(stdout);
            }
        if (js) fprintf(js, "]}");
        team_stop(&t);
    }
    double cold = compile_ms(&tg, KGT_Q4_0, 2048, 5632);
    size_t obj_bytes = 0;
    double fetch = cache_fetch_ms(&tg, &obj_bytes);
    printf("\ncold compile of one instance (mm Q4_0 2048x5632, parse bitcode + specialize + optimize + object): %.1f ms median of 7\n", cold);
    printf("the same instance from the cache (key text + XXH3 + read + verify, %zu-byte object): %.3f ms median of 101\n",
           obj_bytes, fetch);
    if (js) {
        fprintf(js, "],\"compile_cold_ms\":%.3f,\"cache_fetch_ms\":%.4f}\n", cold, fetch);
        fclose(js);
    }
    free(s.a); free(s.b); free(s.c);
    return 0;
}
