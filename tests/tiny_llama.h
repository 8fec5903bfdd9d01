/*
 * tiny_llama.h — tiny synthetic llama GGUF files for the CLI tests
 * (tests/test_compile.c), written with tests/gguf_writer.h.
 *
 * The default model (tl_defaults) is valid for `kgen compile`: 2 layers,
 * embedding 64, 4 heads, 2 KV heads, feed-forward 128, context 256,
 * vocabulary 300, products in Q8_0 (or Q4_0) with small random values and
 * f16 scales, F32 norms, tied output. Its tokenizer is a valid byte-level
 * BPE (tokenizer.ggml.model "gpt2", pre "smollm"): token 0 <|endoftext|>,
 * 1 <|im_start|>, 2 <|im_end|> (all control, type 3), then the 256 GPT-2
 * byte-level symbols, then 41 merged letter pairs with their merges; BOS 1,
 * EOS 2, and a ChatML chat template.
 *
 * Every bad-input case is one mutation of the defaults: a hyperparameter
 * (the metadata and the tensor shapes follow it), a left-out key or tensor,
 * one tensor written with another type or shape, another architecture.
 */
#ifndef KGEN_TINY_LLAMA_H
#define KGEN_TINY_LLAMA_H

#include <stdbool.h>
#include <stdint.h>

typedef struct tl_params {
    const char *arch;     /* general.architecture and the key prefix ("llama") */
    int64_t n_layer, n_embd, n_head, n_head_kv, n_ff, n_ctx;
    uint32_t wtype;       /* type of every product weight: KG_TYPE_Q8_0 or KG_TYPE_Q4_0 */
    uint64_t seed;        /* weight values */
    int64_t n_vocab;      /* 0: the 300-token tokenizer; more: padded with unused tokens */
    bool untied;          /* a separate output.weight (else tied to token_embd) */
    bool sparse;          /* write no tensor data: the file is extended to its size (a hole
                             reading as zeros), for shape-only uses of big models */
    bool add_bos;         /* tokenizer.ggml.add_bos_token = true (else the key is left out: no BOS) */

    /* mutations (NULL / 0: none) */
    const char *omit_key;    /* full metadata key left out, e.g. "llama.block_count" */
    const char *omit_tensor; /* tensor left out, e.g. "blk.1.ffn_up.weight" */
    const char *edit_tensor; /* this tensor is written with ... */
    int64_t edit_type;       /* ... this type id (-1: unchanged) */
    uint64_t edit_ne1;       /* ... this many rows (ne[1]; 0: unchanged) */
} tl_params;

/* The valid tiny model. */
void tl_defaults(tl_params *p);

/* Writes the model to path. False on an I/O error (errno set). */
bool tl_write(const tl_params *p, const char *path);

/* Number of tokens in the vocabulary tl_write writes (the rows of
 * token_embd.weight). */
int tl_n_vocab(void);

#endif
