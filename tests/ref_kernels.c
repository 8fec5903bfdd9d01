/*
 * ref_kernels.c — scalar references for the product templates (see
 * ref_kernels.h). Straight from the definitions, one element at a time.
 */
#include "ref_kernels.h"

#include <math.h>
#include <string.h>

float ref_f16(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return (float)(h >> 15 ? -v : v);
}

float ref_bf16(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static float f16_at(const uint8_t *p) { return ref_f16((uint16_t)(p[0] | p[1] << 8)); }

int ref_type_known(int type)
{
    switch (type) {
    case KGT_F32: case KGT_F16: case KGT_BF16: case KGT_Q8_0: case KGT_Q4_0: case KGT_Q4_1: case KGT_Q4_K: case KGT_Q6_K:
    case KGT_Q5_0: case KGT_Q5_1: case KGT_Q5_K: case KGT_Q3_K: case KGT_Q2_K: case KGT_IQ4_NL: case KGT_IQ4_XS:
        return 1;
    default: return 0;
    }
}

int64_t ref_block_elems(int type)
{
    switch (type) {
    case KGT_Q8_0: case KGT_Q4_0: case KGT_Q4_1: case KGT_Q5_0: case KGT_Q5_1: case KGT_IQ4_NL: return 32;
    case KGT_Q4_K: case KGT_Q6_K: case KGT_Q5_K: case KGT_Q3_K: case KGT_Q2_K: case KGT_IQ4_XS: return 256;
    default: return 1;
    }
}

static int64_t block_bytes(int type)
{
    switch (type) {
    case KGT_F32: return 4;
    case KGT_F16: case KGT_BF16: return 2;
    case KGT_Q8_0: return 34;  /* f16 d, int8 qs[32] */
    case KGT_Q4_0: return 18;  /* f16 d, u8 qs[16] */
    case KGT_Q4_1: return 20;  /* f16 d, f16 m, u8 qs[16] */
    case KGT_Q4_K: return 144; /* f16 d, f16 dmin, u8 scales[12], u8 qs[128] */
    case KGT_Q6_K: return 210; /* u8 ql[128], u8 qh[64], int8 scales[16], f16 d */
    case KGT_Q5_0: return 22;  /* f16 d, u8 qh[4], u8 qs[16] */
    case KGT_Q5_1: return 24;  /* f16 d, f16 m, u8 qh[4], u8 qs[16] */
    case KGT_IQ4_NL: return 18; /* f16 d, u8 qs[16] */
    case KGT_Q5_K: return 176; /* f16 d, f16 dmin, u8 scales[12], u8 qh[32], u8 qs[128] */
    case KGT_Q3_K: return 110; /* u8 hmask[32], u8 qs[64], u8 scales[12], f16 d */
    case KGT_Q2_K: return 84;  /* u8 scales[16], u8 qs[64], f16 d, f16 dmin */
    case KGT_IQ4_XS: return 136; /* f16 d, u16 scales_h, u8 scales_l[4], u8 qs[128] */
    default: return 0;
    }
}

int64_t ref_row_bytes(int type, int64_t K) { return K / ref_block_elems(type) * block_bytes(type); }

/* Q4_K's packed 6-bit scale and min of sub-block j (0..7) */
static void q4k_scale_min(const uint8_t *q, int j, int *sc, int *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* IQ4_NL's and IQ4_XS's values of a nibble */
static const int8_t IQ4_T[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* one block of `type` at b -> y[0..ref_block_elems) */
static void dequant_block(int type, const uint8_t *b, float *y)
{
    switch (type) {
    case KGT_F32: memcpy(y, b, 4); break;
    case KGT_F16: y[0] = f16_at(b); break;
    case KGT_BF16: y[0] = ref_bf16((uint16_t)(b[0] | b[1] << 8)); break;
    case KGT_Q8_0: {
        float d = f16_at(b);
        for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
        break;
    }
    case KGT_Q4_0: {
        float d = f16_at(b);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)((b[2 + j] & 0xF) - 8) * d;
            y[j + 16] = (float)((b[2 + j] >> 4) - 8) * d;
        }
        break;
    }
    case KGT_Q4_1: {
        float d = f16_at(b), m = f16_at(b + 2);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)(b[4 + j] & 0xF) * d + m;
            y[j + 16] = (float)(b[4 + j] >> 4) * d + m;
        }
        break;
    }
    case KGT_Q4_K: {
        float d = f16_at(b), dmin = f16_at(b + 2);
        const uint8_t *scales = b + 4, *q = b + 16;
        for (int c = 0; c < 4; c++) { /* 64 elements: low nibbles, then high, of 32 bytes */
            int sc1, m1, sc2, m2;
            q4k_scale_min(scales, 2 * c, &sc1, &m1);
            q4k_scale_min(scales, 2 * c + 1, &sc2, &m2);
            float d1 = d * (float)sc1, mm1 = dmin * (float)m1, d2 = d * (float)sc2, mm2 = dmin * (float)m2;
            for (int l = 0; l < 32; l++) {
                y[64 * c + l] = d1 * (float)(q[32 * c + l] & 0xF) - mm1;
                y[64 * c + 32 + l] = d2 * (float)(q[32 * c + l] >> 4) - mm2;
            }
        }
        break;
    }
    case KGT_Q6_K: {
        float d = f16_at(b + 208);
        for (int n = 0; n < 2; n++) { /* two halves of 128 */
            const uint8_t *ql = b + 64 * n, *qh = b + 128 + 32 * n;
            const int8_t *sc = (const int8_t *)(b + 192 + 8 * n);
            float *yy = y + 128 * n;
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
                int q2 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
                int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                yy[l] = d * (float)sc[is] * (float)q1;
                yy[l + 32] = d * (float)sc[is + 2] * (float)q2;
                yy[l + 64] = d * (float)sc[is + 4] * (float)q3;
                yy[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
        break;
    }
    case KGT_Q5_0: case KGT_Q5_1: { /* the fifth bit of element j is bit j of qh, a little-endian u32 */
        const int m1 = type == KGT_Q5_1;
        float d = f16_at(b), m = m1 ? f16_at(b + 2) : 0.0f;
        const uint8_t *qh = b + 2 + 2 * m1, *qs = qh + 4;
        uint32_t h = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
        for (int j = 0; j < 16; j++) {
            int x0 = (qs[j] & 0xF) | (int)((h >> j) & 1) << 4;
            int x1 = (qs[j] >> 4) | (int)((h >> (j + 16)) & 1) << 4;
            if (m1) {
                y[j] = (float)x0 * d + m;
                y[j + 16] = (float)x1 * d + m;
            } else {
                y[j] = (float)(x0 - 16) * d;
                y[j + 16] = (float)(x1 - 16) * d;
            }
        }
        break;
    }
    case KGT_IQ4_NL: {
        float d = f16_at(b);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)IQ4_T[b[2 + j] & 0xF];
            y[j + 16] = d * (float)IQ4_T[b[2 + j] >> 4];
        }
        break;
    }
    case KGT_Q5_K: {
        float d = f16_at(b), dmin = f16_at(b + 2);
        const uint8_t *scales = b + 4, *qh = b + 16, *ql = b + 48;
        int is = 0;
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0; j < 256; j += 64) { /* as ggml's dequantize_row_q5_K */
            int sc, m;
            q4k_scale_min(scales, is, &sc, &m);
            float d1 = d * (float)sc, m1 = dmin * (float)m;
            q4k_scale_min(scales, is + 1, &sc, &m);
            float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++) y[j + l] = d1 * (float)((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++) y[j + 32 + l] = d2 * (float)((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            ql += 32;
            is += 2;
            u1 = (uint8_t)(u1 << 2);
            u2 = (uint8_t)(u2 << 2);
        }
        break;
    }
    case KGT_Q3_K: {
        /* 16 scales of 6 bits: low 4 bits in bytes 0-7 (scale i: byte i%8,
         * nibble i/8), high 2 bits in bytes 8-11 (byte 8+i%4, bits 2(i/4)) */
        const uint8_t *hm = b, *q = b + 32, *sb = b + 96;
        float d = f16_at(b + 108);
        int sc[16];
        for (int i = 0; i < 16; i++) sc[i] = (((sb[i % 8] >> (4 * (i / 8))) & 0xF) | ((sb[8 + i % 4] >> (2 * (i / 4))) & 3) << 4) - 32;
        int is = 0, m = 1;
        float *yy = y;
        for (int n = 0; n < 256; n += 128) { /* as ggml's dequantize_row_q3_K */
            for (int shift = 0; shift < 8; shift += 2) {
                float dl = d * (float)sc[is++];
                for (int l = 0; l < 16; l++) *yy++ = dl * (float)(((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                dl = d * (float)sc[is++];
                for (int l = 16; l < 32; l++) *yy++ = dl * (float)(((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                m <<= 1;
            }
            q += 32;
        }
        break;
    }
    case KGT_Q2_K: {
        const uint8_t *sc = b, *q = b + 16;
        float d = f16_at(b + 80), dmin = f16_at(b + 82);
        int is = 0;
        float *yy = y;
        for (int n = 0; n < 256; n += 128) { /* as ggml's dequantize_row_q2_K */
            for (int shift = 0; shift < 8; shift += 2) {
                for (int half = 0; half < 2; half++) {
                    const int s = sc[is++];
                    float dl = d * (float)(s & 0xF), ml = dmin * (float)(s >> 4);
                    for (int l = 16 * half; l < 16 * half + 16; l++) *yy++ = dl * (float)((q[l] >> shift) & 3) - ml;
                }
            }
            q += 32;
        }
        break;
    }
    case KGT_IQ4_XS: {
        float d = f16_at(b);
        const unsigned sh = (unsigned)(b[2] | b[3] << 8);
        const uint8_t *sl = b + 4, *qs = b + 8;
        for (int ib = 0; ib < 8; ib++) {
            const int ls = ((sl[ib / 2] >> (4 * (ib % 2))) & 0xF) | (int)((sh >> (2 * ib)) & 3) << 4;
            const float dl = d * (float)(ls - 32);
            for (int j = 0; j < 16; j++) {
                y[32 * ib + j] = dl * (float)IQ4_T[qs[16 * ib + j] & 0xF];
                y[32 * ib + j + 16] = dl * (float)IQ4_T[qs[16 * ib + j] >> 4];
            }
        }
        break;
    }
    default: break;
    }
}

void ref_dequant_row(int type, const void *row, int64_t K, float *y)
{
    const int64_t be = ref_block_elems(type), bb = block_bytes(type);
    for (int64_t i = 0; i < K / be; i++) dequant_block(type, (const uint8_t *)row + i * bb, y + i * be);
}

void ref_quantize_q8a(const float *x, int64_t K, kgt_q8a *y)
{
    for (int64_t i = 0; i < K / 32; i++) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[32 * i + j]));
        int live = amax >= 0x1p-120f; /* else 127/amax could overflow: a zero block */
        float id = live ? 127.0f / amax : 0.0f;
        int32_t sum = 0;
        for (int j = 0; j < 32; j++) {
            float t = x[32 * i + j] * id;
            int q = (int)rintf(t);
            y[i].qs[j] = (int8_t)q;
            sum += q;
        }
        y[i].d = live ? amax / 127.0f : 0.0f;
        y[i].sum = sum;
    }
}

void ref_dequant_q8a(const kgt_q8a *x, int64_t K, float *y)
{
    for (int64_t i = 0; i < K / 32; i++)
        for (int j = 0; j < 32; j++) y[32 * i + j] = x[i].d * (float)x[i].qs[j];
}

/* the gate's activation of a GLU epilogue: silu, or GELU in its tanh form */
static double ref_glu_act(double g, int flags)
{
    if (flags & KGT_EPI_GEGLU) return 0.5 * g * (1.0 + tanh(0.7978845608028654 * (g + 0.044715 * g * g * g)));
    return g / (1.0 + exp(-g));
}

void ref_mm(const float *W, const float *Wup, const float *X, const float *bias, const float *res, int64_t M,
            int64_t N, int64_t K, int flags, double *Y, double *mag)
{
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double g = 0, u = 0, gm = 0, um = 0;
            for (int64_t k = 0; k < K; k++) {
                const double t = (double)W[n * K + k] * X[m * K + k];
                g += t;
                gm += fabs(t);
            }
            double a = gm;
            if (flags & (KGT_EPI_SWIGLU | KGT_EPI_GEGLU)) {
                for (int64_t k = 0; k < K; k++) {
                    const double t = (double)Wup[n * K + k] * X[m * K + k];
                    u += t;
                    um += fabs(t);
                }
                const double s = ref_glu_act(g, flags);
                a = fabs(s) * um + 1.13 * fabs(u) * gm; /* |silu'| <= 1.1, |gelu'| <= 1.13 */
                g = s * u;
            }
            if (flags & KGT_EPI_BIAS) {
                g += bias[n];
                a += fabs(bias[n]);
            }
            if (flags & KGT_EPI_RESIDUAL) {
                g += res[m * N + n];
                a += fabs(res[m * N + n]);
            }
            Y[m * N + n] = g;
            if (mag) mag[m * N + n] = a;
        }
}

void ref_mm_q8_bound(const float *W, const float *Wup, const float *X, const float *Xq, const float *bias,
                     const float *res, int64_t M, int64_t N, int64_t K, int flags, double *Yl, double *B)
{
    ref_mm(W, Wup, X, bias, res, M, N, K, flags, Yl, NULL);
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double g = 0, u = 0, bg = 0, bu = 0;
            for (int64_t k = 0; k < K; k++) {
                const double dx = fabs((double)X[m * K + k] - Xq[m * K + k]);
                g += (double)W[n * K + k] * X[m * K + k];
                bg += fabs((double)W[n * K + k]) * dx;
                if (flags & (KGT_EPI_SWIGLU | KGT_EPI_GEGLU)) {
                    u += (double)Wup[n * K + k] * X[m * K + k];
                    bu += fabs((double)Wup[n * K + k]) * dx;
                }
            }
            B[m * N + n] = flags & (KGT_EPI_SWIGLU | KGT_EPI_GEGLU)
                               ? 1.13 * bg * (fabs(u) + bu) + fabs(ref_glu_act(g, flags)) * bu
                               : bg;
        }
}
