/*
 * kernels_portable_b.c — the portable build of the product templates again
 * (see kernels_portable.c), with Q8_0's quants biased to unsigned as the
 * AVX-512 VNNI path has them (KGQ_Q8_BIASED), so that arithmetic is tested
 * on machines without VNNI. Renamed kgtb_*.
 */
#define KGQ_PORTABLE 1
#define KGQ_Q8_BIASED 1
#define kgt_mm kgtb_mm
#define kgt_quantize kgtb_quantize
#define kgt_embed kgtb_embed
#include "templates/cpu/mm.c"
#include "templates/cpu/quantize.c"
#include "templates/cpu/embed.c"
