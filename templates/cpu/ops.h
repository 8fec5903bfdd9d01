/*
 * ops.h — the non-product kernel templates (norms, RoPE, softmax, attention,
 * activations) and the vector helpers they share.
 *
 * Prototypes and flags come first; any C11 compiler may include them (the
 * tests do). The helpers below them use clang's vector extensions and are
 * seen only by clang, which compiles every template (natively for the tests
 * and to bitcode for the generator). Other templates may use them too:
 * kgt_vexp / kgt_vsilu / kgt_vgelu / kgt_verf / kgt_vgelu_erf (e.g. a
 * SwiGLU or GELU epilogue), kgt_vload_t
 * (f32 / f16 / Q8_0 rows).
 *
 * ── How the helpers vectorize ──
 * They work on kgt_vf, KGT_VF floats wide: one register of the ISA level
 * the file is compiled for (4 for x86-64-v2, 8 for v3, 16 for v4). A loop processes
 * whole vectors and then one partial vector, loaded zero- (or otherwise)
 * padded and stored back element by element, so there is no scalar tail to
 * keep in step with the vector body. Once the generator binds the shapes,
 * trip counts and tail lengths are constants and the loops unroll.
 * Float reductions keep KGT_NACC vector partial sums and add them in a fixed
 * order: the result depends on KGT_VF (the ISA level), never on the thread
 * count or the alignment of the data.
 */
#ifndef KGEN_OPS_H
#define KGEN_OPS_H

#include "kernel.h"

/* ── flags of kgt_rmsnorm / kgt_layernorm (bitwise or) ── */
enum {
    KGT_NORM_OUT_Q8 = 1, /* Y is kgt_q8a blocks (K a multiple of 32) instead of f32 */
    KGT_NORM_BIAS = 2,   /* layernorm only: y += beta[k] (p[3])                   */
};

/* ── modes of kgt_rope (GGUF / llama.cpp rope types) ── */
enum {
    KGT_ROPE_NORM = 0, /* rotate adjacent pairs (x[2i], x[2i+1])           */
    KGT_ROPE_NEOX = 2, /* rotate (x[i], x[i + n_rot/2])                    */
};

/* ── activations of kgt_glu ── */
enum {
    KGT_GLU_SILU = 0, /* silu(g) * u: SwiGLU                                */
    KGT_GLU_GELU = 1, /* gelu(g) * u, tanh approximation: GeGLU             */
};

/* ── modes of kgt_pool (sentence-transformers' pooling) ── */
enum {
    KGT_POOL_MEAN = 0,      /* mean over the valid rows                        */
    KGT_POOL_CLS = 1,       /* row 0                                           */
    KGT_POOL_MAX = 2,       /* max over the valid rows                         */
    KGT_POOL_MEAN_SQRT = 3, /* sum over the valid rows / sqrt(len)             */
};

/* Attention walks the cache in tiles of KGT_ATTN_KT positions (online
 * softmax); decode takes up to KGT_ATTN_QB query heads of a KV head
 * together (prefill: a vector's lanes of query rows). */
#define KGT_ATTN_QB 8
#define KGT_ATTN_KT 64

/* Decode splits each KV head's positions into chunks (flash-decoding): on a
 * grid of KGT_ATTN_CHUNK positions from 0, the chunk doubled, tripled, ...
 * as needed to keep at most KGT_ATTN_NCH of them (kgt_attn_decode). A
 * chunk's partial result per query head is kgt_attn_part_floats(head_dim)
 * floats of the scratch: o[head_dim] (unnormalized), max, sum, padding. */
#define KGT_ATTN_CHUNK 128
#define KGT_ATTN_NCH 32
#define KGT_ATTN_TBUF 4096 /* floats of decode's f32 copy of a K tile */

static inline int64_t kgt_attn_part_floats(int64_t head_dim) { return (head_dim + 2 + 15) / 16 * 16; }

/* the floats of kgt_attn_decode's scratch (p[5]) */
static inline int64_t kgt_attn_scratch_floats(int64_t n_head, int64_t head_dim)
{
    return n_head * KGT_ATTN_NCH * kgt_attn_part_floats(head_dim);
}

/* Bytes of one cached K or V row of D elements: cache_type KGT_F32 (4 D),
 * KGT_F16 (2 D) or KGT_Q8_0 (D / 32 GGUF Q8_0 blocks of 34 bytes: an f16
 * scale d and 32 int8 quants q, value q * d; D a multiple of 32). A KV
 * head's cache is n_ctx such rows, one after another. */
static inline int64_t kgt_kv_row_bytes(int64_t cache_type, int64_t D)
{
    return cache_type == KGT_Q8_0 ? D / 32 * KGT_SIZE_Q8_0 : cache_type == KGT_F16 ? 2 * D : 4 * D;
}

/*
 * Every template follows kernel.h's convention; threads split rows (the
 * outer dimension) with kgt_split, so with M=1 thread 0 does the whole row
 * and the others return at once, except where stated.
 *
 * kgt_rmsnorm    p[0] X f32[M][G][K], p[1] gamma f32[K], p[2] Y f32[M][G][K]
 *                or kgt_q8a[M][K/32] (KGT_NORM_OUT_Q8, G = 1: y quantized by
 *                quants.h's kgq_quantize32). Each of the M*G groups of K:
 *                y = x / sqrt(mean(x²) + eps) * gamma, the same gamma for
 *                every group (G = heads, K = head_dim: QK-norm; G defaults
 *                to 1). Y may alias X in f32 mode. Threads split the M*G
 *                groups.
 * kgt_layernorm  as rmsnorm, plus p[3] beta f32[K] (read only with
 *                KGT_NORM_BIAS): y = (x - mean) / sqrt(var + eps) * gamma (+ beta),
 *                var the biased (1/K) variance.
 * kgt_rope       p[0] X f32[M][n_head][head_dim], p[1] positions int32_t[M],
 *                p[2] Y like X (may be X: in place). Y = X with each head's
 *                first n_rot dims rotated: pair i (0 <= i < n_rot/2) turns by
 *                theta = pos * freq_scale * freq_base^(-2i/n_rot) / ff_i,
 *                angle computed in double (sin/cos from libm); dims from
 *                n_rot on are left alone. n_rot even, <= head_dim. ff = 1:
 *                p[3] f32[n_rot/2] holds the frequency factors ff_i (Llama
 *                3.1's rope_freqs); ff = 0 (the default): ff_i = 1, p[3]
 *                not read. Threads split (token, head) pairs, so decode
 *                splits too.
 * kgt_rope_kv    RoPE + KV-cache append for a fused Q/K/V product:
 *                p[0] QKV f32[M][n_head + 2 n_head_kv][head_dim] (Q heads,
 *                then K heads, then V heads), p[1] positions int32_t[M],
 *                p[2] Q out f32[M][n_head][head_dim] (rotated), p[3] K cache,
 *                p[4] V cache (each [n_head_kv][n_ctx] rows of head_dim
 *                values of cache_type, KGT_F32, KGT_F16 or KGT_Q8_0:
 *                kgt_kv_row_bytes): K rotated and V stored in row pos
 *                (clamped to [0, n_ctx-1]), converted as kgt_kv_store does. Rotation as kgt_rope,
 *                with p[5] its frequency factors (ff = 1). qk_norm = 1:
 *                before rotation, each Q head and each K head is RMS-
 *                normalized over head_dim as kgt_rmsnorm does it, with eps
 *                and gamma p[6] (Q) / p[7] (K), f32[head_dim]; V is stored
 *                as it is. Defaults: ff 0, qk_norm 0, eps 1e-6.
 *                head_dim <= 512. Threads split (token, Q-or-K head) pairs.
 * kgt_kv_store   the KV-cache append alone: p[0] K f32[M][n_head_kv][head_dim],
 *                p[1] V likewise, p[2] positions int32_t[M], p[3] K cache,
 *                p[4] V cache (as kgt_rope_kv's): token m's K and V rows go
 *                to cache row pos[m] (clamped to [0, n_ctx-1]), converted to
 *                cache_type (f16: round to nearest even; Q8_0: per block of
 *                32, d = amax / 127 stored as f16, q = x / d rounded to
 *                nearest even (d = 0: q = 0), as GGUF's Q8_0 quantizer).
 *                Threads split (token, KV head) pairs.
 * kgt_add        p[0] A f32[M][N], p[1] B likewise, p[2] Y = A + B (may be
 *                A or B). Threads split the M*N elements in 64-float chunks.
 * kgt_glu        p[0] G f32[M][N], p[1] U likewise, p[2] Y = act(G) * U (may
 *                be G or U); act KGT_GLU_SILU (SwiGLU) or KGT_GLU_GELU
 *                (GeGLU, kgt_gelu's tanh GELU). Threads as kgt_add.
 * kgt_softmax    p[0] X f32[M][N] in place: x = softmax(scale * x) per row
 *                (max-subtracted; rows must hold a finite value).
 * kgt_softcap    p[0] X f32[M][N], p[1] Y likewise (may be X): y = cap *
 *                tanh(x / cap) (final-logit softcapping), tanh as
 *                kgt_vtanh. Threads split the M*N elements in 64-float
 *                chunks.
 * kgt_attn_decode  one new token, attending to cache positions 0..n_kv-1:
 *                p[0] q f32[n_head][head_dim], p[1] K cache, p[2] V cache
 *                (each [n_head_kv][n_ctx] rows of cache_type: KGT_F32,
 *                KGT_F16 or KGT_Q8_0 (head_dim a multiple of 32), rows of
 *                kgt_kv_row_bytes; values read exactly: q8 as q * d),
 *                p[3] out f32[n_head][head_dim], p[4] int64_t *n_kv,
 *                p[5] scratch f32[kgt_attn_scratch_floats(n_head,
 *                head_dim)] or NULL, p[6] (read only where p[5] is not
 *                NULL) the phase: NULL the first, non-NULL the second.
 *                out and the scratch must not overlap q, the cache or
 *                each other.
 *                Query head h reads KV head h / (n_head / n_head_kv);
 *                scores are q·k * scale (scale 0, the default:
 *                1/sqrt(head_dim)). window > 0 (sliding window): only
 *                positions max(0, p - window + 1) .. p, p = n_kv - 1; 0 (the
 *                default): all. n_kv is clamped to [0, n_ctx]; n_kv = 0
 *                gives zeros.
 *                With a scratch, two calls (every thread's first, then
 *                every thread's second, a barrier between): the visible
 *                positions split into chunks (KGT_ATTN_CHUNK above, a
 *                grid that depends on n_kv and window only); the first
 *                call's threads split the (KV head, chunk) pairs, each
 *                pair's partial result (all its query heads) into the
 *                scratch, and the second's split the query heads, each
 *                merging its chunks in order into out. Where the positions
 *                lie in one chunk (always where n_kv <= KGT_ATTN_CHUNK)
 *                the first call writes out and the second does nothing.
 *                Without a scratch, one call: all the positions are one
 *                chunk. Threads split KV heads (a head's query heads go
 *                together); the result does not depend on the thread
 *                count.
 * kgt_attn_prefill  M new tokens at positions pos0..pos0+M-1 (p[4] int64_t
 *                *pos0), whose K/V are already in the cache; token i
 *                attends to positions 0..pos0+i (clamped to n_ctx - 1),
 *                with window > 0 only from pos0 + i - window + 1 on (cache
 *                tiles wholly before every row's window are not read).
 *                p[0] q f32[M][n_head][head_dim], p[3] out likewise; the
 *                rest (scale, window) as decode; p[5] is not read.
 *                Threads split (token, head) pairs, evening out the
 *                positions seen; the result does not depend on the thread
 *                count.
 * kgt_attn_enc  bidirectional attention of an encoder over B padded
 *                sequences of L rows: p[0] QKV f32[B*L][3*D], D = n_head *
 *                head_dim (a row: the q of every head, then k, then v; head
 *                h's q at columns h*head_dim.., its k at D + h*head_dim, its v
 *                at 2D + h*head_dim), p[1] lengths int32_t[B] (valid rows of
 *                each sequence, clamped to [0, L]), p[2] out f32[B*L][D]
 *                (head h at columns h*head_dim..; must not overlap QKV).
 *                Valid row i < len of sequence b, head h: softmax over keys
 *                j < len of scale q_i·k_j (scale 0, the default:
 *                1/sqrt(head_dim)), times v_j; online softmax over tiles of
 *                KGT_ATTN_KT keys, f32 accumulation. Padded rows (i >= len)
 *                are zeros. Work items are (b, h, tile of up to two
 *                vectors' lanes of valid query rows, a row per lane), split evenly
 *                between threads; padded rows cost nothing but their
 *                zeroing. A row's arithmetic does not depend on the thread
 *                count.
 * kgt_pool       p[0] X f32[B*L][K], p[1] lengths int32_t[B] (clamped to
 *                [0, L]), p[2] out f32[B][K]: per sequence, mode
 *                KGT_POOL_MEAN the mean of its valid rows, KGT_POOL_CLS its
 *                row 0, KGT_POOL_MAX the max of its valid rows,
 *                KGT_POOL_MEAN_SQRT their sum / sqrt(len); norm 1: then
 *                y / max(||y||_2, 1e-12) (torch's F.normalize). len 0:
 *                zeros. Sums in f32, in row order. Threads split the B
 *                rows, and when B < nth the K columns too (in 64-float
 *                chunks; not with norm, whose row needs all of K). Defaults:
 *                mode KGT_POOL_MEAN, norm 0.
 * kgt_silu, kgt_gelu  p[0] in f32[n], p[1] out f32[n] (may alias in).
 *                silu(x) = x / (1 + e^-x). gelu is the tanh approximation
 *                0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x³))) — GGML's
 *                ggml_gelu_f32 / PyTorch's gelu(approximate="tanh") — computed
 *                in f32 as x / (1 + e^(-2u)) (same function), not through
 *                GGML's f16 lookup table. Threads split n in 64-float chunks.
 * kgt_gelu_erf, kgt_erf  likewise: the exact GELU 0.5 x (1 + erf(x / sqrt 2))
 *                (BERT's; the product's KGT_EPI_GELU where it is fused) and
 *                erf itself, both by kgt_verf (erf.c). Like kgt_gelu, no
 *                CUDA kernel of their own: there the GELU lives in the
 *                product's epilogue.
 */
void kgt_rmsnorm(void *const *p, int ith, int nth, int64_t M, int64_t K, double eps, int64_t flags, int64_t G);
void kgt_layernorm(void *const *p, int ith, int nth, int64_t M, int64_t K, double eps, int64_t flags);
void kgt_rope(void *const *p, int ith, int nth, int64_t M, int64_t n_head, int64_t head_dim, int64_t n_rot,
              int64_t mode, double freq_base, double freq_scale, int64_t ff);
void kgt_rope_kv(void *const *p, int ith, int nth, int64_t M, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                 int64_t n_rot, int64_t mode, double freq_base, double freq_scale, int64_t n_ctx, int64_t cache_type,
                 int64_t ff, int64_t qk_norm, double eps);
void kgt_kv_store(void *const *p, int ith, int nth, int64_t M, int64_t n_head_kv, int64_t head_dim, int64_t n_ctx,
                  int64_t cache_type);
void kgt_add(void *const *p, int ith, int nth, int64_t M, int64_t N);
void kgt_glu(void *const *p, int ith, int nth, int64_t M, int64_t N, int64_t act);
void kgt_softmax(void *const *p, int ith, int nth, int64_t M, int64_t N, double scale);
void kgt_softcap(void *const *p, int ith, int nth, int64_t M, int64_t N, double cap);
void kgt_attn_decode(void *const *p, int ith, int nth, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                     int64_t n_ctx, int64_t cache_type, double scale, int64_t window);
void kgt_attn_prefill(void *const *p, int ith, int nth, int64_t M, int64_t n_head, int64_t n_head_kv,
                      int64_t head_dim, int64_t n_ctx, int64_t cache_type, double scale, int64_t window);
void kgt_attn_enc(void *const *p, int ith, int nth, int64_t B, int64_t L, int64_t n_head, int64_t head_dim,
                  double scale);
void kgt_pool(void *const *p, int ith, int nth, int64_t B, int64_t L, int64_t K, int64_t mode, int64_t norm);
void kgt_silu(void *const *p, int ith, int nth, int64_t n);
void kgt_gelu(void *const *p, int ith, int nth, int64_t n);
void kgt_gelu_erf(void *const *p, int ith, int nth, int64_t n);
void kgt_erf(void *const *p, int ith, int nth, int64_t n);

#if defined(__clang__)
/* ════════════════ vector helpers (clang only) ════════════════ */

#if defined(KG_ISA_AVX512)
#define KGT_VF 16
#elif defined(__AVX__)
#define KGT_VF 8
#else
#define KGT_VF 4 /* SSE (x86-64-v2), or another target's 128-bit vectors */
#endif
#define KGT_NACC 4 /* vector partial sums of a reduction */

typedef float kgt_vf __attribute__((vector_size(KGT_VF * 4)));
typedef int32_t kgt_vi __attribute__((vector_size(KGT_VF * 4)));  /* comparison results: -1 / 0 */
typedef uint32_t kgt_vu __attribute__((vector_size(KGT_VF * 4)));
typedef uint16_t kgt_vh __attribute__((vector_size(KGT_VF * 2))); /* f16 bits */

KG_INLINE kgt_vf kgt_vsplat(float x) { return (kgt_vf){0} + x; }

KG_INLINE kgt_vf kgt_vload(const float *p)
{
    kgt_vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

KG_INLINE void kgt_vstore(float *p, kgt_vf v) { memcpy(p, &v, sizeof v); }

/* the first n (< KGT_VF) floats of p; the other lanes are `fill` */
KG_INLINE kgt_vf kgt_vload_part(const float *p, int64_t n, float fill)
{
    kgt_vf v = kgt_vsplat(fill);
    for (int64_t i = 0; i < n; i++) v[i] = p[i];
    return v;
}

KG_INLINE void kgt_vstore_part(float *p, int64_t n, kgt_vf v)
{
    for (int64_t i = 0; i < n; i++) p[i] = v[i];
}

/* m ? a : b, lane by lane (m from a comparison) */
KG_INLINE kgt_vf kgt_vsel(kgt_vi m, kgt_vf a, kgt_vf b)
{
    return (kgt_vf)(((kgt_vu)m & (kgt_vu)a) | (~(kgt_vu)m & (kgt_vu)b));
}

/* lanes 0..n-1 set */
KG_INLINE kgt_vi kgt_vlanes_lt(int64_t n)
{
    kgt_vi idx;
    for (int i = 0; i < KGT_VF; i++) idx[i] = i;
    return idx < (int32_t)n;
}

KG_INLINE kgt_vf kgt_vmax(kgt_vf a, kgt_vf b) { return kgt_vsel(a > b, a, b); }
KG_INLINE kgt_vf kgt_vabs(kgt_vf a) { return (kgt_vf)((kgt_vu)a & 0x7fffffffu); }

/* horizontal sum / max, as a fixed tree */
KG_INLINE float kgt_vhsum(kgt_vf v)
{
    float t[KGT_VF];
    memcpy(t, &v, sizeof t);
    for (int w = KGT_VF / 2; w > 0; w /= 2)
        for (int i = 0; i < w; i++) t[i] += t[i + w];
    return t[0];
}

KG_INLINE float kgt_vhmax(kgt_vf v)
{
    float t[KGT_VF];
    memcpy(t, &v, sizeof t);
    for (int w = KGT_VF / 2; w > 0; w /= 2)
        for (int i = 0; i < w; i++) t[i] = t[i] > t[i + w] ? t[i] : t[i + w];
    return t[0];
}

/* the horizontal sums of four vectors: fold each to 4 lanes, then a
 * transpose-and-add (fixed order) */
typedef float kgt_v4f __attribute__((vector_size(16)));

KG_INLINE kgt_v4f kgt_vhsum4(const kgt_vf *a)
{
    kgt_v4f f[4], t;
    for (int c = 0; c < 4; c++) {
        memcpy(&f[c], &a[c], sizeof f[c]);
        for (int i = 1; i < KGT_VF / 4; i++) {
            memcpy(&t, (const float *)&a[c] + 4 * i, sizeof t);
            f[c] += t;
        }
    }
    kgt_v4f ab = __builtin_shufflevector(f[0], f[1], 0, 4, 1, 5) + __builtin_shufflevector(f[0], f[1], 2, 6, 3, 7);
    kgt_v4f cd = __builtin_shufflevector(f[2], f[3], 0, 4, 1, 5) + __builtin_shufflevector(f[2], f[3], 2, 6, 3, 7);
    return __builtin_shufflevector(ab, cd, 0, 1, 4, 5) + __builtin_shufflevector(ab, cd, 2, 3, 6, 7);
}

/* f16 -> f32 (exact). With F16C, the hardware conversion; otherwise the
 * bit-level one (normal, subnormal, zero, inf and NaN), so the x86-64-v2
 * build needs no conversion library call. */
KG_INLINE kgt_vf kgt_vcvt_f16(kgt_vh h)
{
#ifdef KG_ISA_AVX2
    typedef _Float16 kgt_vhf __attribute__((vector_size(KGT_VF * 2)));
    return __builtin_convertvector((kgt_vhf)h, kgt_vf);
#else
    kgt_vu u = __builtin_convertvector(h, kgt_vu);
    kgt_vu o = (u & 0x7fffu) << 13;            /* exponent and mantissa, in place */
    kgt_vu e = o & (0x7c00u << 13);
    kgt_vu infnan = (kgt_vu)(e == (0x7c00u << 13)), zsub = (kgt_vu)(e == 0);
    o += ((127u - 15u) << 23) + (infnan & ((128u - 16u) << 23)) + (zsub & (1u << 23));
    kgt_vf f = (kgt_vf)o - (kgt_vf)(zsub & (113u << 23)); /* subnormals: minus 2^-14 */
    return (kgt_vf)((kgt_vu)f | ((u & 0x8000u) << 16));
#endif
}

/* KGT_VF elements of a row of `type` (KGT_F32, KGT_F16, or KGT_Q8_0 with i
 * a multiple of KGT_VF: the lanes lie in one block) from element i; the
 * _part form reads n (< KGT_VF) of them, the other lanes 0. */
KG_INLINE kgt_vf kgt_vload_t(const void *row, int64_t i, int64_t type)
{
    if (type == KGT_Q8_0) {
        typedef int8_t kgt_vb __attribute__((vector_size(KGT_VF)));
        const char *b = (const char *)row + i / 32 * KGT_SIZE_Q8_0;
        kgt_f16 d;
        kgt_vb q;
        memcpy(&d, b, 2);
        memcpy(&q, b + 2 + i % 32, sizeof q);
        return __builtin_convertvector(q, kgt_vf) * kgt_f16_to_f32(d);
    }
    if (type == KGT_F16) {
        kgt_vh h;
        memcpy(&h, (const kgt_f16 *)row + i, sizeof h);
        return kgt_vcvt_f16(h);
    }
    return kgt_vload((const float *)row + i);
}

KG_INLINE kgt_vf kgt_vload_t_part(const void *row, int64_t i, int64_t n, int64_t type)
{
    if (type == KGT_Q8_0) {
        kgt_vf v = kgt_vsplat(0.0f);
        for (int64_t j = 0; j < n; j++) {
            const char *b = (const char *)row + (i + j) / 32 * KGT_SIZE_Q8_0;
            kgt_f16 d;
            memcpy(&d, b, 2);
            v[j] = (float)(int8_t)b[2 + (i + j) % 32] * kgt_f16_to_f32(d);
        }
        return v;
    }
    if (type == KGT_F16) {
        kgt_vh h = {0};
        for (int64_t j = 0; j < n; j++) h[j] = ((const kgt_f16 *)row)[i + j];
        return kgt_vcvt_f16(h);
    }
    return kgt_vload_part((const float *)row + i, n, 0.0f);
}

/* sum_i x[i] and sum_i (x[i] - c)², KGT_NACC vector partial sums each */
KG_INLINE float kgt_sum(const float *x, int64_t n)
{
    kgt_vf acc[KGT_NACC] = {{0}};
    int64_t i = 0;
    for (; i + KGT_NACC * KGT_VF <= n; i += KGT_NACC * KGT_VF)
        for (int k = 0; k < KGT_NACC; k++) acc[k] += kgt_vload(x + i + k * KGT_VF);
    for (; i + KGT_VF <= n; i += KGT_VF) acc[0] += kgt_vload(x + i);
    if (i < n) acc[1] += kgt_vload_part(x + i, n - i, 0.0f);
    for (int k = 1; k < KGT_NACC; k++) acc[0] += acc[k];
    return kgt_vhsum(acc[0]);
}

KG_INLINE float kgt_sumsq_centered(const float *x, int64_t n, float c)
{
    kgt_vf acc[KGT_NACC] = {{0}}, vc = kgt_vsplat(c), d;
    int64_t i = 0;
    for (; i + KGT_NACC * KGT_VF <= n; i += KGT_NACC * KGT_VF)
        for (int k = 0; k < KGT_NACC; k++) {
            d = kgt_vload(x + i + k * KGT_VF) - vc;
            acc[k] += d * d;
        }
    for (; i + KGT_VF <= n; i += KGT_VF) {
        d = kgt_vload(x + i) - vc;
        acc[0] += d * d;
    }
    if (i < n) {
        d = kgt_vload_part(x + i, n - i, c) - vc; /* padding with c adds 0 */
        acc[1] += d * d;
    }
    for (int k = 1; k < KGT_NACC; k++) acc[0] += acc[k];
    return kgt_vhsum(acc[0]);
}

/* e^x, lane by lane, within ~1 ulp (measured: 1.01 at most over [-87.3,
 * 88.3]). Cephes expf: n = round(x log2 e), r = x - n ln 2 (ln 2 in two
 * parts), e^r by its polynomial, times 2^n built in the exponent bits.
 * x below ln(FLT_MIN) ~ -87.34 (-inf included) gives 0, above 88.37 +inf
 * (slightly early: values within 0.35 of FLT_MAX's log overflow), NaN NaN. */
KG_INLINE kgt_vf kgt_vexp(kgt_vf x)
{
    const float lo = -87.33654475f, hi = 88.37626266f; /* ln 2^-126, ln 2^127.5 */
    kgt_vi under = x < lo, over = x > hi, nan = x != x;
    kgt_vf xc = kgt_vsel(under | nan, kgt_vsplat(lo), kgt_vsel(over, kgt_vsplat(hi), x));
    kgt_vf n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
    kgt_vf r = xc - n * 0.693359375f + n * 2.12194440e-4f;
    kgt_vf q = kgt_vsplat(1.9875691500e-4f);
    q = q * r + 1.3981999507e-3f;
    q = q * r + 8.3334519073e-3f;
    q = q * r + 4.1665795894e-2f;
    q = q * r + 1.6666665459e-1f;
    q = q * r + 5.0000001201e-1f;
    q = q * r * r + r + 1.0f;
    kgt_vi e = (__builtin_convertvector(n, kgt_vi) + 127) << 23; /* n in [-126, 127] */
    kgt_vf y = q * (kgt_vf)e;
    y = kgt_vsel(under, kgt_vsplat(0.0f), kgt_vsel(over, kgt_vsplat(__builtin_inff()), y));
    return kgt_vsel(nan, x, y);
}

/* max_i s * x[i] */
KG_INLINE float kgt_max_scaled(const float *x, int64_t n, float s)
{
    kgt_vf mx = kgt_vsplat(-__builtin_inff());
    int64_t i = 0;
    for (; i + KGT_VF <= n; i += KGT_VF) mx = kgt_vmax(mx, kgt_vload(x + i) * s);
    if (i < n) mx = kgt_vmax(mx, kgt_vsel(kgt_vlanes_lt(n - i), kgt_vload_part(x + i, n - i, 0.0f) * s, mx));
    return kgt_vhmax(mx);
}

/* x[i] = e^(s * x[i] - m) in place; returns their sum (KGT_NACC partial sums) */
KG_INLINE float kgt_exp_sum(float *x, int64_t n, float s, float m)
{
    kgt_vf acc[KGT_NACC] = {{0}}, vm = kgt_vsplat(m), e;
    int64_t i = 0;
    for (; i + KGT_NACC * KGT_VF <= n; i += KGT_NACC * KGT_VF)
        for (int k = 0; k < KGT_NACC; k++) {
            e = kgt_vexp(kgt_vload(x + i + k * KGT_VF) * s - vm);
            kgt_vstore(x + i + k * KGT_VF, e);
            acc[k] += e;
        }
    for (; i + KGT_VF <= n; i += KGT_VF) {
        e = kgt_vexp(kgt_vload(x + i) * s - vm);
        kgt_vstore(x + i, e);
        acc[0] += e;
    }
    if (i < n) {
        e = kgt_vexp(kgt_vload_part(x + i, n - i, 0.0f) * s - vm);
        kgt_vstore_part(x + i, n - i, e);
        acc[1] += kgt_vsel(kgt_vlanes_lt(n - i), e, kgt_vsplat(0.0f));
    }
    for (int k = 1; k < KGT_NACC; k++) acc[0] += acc[k];
    return kgt_vhsum(acc[0]);
}

/* y[0..n) = (x[0..n) - mean) * rstd * gamma (+ beta); y may alias x.
 * Without beta the term added is -0.0f, which the compiler drops (x + -0 is
 * x exactly), so one expression serves both. (kgt_rmsnorm, kgt_layernorm,
 * and kgt_rope_kv's QK-norm: the same arithmetic.) */
KG_INLINE void kgt_norm_apply(const float *x, const float *gamma, const float *beta, float *y, int64_t n, float mean,
                              float rstd)
{
    const kgt_vf vm = kgt_vsplat(mean), vr = kgt_vsplat(rstd), nz = kgt_vsplat(-0.0f);
    int64_t i = 0;
    for (; i + KGT_VF <= n; i += KGT_VF)
        kgt_vstore(y + i, (kgt_vload(x + i) - vm) * vr * kgt_vload(gamma + i) + (beta ? kgt_vload(beta + i) : nz));
    if (i < n) {
        int64_t r = n - i;
        kgt_vf b = beta ? kgt_vload_part(beta + i, r, 0.0f) : nz;
        kgt_vstore_part(y + i, r, (kgt_vload_part(x + i, r, 0.0f) - vm) * vr * kgt_vload_part(gamma + i, r, 0.0f) + b);
    }
}

/* RMSNorm's 1 / sqrt(mean(x²) + eps) of n values */
KG_INLINE float kgt_rms_rstd(const float *x, int64_t n, double eps)
{
    return 1.0f / __builtin_sqrtf(kgt_sumsq_centered(x, n, 0.0f) / (float)n + (float)eps);
}

/* x[i] *= s */
KG_INLINE void kgt_scale(float *x, int64_t n, float s)
{
    int64_t i = 0;
    for (; i + KGT_VF <= n; i += KGT_VF) kgt_vstore(x + i, kgt_vload(x + i) * s);
    if (i < n) kgt_vstore_part(x + i, n - i, kgt_vload_part(x + i, n - i, 0.0f) * s);
}

KG_INLINE float kgt_expf(float x) { return kgt_vexp(kgt_vsplat(x))[0]; }

/* tanh, lane by lane (Cephes tanhf): |x| < 0.625 by its odd polynomial,
 * else sign(x) (1 - 2 / (e^(2|x|) + 1)) (±1 where e^(2|x|) overflows). NaN
 * gives NaN. */
KG_INLINE kgt_vf kgt_vtanh(kgt_vf x)
{
    const kgt_vf a = kgt_vabs(x), z = x * x;
    kgt_vf p = kgt_vsplat(-5.70498872745e-3f);
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    const kgt_vf small = x + x * z * p;
    const kgt_vf big = 1.0f - 2.0f / (kgt_vexp(a + a) + 1.0f);
    const kgt_vf sbig = (kgt_vf)((kgt_vu)big | ((kgt_vu)x & 0x80000000u));
    return kgt_vsel(a < 0.625f, small, kgt_vsel(x != x, x, sbig));
}

/* silu(x) = x / (1 + e^-x) */
KG_INLINE kgt_vf kgt_vsilu(kgt_vf x) { return x / (1.0f + kgt_vexp(-x)); }

/* GELU, tanh approximation: 0.5 x (1 + tanh(u)) = x / (1 + e^(-2u)),
 * u = sqrt(2/pi) (x + 0.044715 x³) */
KG_INLINE kgt_vf kgt_vgelu(kgt_vf x)
{
    kgt_vf u2 = x * (1.5957691216057308f + 0.0713548162726009f * x * x); /* 2u */
    return x / (1.0f + kgt_vexp(-u2));
}

/* erf, lane by lane; absolute error below 1e-7 over all floats (measured
 * against libm's erf by tests/test_kernels_enc.c: 6.6e-8 with FMA; 8.4e-8
 * without, in a numpy float32 emulation of the same steps). Two pieces,
 * least-squares fits of our own (near minimax, by iterative reweighting):
 * |x| < 0.8: x P(x²) = x + x (P(x²) - 1), P of degree 6 (the small
 * correction rounds little and the last step is one fused multiply-add);
 * 0.8 <= |x| < 3.92: 1 - e^(-x²) Q(u),
 * Q of degree 11 approximating e^(x²) erfc(x) in u = (1/|x| - c) / h, the
 * interval [1/3.92, 1/0.8] mapped to [-1, 1] (coefficients stay small, so
 * Horner's rule does not cancel); beyond, ±1 (erfc(3.92) < 2^-25). NaN
 * gives NaN. */
KG_INLINE kgt_vf kgt_verf(kgt_vf x)
{
    const kgt_vf a = kgt_vabs(x), z = a * a;
    kgt_vf p = kgt_vsplat(9.188929607805178e-05f);
    p = p * z - 8.31117282143449e-04f;
    p = p * z + 5.214038302489972e-03f;
    p = p * z - 2.6864024566408563e-02f;
    p = p * z + 1.1283769781249454e-01f;
    p = p * z - 3.761263809207112e-01f;
    p = p * z + 0.1283791670561885f; /* P - 1: x P = x + x (P - 1), one rounding (fused) at the end */
    const kgt_vf small = a * p + a;
    const kgt_vf u = (1.0f / kgt_vmax(a, kgt_vsplat(0.8f)) - 0.7525510204081632f) * 2.01025641025641f;
    kgt_vf q = kgt_vsplat(6.060542316720757e-06f);
    q = q * u - 9.530027242779183e-06f;
    q = q * u - 6.955108966519709e-06f;
    q = q * u + 3.972025761603149e-05f;
    q = q * u - 1.2821958268680172e-04f;
    q = q * u + 3.5715071758622783e-04f;
    q = q * u - 6.664972716718111e-04f;
    q = q * u + 1.3320317538406454e-04f;
    q = q * u + 6.104749179388329e-03f;
    q = q * u - 3.815538050417846e-02f;
    q = q * u + 1.6942176105602794e-01f;
    q = q * u + 3.5200452867998444e-01f;
    const kgt_vf big = 1.0f - kgt_vexp(-z) * q;
    const kgt_vf r = kgt_vsel(a < 0.8f, small, kgt_vsel(a < 3.92f, big, kgt_vsplat(1.0f)));
    return kgt_vsel(x != x, x, (kgt_vf)((kgt_vu)r | ((kgt_vu)x & 0x80000000u)));
}

/* GELU, exact (erf) form: 0.5 x (1 + erf(x / sqrt 2)) — BERT's "gelu",
 * PyTorch's gelu(approximate="none") */
KG_INLINE kgt_vf kgt_vgelu_erf(kgt_vf x) { return 0.5f * x * (1.0f + kgt_verf(x * 0.70710678118654752f)); }

#endif /* __clang__ */
#endif
