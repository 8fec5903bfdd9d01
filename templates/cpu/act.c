/*
 * act.c — the elementwise templates: SiLU and GELU (tanh approximation; see
 * ops.h for which one exactly), the sum of two tensors (residual adds), the
 * gated activations SwiGLU / GeGLU and the logit softcap c tanh(x / c). Contracts in ops.h. Threads split
 * the elements in 64-float chunks; outputs may alias inputs.
 */
#include "ops.h"

enum { ACT_SILU, ACT_GELU, ACT_ADD, ACT_GLU_SILU, ACT_GLU_GELU, ACT_SOFTCAP };

/* c: the softcap's cap (the other kinds ignore it) */
KG_INLINE kgt_vf act_apply(int kind, kgt_vf a, kgt_vf b, float c)
{
    switch (kind) {
    case ACT_SILU: return kgt_vsilu(a);
    case ACT_GELU: return kgt_vgelu(a);
    case ACT_ADD: return a + b;
    case ACT_GLU_SILU: return kgt_vsilu(a) * b;
    case ACT_SOFTCAP: return c * kgt_vtanh(a / c);
    default: return kgt_vgelu(a) * b;
    }
}

/* out[i] = f(a[i], b[i]) for this thread's chunks of n elements (b: NULL
 * for the one-input kinds) */
KG_INLINE void act_map(const float *a, const float *b, float *out, int ith, int nth, int64_t n, int kind, float c)
{
    int64_t lo, hi, i;
    kgt_split(n, 64, ith, nth, &lo, &hi);
    kgt_vf u, v = kgt_vsplat(0.0f);
    for (i = lo; i + KGT_VF <= hi; i += KGT_VF) {
        u = kgt_vload(a + i);
        if (b) v = kgt_vload(b + i);
        kgt_vstore(out + i, act_apply(kind, u, v, c));
    }
    if (i < hi) {
        u = kgt_vload_part(a + i, hi - i, 0.0f);
        if (b) v = kgt_vload_part(b + i, hi - i, 0.0f);
        kgt_vstore_part(out + i, hi - i, act_apply(kind, u, v, c));
    }
}

KG_KERNEL void kgt_silu(void *const *p, int ith, int nth, int64_t n) { act_map(p[0], NULL, p[1], ith, nth, n, ACT_SILU, 0.0f); }

KG_KERNEL void kgt_gelu(void *const *p, int ith, int nth, int64_t n) { act_map(p[0], NULL, p[1], ith, nth, n, ACT_GELU, 0.0f); }

KG_KERNEL void kgt_add(void *const *p, int ith, int nth, int64_t M, int64_t N)
{
    act_map(p[0], p[1], p[2], ith, nth, M * N, ACT_ADD, 0.0f);
}

KG_KERNEL void kgt_glu(void *const *p, int ith, int nth, int64_t M, int64_t N, int64_t act)
{
    act_map(p[0], p[1], p[2], ith, nth, M * N, act == KGT_GLU_GELU ? ACT_GLU_GELU : ACT_GLU_SILU, 0.0f);
}

KG_KERNEL void kgt_softcap(void *const *p, int ith, int nth, int64_t M, int64_t N, double cap)
{
    act_map(p[0], NULL, p[1], ith, nth, M * N, ACT_SOFTCAP, (float)cap);
}
