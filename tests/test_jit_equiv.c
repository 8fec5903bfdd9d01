/*
 * test_jit_equiv.c — every kernel template, specialized by the generator
 * (embedded bitcode -> constant wrapper -> O3 -> object -> LLJIT), computes
 * what the same template compiled natively computes (and the native
 * templates are checked against scalar references by test_kernels_*.c).
 * All instances of a run share one module, as a model's will. The same
 * instances compile (without running) for AVX-512/VNNI CPUs and older ones.
 */
#include "kt.h"
#include "gen.h"
#include "templates/cpu/kernel.h"
#include "templates/cpu/ops.h"
#include "templates/cpu/products.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kind { F32_IN, F32_OUT, F32_INOUT, Q8A_IN, Q8A_OUT, WEIGHTS, POS32, IDS32, I64, F16_IN, SCRATCH, F32_POS };
/* F32_POS: f32 in [0.5, 1.5] (RoPE frequency factors) */

typedef struct bufspec {
    enum kind kind;
    int64_t n;     /* elements (f32, int32, f16), blocks (q8a), rows (weights), value (I64) */
    int64_t cols;  /* weights: row length; ids: table rows */
} bufspec;

typedef struct tcase {
    const char *tmpl;
    int np;
    const char *names[14];
    double vals[14];  /* in the template's parameter order */
    int nbuf;
    bufspec b[8];
} tcase;

/* ─────────────────────────── native calls ─────────────────────────── */

/* parameter `name` of c, or def when the case leaves it unbound (the
 * template's KG_PARAM_DEFAULT) */
static double val(const tcase *c, const char *name, double def)
{
    for (int i = 0; i < c->np; i++)
        if (!strcmp(c->names[i], name)) return c->vals[i];
    return def;
}

static void native(const tcase *c, void *const *p, int ith, int nth)
{
    const double *v = c->vals;
#define I(k) ((int64_t)v[k])
#define D(name, def) val(c, name, def)
#define L(name) ((int64_t)val(c, name, 0))
    if (!strcmp(c->tmpl, "mm")) kgt_mm(p, ith, nth, I(0), I(1), I(2), I(3), I(4), I(5), L("ldy"), L("layout"), 0, L("pf"), (int64_t)D("mb", 262144), (int64_t)D("nc", 32),
                                        (int64_t)D("mt", 4));
    else if (!strcmp(c->tmpl, "quantize")) kgt_quantize(p, ith, nth, I(0), I(1));
    else if (!strcmp(c->tmpl, "embed")) kgt_embed(p, ith, nth, I(0), I(1), I(2), D("scale", 1.0), 0, KGT_F32, L("layout"));
    else if (!strcmp(c->tmpl, "rmsnorm")) kgt_rmsnorm(p, ith, nth, I(0), I(1), v[2], I(3), (int64_t)D("G", 1));
    else if (!strcmp(c->tmpl, "layernorm")) kgt_layernorm(p, ith, nth, I(0), I(1), v[2], I(3));
    else if (!strcmp(c->tmpl, "rope")) kgt_rope(p, ith, nth, I(0), I(1), I(2), I(3), I(4), v[5], v[6], L("ff"));
    else if (!strcmp(c->tmpl, "rope_kv"))
        kgt_rope_kv(p, ith, nth, I(0), I(1), I(2), I(3), I(4), I(5), v[6], v[7], I(8), I(9), L("ff"), L("qk_norm"),
                    D("eps", 1e-6));
    else if (!strcmp(c->tmpl, "kv_store")) kgt_kv_store(p, ith, nth, I(0), I(1), I(2), I(3), I(4));
    else if (!strcmp(c->tmpl, "add")) kgt_add(p, ith, nth, I(0), I(1));
    else if (!strcmp(c->tmpl, "glu")) kgt_glu(p, ith, nth, I(0), I(1), I(2));
    else if (!strcmp(c->tmpl, "softmax")) kgt_softmax(p, ith, nth, I(0), I(1), v[2]);
    else if (!strcmp(c->tmpl, "softcap")) kgt_softcap(p, ith, nth, I(0), I(1), v[2]);
    else if (!strcmp(c->tmpl, "attn_decode"))
        kgt_attn_decode(p, ith, nth, I(0), I(1), I(2), I(3), I(4), D("scale", 0), L("window"));
    else if (!strcmp(c->tmpl, "attn_prefill"))
        kgt_attn_prefill(p, ith, nth, I(0), I(1), I(2), I(3), I(4), I(5), D("scale", 0), L("window"));
    else if (!strcmp(c->tmpl, "silu")) kgt_silu(p, ith, nth, I(0));
    else if (!strcmp(c->tmpl, "gelu")) kgt_gelu(p, ith, nth, I(0));
    else kt_fail(__FILE__, __LINE__, "no native call for %s", c->tmpl);
#undef I
#undef D
#undef L
}

/* ─────────────────────────── cases ─────────────────────────── */

#define MM(wt, act, M, N, K, fl) \
    {"mm", 6, {"wtype", "act", "M", "N", "K", "flags"}, {wt, act, M, N, K, fl}, 6, \
     {{WEIGHTS, N, K}, {(act) ? Q8A_IN : F32_IN, (act) ? (M) * (K) / 32 : (M) * (K), 0}, \
      {((fl) & KGT_EPI_OUT_Q8) ? Q8A_OUT : F32_OUT, ((fl) & KGT_EPI_OUT_Q8) ? (M) * (N) / 32 : (M) * (N), 0}, \
      {F32_IN, N, 0}, {F32_IN, (M) * (N), 0}, {WEIGHTS, N, K}}}

static const tcase cases[] = {
    MM(KGT_Q4_0, 1, 1, 97, 256, 0), MM(KGT_Q4_1, 1, 1, 97, 256, 0), MM(KGT_Q8_0, 1, 5, 64, 256, 0),
    MM(KGT_Q4_K, 1, 1, 33, 512, 0), MM(KGT_Q6_K, 1, 3, 33, 256, 0), MM(KGT_Q4_0, 0, 2, 40, 64, 0),
    MM(KGT_F16, 0, 1, 31, 100, 0), MM(KGT_BF16, 0, 4, 31, 64, 0), MM(KGT_F32, 0, 1, 17, 33, 0),
    MM(KGT_Q4_0, 1, 1, 64, 576, KGT_EPI_BIAS | KGT_EPI_RESIDUAL), MM(KGT_Q8_0, 1, 2, 64, 64, KGT_EPI_SWIGLU),
    MM(KGT_Q4_1, 1, 1, 64, 64, KGT_EPI_OUT_Q8),
    MM(KGT_Q5_0, 1, 1, 97, 256, 0), MM(KGT_Q5_1, 1, 3, 40, 96, 0), MM(KGT_IQ4_NL, 1, 2, 33, 256, 0),
    MM(KGT_Q5_K, 1, 1, 33, 512, 0), MM(KGT_Q3_K, 1, 5, 33, 256, 0), MM(KGT_Q2_K, 1, 1, 33, 512, KGT_EPI_BIAS),
    MM(KGT_IQ4_XS, 1, 2, 40, 256, 0), MM(KGT_Q2_K, 0, 3, 17, 256, 0), MM(KGT_Q3_K, 0, 1, 17, 256, 0),
    MM(KGT_IQ4_XS, 0, 1, 17, 256, 0), MM(KGT_Q5_0, 0, 2, 17, 64, 0),
    {"quantize", 2, {"M", "K"}, {3, 576}, 2, {{F32_IN, 3 * 576, 0}, {Q8A_OUT, 3 * 18, 0}}},
    {"embed", 3, {"wtype", "M", "K"}, {KGT_Q8_0, 3, 576}, 3, {{WEIGHTS, 40, 576}, {IDS32, 3, 40}, {F32_OUT, 3 * 576, 0}}},
    {"embed", 3, {"wtype", "M", "K"}, {KGT_Q4_K, 2, 256}, 3, {{WEIGHTS, 7, 256}, {IDS32, 2, 7}, {F32_OUT, 2 * 256, 0}}},
    {"embed", 3, {"wtype", "M", "K"}, {KGT_Q3_K, 2, 256}, 3, {{WEIGHTS, 7, 256}, {IDS32, 2, 7}, {F32_OUT, 2 * 256, 0}}},
    {"embed", 3, {"wtype", "M", "K"}, {KGT_IQ4_NL, 2, 64}, 3, {{WEIGHTS, 7, 64}, {IDS32, 2, 7}, {F32_OUT, 2 * 64, 0}}},
    {"rmsnorm", 4, {"M", "K", "eps", "flags"}, {2, 576, 1e-5, 0}, 3, {{F32_IN, 1152, 0}, {F32_IN, 576, 0}, {F32_OUT, 1152, 0}}},
    {"rmsnorm", 4, {"M", "K", "eps", "flags"}, {1, 2048, 1e-6, KGT_NORM_OUT_Q8}, 3, {{F32_IN, 2048, 0}, {F32_IN, 2048, 0}, {Q8A_OUT, 64, 0}}},
    {"layernorm", 4, {"M", "K", "eps", "flags"}, {3, 100, 1e-5, KGT_NORM_BIAS}, 4,
     {{F32_IN, 300, 0}, {F32_IN, 100, 0}, {F32_OUT, 300, 0}, {F32_IN, 100, 0}}},
    {"rope", 7, {"M", "n_head", "head_dim", "n_rot", "mode", "freq_base", "freq_scale"}, {3, 9, 64, 64, KGT_ROPE_NORM, 10000, 1},
     3, {{F32_IN, 3 * 9 * 64, 0}, {POS32, 3, 0}, {F32_OUT, 3 * 9 * 64, 0}}},
    {"rope", 7, {"M", "n_head", "head_dim", "n_rot", "mode", "freq_base", "freq_scale"}, {2, 4, 128, 64, KGT_ROPE_NEOX, 1e6, 0.5},
     3, {{F32_IN, 2 * 4 * 128, 0}, {POS32, 2, 0}, {F32_OUT, 2 * 4 * 128, 0}}},
    {"kv_store", 5, {"M", "n_head_kv", "head_dim", "n_ctx", "cache_type"}, {3, 3, 64, 16, KGT_F16}, 5,
     {{F32_IN, 3 * 3 * 64, 0}, {F32_IN, 3 * 3 * 64, 0}, {POS32, 3, 0}, {F32_OUT, 3 * 16 * 32, 0}, {F32_OUT, 3 * 16 * 32, 0}}},
    {"kv_store", 5, {"M", "n_head_kv", "head_dim", "n_ctx", "cache_type"}, {1, 2, 32, 8, KGT_F32}, 5,
     {{F32_IN, 64, 0}, {F32_IN, 64, 0}, {POS32, 1, 0}, {F32_OUT, 2 * 8 * 32, 0}, {F32_OUT, 2 * 8 * 32, 0}}},
    {"add", 2, {"M", "N"}, {3, 577}, 3, {{F32_IN, 3 * 577, 0}, {F32_IN, 3 * 577, 0}, {F32_OUT, 3 * 577, 0}}},
    {"glu", 3, {"M", "N", "act"}, {2, 1536, KGT_GLU_SILU}, 3, {{F32_IN, 2 * 1536, 0}, {F32_IN, 2 * 1536, 0}, {F32_OUT, 2 * 1536, 0}}},
    {"glu", 3, {"M", "N", "act"}, {1, 100, KGT_GLU_GELU}, 3, {{F32_IN, 100, 0}, {F32_IN, 100, 0}, {F32_OUT, 100, 0}}},
    {"mm", 7, {"wtype", "act", "M", "N", "K", "flags", "ldy"}, {KGT_Q4_K, 1, 3, 64, 256, KGT_EPI_RESIDUAL, 96}, 6,
     {{WEIGHTS, 64, 256}, {Q8A_IN, 3 * 256 / 32, 0}, {F32_INOUT, 3 * 96, 0}, {F32_IN, 64, 0}, {F32_INOUT, 3 * 96, 0}, {WEIGHTS, 64, 256}}},
    {"softmax", 3, {"M", "N", "scale"}, {3, 1001, 0.125}, 1, {{F32_INOUT, 3003, 0}}},
    {"attn_decode", 5, {"n_head", "n_head_kv", "head_dim", "n_ctx", "cache_type"}, {9, 3, 64, 128, KGT_F16}, 6,
     {{F32_IN, 9 * 64, 0}, {F16_IN, 3 * 128 * 64, 0}, {F16_IN, 3 * 128 * 64, 0}, {F32_OUT, 9 * 64, 0}, {I64, 77, 0}, {SCRATCH, 9 * 32 * 80, 0}}}, /* kgt_attn_scratch_floats(9, 64) */
    {"attn_prefill", 6, {"M", "n_head", "n_head_kv", "head_dim", "n_ctx", "cache_type"}, {5, 4, 2, 32, 64, KGT_F32}, 6,
     {{F32_IN, 5 * 4 * 32, 0}, {F32_IN, 2 * 64 * 32, 0}, {F32_IN, 2 * 64 * 32, 0}, {F32_OUT, 5 * 4 * 32, 0}, {I64, 10, 0}, {SCRATCH, 4 * 64, 0}}},
    {"silu", 1, {"n"}, {1001}, 2, {{F32_IN, 1001, 0}, {F32_OUT, 1001, 0}}},
    /* the parameters issue 15 added (embedding scale, QK-norm groups, RoPE
     * frequency factors, rope_kv's QK-norm, attention scale and window,
     * softcap) */
    {"embed", 4, {"wtype", "M", "K", "scale"}, {KGT_Q4_K, 2, 256, 25.298221}, 3,
     {{WEIGHTS, 7, 256}, {IDS32, 2, 7}, {F32_OUT, 2 * 256, 0}}},
    {"rmsnorm", 5, {"M", "K", "eps", "flags", "G"}, {3, 64, 1e-6, 0, 5}, 3,
     {{F32_IN, 3 * 5 * 64, 0}, {F32_IN, 64, 0}, {F32_OUT, 3 * 5 * 64, 0}}},
    {"rope", 8, {"M", "n_head", "head_dim", "n_rot", "mode", "freq_base", "freq_scale", "ff"},
     {3, 4, 64, 64, KGT_ROPE_NORM, 500000, 1, 1}, 4,
     {{F32_IN, 3 * 4 * 64, 0}, {POS32, 3, 0}, {F32_OUT, 3 * 4 * 64, 0}, {F32_POS, 32, 0}}},
    {"rope_kv", 13,
     {"M", "n_head", "n_head_kv", "head_dim", "n_rot", "mode", "freq_base", "freq_scale", "n_ctx", "cache_type", "ff",
      "qk_norm", "eps"},
     {2, 4, 2, 64, 64, KGT_ROPE_NEOX, 1e6, 1, 128, KGT_F32, 1, 1, 1e-6}, 8,
     {{F32_IN, 2 * 8 * 64, 0}, {POS32, 2, 0}, {F32_OUT, 2 * 4 * 64, 0}, {F32_OUT, 2 * 128 * 64, 0},
      {F32_OUT, 2 * 128 * 64, 0}, {F32_POS, 32, 0}, {F32_IN, 64, 0}, {F32_IN, 64, 0}}},
    {"attn_decode", 7, {"n_head", "n_head_kv", "head_dim", "n_ctx", "cache_type", "scale", "window"},
     {8, 2, 64, 256, KGT_F16, 0.0625, 100}, 6,
     {{F32_IN, 8 * 64, 0}, {F16_IN, 2 * 256 * 64, 0}, {F16_IN, 2 * 256 * 64, 0}, {F32_OUT, 8 * 64, 0}, {I64, 230, 0}, {SCRATCH, 8 * 32 * 80, 0}}}, /* kgt_attn_scratch_floats(8, 64) */
    {"attn_prefill", 8, {"M", "n_head", "n_head_kv", "head_dim", "n_ctx", "cache_type", "scale", "window"},
     {9, 4, 2, 32, 256, KGT_F32, 0.3, 70}, 6,
     {{F32_IN, 9 * 4 * 32, 0}, {F32_IN, 2 * 256 * 32, 0}, {F32_IN, 2 * 256 * 32, 0}, {F32_OUT, 9 * 4 * 32, 0}, {I64, 150, 0}, {SCRATCH, 4 * 256, 0}}},
    {"softcap", 3, {"M", "N", "cap"}, {3, 1001, 0.7}, 2, {{F32_IN, 3 * 1001, 0}, {F32_OUT, 3 * 1001, 0}}},
    {"gelu", 1, {"n"}, {999}, 2, {{F32_IN, 999, 0}, {F32_OUT, 999, 0}}},
};
#define N_CASES (int)(sizeof cases / sizeof *cases)

/* ─────────────────────────── buffers ─────────────────────────── */

static uint64_t rs = 0x2545F4914F6CDD1Dull;
static uint32_t rnd(void) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return (uint32_t)rs; }
static float frnd(void) { return (float)(rnd() % 20001) / 10000.0f - 1.0f; }

static int wtype_of(const tcase *c) { return (int)c->vals[0]; }

static size_t buf_bytes(const tcase *c, const bufspec *b)
{
    switch (b->kind) {
    case F32_IN: case F32_OUT: case F32_INOUT: case SCRATCH: case F32_POS: return (size_t)b->n * 4;
    case Q8A_IN: case Q8A_OUT: return (size_t)b->n * sizeof(kgt_q8a);
    case POS32: case IDS32: return (size_t)b->n * 4;
    case F16_IN: return (size_t)b->n * 2;
    case I64: return 8;
    case WEIGHTS: {
        const kg_type_info *t = kg_type_get((uint32_t)wtype_of(c));
        return (size_t)b->n * (size_t)(b->cols / t->blck) * t->size;
    }
    }
    return 0;
}

static void fill(const tcase *c, const bufspec *b, uint8_t *p, size_t bytes)
{
    memset(p, 0, bytes);
    switch (b->kind) {
    case F32_IN: case F32_INOUT:
        for (int64_t i = 0; i < b->n; i++) ((float *)p)[i] = frnd();
        break;
    case F16_IN:
        for (int64_t i = 0; i < b->n; i++) ((kgt_f16 *)p)[i] = kgt_f32_to_f16(frnd());
        break;
    case F32_POS:
        for (int64_t i = 0; i < b->n; i++) ((float *)p)[i] = 1.0f + 0.5f * frnd();
        break;
    case Q8A_IN:
        for (int64_t i = 0; i < b->n; i++) {
            kgt_q8a *q = (kgt_q8a *)p + i;
            q->d = 0.01f + (float)(rnd() % 100) * 1e-4f;
            q->sum = 0;
            for (int k = 0; k < 32; k++) q->sum += q->qs[k] = (int8_t)(rnd() % 255 - 127);
        }
        break;
    case POS32:
        for (int64_t i = 0; i < b->n; i++) ((int32_t *)p)[i] = (int32_t)(i * 37 + 5);
        break;
    case IDS32:
        for (int64_t i = 0; i < b->n; i++) ((int32_t *)p)[i] = (int32_t)(rnd() % (uint32_t)b->cols);
        break;
    case I64:
        memcpy(p, &b->n, 8);
        break;
    case WEIGHTS: {
        int wt = wtype_of(c);
        const kg_type_info *t = kg_type_get((uint32_t)wt);
        for (size_t i = 0; i < bytes; i++) p[i] = (uint8_t)rnd();
        for (size_t o = 0; o < bytes; o += t->size) {
            kgt_f16 d = kgt_f32_to_f16(0.002f + (float)(rnd() % 100) * 1e-4f);
            if (wt == KGT_F32) { float f = frnd(); memcpy(p + o, &f, 4); }
            else if (wt == KGT_F16) memcpy(p + o, &d, 2);
            else if (wt == KGT_BF16) { float f = frnd(); uint32_t u; memcpy(&u, &f, 4); uint16_t h = (uint16_t)(u >> 16); memcpy(p + o, &h, 2); }
            else if (wt == KGT_Q6_K) memcpy(p + o + 208, &d, 2);
            else if (wt == KGT_Q3_K) memcpy(p + o + 108, &d, 2);
            else if (wt == KGT_Q2_K) { memcpy(p + o + 80, &d, 2); memcpy(p + o + 82, &d, 2); }
            else {
                memcpy(p + o, &d, 2);
                if (wt == KGT_Q4_1 || wt == KGT_Q4_K || wt == KGT_Q5_1 || wt == KGT_Q5_K) memcpy(p + o + 2, &d, 2);
            }
        }
        break;
    }
    default: break;
    }
}

/* ||a - b|| / ||b|| over f32 values, or over dequantized q8a blocks */
static double nerr(const bufspec *b, const void *x, const void *ref)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < b->n; i++) {
        if (b->kind == Q8A_OUT) {
            const kgt_q8a *qa = (const kgt_q8a *)x + i, *qb = (const kgt_q8a *)ref + i;
            for (int k = 0; k < 32; k++) {
                double va = qa->d * qa->qs[k], vb = qb->d * qb->qs[k];
                num += (va - vb) * (va - vb);
                den += vb * vb;
            }
        } else {
            double va = ((const float *)x)[i], vb = ((const float *)ref)[i];
            num += (va - vb) * (va - vb);
            den += vb * vb;
        }
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static gen_kinst make_inst(const tcase *c, int idx)
{
    gen_kinst k;
    memset(&k, 0, sizeof k);
    snprintf(k.tmpl, sizeof k.tmpl, "%s", c->tmpl);
    snprintf(k.sym, sizeof k.sym, "eq_%d_%s", idx, c->tmpl);
    k.n_params = c->np;
    for (int i = 0; i < c->np; i++) {
        snprintf(k.params[i].name, sizeof k.params[i].name, "%s", c->names[i]);
        k.params[i].i = (int64_t)c->vals[i];
        k.params[i].f = c->vals[i];
    }
    return k;
}

KT_TEST(jit_matches_native)
{
    gen_kinst insts[N_CASES];
    for (int i = 0; i < N_CASES; i++) insts[i] = make_inst(&cases[i], i);
    gen_target t;
    void *obj;
    size_t n;
    gen_jit *j;
    KT_REQUIRE(gen_target_host(&t) == KG_OK);
    KT_REQUIRE(gen_compile(&t, insts, N_CASES, GEN_EMIT_OBJ, &obj, &n) == KG_OK || (printf("    %s\n", kg_last_error()), 0));
    KT_REQUIRE(gen_jit_create(&j) == KG_OK);
    KT_REQUIRE(gen_jit_add(j, obj, n) == KG_OK || (printf("    %s\n", kg_last_error()), 0));
    free(obj);
    for (int ci = 0; ci < N_CASES; ci++) {
        const tcase *c = &cases[ci];
        gen_kfn f;
        if (gen_jit_lookup(j, insts[ci].sym, &f) != KG_OK) { kt_fail(__FILE__, __LINE__, "%s", kg_last_error()); continue; }
        void *pa[8] = {0}, *pb[8] = {0};
        for (int b = 0; b < c->nbuf; b++) {
            size_t bytes = buf_bytes(c, &c->b[b]);
            pa[b] = malloc(bytes + 64);
            pb[b] = malloc(bytes + 64);
            uint64_t save = rs;
            fill(c, &c->b[b], pa[b], bytes);
            rs = save;
            fill(c, &c->b[b], pb[b], bytes);
        }
        native(c, pa, 0, 1);
        for (int ith = 0; ith < 2; ith++) f(pb, NULL, ith, 2);
        for (int b = 0; b < c->nbuf; b++) {
            enum kind k = c->b[b].kind;
            if (k == F32_OUT || k == F32_INOUT || k == Q8A_OUT) {
                double e = nerr(&c->b[b], pb[b], pa[b]);
                double tol = k == Q8A_OUT ? 1e-2 : 1e-5; /* FMA contraction may differ; q8: a step at most */
                KT_CHECKF(e <= tol, "%s (case %d) p[%d]: JIT vs native error %.3g > %g", insts[ci].sym, ci, b, e, tol);
            }
        }
        for (int b = 0; b < c->nbuf; b++) { free(pa[b]); free(pb[b]); }
    }
    gen_jit_destroy(j);
}

/* AVX-512/VNNI code cannot run here, but it must compile. */
KT_TEST(jit_compiles_for_other_cpus)
{
    gen_kinst insts[N_CASES];
    for (int i = 0; i < N_CASES; i++) insts[i] = make_inst(&cases[i], i);
    /* the sanitizer build: the first two (the other two take kgen's same
     * paths; LLVM's compile, not watched, is the time) */
    static const char *cpus[] = {"sapphirerapids", "x86-64-v2", "znver4", "haswell"};
    for (size_t c = 0; c < (KT_SANITIZED ? 2 : sizeof cpus / sizeof *cpus); c++) {
        gen_target t;
        void *obj = NULL;
        size_t n;
        KT_CHECK(gen_target_parse(cpus[c], &t) == KG_OK);
        kg_status s = gen_compile(&t, insts, N_CASES, GEN_EMIT_OBJ, &obj, &n);
        KT_CHECKF(s == KG_OK && n > 1000, "%s (%s bitcode): %s", cpus[c], gen_isa_name(t.isa), kg_last_error());
        free(obj);
    }
}
