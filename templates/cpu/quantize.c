/*
 * quantize.c — kgt_quantize: f32 activations to kgt_q8a blocks for the
 * products' KGT_ACT_Q8 mode (contract in products.h; the block arithmetic
 * is kgq_quantize32 in quants.h).
 */
#include "products.h"
#include "quants.h"

KG_KERNEL void kgt_quantize(void *const *p, int ith, int nth, int64_t M, int64_t K)
{
    const float *x = p[0];
    kgt_q8a *y = p[1];
    int64_t lo, hi;
    /* X's rows are contiguous, so block i is x[32i..32i+31] whatever its row;
     * shares of 8 blocks are 320 bytes, whole cache lines */
    kgt_split(M * (K / 32), 8, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) kgq_quantize32(x + 32 * i, y + i);
}
