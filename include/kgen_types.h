/*
 * kgen_types.h — the one table of tensor types kgen knows.
 *
 * Everything that handles a tensor type is derived from this list: the
 * public enum and kg_type_get (kgen.h), the CPU templates' type ids, type
 * dispatch and block geometry (templates/cpu/kernel.h, quants.h), the CUDA
 * templates' ids and formats (templates/cuda/common.cuh, which NVRTC sees
 * as this same file), and the graph builder's "has a kernel" check. It is
 * plain macros (no includes), so C, C++ and NVRTC all read it. Adding a
 * type kgen computes with is one row here (kernels = 1) plus its block
 * decoder in the CPU and CUDA templates; a row with kernels = 1 and no
 * decoder fails to compile (static assertions in the templates).
 *
 *     X(id, NAME, blck, size, kernels, group, minimum)        (KG_TYPES(X))
 *
 *   id       GGML's on-disk type id (0..255). Ids from KG_TYPE_OWN_BASE up
 *            are kgen's own weight formats (no GGUF id; never written to a
 *            GGUF file). U8 is not a GGML type: safetensors has it, so it
 *            takes id 5, which GGML retired (Q4_3, removed before GGUF
 *            existed: no GGUF file holds it; 4, Q4_2's, stays unknown).
 *   blck     elements per block; size: bytes per block (facts of GGUF).
 *   kernels  1 if kgen's CPU and CUDA kernels compute with it; the others
 *            are known by name and size, so any real file can be inspected,
 *            and are refused (naming the tensor and the type) only by a
 *            stage that must compute with them.
 *   group    kgen's own formats: elements per scale (32, 64, 128); 0 for
 *            GGUF's types, whose blocks say it themselves.
 *   minimum  kgen's own formats: 1 if each group also has a minimum
 *            (w = q d + m), 0 if symmetric; 0 for GGUF's types.
 */
#ifndef KGEN_TYPES_H
#define KGEN_TYPES_H

#define KG_TYPE_OWN_BASE 256 /* first id of kgen's own formats */

#define KG_TYPES_A(X, A)                            \
    X(0,  F32,      1,    4,   1, 0, 0, A)        \
    X(1,  F16,      1,    2,   1, 0, 0, A)        \
    X(2,  Q4_0,    32,   18,   1, 0, 0, A)        \
    X(3,  Q4_1,    32,   20,   1, 0, 0, A)        \
    X(5,  U8,       1,    1,   0, 0, 0, A)        \
    X(6,  Q5_0,    32,   22,   1, 0, 0, A)        \
    X(7,  Q5_1,    32,   24,   1, 0, 0, A)        \
    X(8,  Q8_0,    32,   34,   1, 0, 0, A)        \
    X(9,  Q8_1,    32,   36,   0, 0, 0, A)        \
    X(10, Q2_K,   256,   84,   1, 0, 0, A)        \
    X(11, Q3_K,   256,  110,   1, 0, 0, A)        \
    X(12, Q4_K,   256,  144,   1, 0, 0, A)        \
    X(13, Q5_K,   256,  176,   1, 0, 0, A)        \
    X(14, Q6_K,   256,  210,   1, 0, 0, A)        \
    X(15, Q8_K,   256,  292,   0, 0, 0, A)        \
    X(16, IQ2_XXS,256,   66,   0, 0, 0, A)        \
    X(17, IQ2_XS, 256,   74,   0, 0, 0, A)        \
    X(18, IQ3_XXS,256,   98,   0, 0, 0, A)        \
    X(19, IQ1_S,  256,   50,   0, 0, 0, A)        \
    X(20, IQ4_NL,  32,   18,   1, 0, 0, A)        \
    X(21, IQ3_S,  256,  110,   0, 0, 0, A)        \
    X(22, IQ2_S,  256,   82,   0, 0, 0, A)        \
    X(23, IQ4_XS, 256,  136,   1, 0, 0, A)        \
    X(24, I8,       1,    1,   0, 0, 0, A)        \
    X(25, I16,      1,    2,   0, 0, 0, A)        \
    X(26, I32,      1,    4,   0, 0, 0, A)        \
    X(27, I64,      1,    8,   0, 0, 0, A)        \
    X(28, F64,      1,    8,   0, 0, 0, A)        \
    X(29, IQ1_M,  256,   56,   0, 0, 0, A)        \
    X(30, BF16,     1,    2,   1, 0, 0, A)        \
    X(34, TQ1_0,  256,   54,   0, 0, 0, A)        \
    X(35, TQ2_0,  256,   66,   0, 0, 0, A)        \
    X(39, MXFP4,   32,   17,   0, 0, 0, A)        \
    X(40, NVFP4,   64,   36,   0, 0, 0, A)        \
    X(41, Q1_0,   128,   18,   0, 0, 0, A)

/* the table, as X(id, NAME, blck, size, kernels, group, minimum) */
#define KG_TYPES(X) KG_TYPES_A(KG_TYPES_DROP_, X)
#define KG_TYPES_DROP_(id, nm, b, s, k, g, mn, X) X(id, nm, b, s, k, g, mn)

/* The rows with kernels = 1 as the cases of a switch over a type id, each
 * calling FN with the type's id (PREFIX##NAME) first:
 *     switch (wt) { KG_TYPE_CASES(KGT_, fn, a, b) default: break; }
 * gives   case KGT_Q4_0: fn(KGT_Q4_0, a, b); break;  ...
 * A generator that binds wt to a constant folds the switch to one call. */
#define KG_TYPE_CASES(PREFIX, ...) KG_TYPES_A(KG_TYPE_CASE_, (PREFIX, __VA_ARGS__))
#define KG_TYPE_CASE_(id, nm, b, s, k, g, mn, A) KG_TYPE_CASE_##k(nm, A)
#define KG_TYPE_CASE_0(nm, A)
#define KG_TYPE_CASE_1(nm, A) KG_TYPE_CALL_(nm, KG_TYPE_UNPAREN_ A)
#define KG_TYPE_UNPAREN_(...) __VA_ARGS__
#define KG_TYPE_CALL_(nm, ...) KG_TYPE_CALL2_(nm, __VA_ARGS__)
#define KG_TYPE_CALL2_(nm, P, FN, ...) case P##nm: FN(P##nm, __VA_ARGS__); break;

#endif
