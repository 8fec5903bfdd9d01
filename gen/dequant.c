/*
 * dequant.c — a row of any type kgen computes with, as floats, for the
 * compiler's own use (`--requant`: gen/quant.c). It is the CPU templates'
 * decoder (templates/cpu/quants.h, portable path), compiled natively into
 * kgen, so the weights kgen requantizes are exactly the values its kernels
 * compute with: there is one decoder per type, not two.
 */
#define KGQ_PORTABLE 1
#include "quants.h"

#include "quant.h"

void gen_dequant_row(int type, const void *row, int64_t k, float *y) { kgq_dequant_row(type, row, k, y); }
