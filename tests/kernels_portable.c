/*
 * kernels_portable.c — the product templates compiled a second time, by the
 * tests' compiler for the baseline ISA with KGQ_PORTABLE (no intrinsics), so
 * the tests run the portable vector-extension code that the generic bitcode
 * (x86-64-v2, later other ISAs) is made of; templates/cpu's own objects are
 * built with -march=native. Same code, renamed: kgtp_*.
 */
#define KGQ_PORTABLE 1
#define kgt_mm kgtp_mm
#define kgt_quantize kgtp_quantize
#define kgt_embed kgtp_embed
#include "templates/cpu/mm.c"
#include "templates/cpu/quantize.c"
#include "templates/cpu/embed.c"
