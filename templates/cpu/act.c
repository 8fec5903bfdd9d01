/*
 * act.c — elementwise activations: SiLU and GELU (tanh approximation; see
 * ops.h for which one exactly). Contract in ops.h.
 */
#include "ops.h"

enum { ACT_SILU, ACT_GELU };

/* out[i] = f(in[i]) for this thread's 64-float chunks; in may equal out */
KG_INLINE void act_map(void *const *p, int ith, int nth, int64_t n, int kind)
{
    const float *in = p[0];
    float *out = p[1];
    int64_t lo, hi, i;
    kgt_split(n, 64, ith, nth, &lo, &hi);
    kgt_vf v;
    for (i = lo; i + KGT_VF <= hi; i += KGT_VF) {
        v = kgt_vload(in + i);
        kgt_vstore(out + i, kind == ACT_SILU ? kgt_vsilu(v) : kgt_vgelu(v));
    }
    if (i < hi) {
        v = kgt_vload_part(in + i, hi - i, 0.0f);
        kgt_vstore_part(out + i, hi - i, kind == ACT_SILU ? kgt_vsilu(v) : kgt_vgelu(v));
    }
}

KG_KERNEL void kgt_silu(void *const *p, int ith, int nth, int64_t n) { act_map(p, ith, nth, n, ACT_SILU); }

KG_KERNEL void kgt_gelu(void *const *p, int ith, int nth, int64_t n) { act_map(p, ith, nth, n, ACT_GELU); }
