/*
 * kernels_portable_b.c — the portable build of the product templates again
 * (see kernels_portable.c), with Q8_0's quants biased to unsigned as the
 * AVX-512 VNNI path has them (KGQ_Q8_BIASED), so that arithmetic is tested
 * on machines without VNNI. Renamed kgtb_*. Only the types it biases are
 * compiled (KGT_MM_TYPES): kgtb_mm does nothing for the others, which the
 * tests call kgtp_mm for, and the build takes a fraction of the time.
 */
#define KGQ_PORTABLE 1
#define KGQ_Q8_BIASED 1
#define KGT_MM_TYPES(wt) kgq_q8_biasable(wt)
#define kgt_mm kgtb_mm
#define kgt_quantize kgtb_quantize
#define kgt_embed kgtb_embed
#include "templates/cpu/mm.c"
#include "templates/cpu/quantize.c"
#include "templates/cpu/embed.c"
