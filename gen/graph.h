/*
 * graph.h — the model graph kgen compiles, and the passes over it.
 *
 * A graph is a list of nodes in execution order; each node is one operation
 * on tensors with static shapes. Tensors are weights (from the model file,
 * possibly several concatenated by rows), activations (one row per token of
 * the batch, or one row), the KV cache of a layer, or the run-time inputs
 * (token ids, positions). The pipeline (gen/model.c, gen_model_build):
 *
 *   arch.c (the registry)        model source (source.h) -> graph of plain
 *                                ops, every one of which has a kernel
 *                                (lowering is total)
 *   pass_fuse.c                  an optimization: fused ops (QKV product +
 *                                RoPE + KV append, gate/up + SwiGLU, residual
 *                                epilogues, q8 activations); KGEN_NOFUSE
 *                                turns rules off
 *   pass_repack.c                the weights blob in the layout the kernels
 *                                want (concatenations, layout.h's
 *                                rewriting), offsets and hash
 *   pass_memplan.c               one workspace arena, planned offsets
 *   lower.c                      kernel instances and the entry points, with
 *                                a barrier only between dependent calls
 *
 * KGEN_DEBUG=1 prints the graph after every pass (gen_graph_print).
 */
#ifndef KGEN_GRAPH_H
#define KGEN_GRAPH_H

#include "gen.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Element types of activations (weights use kg_type ids). */
enum { GEN_ACT_F32 = 0, GEN_ACT_Q8 = 1000, GEN_ACT_I32 = 1001 };

typedef enum gen_tkind {
    GEN_T_WEIGHT,  /* in the weights blob                                 */
    GEN_T_ACT,     /* in the workspace                                    */
    GEN_T_KV,      /* a layer's K or V cache (kv_layer, kv_is_v)          */
    GEN_T_INPUT,   /* token ids / positions, int32 per token (workspace)  */
} gen_tkind;

#define GEN_MAX_PARTS 3

typedef struct gen_tensor {
    char name[64];
    gen_tkind kind;
    int type;                  /* kg_type (weights) or GEN_ACT_*          */
    int64_t rows;              /* weights: rows (N); activations: 1       */
    int64_t cols;              /* elements per row                        */
    bool per_token;            /* activations: one row per batch token    */
    int n_parts;               /* weights: source tensors, concatenated by rows */
    const kg_tensor *parts[GEN_MAX_PARTS];
    int kv_layer;
    bool kv_is_v;
    uint64_t row_bytes;
    int layout;                /* weights: KGT_LAYOUT_* in the blob (pass_repack) */
    uint64_t off;              /* planned: weights blob or workspace offset */
    uint64_t size;             /* planned: bytes (activations: for n_batch rows) */
    int first, last;           /* liveness: first and last node using it (-1: none) */
} gen_tensor;

typedef enum gen_opk {
    GEN_OP_EMBED,    /* in: table, ids                     -> f32 rows      */
    GEN_OP_RMSNORM,  /* in: x, gamma                       -> f32 or q8 (groups: per head) */
    GEN_OP_MATMUL,   /* in: W, x [, W_up (SWIGLU)] [, resid] [, bias] -> f32 or q8 */
    GEN_OP_ROPE,     /* in: x, pos [, freq factors]        -> rotated copy  */
    GEN_OP_KV_STORE, /* in: k, v, pos, K cache, V cache    -> (the caches)  */
    GEN_OP_ATTN,     /* in: q, K cache, V cache, scratch   -> f32 rows      */
    GEN_OP_ADD,      /* in: a, b                           -> a + b         */
    GEN_OP_GLU,      /* in: g, u                           -> act(g) * u (flags: KGT_GLU_*) */
    GEN_OP_QUANTIZE, /* in: x                              -> q8 rows       */
    GEN_OP_ROPE_KV,  /* in: qkv, pos, K cache, V cache [, freq factors] [, q gamma, k gamma] -> rotated q */
    GEN_OP_SOFTCAP,  /* in: x                              -> cap * tanh(x / cap) */
    /* encoders (arch_bert.c): B sequences of L rows back to back, lengths in gr->lens */
    GEN_OP_LAYERNORM, /* in: x, gamma, beta                -> (x - mean) / sd * gamma + beta */
    GEN_OP_ATTN_ENC, /* in: qkv (q | k | v per row), lengths -> f32 rows (padded rows zero) */
    GEN_OP_POOL,     /* in: x, lengths                     -> B pooled rows (flags: mode | GEN_POOL_NORM) */
    GEN_OP_COUNT
} gen_opk;

enum { GEN_IN_MAX = 8 };

/* GEN_OP_POOL's flags: a mode (kgt_pool's), and L2 normalization */
enum { GEN_POOL_MEAN = 0, GEN_POOL_CLS = 1, GEN_POOL_MAX = 2, GEN_POOL_MEAN_SQRT = 3, GEN_POOL_NORM = 256 };

typedef struct gen_node {
    gen_opk op;
    int layer;                 /* -1 outside the layers                   */
    int in[GEN_IN_MAX];        /* tensor ids; -1 unused                   */
    int out;                   /* tensor id (-1: none)                    */
    int64_t flags;             /* MATMUL: KGT_EPI_*; RMSNORM, LAYERNORM: KGT_NORM_*; GLU: KGT_GLU_*; POOL: GEN_POOL_* */
    int64_t out_col;           /* MATMUL: writes columns out_col.. of out (a slice of a wider row) */
    int64_t groups;            /* RMSNORM: 0 one norm per row; else per head (QK-norm: the heads) */
    double eps;                /* RMSNORM, LAYERNORM, ROPE_KV (its QK-norm) */
    double scale;              /* EMBED: rows times this (0 = 1); ATTN: scores (0 = 1/sqrt(head_dim));
                                  SOFTCAP: the cap                          */
    int64_t window;            /* ATTN: sliding window (0 = none)           */
    double rope_base, rope_scale; /* ROPE, ROPE_KV                          */
    bool last_row;             /* reads only the batch's last row of in[0] and writes one row */
    bool dead;                 /* removed by a pass                       */
} gen_node;

typedef struct gen_hparams {
    char arch[16];
    char name[64];
    int64_t n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_ctx_train, n_rot;
    int64_t rope_mode;         /* KGT_ROPE_NORM / KGT_ROPE_NEOX */
    double eps, rope_base, rope_scale;
    double rope_base_swa;      /* the RoPE base of sliding-window layers  */
    int64_t n_swa;             /* sliding window (0: none)                */
    int64_t swa_pattern;       /* layer l slides when l % swa_pattern != swa_pattern - 1 (0: every layer) */
    double embd_scale;         /* embeddings times this (1: none)         */
    double attn_scale;         /* attention scores (0: 1/sqrt(head_dim))  */
    double logit_softcap;      /* final logits c tanh(x / c) (0: none)    */
    int64_t act;               /* KGT_GLU_SILU / KGT_GLU_GELU             */
    int64_t n_batch;           /* tokens per prefill step (workspace rows); encoders: n_seq * max_len */
    bool encoder;              /* an encoder (BERT): one entry point, B sequences in, B vectors out */
    int64_t n_seq, max_len;    /* encoders: sequences per step, rows per sequence (compile-time maxima) */
    int64_t pool;              /* encoders: GEN_POOL_* of the output */
    int kv_type;               /* KGT_F16 / KGT_F32 / KGT_Q8_0 (set from --kv by gen/model.c) */
} gen_hparams;

typedef struct gen_graph {
    gen_hparams hp;
    const struct gen_source *src; /* the model (weights point into it)   */
    struct gen_view *views;    /* row ranges of source tensors (gen_graph_view) */
    gen_tensor *t;
    int nt, cap_t;
    gen_node *n;
    int nn, cap_n;
    int ids, pos;              /* the input tensors (encoders: pos is the sequences' lengths, int32[n_seq]) */
    int logits;                /* the output tensor (encoders: the n_seq pooled vectors) */
    int layout;                /* the layout knob, resolved: what products' weights take where it fits */
    bool amx;                  /* the amx knob, resolved: prefill products of x16 weights may use AMX */
    bool amx_bf16;             /* ... and those of x16b weights (AMX-BF16) */
    bool ftile_bf16;           /* the ftile knob, resolved: F16, BF16 weights take x16b where x16 fits */
    int prefetch;              /* the prefetch knob, resolved: decode's distance over x16, x16b weights */
    int mtile, mtile_q;        /* the mtile knob, resolved: prefill's rows per tile over x16 float, quantized weights */
    uint64_t weight_bytes;     /* pass_repack                            */
    uint64_t ws_bytes;         /* pass_memplan                           */
} gen_graph;

/* graph.c */
void gen_graph_free(gen_graph *gr);
int gen_graph_tensor(gen_graph *gr, const char *name, gen_tkind kind, int type, int64_t rows, int64_t cols,
                     bool per_token); /* -1 (message set) on failure */
int gen_graph_node(gen_graph *gr, gen_opk op, int layer, int out, const int *in, int n_in); /* node id or -1 */
const char *gen_op_name(gen_opk op);
const char *gen_type_name(int type);
uint64_t gen_row_bytes(int type, int64_t cols);
void gen_graph_print(const gen_graph *gr, const char *title, FILE *f);
/* Recomputes first/last use of every tensor over the live nodes. */
void gen_graph_liveness(gen_graph *gr);
/* The live nodes that read tensor t (count; ids into out, up to cap). */
int gen_graph_readers(const gen_graph *gr, int t, int *out, int cap);

/* A weight part that is rows [row0, row0 + rows) of the source tensor t
 * (Phi-3's fused Q/K/V and gate/up tensors), owned by the graph. NULL
 * (message set) when out of memory. t must be 2-D with whole rows. */
const kg_tensor *gen_graph_view(gen_graph *gr, const kg_tensor *t, uint64_t row0, uint64_t rows, const char *name);

/* The architecture builder (arch.c): the registry's row for the source's
 * architecture, the hyperparameters, every tensor checked against them
 * (name, type, shape), the graph of plain ops. */
kg_status gen_arch_build(const struct gen_source *src, int64_t n_batch, gen_graph *gr);
/* Encoders (arch_bert.c): n_seq sequences of at most max_len tokens per step
 * (0: 32, and the model's maximum sequence length). */
kg_status gen_arch_build_encoder(const struct gen_source *src, int64_t n_seq, int64_t max_len, gen_graph *gr);
/* Is the source's architecture an encoder's? */
bool gen_arch_is_encoder(const struct gen_source *src);
/* "llama, qwen2, ..." */
const char *gen_arch_list(void);

/* The passes. */
/* nofuse: NULL or "" (every rule), "all"/"1" (none), or a comma list of
 * the rules to leave out: qkv, slices, glu, residual, q8 */
kg_status gen_pass_fuse(gen_graph *gr, const char *nofuse);
kg_status gen_pass_repack(gen_graph *gr);
kg_status gen_pass_memplan(gen_graph *gr);

/* Writes the weights blob (gr->weight_bytes bytes, repacked) to f (NULL:
 * nothing) and computes its XXH3-128 as hex (pass_repack.c). */
kg_status gen_repack_write(const gen_graph *gr, FILE *f, const char *path, char hash_hex[33]);

#endif
