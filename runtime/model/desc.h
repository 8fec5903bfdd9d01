/*
 * desc.h — what `kgen compile` tells the model runtime about a model: the
 * descriptor it writes into the model's data (gen/model.c), and the
 * generated entry points. Shared by gen/ (writer) and runtime/model/model.c
 * (reader); both are compiled for x86-64 Linux by the same compiler family,
 * and the struct has only fixed-width fields, explicitly padded.
 *
 * Symbols in a compiled model (all hidden):
 *   kgm_desc_data                 a kgm_desc
 *   kgm_tok_blob, kgm_tok_blob_end   the tokenizer blob (gen/tokdata.c)
 *   kgm_weights, kgm_weights_end  the packed weights, in objects (--emit obj); empty
 *                                 in shared objects, whose weights follow the ELF image
 *                                 in the same file (weights_offset), so the linker never
 *                                 copies them, and in models with external weights
 *   kgm_cuda_blob, kgm_cuda_blob_end  CUDA models: kernels and launches (cuda_blob.h);
 *                                 empty for CPU models
 *   kgm_gen_decode, kgm_gen_prefill  CPU models: the entry points (gen/lower.c):
 *       void f(void *const base[KGM_BASES], void *pool, int ith, int nth)
 *     run by every thread of the pool; they call kgr_barrier(pool, ith)
 *     between dependent kernels.
 */
#ifndef KGEN_DESC_H
#define KGEN_DESC_H

#include <stdint.h>

#define KGM_DESC_MAGIC 0x444d474bu /* "KGMD" */
#define KGM_DESC_VERSION 2 /* 2: encoders */

enum { KGM_BACKEND_CPU = 0, KGM_BACKEND_CUDA = 1 };

/* base[] of the entry points */
enum { KGM_BASE_W, KGM_BASE_WS, KGM_BASE_KV, KGM_BASE_RT, KGM_BASES };

/* the int64 run-time values at base[KGM_BASE_RT] */
enum {
    KGM_RT_M,        /* tokens in this step (prefill; 1 for decode)           */
    KGM_RT_NCTX,     /* KV cache length                                       */
    KGM_RT_KVBYTES,  /* bytes of one layer's K (or V) cache                   */
    KGM_RT_NKV,      /* decode: positions in the cache after this token       */
    KGM_RT_POS0,     /* prefill: position of the first token                  */
    KGM_RT_NSEQ,     /* encoders: sequences in this step                      */
    KGM_RT_SEQLEN,   /* encoders: rows per sequence in this step (M = NSEQ * SEQLEN) */
    KGM_RT_AMX,      /* 1: the process has the AMX tile state (kgr_amx_enable) */
    KGM_RT_COUNT
};

/* CPU features the kernels may use (bit i = feature i), checked at open */
#define KGM_CPU_FEATURES(X) \
    X(SSE42, "sse4.2") X(POPCNT, "popcnt") X(AVX, "avx") X(AVX2, "avx2") X(FMA, "fma") X(F16C, "f16c") \
    X(BMI2, "bmi2") X(AVX512F, "avx512f") X(AVX512BW, "avx512bw") X(AVX512VL, "avx512vl")             \
    X(AVX512DQ, "avx512dq") X(AVX512VNNI, "avx512vnni") X(AVXVNNI, "avxvnni")
#define KGM_X(id, name) KGM_CPU_##id,
enum { KGM_CPU_FEATURES(KGM_X) KGM_CPU_COUNT };
#undef KGM_X

typedef struct kgm_desc {
    uint32_t magic, version;
    char arch[16];
    char name[64];
    char weight_type[16];
    char target_cpu[64];
    char content_hash[40];      /* 32 hex digits + NUL                         */
    char weights_hash[40];      /* XXH3-128 of the packed weights, hex         */
    char weights_file[256];     /* external weights: the file's name (beside the .so); "" if embedded */
    uint64_t cpu_features;      /* required: bits of KGM_CPU_FEATURES          */
    uint64_t weights_offset;    /* shared objects: the weights follow the ELF image in the same file,
                                   at this (page-aligned) offset; 0: they are kgm_weights (objects)
                                   or external                                 */
    uint64_t weight_bytes;      /* packed weights                              */
    uint64_t ws_bytes;          /* workspace for n_batch tokens                */
    uint64_t ws_ids, ws_pos, ws_logits; /* workspace offsets                   */
    int32_t n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_ctx_train, n_batch;
    int32_t kv_elem_bytes;      /* 2 (f16 cache), 4 (f32) or 1: GGUF Q8_0 blocks of
                                   32 values of a head (34 bytes; kgr_kv_row_bytes) */
    int32_t n_kv_tensors;       /* 2 * n_layer: K and V of each layer          */
    int32_t backend;            /* KGM_BACKEND_*; CUDA: the code is kgm_cuda_blob (cuda_blob.h) and
                                   target_cpu names the target, e.g. "cuda:sm_90" */
    int32_t encoder;            /* 1: an encoder (kgm_embed): n_batch = n_seq * max_len rows, ws_pos
                                   the sequences' lengths (int32[n_seq]), ws_logits the n_seq
                                   pooled vectors (f32[n_seq][n_embd]); the decode entry is empty */
    int32_t n_seq, max_len;     /* encoders: sequences per step, tokens per sequence       */
    int32_t pool;               /* encoders: the pooling (gen/graph.h's GEN_POOL_* values)  */
} kgm_desc;

#endif
