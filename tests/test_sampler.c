/*
 * test_sampler.c — the model runtime's sampler (runtime/model/sampler.c)
 * against references written here: greedy is the argmax computed by the test
 * (lowest id on ties, NaN skipped); top_k = 1 is greedy at any temperature;
 * the same seed gives the same tokens, and the exact tokens for equal logits
 * are those an independent Python splitmix64 + xoshiro256** gives; draws
 * follow the distribution the test computes in double precision after each
 * filter (temperature, top-k, top-p, min-p, penalty): excluded tokens never
 * drawn, likely ones within 6 sigma of their expected counts, and a
 * chi-square over all — on the small (heap), top-k (histogram + quickselect)
 * and whole-vocabulary (dense exp, top-p histogram) paths; top-p and min-p
 * edges; the repetition penalty applies once per distinct token in the
 * window; NaN and infinite logits; out-of-range parameters.
 */
#include "kt.h"
#include "rt.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static kgr_sampler *mk(int n)
{
    char err[256];
    kgr_sampler *s = NULL;
    if (kgr_sampler_init(&s, n, err, sizeof err)) {
        kt_fail(__FILE__, __LINE__, "kgr_sampler_init(%d): %s", n, err);
        return NULL;
    }
    return s;
}

static kgm_sampler_params prm(float temp, int top_k, float top_p, float min_p)
{
    return (kgm_sampler_params){.temp = temp, .top_k = top_k, .top_p = top_p, .min_p = min_p,
                                .repeat_penalty = 1, .repeat_last_n = 64, .seed = 1234};
}

static uint64_t rs = 88172645463325252u;
static double urand(void) /* xorshift64, the test's own */
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (double)(rs >> 11) * 0x1p-53;
}

static int ref_argmax(const float *l, int n)
{
    int b = -1;
    for (int i = 0; i < n; i++)
        if (!isnan(l[i]) && l[i] > -INFINITY && (b < 0 || l[i] > l[b])) b = i;
    return b;
}

/* ── the reference distribution: sort, cut, softmax in double ── */

static const float *cmp_l;
static int cmp_rank(const void *a, const void *b)
{
    int i = *(const int *)a, j = *(const int *)b;
    if (cmp_l[i] != cmp_l[j]) return cmp_l[i] > cmp_l[j] ? -1 : 1;
    return i - j;
}

/* p[n]: the probability of each token after the chain (finite logits only). */
static void ref_dist(const float *l, int n, double temp, int top_k, double top_p, double min_p, double *p)
{
    int *ord = malloc(sizeof(int) * (size_t)n), m = 0;
    for (int i = 0; i < n; i++) {
        p[i] = 0;
        if (isfinite(l[i])) ord[m++] = i;
    }
    cmp_l = l;
    qsort(ord, (size_t)m, sizeof(int), cmp_rank);
    if (top_k > 0 && top_k < m) m = top_k;
    double z = 0;
    for (int r = 0; r < m; r++) z += p[ord[r]] = exp(((double)l[ord[r]] - l[ord[0]]) / temp);
    int keep = m;
    if (top_p < 1) {
        double cum = 0;
        for (int r = 0; r < m; r++) {
            cum += p[ord[r]] / z;
            if (cum >= top_p) {
                keep = r + 1;
                break;
            }
        }
    }
    for (int r = 0; r < m; r++)
        if (r >= keep || (min_p > 0 && p[ord[r]] < min_p * p[ord[0]])) p[ord[r]] = 0;
    double s = 0;
    for (int r = 0; r < m; r++) s += p[ord[r]];
    for (int r = 0; r < m; r++) p[ord[r]] /= s;
    free(ord);
}

/* Counts against draws * p, three ways: a token with p == 0 is never drawn;
 * a token expected >= 10 times is within 6 sigma (+2); and a chi-square
 * over all tokens (those expected < 5 times pooled, in id order, into bins
 * expected >= 5 times) below its 1e-7 critical value (Wilson-Hilferty).
 * Returns the number of failed checks. */
static int counts_off(const int *cnt, const double *p, int n, int draws, bool report, const char *what)
{
    int bad = 0, bins = 0, bc = 0;
    double chi = 0, be = 0;
    for (int i = 0; i < n; i++) {
        double e = draws * p[i];
        bool off = p[i] == 0 ? cnt[i] != 0 : e >= 10 && fabs(cnt[i] - e) > 6 * sqrt(e * (1 - p[i])) + 2;
        if (off) {
            if (report && bad < 5)
                kt_fail(__FILE__, __LINE__, "%s: token %d drawn %d times of %d, expected %.1f", what, i, cnt[i], draws, e);
            bad++;
        }
        be += e, bc += cnt[i];
        if (be >= 5) {
            chi += (bc - be) * (bc - be) / be;
            bins++;
            be = 0, bc = 0;
        }
    }
    if (be > 0 && bins > 0) chi += (bc - be) * (bc - be) / be; /* the rest: one more small bin */
    if (bins >= 2) {
        double df = bins - 1, h = 2 / (9 * df), crit = df * pow(1 - h + 5.2 * sqrt(h), 3);
        if (chi > crit) {
            if (report) kt_fail(__FILE__, __LINE__, "%s: chi-square %.1f over %d bins, critical %.1f", what, chi, bins, crit);
            bad++;
        }
    }
    return bad;
}

/* Draws `draws` tokens and checks them with counts_off. */
static int dist_off(kgr_sampler *s, const float *l, int n, const double *p, int draws, bool report, const char *what)
{
    int *cnt = calloc((size_t)n, sizeof(int)), range = 0;
    for (int d = 0; d < draws; d++) {
        int32_t t = kgr_sample(s, l);
        if (t < 0 || t >= n) range++;
        else cnt[t]++;
    }
    if (report) KT_CHECKF(range == 0, "%s: %d draws out of range", what, range);
    int bad = counts_off(cnt, p, n, draws, report, what);
    free(cnt);
    return bad;
}

static void check_dist(kgr_sampler *s, const float *l, int n, double temp, int top_k, double top_p, double min_p,
                       int draws, const char *what)
{
    double *p = malloc(sizeof(double) * (size_t)n);
    kgm_sampler_params sp = prm((float)temp, top_k, (float)top_p, (float)min_p);
    kgr_sampler_set(s, &sp);
    ref_dist(l, n, temp, top_k, (float)top_p, (float)min_p, p);
    dist_off(s, l, n, p, draws, true, what);
    free(p);
}

/* ───────────────────────────── tests ───────────────────────────── */

KT_TEST(sampler_init_errors)
{
    char err[128] = "";
    static kgr_sampler *const junk = (kgr_sampler *)1;
    kgr_sampler *s = junk;
    KT_CHECK(kgr_sampler_init(&s, 0, err, sizeof err) == -1 && s == NULL && strstr(err, "sampler"));
    s = junk;
    KT_CHECK(kgr_sampler_init(&s, -5, err, sizeof err) == -1 && s == NULL);
    kgr_sampler_free(NULL);
}

KT_TEST(sampler_greedy_argmax)
{
    enum { N = 49152 };
    kgr_sampler *s = mk(N);
    KT_REQUIRE(s);
    float *l = malloc(sizeof(float) * N), *copy = malloc(sizeof(float) * N);
    rs = 0x9e3779b97f4a7c15u * 1u;
    const int ns[] = {7, 1000, N}; /* 1000 and 7: a tail after the 64-token blocks */
    for (int v = 0; v < 3; v++) {
        int n = ns[v];
        kgr_sampler *sv = v == 2 ? s : mk(n);
        KT_REQUIRE(sv);
        for (int it = 0; it < 40; it++) {
            for (int i = 0; i < n; i++) l[i] = (float)(urand() * 20 - 10);
            if (it % 4 == 1) { /* ties at the top: the lowest id wins (in one block, and apart) */
                int at = (int)(urand() * (n - 6));
                l[at + 5] = l[at + 3] = 10.5f;
                if (n > 80) l[(at + 70) % n] = 10.5f;
                for (int k = 0; k < 3; k++) l[(int)(urand() * n)] = 10.5f;
            }
            if (it % 4 == 2) /* NaN and -inf never win, even where larger would be */
                for (int k = 0; k < (n < 300 ? n / 3 : 100); k++) l[(int)(urand() * n)] = k % 2 ? NAN : -INFINITY;
            if (it % 4 == 3) l[n - 1] = 11; /* the last element */
            kgm_sampler_params sp = prm(it % 8 == 0 ? -1.0f : 0.0f, it % 3 ? 0 : 5, 0.5f, 0.1f); /* filters ignored */
            kgr_sampler_set(sv, &sp);
            memcpy(copy, l, sizeof(float) * (size_t)n);
            int32_t t = kgr_sample(sv, l);
            KT_CHECKF(t == ref_argmax(l, n), "n %d iteration %d: %d, argmax %d", n, it, t, ref_argmax(l, n));
            KT_CHECK(!memcmp(copy, l, sizeof(float) * (size_t)n)); /* logits untouched */
        }
        if (sv != s) kgr_sampler_free(sv);
    }
    kgr_sampler_set(s, NULL); /* the defaults: greedy */
    for (int i = 0; i < N; i++) l[i] = (float)urand();
    l[777] = 3;
    KT_CHECK(kgr_sample(s, l) == 777);
    /* all NaN / -inf: -1 */
    for (int i = 0; i < N; i++) l[i] = i % 2 ? NAN : -INFINITY;
    KT_CHECK(kgr_sample(s, l) == -1);
    kgm_sampler_params sp = prm(1, 0, 0.9f, 0);
    kgr_sampler_set(s, &sp);
    KT_CHECK(kgr_sample(s, l) == -1);
    /* +inf: the lowest such id; with temp > 0 only the infs, never NaN */
    for (int i = 0; i < N; i++) l[i] = (float)urand();
    l[40000] = l[30000] = INFINITY;
    l[100] = NAN;
    kgr_sampler_set(s, NULL);
    KT_CHECK(kgr_sample(s, l) == 30000);
    kgr_sampler_set(s, &sp);
    int n3 = 0, n4 = 0, other = 0;
    for (int d = 0; d < 400; d++) {
        int32_t t = kgr_sample(s, l);
        n3 += t == 30000, n4 += t == 40000, other += t != 30000 && t != 40000;
    }
    KT_CHECKF(other == 0 && n3 > 140 && n4 > 140, "+inf: %d, %d, other %d", n3, n4, other);
    free(l);
    free(copy);
    kgr_sampler_free(s);
}

KT_TEST(sampler_top_k1_is_greedy)
{
    rs = 0x9e3779b97f4a7c15u * 523u;
    const int ns[] = {7, 1000, 5000};
    for (int v = 0; v < 3; v++) {
        int n = ns[v];
        kgr_sampler *s = mk(n);
        KT_REQUIRE(s);
        float *l = malloc(sizeof(float) * (size_t)n);
        const float temps[] = {0.01f, 0.7f, 1, 3, 1000};
        int bad = 0;
        for (int it = 0; it < 50; it++) {
            for (int i = 0; i < n; i++) l[i] = (float)floor(urand() * 8); /* many ties */
            if (it % 5 == 0) l[(int)(urand() * n)] = NAN;
            kgm_sampler_params sp = prm(temps[it % 5], 1, it % 2 ? 0.3f : 1, it % 3 ? 0 : 0.5f);
            sp.seed = (uint64_t)it;
            kgr_sampler_set(s, &sp);
            if (kgr_sample(s, l) != ref_argmax(l, n)) bad++;
        }
        KT_CHECKF(bad == 0, "n_vocab %d: %d of 50 differ from the argmax", n, bad);
        free(l);
        kgr_sampler_free(s);
    }
}

KT_TEST(sampler_determinism)
{
    rs = 0x9e3779b97f4a7c15u * 662u;
    enum { N = 1000 };
    kgr_sampler *a = mk(N), *b = mk(N);
    KT_REQUIRE(a && b);
    float l[N];
    for (int i = 0; i < N; i++) l[i] = (float)(urand() * 4);
    kgm_sampler_params sp = prm(1, 0, 0.98f, 0);
    sp.repeat_penalty = 1.1f;
    int32_t sa[200], sb[200];
    kgr_sampler_set(a, &sp);
    kgr_sampler_set(b, &sp);
    for (int i = 0; i < 200; i++) sa[i] = kgr_sample(a, l), sb[i] = kgr_sample(b, l);
    KT_CHECK(!memcmp(sa, sb, sizeof sa));
    /* reset: history cleared and reseeded: the same sequence again */
    kgr_sampler_reset(a);
    int same = 0;
    for (int i = 0; i < 200; i++) same += kgr_sample(a, l) == sa[i];
    KT_CHECKF(same == 200, "after reset %d of 200 equal", same);
    /* another seed: another sequence */
    sp.seed += 1000003;
    kgr_sampler_set(b, &sp);
    kgr_sampler_reset(b);
    same = 0;
    for (int i = 0; i < 200; i++) same += kgr_sample(b, l) == sa[i];
    KT_CHECKF(same < 20, "another seed: %d of 200 equal", same);
    kgr_sampler_free(a);
    kgr_sampler_free(b);

    /* Equal logits: the draw is floor(u * n), u = (x >> 11) * 2^-53, x the
     * generator's outputs. Expected tokens from an independent Python
     * implementation of splitmix64 (seeding) and xoshiro256**. */
    static const struct {
        uint64_t seed;
        int n;
        int32_t tok[16];
    } gold[] = {
        {42, 1000, {83, 378, 680, 924, 991, 769, 719, 850, 761, 583, 682, 290, 801, 321, 711, 877}},
        {0xdeadbeefcafef00du, 7, {4, 0, 3, 3, 5, 5, 5, 5, 3, 5, 3, 5, 0, 1, 5, 6}},
    };
    for (int g = 0; g < 2; g++) {
        kgr_sampler *s = mk(gold[g].n);
        KT_REQUIRE(s);
        float *e = calloc((size_t)gold[g].n, sizeof(float));
        kgm_sampler_params q = prm(0.8f, 0, 1, 0);
        q.seed = gold[g].seed;
        kgr_sampler_set(s, &q);
        for (int i = 0; i < 16; i++) {
            int32_t t = kgr_sample(s, e);
            KT_CHECKF(t == gold[g].tok[i], "seed %llu draw %d: %d, want %d", (unsigned long long)gold[g].seed, i, t,
                      gold[g].tok[i]);
        }
        free(e);
        kgr_sampler_free(s);
    }
}

/* Small vocabulary (the heap path): temperature, top-k, top-p, min-p each
 * against the reference, and the reference has the power to tell them apart. */
KT_TEST(sampler_distribution_small)
{
    enum { N = 10, D = 30000 };
    static const float l[N] = {1.0f, 2.5f, -0.5f, 2.0f, 0.3f, 2.5f, -3.0f, 1.6f, 0.0f, 0.9f};
    kgr_sampler *s = mk(N);
    KT_REQUIRE(s);
    check_dist(s, l, N, 1.0, 0, 1, 0, D, "temp 1");
    check_dist(s, l, N, 2.0, 0, 1, 0, D, "temp 2");
    check_dist(s, l, N, 0.5, 0, 1, 0, D, "temp 0.5");
    /* temp 2 sampled must not pass as temp 1 */
    double p1[N];
    ref_dist(l, N, 1.0, 0, 1, 0, p1);
    kgm_sampler_params sp = prm(2, 0, 1, 0);
    kgr_sampler_set(s, &sp);
    KT_CHECK(dist_off(s, l, N, p1, D, false, "") > 0);
    /* top-k 3: tokens 1 and 5 (tied at 2.5) and 3 */
    check_dist(s, l, N, 1.0, 3, 1, 0, D, "top_k 3");
    check_dist(s, l, N, 0.8, 4, 1, 0, D, "top_k 4 temp 0.8");
    /* top-k through a tie: 2 of the 3 equal ones, the lower ids */
    static const float eq[N] = {0, 1, 1, 0, 1, 0, 0, 0, 0, 1};
    check_dist(s, eq, N, 1.0, 3, 1, 0, D, "top_k 3 through ties");
    /* top-p: cut halfway between two cumulative sums (tokens in rank order) */
    double p[N];
    ref_dist(l, N, 1.0, 0, 1, 0, p);
    int ord[N];
    for (int i = 0; i < N; i++) ord[i] = i;
    cmp_l = l;
    qsort(ord, N, sizeof(int), cmp_rank);
    double cum[N], c = 0;
    for (int r = 0; r < N; r++) cum[r] = c += p[ord[r]];
    for (int r = 0; r < 5; r++) {
        double tp = (cum[r] + cum[r + 1]) / 2;
        char what[64];
        snprintf(what, sizeof what, "top_p %.3f (keeps %d)", tp, r + 2);
        check_dist(s, l, N, 1.0, 0, tp, 0, D, what);
    }
    check_dist(s, l, N, 1.0, 0, 0.0, 0, D, "top_p 0 (the best token)");
    check_dist(s, l, N, 1.5, 0, (cum[2] + cum[3]) / 2, 0, D, "top_p at temp 1.5");
    /* min-p: thresholds between the probability ratios p_i / p_max */
    const double ratios[] = {0.5, 0.3, 0.1, 0.02};
    for (int k = 0; k < 4; k++) {
        char what[64];
        snprintf(what, sizeof what, "min_p %.2f", ratios[k]);
        check_dist(s, l, N, 1.0, 0, 1, ratios[k], D, what);
    }
    /* an exact min-p edge: p_1 / p_max = e^-1 at temp 1 */
    static const float mp[4] = {1, 0, -0.01f, 0.01f};
    kgr_sampler *s4 = mk(4);
    KT_REQUIRE(s4);
    check_dist(s4, mp, 4, 1.0, 0, 1, 0.3679, D, "min_p e^-1 edge"); /* keeps 0 and 3 (ratio 0.3716 > 0.3679 > 0.3642) */
    /* min-p edges to 2e-5: p_max * min_p * e^(+-2e-5), at several ratios
     * (also checks that exp is that accurate) */
    const double mps[] = {0.9, 0.6, 0.3, 0.12, 0.05};
    for (int k = 0; k < 5; k++) {
        float me[6] = {0, (float)(log(mps[k]) + 2e-5), (float)(log(mps[k]) - 2e-5), (float)(log(mps[k]) / 2),
                       (float)(log(mps[k]) - 1), 0.5f * (float)log(mps[k])};
        char what[64];
        snprintf(what, sizeof what, "min_p %.2f edge", mps[k]);
        kgr_sampler *s6 = mk(6);
        KT_REQUIRE(s6);
        check_dist(s6, me, 6, 1.0, 0, 1, mps[k], D / 2, what);
        kgr_sampler_free(s6);
    }
    /* all filters */
    check_dist(s, l, N, 0.7, 6, 0.9, 0.05, D, "temp 0.7 top_k 6 top_p 0.9 min_p 0.05");
    kgr_sampler_free(s4);
    kgr_sampler_free(s);
}

/* Large vocabularies: top-p over all (the histogram path), top-k above the
 * heap size (quickselect), min-p alone, and ties at the top-k edge. */
KT_TEST(sampler_distribution_large)
{
    rs = 0x9e3779b97f4a7c15u * 32u;
    enum { N = 4096 };
    kgr_sampler *s = mk(N);
    KT_REQUIRE(s);
    float *l = malloc(sizeof(float) * N);
    /* a head of 12 likely tokens at random places; a long tail with ~45% of
     * the mass: a top-p cut that forgot the tail's mass would keep 2 tokens
     * for top_p 0.5, not 7 */
    for (int i = 0; i < N; i++) l[i] = (float)(urand() * 3 - 3);
    for (int k = 0; k < 12; k++) l[(int)(urand() * N)] = 3.0f + (float)k * 0.35f;
    l[100] = NAN;
    l[200] = -INFINITY;
    check_dist(s, l, N, 1.0, 0, 0.5, 0, 3000, "n 4096 top_p 0.5");
    check_dist(s, l, N, 1.3, 0, 0.9, 0, 1500, "n 4096 top_p 0.9 temp 1.3");
    check_dist(s, l, N, 1.0, 0, 1, 0.2, 3000, "n 4096 min_p 0.2");
    check_dist(s, l, N, 1.0, 2000, 0.45, 0, 2000, "n 4096 top_k 2000 top_p 0.45");
    check_dist(s, l, N, 0.9, 20, 0.8, 0.01, 3000, "n 4096 top_k 20 top_p 0.8 min_p 0.01");
    /* a flat region around the top-p cut: the histogram path with every
     * bucket near the cut populated */
    {
        float *f = malloc(sizeof(float) * N);
        for (int i = 0; i < N; i++) f[i] = (float)(urand() * 4);
        check_dist(s, f, N, 1.0, 0, 0.6, 0, 2000, "n 4096 flat top_p 0.6");
        check_dist(s, f, N, 0.5, 0, 0.3, 0, 3000, "n 4096 flat top_p 0.3 temp 0.5");
        free(f);
    }
    /* all filters off, over everything: compare the head's counts only
     * (6 sigma per token), and that the tail is drawn as often as predicted */
    {
        double *p = malloc(sizeof(double) * N);
        kgm_sampler_params sp = prm(1, 0, 1, 0);
        kgr_sampler_set(s, &sp);
        ref_dist(l, N, 1.0, 0, 1, 0, p);
        double tail = 0;
        for (int i = 0; i < N; i++) tail += l[i] < 1 ? p[i] : 0;
        int nt = 0, D = 6000;
        for (int d = 0; d < D; d++) nt += l[kgr_sample(s, l)] < 1;
        double sd = sqrt(D * tail * (1 - tail));
        KT_CHECKF(fabs(nt - D * tail) < 6 * sd, "tail drawn %d of %d, expected %.0f", nt, D, D * tail);
        free(p);
    }
    /* top-k over distinct random logits, nearly flat after temp 50: every
     * token of the k best drawn a few times, no other (heap and quickselect) */
    {
        kgr_sampler *s2 = mk(2048);
        KT_REQUIRE(s2);
        for (int i = 0; i < 2048; i++) l[i] = (float)(urand() * 8);
        check_dist(s2, l, 2048, 50, 500, 1, 0, 3000, "n 2048 top_k 500 temp 50");
        check_dist(s2, l, 2048, 50, 1000, 1, 0, 4000, "n 2048 top_k 1000 temp 50");
        check_dist(s2, l, 2048, 1, 100, 1, 0, 2000, "n 2048 top_k 100");
        kgr_sampler_free(s2);
    }
    /* equal logits, top_k 2000 of 4096: only the ids < 2000 */
    for (int i = 0; i < N; i++) l[i] = 1;
    kgm_sampler_params sp = prm(1, 2000, 1, 0);
    kgr_sampler_set(s, &sp);
    int hi = 0;
    for (int d = 0; d < 3000; d++) hi += kgr_sample(s, l) >= 2000;
    KT_CHECKF(hi == 0, "top_k 2000 of equal logits: %d draws above id 1999", hi);
    free(l);
    kgr_sampler_free(s);

    /* a real-size vocabulary, top-p over all: no token outside the set */
    enum { V = 49152 };
    s = mk(V);
    KT_REQUIRE(s);
    l = malloc(sizeof(float) * V);
    for (int i = 0; i < V; i++) l[i] = (float)(urand() * 4 - 4);
    for (int k = 0; k < 30; k++) l[(int)(urand() * V)] = 8 + (float)k * 0.1f;
    check_dist(s, l, V, 1.0, 0, 0.7, 0, 400, "n 49152 top_p 0.7");
    free(l);
    kgr_sampler_free(s);
}

/* Penalty: greedy cases where applying it twice, or to a token outside the
 * window, changes the answer; and the distribution with penalized logits. */
KT_TEST(sampler_penalty)
{
    rs = 0x9e3779b97f4a7c15u * 945u;
    for (int big = 0; big < 2; big++) {
        int n = big ? 5000 : 8; /* the heap and gather paths (greedy scans segments either way) */
        kgr_sampler *s = mk(n);
        KT_REQUIRE(s);
        float *l = calloc((size_t)n, sizeof(float));
        for (int i = 0; i < n; i++) l[i] = -5;
        int a = big ? 4321 : 2, b = big ? 17 : 1, c = big ? 4999 : 7, d = big ? 0 : 4;
        l[a] = 3.0f;  /* /1.4 once: 2.14 > 2 ; twice: 1.53 < 2 */
        l[b] = 2.0f;
        kgm_sampler_params sp = prm(0, 0, 1, 0);
        sp.repeat_penalty = 1.4f;
        sp.repeat_last_n = 4;
        kgr_sampler_set(s, &sp);
        kgr_sampler_accept(s, a);
        kgr_sampler_accept(s, a);
        kgr_sampler_accept(s, a);
        int32_t t = kgr_sample(s, l);
        KT_CHECKF(t == a, "n %d: penalty applied more than once: %d", n, t);
        /* now the window (4) holds a x4: still once */
        t = kgr_sample(s, l);
        KT_CHECKF(t == a, "n %d: %d", n, t);
        /* negative logits are multiplied: -1 * 1.2 = -1.2 > -1.3 (once); -1.44 (twice) */
        for (int i = 0; i < n; i++) l[i] = -5;
        l[c] = -1.0f;
        l[d] = -1.3f;
        sp.repeat_penalty = 1.2f;
        kgr_sampler_set(s, &sp);
        kgr_sampler_reset(s);
        kgr_sampler_accept(s, c);
        kgr_sampler_accept(s, c);
        KT_CHECK(kgr_sample(s, l) == c);
        /* penalty 2 on [c] -> -2 < -1.3 */
        sp.repeat_penalty = 2;
        kgr_sampler_set(s, &sp);
        kgr_sampler_reset(s);
        kgr_sampler_accept(s, c);
        KT_CHECK(kgr_sample(s, l) == d);
        /* the window: c accepted 4 tokens ago is outside repeat_last_n = 3 */
        sp.repeat_last_n = 3;
        kgr_sampler_set(s, &sp);
        kgr_sampler_reset(s);
        kgr_sampler_accept(s, c);
        for (int k = 0; k < 3; k++) kgr_sampler_accept(s, b);
        KT_CHECK(kgr_sample(s, l) == c);
        /* repeat_last_n = 0: off */
        sp.repeat_last_n = 0;
        kgr_sampler_set(s, &sp);
        kgr_sampler_accept(s, c);
        KT_CHECK(kgr_sample(s, l) == c);
        /* sampled tokens enter the window: 1.0 vs 0.9, penalty 2, window 1: alternates */
        for (int i = 0; i < n; i++) l[i] = -5;
        l[a] = 1.0f;
        l[b] = 0.9f;
        sp.repeat_last_n = 1;
        kgr_sampler_set(s, &sp);
        kgr_sampler_reset(s);
        int alt = 0;
        for (int k = 0; k < 10; k++) alt += kgr_sample(s, l) == (k % 2 ? b : a);
        KT_CHECKF(alt == 10, "n %d: %d of 10 alternate", n, alt);
        /* the distribution: reference computed from logits penalized here */
        for (int i = 0; i < n; i++) l[i] = (float)(urand() * 6 - 3);
        int hist[] = {a, b, a, c, d, d, a};
        float *pl = malloc(sizeof(float) * (size_t)n);
        memcpy(pl, l, sizeof(float) * (size_t)n);
        int distinct[] = {a, b, c, d};
        for (int k = 0; k < 4; k++) pl[distinct[k]] = pl[distinct[k]] > 0 ? pl[distinct[k]] / 1.5f : pl[distinct[k]] * 1.5f;
        double *p = malloc(sizeof(double) * (size_t)n);
        ref_dist(pl, n, 1.0, 0, 1, 0, p);
        sp = prm(1, 0, 1, 0);
        sp.repeat_penalty = 1.5f;
        sp.repeat_last_n = 7;
        kgr_sampler_set(s, &sp);
        /* sampled tokens enter the window: refill it before every draw */
        int D = big ? 3000 : 40000, *cnt = calloc((size_t)n, sizeof(int));
        for (int k = 0; k < D; k++) {
            kgr_sampler_reset(s);
            for (int h = 0; h < 7; h++) kgr_sampler_accept(s, hist[h]);
            sp.seed = (uint64_t)k;
            kgr_sampler_set(s, &sp);
            cnt[kgr_sample(s, l)]++;
        }
        char what[64];
        snprintf(what, sizeof what, "n %d: the penalized distribution", n);
        counts_off(cnt, p, n, D, true, what);
        free(cnt);
        free(p);
        free(pl);
        free(l);
        kgr_sampler_free(s);
    }
}

/* Parameters outside their ranges do not crash and mean what sampler.c says. */
KT_TEST(sampler_odd_params)
{
    rs = 0x9e3779b97f4a7c15u * 897u;
    enum { N = 50 };
    kgr_sampler *s = mk(N);
    KT_REQUIRE(s);
    float l[N];
    for (int i = 0; i < N; i++) l[i] = (float)urand();
    l[33] = 2;
    kgm_sampler_params sp = prm(NAN, -5, NAN, NAN); /* NaN temp: greedy */
    sp.repeat_penalty = NAN;
    sp.repeat_last_n = 100000;
    kgr_sampler_set(s, &sp);
    KT_CHECK(kgr_sample(s, l) == 33);
    sp = prm(1e-40f, 0, 1, 0); /* 1/temp overflows: greedy */
    kgr_sampler_set(s, &sp);
    KT_CHECK(kgr_sample(s, l) == 33);
    sp = prm(1, 1000, -1, 5); /* top_p < 0: the best; min_p > 1: the best */
    kgr_sampler_set(s, &sp);
    int ok = 0;
    for (int k = 0; k < 50; k++) ok += kgr_sample(s, l) == 33;
    KT_CHECK(ok == 50);
    sp = prm(INFINITY, 0, 1, 0); /* infinite temperature: uniform over the finite */
    kgr_sampler_set(s, &sp);
    int cnt[N] = {0};
    for (int k = 0; k < 5000; k++) {
        int32_t t = kgr_sample(s, l);
        if (t >= 0 && t < N) cnt[t]++;
    }
    int lo = 5000, hi = 0;
    for (int i = 0; i < N; i++) lo = cnt[i] < lo ? cnt[i] : lo, hi = cnt[i] > hi ? cnt[i] : hi;
    KT_CHECKF(lo > 40 && hi < 160, "uniform: counts %d..%d, expected ~100", lo, hi);
    kgr_sampler_accept(s, -1); /* ignored */
    kgr_sampler_accept(s, N);
    kgr_sampler_free(s);
}
