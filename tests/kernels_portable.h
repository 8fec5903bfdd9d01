/*
 * kernels_portable.h — the product templates' other builds in the tests:
 * kgtp_* (kernels_portable.c: portable C, no intrinsics), kgtb_*
 * (kernels_portable_b.c: the same with the biased q8 path) and kgta_*
 * (kernels_portable_avx2.c: the AVX2 level, where the CPU has it,
 * kgta_usable). Their signatures are products.h's kgt_* ones.
 */
#ifndef KGEN_KERNELS_PORTABLE_H
#define KGEN_KERNELS_PORTABLE_H

#include <stdint.h>

#define KT_MM_DECL(name)                                                                                          \
    void name(void *const *p, int ith, int nth, int64_t wtype, int64_t act, int64_t M, int64_t N, int64_t K,    \
              int64_t flags, int64_t ldy, int64_t layout, int64_t amx, int64_t pf, int64_t mb, int64_t nc,     \
              int64_t mt)
#define KT_QUANTIZE_DECL(name) void name(void *const *p, int ith, int nth, int64_t M, int64_t K)
#define KT_EMBED_DECL(name)                                                                                       \
    void name(void *const *p, int ith, int nth, int64_t wtype, int64_t M, int64_t K, double scale, int64_t pos_len, \
              int64_t pos_type, int64_t layout)

KT_MM_DECL(kgtp_mm);
KT_QUANTIZE_DECL(kgtp_quantize);
KT_EMBED_DECL(kgtp_embed);
KT_MM_DECL(kgtb_mm);
KT_QUANTIZE_DECL(kgtb_quantize);
KT_EMBED_DECL(kgtb_embed);
KT_MM_DECL(kgta_mm);
KT_QUANTIZE_DECL(kgta_quantize);
KT_EMBED_DECL(kgta_embed);
int kgta_usable(void);

#endif
