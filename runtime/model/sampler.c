/*
 * sampler.c — the model runtime's token sampler (rt.h, "sampler"; the
 * parameters are kgm_sampler_params of include/kgen_model.h).
 *
 * Chain, in this order:
 *   1. repetition penalty: for each distinct token among the last
 *      repeat_last_n accepted (at most KGR_HIST), logit > 0 ? logit / penalty
 *      : logit * penalty (applied once per distinct token; llama.cpp's rule);
 *   2. temp <= 0: greedy, the largest logit, the lowest id on ties;
 *   3. top-k: the k largest logits (ties at the edge: lower ids first);
 *   4. softmax of logit / temp over what is left;
 *   5. top-p: the smallest set of most probable tokens whose probabilities
 *      add up to >= top_p (at least one token);
 *   6. min-p: keep the tokens with p >= min_p * p_max;
 *   7. renormalize and draw with xoshiro256** (seeded from `seed` through
 *      splitmix64): exactly one 64-bit draw per non-greedy sample.
 * Every step is computed with an own exp() and in a fixed order with FP
 * contraction off, so the same params, seed and logits give the same tokens
 * on every run and machine.
 *
 * Parameters outside their range: temp NaN or so small that 1/temp is not
 * finite -> greedy; top_k <= 0 or >= n_vocab -> off; top_p NaN or >= 1 ->
 * off; top_p <= 0 -> the single most probable token; min_p NaN or <= 0 ->
 * off, > 1 -> 1 (only the most probable tokens); repeat_penalty NaN, inf,
 * <= 0 or 1 -> off; repeat_last_n < 0 or > KGR_HIST -> KGR_HIST.
 *
 * Non-finite logits: NaN and -inf are never sampled; +inf counts as the
 * largest finite float (greedy takes the lowest id among them; with temp > 0
 * they share the probability equally). If every logit is NaN or -inf,
 * kgr_sample returns -1 and records nothing. Out-of-range tokens given to
 * kgr_sampler_accept are ignored.
 *
 * Cost (n_vocab 49152, one core of a 2-core Zen 3): greedy is one pass over
 * the logits, 64-token block maxima first (4 lanes at a time), so most
 * tokens cost one vector max: ~3.5 us. top_k <= KGR_HEAP_MAX keeps a heap of
 * the k best during that pass (top_k 40 + top_p: ~15 us). A larger top_k
 * histograms the top bits of the logits, gathers the bucket holding the
 * k-th best and those above, and quickselects among them. Without top_k,
 * exp is computed for every token (4 lanes at a time; ~100 us), with sums
 * per 64-token block, so a plain draw walks blocks, then one block; top-p
 * and min-p then gather only the tokens above a threshold that provably
 * holds the kept set (for peaked distributions, a few dozen). Nothing sorts
 * the vocabulary: top-p over many candidates histograms their mass by
 * probability (KGR_NBUCKET buckets, an eighth of an octave each), which
 * finds the one bucket where the running sum crosses top_p; only that bucket
 * is sorted. top-p walks tokens from the most probable, equal probabilities
 * by lower id. Nothing is allocated after kgr_sampler_init.
 */
#include "rt.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

/* No a*b+c fused into an FMA where the target has one: results must not
 * depend on the machine. GCC does not contract under -std=c11 (the build's
 * mode); clang is told here. */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#define KGR_HIST 256       /* accepted tokens remembered (max repeat_last_n) */
#define KGR_HEAP_MAX 128   /* top_k up to this: heap selection during the scan */
#define KGR_RADIX_BITS 11  /* larger top_k: a histogram of the keys' top bits first */
#define KGR_BUCKET_LOG2 3  /* top-p histogram: 2^3 buckets per octave of probability, */
#define KGR_NBUCKET 512    /* 512 of them (64 octaves); the rest is one more bucket    */

typedef struct {
    float v;    /* the penalized logit (+inf clamped to FLT_MAX); then the rank key */
    float e;    /* exp((v - v_max) / temp) */
    int32_t id;
    int32_t b;  /* top-p bucket */
} kgr_cand;

struct kgr_sampler {
    int n_vocab;
    /* sanitized parameters */
    bool greedy;
    float inv_temp;
    int top_k;     /* 1..n_vocab */
    double top_p;  /* < 1: on */
    double min_p;  /* > 0: on */
    float penalty; /* != 1: on */
    int last_n;
    uint64_t seed;
    uint64_t rng[4];
    /* accepted tokens, a ring */
    int32_t hist[KGR_HIST];
    int hist_n, hist_pos;
    /* this call's penalized tokens: sorted, distinct, with their new logits */
    int32_t pen_id[KGR_HIST];
    float pen_v[KGR_HIST];
    int n_pen;
    double mass[KGR_NBUCKET + 1];
    uint32_t radix[4][1 << KGR_RADIX_BITS]; /* 4 copies: consecutive equal keys do not wait on each other */
    /* scratch */
    kgr_cand *c;  /* n_vocab candidates */
    float *e;     /* n_vocab: every token's exp, when nothing restricts them */
    double *bsum; /* per 64-token block: the sum of e */
    float *bmax;  /* per 64-token block: the max of e */
};

/* ─────────────────────────── random numbers ─────────────────────────── */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** (Blackman and Vigna) */
static uint64_t rng_next(uint64_t s[4])
{
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

static void rng_seed(kgr_sampler *s)
{
    uint64_t x = s->seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
}

/* ─────────────────────────── small vectors ───────────────────────────
 * GCC/clang vector extensions, 4 floats: SSE on x86-64, NEON on arm64. */
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static inline v4f splat(float x) { return (v4f){x, x, x, x}; }
static inline v4f load4(const float *p)
{
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}
/* m ? a : b, lane by lane (m: all ones or all zeros) */
static inline v4f vsel(v4i m, v4f a, v4f b) { return (v4f)((m & (v4i)a) | (~m & (v4i)b)); }
/* x > m ? x : m: a NaN in x is never taken */
static inline v4f vmax_nn(v4f m, v4f x)
{
#if defined(__SSE__)
    return (v4f)_mm_max_ps((__m128)x, (__m128)m);
#else
    return vsel(x > m, x, m);
#endif
}
/* min(max(x, lo), hi); NaN becomes lo */
static inline v4f vclamp(v4f x, float lo, float hi)
{
#if defined(__SSE__)
    return (v4f)_mm_min_ps(_mm_max_ps((__m128)x, (__m128)splat(lo)), (__m128)splat(hi));
#else
    x = vsel(x > splat(lo), x, splat(lo));
    return vsel(x < splat(hi), x, splat(hi));
#endif
}
static inline float hmax(v4f m)
{
    float a = m[0] > m[1] ? m[0] : m[1], b = m[2] > m[3] ? m[2] : m[3];
    return a > b ? a : b;
}

/* max of x[0..64), NaN skipped (-inf if all are NaN) */
static inline float max64(const float *x)
{
    v4f m0 = splat(-INFINITY), m1 = m0, m2 = m0, m3 = m0;
    for (int j = 0; j < 64; j += 16) {
        m0 = vmax_nn(m0, load4(x + j));
        m1 = vmax_nn(m1, load4(x + j + 4));
        m2 = vmax_nn(m2, load4(x + j + 8));
        m3 = vmax_nn(m3, load4(x + j + 12));
    }
    return hmax(vmax_nn(vmax_nn(m0, m1), vmax_nn(m2, m3)));
}

/* ─────────────────────────────── exp ───────────────────────────────
 * e^x for x <= 0, 4 lanes; 0 below -103 and for NaN; relative error ~2e-7;
 * e^0 is exactly 1. Plain float arithmetic in a fixed order, so the same on
 * every machine; the scalar kexp is one lane of it. */
static inline v4f kexp4(v4f x)
{
    v4i ok = x > splat(-103.0f); /* false for NaN */
    x = vclamp(x, -103.0f, 0.0f);
    v4i k = __builtin_convertvector(x * splat(1.44269504f) - splat(0.5f), v4i); /* round to nearest (x <= 0) */
    v4f kf = __builtin_convertvector(k, v4f);
    v4f r = x - kf * splat(0.693145751953125f); /* ln 2, high bits: kf * this is exact */
    r = r - kf * splat(1.42860676533018e-06f);  /* ln 2, low bits */
    v4f p = splat(1.0f / 720.0f);
    p = p * r + splat(1.0f / 120.0f);
    p = p * r + splat(1.0f / 24.0f);
    p = p * r + splat(1.0f / 6.0f);
    p = p * r + splat(0.5f);
    p = p * r + splat(1.0f);
    p = p * r + splat(1.0f);
    /* times 2^k = 2^k1 * 2^k2, k1 = k >> 1, both >= -75: normal, so only the
     * last product rounds (when the result is subnormal) */
    v4i k1 = k >> 1, k2 = k - k1;
    v4f s1 = (v4f)((k1 + 127) << 23), s2 = (v4f)((k2 + 127) << 23);
    return (v4f)(ok & (v4i)(p * s1 * s2));
}

static inline float kexp(float x) { return kexp4(splat(x))[0]; }

/* ───────────────────────────── ordering ─────────────────────────────
 * Candidates are ranked by (v descending, id ascending): a total order. */
static inline bool better(const kgr_cand *a, const kgr_cand *b) { return a->v > b->v || (a->v == b->v && a->id < b->id); }

static inline void cswap(kgr_cand *a, kgr_cand *b)
{
    kgr_cand t = *a;
    *a = *b;
    *b = t;
}

/* Min-heap by rank: the worst candidate at h[0]. */
static void sift_down(kgr_cand *h, int n, int i)
{
    for (;;) {
        int w = i, l = 2 * i + 1, r = l + 1;
        if (l < n && better(&h[w], &h[l])) w = l;
        if (r < n && better(&h[w], &h[r])) w = r;
        if (w == i) return;
        cswap(&h[i], &h[w]);
        i = w;
    }
}

static void sift_up(kgr_cand *h, int i)
{
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!better(&h[p], &h[i])) return;
        cswap(&h[p], &h[i]);
        i = p;
    }
}

/* Best first, by heapsort: O(n log n) always. */
static void heapsort_best_first(kgr_cand *c, int n)
{
    for (int i = n / 2 - 1; i >= 0; i--) sift_down(c, n, i);
    for (int m = n - 1; m > 0; m--) {
        cswap(&c[0], &c[m]); /* the worst of c[0..m] goes to m */
        sift_down(c, m, 0);
    }
}

/* Lomuto partition of c[lo..hi] around c[pi]: returns the pivot's place;
 * everything before it ranks better. */
static int partition(kgr_cand *c, int lo, int hi, int pi)
{
    cswap(&c[pi], &c[hi]);
    int st = lo;
    for (int i = lo; i < hi; i++)
        if (better(&c[i], &c[hi])) cswap(&c[i], &c[st++]);
    cswap(&c[st], &c[hi]);
    return st;
}

static uint32_t lcg(uint32_t *x) { return (*x = *x * 1664525u + 1013904223u) >> 8; }

/* Best first: quicksort with random pivots (a fixed generator, not the
 * sampling one), heapsort when it goes too deep, insertion sort for short
 * ranges. */
static void sort_best_first(kgr_cand *c, int n)
{
    uint32_t x = 12345;
    int depth = 64;
    while (n > 16) {
        if (depth-- == 0) {
            heapsort_best_first(c, n);
            return;
        }
        int p = partition(c, 0, n - 1, (int)(lcg(&x) % (uint32_t)n));
        if (p < n - 1 - p) { /* recurse on the smaller side */
            sort_best_first(c, p);
            c += p + 1;
            n -= p + 1;
        } else {
            sort_best_first(c + p + 1, n - p - 1);
            n = p;
        }
    }
    for (int i = 1; i < n; i++) {
        kgr_cand t = c[i];
        int j = i;
        for (; j > 0 && better(&t, &c[j - 1]); j--) c[j] = c[j - 1];
        c[j] = t;
    }
}

/* Rearranges c[0..n) so that c[0..k) are the k best (in any order). */
static void select_best(kgr_cand *c, int n, int k)
{
    uint32_t x = 54321;
    int lo = 0, hi = n - 1;
    for (int round = 0; hi > lo; round++) {
        if (round == 64) { /* unlucky pivots: sort what is left */
            sort_best_first(c + lo, hi - lo + 1);
            return;
        }
        int p = partition(c, lo, hi, lo + (int)(lcg(&x) % (uint32_t)(hi - lo + 1)));
        if (p == k || p == k - 1) return;
        if (p > k) hi = p - 1;
        else lo = p + 1;
    }
}

/* ─────────────────────────────── scans ───────────────────────────────
 * The logits, read as they are, except the penalized tokens (s->pen_id,
 * sorted), which the range scans skip and which are visited last with their
 * penalized values. */

static inline float clampinf(float v) { return v > FLT_MAX ? FLT_MAX : v; }

/* argmax over x[a..b), ids ascending: strict > keeps the lowest id; NaN and
 * -inf never win. */
static void argmax_range(const float *x, int a, int b, float *best, int32_t *bi)
{
    float bv = *best;
    int32_t id = *bi;
    int i = a;
    for (; i + 64 <= b; i += 64)
        if (max64(x + i) > bv)
            for (int j = i; j < i + 64; j++)
                if (x[j] > bv) bv = x[j], id = j;
    for (; i < b; i++)
        if (x[i] > bv) bv = x[i], id = i;
    *best = bv;
    *bi = id;
}

/* max over x[a..b), NaN skipped */
static float max_range(const float *x, int a, int b, float m)
{
    int i = a;
    for (; i + 64 <= b; i += 64) {
        float bm = max64(x + i);
        m = bm > m ? bm : m;
    }
    for (; i < b; i++) m = x[i] > m ? x[i] : m;
    return m;
}

typedef struct {
    kgr_cand *h;
    int n, k;
} kgr_heap;

static inline void heap_offer(kgr_heap *hp, float v, int32_t id)
{
    if (!(v > -INFINITY)) return; /* NaN, -inf */
    kgr_cand c = {clampinf(v), 0, id, 0};
    if (hp->n < hp->k) {
        hp->h[hp->n] = c;
        sift_up(hp->h, hp->n++);
    } else if (better(&c, &hp->h[0])) {
        hp->h[0] = c;
        sift_down(hp->h, hp->n, 0);
    }
}

static void heap_range(kgr_heap *hp, const float *x, int a, int b)
{
    int i = a;
    while (i < b && hp->n < hp->k) heap_offer(hp, x[i], i), i++;
    /* ids only grow here, so a value equal to the worst kept ranks below it */
    for (; i + 64 <= b; i += 64)
        if (clampinf(max64(x + i)) > hp->h[0].v)
            for (int j = i; j < i + 64; j++)
                if (x[j] > hp->h[0].v) heap_offer(hp, x[j], j);
    for (; i < b; i++) heap_offer(hp, x[i], i);
}

/* An unsigned key in the order of the floats (not NaN). */
static inline uint32_t fkey(float v)
{
    union { float f; uint32_t u; } b = {v};
    uint32_t neg = 0u - (b.u >> 31); /* all ones for negative v: flip all bits, else only the sign */
    return b.u ^ (neg | 0x80000000u);
}

static void radix_range(uint32_t (*cnt)[1 << KGR_RADIX_BITS], const float *x, int a, int b)
{
    for (int i = a; i < b; i++)
        if (x[i] > -INFINITY) cnt[i & 3][fkey(clampinf(x[i])) >> (32 - KGR_RADIX_BITS)]++;
}

/* appends the tokens of x[a..b) whose key is >= kmin */
static int gather_range(kgr_cand *c, int nc, const float *x, int a, int b, uint32_t kmin)
{
    for (int i = a; i < b; i++)
        if (x[i] > -INFINITY && fkey(clampinf(x[i])) >= kmin) c[nc++] = (kgr_cand){clampinf(x[i]), 0, i, 0};
    return nc;
}

/* Sorts ids[0..n) ascending (shell sort; n <= KGR_HIST). */
static void sort_ids(int32_t *ids, int n)
{
    static const int gaps[] = {57, 23, 10, 4, 1};
    for (int g = 0; g < 5; g++) {
        int gap = gaps[g];
        for (int i = gap; i < n; i++) {
            int32_t t = ids[i];
            int j = i;
            for (; j >= gap && ids[j - gap] > t; j -= gap) ids[j] = ids[j - gap];
            ids[j] = t;
        }
    }
}

/* The distinct tokens of the window and their penalized logits. */
static void build_penalty(kgr_sampler *s, const float *logits)
{
    s->n_pen = 0;
    if (s->penalty == 1.0f || s->last_n == 0) return;
    int w = s->hist_n < s->last_n ? s->hist_n : s->last_n;
    for (int i = 0; i < w; i++) s->pen_id[i] = s->hist[(s->hist_pos - 1 - i + KGR_HIST) % KGR_HIST];
    sort_ids(s->pen_id, w);
    int n = 0;
    for (int i = 0; i < w; i++)
        if (n == 0 || s->pen_id[i] != s->pen_id[n - 1]) s->pen_id[n++] = s->pen_id[i];
    for (int i = 0; i < n; i++) {
        float l = logits[s->pen_id[i]];
        s->pen_v[i] = l > 0 ? l / s->penalty : l * s->penalty;
    }
    s->n_pen = n;
}

/* ───────────────────────────── the chain ───────────────────────────── */

/* From here on candidates are ranked by probability: v := e, so `better` and
 * the sorts order them by (e descending, id ascending). */
static void rank_by_prob(kgr_cand *c, int n)
{
    for (int i = 0; i < n; i++) c[i].v = c[i].e;
}

/* top-p over c[0..n) in any order: the smallest prefix (by probability)
 * whose sum reaches target; all n if they do not reach it. The mass is first
 * histogrammed by the float bits of e (monotone: KGR_NBUCKET buckets,
 * 2^-KGR_BUCKET_LOG2 of an octave each), which finds the one bucket where
 * the running sum crosses target; only that bucket is sorted. Reorders c.
 * Returns the prefix's length. */
static int top_p_cut(kgr_sampler *s, kgr_cand *c, int n, double target)
{
    double cum = 0;
    int nh = 0, nm = n;
    if (n > 64) {
        double *mass = s->mass;
        memset(mass, 0, sizeof s->mass);
        for (int i = 0; i < n; i++) {
            union { float f; int32_t i; } u = {c[i].e};
            int32_t d = (0x3f800000 - u.i) >> (23 - KGR_BUCKET_LOG2); /* e = 1: 0; e halves: +scale */
            int b = d < 0 ? 0 : d > KGR_NBUCKET ? KGR_NBUCKET : d;
            c[i].b = b;
            mass[b] += c[i].e;
        }
        int bs = 0;
        for (; bs <= KGR_NBUCKET; bs++) {
            if (cum + mass[bs] >= target) break;
            cum += mass[bs];
        }
        if (bs > KGR_NBUCKET) return n;
        /* c[0..nh): buckets before bs (all kept); c[nh..nm): bucket bs */
        for (int i = 0; i < n; i++)
            if (c[i].b < bs) cswap(&c[i], &c[nh++]);
        nm = nh;
        for (int i = nh; i < n; i++)
            if (c[i].b == bs) cswap(&c[i], &c[nm++]);
    }
    sort_best_first(c + nh, nm - nh);
    for (int i = nh; i < nm; i++) {
        cum += c[i].e;
        if (cum >= target) return i + 1;
    }
    return nm;
}

/* Keeps the candidates with e >= thr, in order; returns how many. */
static int keep_min(kgr_cand *c, int n, double thr)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        if ((double)c[i].e >= thr) c[k++] = c[i];
    return k;
}

static double uniform01(kgr_sampler *s) { return (double)(rng_next(s->rng) >> 11) * 0x1p-53; }

static int32_t draw_list(kgr_sampler *s, const kgr_cand *c, int n)
{
    double sum = 0;
    for (int i = 0; i < n; i++) sum += c[i].e;
    double u = uniform01(s) * sum, cum = 0;
    int last = 0;
    for (int i = 0; i < n; i++) {
        if (c[i].e > 0) last = i;
        cum += c[i].e;
        if (u < cum) return c[i].id;
    }
    return c[last].id; /* rounding: u landed past the end */
}

/* Every token, nothing restricting them: e[] for all n, with sums and maxima
 * per 64-token block; returns the total. */
static double dense_exp(kgr_sampler *s, const float *logits, float vmax)
{
    const int n = s->n_vocab;
    float *e = s->e;
    v4f vm = splat(vmax), vi = splat(s->inv_temp), fmax = splat(FLT_MAX);
    int i = 0;
    for (; i + 8 <= n; i += 8) { /* two at a time: kexp4 is one long dependency chain */
        v4f x0 = load4(logits + i), x1 = load4(logits + i + 4);
        x0 = vsel(x0 > fmax, fmax, x0);
        x1 = vsel(x1 > fmax, fmax, x1);
        v4f r0 = kexp4((x0 - vm) * vi), r1 = kexp4((x1 - vm) * vi);
        memcpy(e + i, &r0, sizeof r0);
        memcpy(e + i + 4, &r1, sizeof r1);
    }
    for (; i < n; i++) e[i] = kexp((clampinf(logits[i]) - vmax) * s->inv_temp);
    for (int j = 0; j < s->n_pen; j++) e[s->pen_id[j]] = kexp((clampinf(s->pen_v[j]) - vmax) * s->inv_temp);

    double z = 0;
    int b = 0;
    for (i = 0; i + 64 <= n; i += 64, b++) {
        v4f a0 = splat(0), a1 = a0, m0 = a0, m1 = a0;
        for (int j = i; j < i + 64; j += 8) {
            v4f x0 = load4(e + j), x1 = load4(e + j + 4);
            a0 += x0;
            a1 += x1;
            m0 = vmax_nn(m0, x0);
            m1 = vmax_nn(m1, x1);
        }
        a0 += a1;
        s->bsum[b] = ((double)a0[0] + (double)a0[1]) + ((double)a0[2] + (double)a0[3]);
        s->bmax[b] = hmax(vmax_nn(m0, m1));
        z += s->bsum[b];
    }
    if (i < n) {
        double t = 0;
        float m = 0;
        for (; i < n; i++) t += e[i], m = e[i] > m ? e[i] : m;
        s->bsum[b] = t;
        s->bmax[b] = m;
        z += t;
    }
    return z;
}

/* The tokens with e >= thr (dense_exp's e) into s->c; *sum: their total. */
static int collect(kgr_sampler *s, float thr, double *sum)
{
    const int n = s->n_vocab;
    int nc = 0;
    double t = 0;
    for (int b = 0, nb = (n + 63) / 64; b < nb; b++) {
        if (!(s->bmax[b] >= thr)) continue;
        for (int i = b * 64, end = i + 64 < n ? i + 64 : n; i < end; i++)
            if (s->e[i] >= thr) {
                s->c[nc++] = (kgr_cand){s->e[i], s->e[i], i, 0};
                t += s->e[i];
            }
    }
    *sum = t;
    return nc;
}

/* Draws from e[] over all tokens (dense_exp's sums): the block, then the token. */
static int32_t draw_dense(kgr_sampler *s, double z)
{
    const int n = s->n_vocab, nb = (n + 63) / 64;
    double u = uniform01(s) * z, cum = 0;
    int found = -1, lastb = 0;
    for (int b = 0; b < nb; b++) {
        if (u < cum + s->bsum[b]) {
            found = b;
            break;
        }
        cum += s->bsum[b];
        if (s->bsum[b] > 0) lastb = b;
    }
    int b = found >= 0 ? found : lastb, lo = b * 64, hi = lo + 64 < n ? lo + 64 : n, last = lo;
    for (int i = lo; i < hi; i++) {
        if (s->e[i] > 0) last = i;
        cum += s->e[i];
        if (found >= 0 && u < cum) return i;
    }
    return last; /* rounding: u landed past the end, or past the block's tokens */
}

/* ────────────────────────────── the API ────────────────────────────── */

int kgr_sampler_init(kgr_sampler **out, int n_vocab, char *err, size_t errcap)
{
    *out = NULL;
    if (n_vocab < 1) return kgr_msg(err, errcap, "sampler: bad vocabulary size %d", n_vocab);
    kgr_sampler *s = calloc(1, sizeof *s);
    if (!s) return kgr_msg(err, errcap, "sampler: out of memory");
    size_t nb = (size_t)n_vocab / 64 + 1;
    s->c = malloc((size_t)n_vocab * sizeof *s->c);
    s->e = malloc((size_t)n_vocab * sizeof *s->e);
    s->bsum = malloc(nb * sizeof *s->bsum);
    s->bmax = malloc(nb * sizeof *s->bmax);
    if (!s->c || !s->e || !s->bsum || !s->bmax) {
        kgr_sampler_free(s);
        return kgr_msg(err, errcap, "sampler: out of memory for %d candidates", n_vocab);
    }
    s->n_vocab = n_vocab;
    kgr_sampler_set(s, NULL);
    *out = s;
    return 0;
}

void kgr_sampler_set(kgr_sampler *s, const kgm_sampler_params *p)
{
    kgm_sampler_params d = {.temp = 0, .top_k = 0, .top_p = 1, .min_p = 0, .repeat_penalty = 1,
                            .repeat_last_n = 64, .seed = 0};
    if (!p) p = &d;
    float inv = 1.0f / p->temp;
    s->greedy = !(p->temp > 0) || !(inv <= FLT_MAX);
    s->inv_temp = s->greedy ? 1.0f : inv;
    s->top_k = p->top_k <= 0 || p->top_k > s->n_vocab ? s->n_vocab : p->top_k;
    s->top_p = p->top_p < 1 ? (double)p->top_p : 1.0; /* NaN: off */
    s->min_p = p->min_p > 0 ? (p->min_p < 1 ? (double)p->min_p : 1.0) : 0.0;
    s->penalty = p->repeat_penalty > 0 && p->repeat_penalty <= FLT_MAX ? p->repeat_penalty : 1.0f;
    s->last_n = p->repeat_last_n < 0 || p->repeat_last_n > KGR_HIST ? KGR_HIST : p->repeat_last_n;
    s->seed = p->seed;
    rng_seed(s);
}

void kgr_sampler_reset(kgr_sampler *s)
{
    s->hist_n = s->hist_pos = 0;
    rng_seed(s); /* the same prompt after a reset gives the same text */
}

void kgr_sampler_accept(kgr_sampler *s, int32_t tok)
{
    if (tok < 0 || tok >= s->n_vocab) return;
    s->hist[s->hist_pos] = tok;
    s->hist_pos = (s->hist_pos + 1) % KGR_HIST;
    if (s->hist_n < KGR_HIST) s->hist_n++;
}

int32_t kgr_sample(kgr_sampler *s, const float *logits)
{
    const int n = s->n_vocab;
    const float it = s->inv_temp;
    kgr_cand *c = s->c;
    build_penalty(s, logits);

    /* the ranges of tokens between the penalized ones */
#define FOR_RANGES(A, B, BODY)                                       \
    for (int j_ = 0, A = 0; j_ <= s->n_pen; j_++) {                  \
        int B = j_ < s->n_pen ? s->pen_id[j_] : n;                    \
        BODY;                                                         \
        A = B + 1;                                                    \
    }

    int32_t tok = -1;
    int nc;
    if (s->greedy) {
        float best = -INFINITY;
        FOR_RANGES(a, b, argmax_range(logits, a, b, &best, &tok));
        for (int i = 0; i < s->n_pen; i++) {
            float v = s->pen_v[i];
            if (v > best || (v == best && v > -INFINITY && s->pen_id[i] < tok)) best = v, tok = s->pen_id[i];
        }
        goto done;
    }

    if (s->top_k <= KGR_HEAP_MAX) {
        /* the k best, best first */
        kgr_heap hp = {c, 0, s->top_k};
        FOR_RANGES(a, b, heap_range(&hp, logits, a, b));
        for (int i = 0; i < s->n_pen; i++) heap_offer(&hp, s->pen_v[i], s->pen_id[i]);
        nc = hp.n;
        if (nc == 0) return -1;
        heapsort_best_first(c, nc);
        float vmax = c[0].v;
        double z = 0;
        for (int i = 0; i < nc; i++) z += c[i].e = kexp((c[i].v - vmax) * it);
        rank_by_prob(c, nc);
        if (s->top_p < 1) nc = top_p_cut(s, c, nc, s->top_p * z);
    } else if (s->top_k < n) {
        /* the k best, in any order: a histogram of the keys' top bits finds
         * the bucket that holds the k-th best; gather that bucket and the
         * ones above; quickselect among them */
        uint32_t(*cnt)[1 << KGR_RADIX_BITS] = s->radix;
        memset(cnt, 0, sizeof s->radix);
        FOR_RANGES(a, b, radix_range(cnt, logits, a, b));
        for (int i = 0; i < s->n_pen; i++)
            if (s->pen_v[i] > -INFINITY) cnt[0][fkey(clampinf(s->pen_v[i])) >> (32 - KGR_RADIX_BITS)]++;
        uint32_t above = 0;
        int kb = (1 << KGR_RADIX_BITS) - 1;
        for (; kb > 0; kb--) {
            uint32_t here = cnt[0][kb] + cnt[1][kb] + cnt[2][kb] + cnt[3][kb];
            if (above + here >= (uint32_t)s->top_k) break;
            above += here;
        }
        uint32_t kmin = (uint32_t)kb << (32 - KGR_RADIX_BITS);
        nc = 0;
        FOR_RANGES(a, b, nc = gather_range(c, nc, logits, a, b, kmin));
        for (int i = 0; i < s->n_pen; i++)
            if (s->pen_v[i] > -INFINITY && fkey(clampinf(s->pen_v[i])) >= kmin)
                c[nc++] = (kgr_cand){clampinf(s->pen_v[i]), 0, s->pen_id[i], 0};
        if (nc == 0) return -1;
        if (s->top_k < nc) {
            select_best(c, nc, s->top_k);
            nc = s->top_k;
        }
        float vmax = c[0].v;
        for (int i = 1; i < nc; i++) vmax = c[i].v > vmax ? c[i].v : vmax;
        double z = 0;
        for (int i = 0; i < nc; i++) z += c[i].e = kexp((c[i].v - vmax) * it);
        rank_by_prob(c, nc);
        if (s->top_p < 1) nc = top_p_cut(s, c, nc, s->top_p * z);
    } else {
        /* every token */
        float vmax = -INFINITY;
        FOR_RANGES(a, b, vmax = max_range(logits, a, b, vmax));
        for (int i = 0; i < s->n_pen; i++) vmax = s->pen_v[i] > vmax ? s->pen_v[i] : vmax;
        if (!(vmax > -INFINITY)) return -1;
        double z = dense_exp(s, logits, clampinf(vmax));
        if (s->top_p >= 1 && s->min_p <= 0) {
            tok = draw_dense(s, z);
            goto done;
        }
        /* Only tokens with e >= thr matter: min-p drops the others, and top-p
         * never reaches them once the tokens above thr hold top_p * z (or
         * when their total is below (1 - top_p) * z: n * safe is half that).
         * Try thresholds from high to low: usually the first one is enough. */
        double target = s->top_p * z, got = 0;
        float mp = (float)s->min_p, lowest = mp;
        if (s->top_p < 1) {
            float safe = (float)(0.5 * (1 - s->top_p) * z / n);
            lowest = safe > mp ? safe : mp;
        }
        for (float thr = s->top_p < 1 ? 0x1p-8f : mp;; thr *= 0x1p-8f) {
            if (thr <= lowest) thr = lowest;
            nc = collect(s, thr, &got);
            if (got >= target || thr == lowest) break;
        }
        if (s->top_p < 1) nc = top_p_cut(s, c, nc, target);
    }
#undef FOR_RANGES

    if (s->min_p > 0) nc = keep_min(c, nc, s->min_p); /* p_max's e is exp(0) = 1 */
    tok = draw_list(s, c, nc);

done:
    if (tok >= 0) kgr_sampler_accept(s, tok);
    return tok;
}

void kgr_sampler_free(kgr_sampler *s)
{
    if (!s) return;
    free(s->c);
    free(s->e);
    free(s->bsum);
    free(s->bmax);
    free(s);
}
