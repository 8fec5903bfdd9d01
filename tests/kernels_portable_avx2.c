/*
 * kernels_portable_avx2.c — the product templates compiled a third time,
 * for AVX2 + FMA + F16C without AVX-512 (the x86-64-v3 bitcode's level),
 * so the tests run the AVX2 intrinsic paths that a VNNI machine's native
 * build skips: maddubs products for every type, no vpdpbusd, no bias of
 * Q8_0's and the IQ4 types' quants. The ISA is set by a target pragma
 * (GCC; Clang: a target attribute on every function, with the feature
 * macros the templates test), so no build rule changes; the test calls
 * these only where the CPU has the features (kgta_usable). Renamed kgta_*.
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC target("arch=haswell")
#define KGTA_BUILT 1
#elif defined(__x86_64__) && defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,bmi,bmi2,lzcnt,movbe,popcnt"))), apply_to = function)
#ifndef __AVX2__
#define __AVX__ 1
#define __AVX2__ 1
#define __FMA__ 1
#define __F16C__ 1
#endif
#define KGTA_BUILT 2
#endif

#define kgt_mm kgta_mm
#define kgt_quantize kgta_quantize
#define kgt_embed kgta_embed
#include "templates/cpu/mm.c"
#include "templates/cpu/quantize.c"
#include "templates/cpu/embed.c"

#if KGTA_BUILT == 2
#pragma clang attribute pop
#endif

/* 1 if this file holds the AVX2 path and this CPU can run it */
int kgta_usable(void);
int kgta_usable(void)
{
#if defined(KGTA_BUILT) && KGQ_AVX2 && !KGQ_VNNI && !KG_ISA_AVX512
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
    return 0;
#endif
}
