/*
 * ref_ops.c — scalar double references for the non-product kernels. See
 * ref_ops.h.
 */
#include "ref_ops.h"

#include <math.h>
#include <stdlib.h>

void ref_rmsnorm(const float *x, const float *g, double *y, int64_t M, int64_t K, double eps)
{
    for (int64_t m = 0; m < M; m++) {
        double ss = 0;
        for (int64_t k = 0; k < K; k++) ss += (double)x[m * K + k] * x[m * K + k];
        double r = 1.0 / sqrt(ss / (double)K + eps);
        for (int64_t k = 0; k < K; k++) y[m * K + k] = x[m * K + k] * r * g[k];
    }
}

void ref_layernorm(const float *x, const float *g, const float *b, double *y, int64_t M, int64_t K, double eps)
{
    for (int64_t m = 0; m < M; m++) {
        const float *xr = x + m * K;
        double mean = 0, var = 0;
        for (int64_t k = 0; k < K; k++) mean += xr[k];
        mean /= (double)K;
        for (int64_t k = 0; k < K; k++) var += (xr[k] - mean) * (xr[k] - mean);
        var /= (double)K;
        for (int64_t k = 0; k < K; k++)
            y[m * K + k] = (xr[k] - mean) / sqrt(var + eps) * g[k] + (b ? b[k] : 0.0);
    }
}

void ref_rope(const float *x, const int32_t *pos, double *y, int64_t M, int64_t n_head, int64_t head_dim,
              int64_t n_rot, int64_t mode, double base, double freq_scale, const float *ff)
{
    for (int64_t m = 0; m < M; m++)
        for (int64_t h = 0; h < n_head; h++) {
            const float *xr = x + (m * n_head + h) * head_dim;
            double *yr = y + (m * n_head + h) * head_dim;
            for (int64_t d = 0; d < head_dim; d++) yr[d] = xr[d];
            for (int64_t i = 0; i < n_rot / 2; i++) {
                double theta = pos[m] * freq_scale * pow(base, -2.0 * (double)i / (double)n_rot);
                if (ff) theta /= ff[i];
                int64_t a = mode == 2 ? i : 2 * i, b = mode == 2 ? i + n_rot / 2 : 2 * i + 1;
                yr[a] = xr[a] * cos(theta) - xr[b] * sin(theta);
                yr[b] = xr[a] * sin(theta) + xr[b] * cos(theta);
            }
        }
}

void ref_softmax(const float *x, double *y, int64_t M, int64_t N, double scale)
{
    for (int64_t m = 0; m < M; m++) {
        double mx = -INFINITY, sum = 0;
        for (int64_t n = 0; n < N; n++) mx = fmax(mx, scale * x[m * N + n]);
        for (int64_t n = 0; n < N; n++) sum += y[m * N + n] = exp(scale * x[m * N + n] - mx);
        for (int64_t n = 0; n < N; n++) y[m * N + n] /= sum;
    }
}

void ref_attn(const float *q, const double *k, const double *v, double *out, int64_t M, int64_t n_head,
              int64_t n_head_kv, int64_t D, int64_t n_ctx, int64_t pos0, double scale, int64_t window)
{
    double *s = malloc((size_t)n_ctx * sizeof *s);
    if (!s) abort();
    for (int64_t m = 0; m < M; m++)
        for (int64_t h = 0; h < n_head; h++) {
            const float *qr = q + (m * n_head + h) * D;
            int64_t g = h / (n_head / n_head_kv), p = pos0 + m, n = p + 1, first = 0;
            if (window > 0 && p - window + 1 > 0) first = p - window + 1;
            const double *kg = k + g * n_ctx * D, *vg = v + g * n_ctx * D;
            double mx = -INFINITY, sum = 0;
            for (int64_t j = first; j < n; j++) {
                s[j] = 0;
                for (int64_t d = 0; d < D; d++) s[j] += qr[d] * kg[j * D + d];
                s[j] *= scale != 0 ? scale : 1.0 / sqrt((double)D);
                mx = fmax(mx, s[j]);
            }
            for (int64_t j = first; j < n; j++) sum += s[j] = exp(s[j] - mx);
            double *o = out + (m * n_head + h) * D;
            for (int64_t d = 0; d < D; d++) {
                o[d] = 0;
                for (int64_t j = first; j < n; j++) o[d] += s[j] * vg[j * D + d];
                o[d] /= sum;
            }
        }
    free(s);
}

void ref_softcap(const float *x, double *y, int64_t n, double cap)
{
    for (int64_t i = 0; i < n; i++) y[i] = cap * tanh(x[i] / cap);
}

void ref_silu(const float *x, double *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = x[i] / (1.0 + exp(-(double)x[i]));
}

void ref_gelu(const float *x, double *y, int64_t n)
{
    const double c = sqrt(2.0 / M_PI);
    for (int64_t i = 0; i < n; i++) {
        double t = x[i];
        y[i] = 0.5 * t * (1.0 + tanh(c * (t + 0.044715 * t * t * t)));
    }
}

double ref_f16_value(uint16_t h)
{
    int e = (h >> 10) & 31, f = h & 1023;
    double v = e == 0 ? ldexp(f, -24) : e == 31 ? (f ? NAN : INFINITY) : ldexp(1024 + f, e - 25);
    return h & 0x8000 ? -v : v;
}

void ref_gelu_erf(const float *x, double *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = 0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0)));
}

void ref_attn_enc(const float *qkv, const int32_t *lens, double *out, int64_t B, int64_t L, int64_t nh, int64_t hd,
                  double scale)
{
    const int64_t D = nh * hd, ld = 3 * D;
    const double sc = scale != 0 ? scale : 1.0 / sqrt((double)hd);
    double *s = malloc((size_t)(L ? L : 1) * sizeof *s);
    if (!s) abort();
    for (int64_t b = 0; b < B; b++) {
        const int64_t len = lens[b] < 0 ? 0 : lens[b] > L ? L : lens[b];
        for (int64_t i = 0; i < L; i++)
            for (int64_t h = 0; h < nh; h++) {
                double *o = out + (b * L + i) * D + h * hd;
                for (int64_t d = 0; d < hd; d++) o[d] = 0;
                if (i >= len) continue;
                const float *q = qkv + (b * L + i) * ld + h * hd;
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < len; j++) {
                    const float *k = qkv + (b * L + j) * ld + D + h * hd;
                    double t = 0;
                    for (int64_t d = 0; d < hd; d++) t += (double)q[d] * k[d];
                    s[j] = t * sc;
                    mx = fmax(mx, s[j]);
                }
                for (int64_t j = 0; j < len; j++) sum += s[j] = exp(s[j] - mx);
                for (int64_t j = 0; j < len; j++) {
                    const float *v = qkv + (b * L + j) * ld + 2 * D + h * hd;
                    for (int64_t d = 0; d < hd; d++) o[d] += s[j] / sum * v[d];
                }
            }
    }
    free(s);
}

void ref_pool(const float *x, const int32_t *lens, double *out, int64_t B, int64_t L, int64_t K, int mode, int norm)
{
    for (int64_t b = 0; b < B; b++) {
        const int64_t len = lens[b] < 0 ? 0 : lens[b] > L ? L : lens[b];
        double *y = out + b * K, nrm = 0;
        for (int64_t k = 0; k < K; k++) {
            double a = len ? x[b * L * K + k] : 0;
            for (int64_t i = 1; i < len && mode != 1; i++) {
                const double v = x[(b * L + i) * K + k];
                a = mode == 2 ? fmax(a, v) : a + v;
            }
            if (len && (mode == 0 || mode == 3)) a /= mode == 0 ? (double)len : sqrt((double)len);
            y[k] = a;
            nrm += a * a;
        }
        nrm = sqrt(nrm);
        if (norm)
            for (int64_t k = 0; k < K; k++) y[k] /= nrm > 1e-12 ? nrm : 1e-12;
    }
}
