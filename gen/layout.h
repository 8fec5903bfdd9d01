/*
 * layout.h — weight layouts: which layout a product's weights can take, and
 * the rewriting into it (at compile time, once; pass_repack.c).
 *
 * A layout is a named choice, the value of the `layout` knob (gen_knobs)
 * and of kgt_mm's `layout` parameter (templates/cpu/kernel.h's
 * KGT_LAYOUT_*; the kernels' side of each is documented with its tile,
 * e.g. templates/cpu/mm_x16.h). The tests call the same rewriting to feed
 * the kernels (tests/test_kernels_mm.c).
 */
#ifndef KGEN_GEN_LAYOUT_H
#define KGEN_GEN_LAYOUT_H

#include <stdbool.h>
#include <stdint.h>

/* the id of a name, or -1 */
int gen_layout_parse(const char *name);
/* Can an N x K matrix of `type` take `layout`? (rows: always) */
bool gen_layout_fits(int layout, int type, int64_t N, int64_t K);
/* F32, F16, BF16: the types the float tiles read (against f32 activations) */
bool gen_layout_float(int type);
/* Rows of a group the layout rewrites together (rows: 1, x16: 16). */
int gen_layout_group(int layout);
/* Rewrites one group: rows[0..group-1] (each `row_bytes` of `type`, K
 * elements) into out (group x row_bytes bytes). Only for a layout that fits. */
void gen_layout_write(int layout, int type, int64_t K, const uint8_t *const *rows, uint64_t row_bytes, uint8_t *out);

#endif
