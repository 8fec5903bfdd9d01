/*
 * quant.h — kgen's own quantization at compile time (`kgen compile
 * --quant SCHEME [--quant-tensor PATTERN=SCHEME]... [--requant]`): float
 * weights rewritten into a quantized type before the graph is built, so
 * everything after the model source sees an ordinary quantized model.
 *
 * A spec is the CLI's options joined: "SCHEME[;PATTERN=SCHEME]...". The
 * first SCHEME applies to the model's matrices (2-D tensors named blk.*,
 * token_embd.weight, output.weight) whose rows are whole groups; each
 * PATTERN (a shell glob on the GGUF tensor name, fnmatch(3)) names tensors
 * that take its SCHEME instead, the last matching pattern winning. A
 * pattern must match a tensor, and a tensor a pattern names must be
 * quantizable (else an error naming it). Tensors already quantized in the
 * source are left as they are unless requant is set: then they are
 * dequantized (gen/dequant.c) and quantized again.
 */
#ifndef KGEN_QUANT_H
#define KGEN_QUANT_H

#include "kgen.h"
#include "source.h"

#include <stdbool.h>
#include <stdint.h>

/* The schemes, for --help and messages */
#define GEN_QUANT_NAMES "w8g32, w4g32, w4g32a, w5g32, w5g32a, f16, none"

/* The GGUF type scheme `name` writes (KG_TYPE_*), -1 for "none" (left as
 * it is), -2 for an unknown name. */
int gen_quant_scheme_type(const char *name);

/* A spec parsed: rule 0 is the default scheme (pat NULL), then each
 * override in order; type is gen_quant_scheme_type's (-1: none); hits is
 * the caller's to count matches in. */
typedef struct gen_quant_rule {
    const char *pat, *scheme;
    int type, hits;
} gen_quant_rule;

/* Parses a non-empty spec (errors name the item): *rules[*n], their
 * strings in *buf; free both. */
kg_status gen_quant_parse(const char *spec, char **buf, gen_quant_rule **rules, int *n);

/* Checks a spec (messages name the item); KG_OK for NULL or "". */
kg_status gen_quant_check(const char *spec);

/* One row of k floats (k a multiple of the type's block) into `type`'s
 * blocks at out, as ggml's reference quantizers do (bit for bit what the
 * `gguf` package's numpy quantizers write). false if a value is not
 * finite (out is then partly written). */
bool gen_quant_row(int type, const float *x, int64_t k, void *out);

/* A row of `type` (any type with kernels) as k floats (gen/dequant.c). */
void gen_dequant_row(int type, const void *row, int64_t k, float *y);

/* Opens the model at path (gen_source_open) and, for a non-empty spec,
 * returns it wrapped: tensors the spec rewrites are quantized now, the
 * rest read through. progress: one line on stderr with what was done. */
kg_status gen_source_open_quant(const char *path, const char *spec, bool requant, bool progress, gen_source **out);

#endif
