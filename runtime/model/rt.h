/*
 * rt.h — the model runtime's internal interfaces (runtime/model/).
 *
 * These files are linked into every compiled model (.so or object), compiled
 * with -fvisibility=hidden: only the kgm_* ABI of include/kgen_model.h is
 * exported. Rules for everything here:
 *   - no global mutable state (any number of models in one process);
 *   - allocate only in the *_init functions (called from kgm_open);
 *   - never exit/abort; failures return -1 and write a message into the
 *     caller's buffer (err, errcap), formatted with kgr_msg;
 *   - libc, libm, pthreads only (plus xxhash.h, header-only).
 * The tests compile them into the test binary (with the sanitizers in the
 * ASan build) and call them directly.
 */
#ifndef KGEN_RT_H
#define KGEN_RT_H

#include "kgen_model.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KGR_HIDDEN __attribute__((visibility("hidden")))

/* snprintf into err (if errcap > 0); returns -1 (for `return kgr_msg(...)`). */
int kgr_msg(char *err, size_t errcap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ───────────────────────── thread pool (pool.c) ─────────────────────────
 * n_threads - 1 workers plus the calling thread. kgr_pool_run runs fn on
 * every thread (ith = 0 is the caller) and returns when all have returned.
 * Inside fn, kgr_barrier(pool, ith) waits until every thread has reached
 * it (all nth threads must call it the same number of times). Both wait by
 * spinning briefly and then sleeping (futex), so idle workers use no CPU.
 * n_threads == 1 starts no thread; barriers are then no-ops.            */
/* ── a model compiled for a CUDA target (cuda.c) ── */
struct kgm_desc;
typedef struct kgr_cuda kgr_cuda;
int kgr_cuda_open(kgr_cuda **out, const struct kgm_desc *d, const unsigned char *blob, size_t nblob, const void *weights,
                  int n_ctx, char *err, size_t errcap);
/* one step of k tokens; the last token's logits (pinned host memory), or NULL */
const float *kgr_cuda_step(kgr_cuda *g, const int32_t *ids, const int32_t *pos, int k, const int64_t *rt, bool decode,
                           char *err, size_t errcap);
void kgr_cuda_free(kgr_cuda *g);

typedef struct kgr_pool kgr_pool;
typedef void (*kgr_fn)(void *arg, int ith, int nth);

int kgr_pool_init(kgr_pool **out, int n_threads, char *err, size_t errcap);
/* bytes of one head's row of the KV cache (kgm_desc's kv_elem_bytes; check.c
 * has checked it: 1 only with head_dim a multiple of 32) */
uint64_t kgr_kv_row_bytes(const struct kgm_desc *d);
/* amx.c: 1 if this process may use AMX tiles (asked of Linux now; once is
 * enough, asking again is harmless); 0 and why (a sentence) if not. */
int kgr_amx_enable(char *why, size_t cap);
int kgr_pool_threads(const kgr_pool *p);
void kgr_pool_run(kgr_pool *p, kgr_fn fn, void *arg);
void kgr_barrier(kgr_pool *p, int ith); /* called by generated code */
void kgr_pool_free(kgr_pool *p);        /* NULL is fine; joins the workers */

/* ───────────────────────── sampler (sampler.c) ─────────────────────────
 * Order (as llama.cpp's default chain): repetition penalty over the last
 * repeat_last_n accepted tokens -> greedy if temp <= 0 -> top-k -> softmax
 * at temperature temp -> top-p -> min-p -> draw with the seeded generator.
 * Deterministic: the same params, seed and inputs give the same tokens on
 * every run and machine (own PRNG, no libc rand).                       */
typedef struct kgr_sampler kgr_sampler;

int kgr_sampler_init(kgr_sampler **out, int n_vocab, char *err, size_t errcap);
void kgr_sampler_set(kgr_sampler *s, const kgm_sampler_params *p); /* NULL: greedy defaults; reseeds */
void kgr_sampler_reset(kgr_sampler *s);                             /* clears the history, keeps params */
int32_t kgr_sample(kgr_sampler *s, const float *logits);           /* also accepts the token */
void kgr_sampler_accept(kgr_sampler *s, int32_t tok);
void kgr_sampler_free(kgr_sampler *s);

/* ──────────────────────── tokenizer (tokenizer.c) ────────────────────────
 * Built from a blob that `kgen compile` writes (gen/tokdata.c serializes the
 * GGUF's tokenizer.ggml.* keys and tokenizer.chat_template, gen/tokdata_hf.c
 * a Hugging Face tokenizer.json; the blob format is documented in tokdata.c). The blob is untrusted input to kgr_tok_init, which
 * bounds-checks it. The tokenizer may point into the blob, which outlives it. */
typedef struct kgr_tok kgr_tok;

int kgr_tok_init(kgr_tok **out, const void *blob, size_t size, char *err, size_t errcap);
void kgr_tok_free(kgr_tok *t);
int kgr_tok_n_vocab(const kgr_tok *t);
int32_t kgr_tok_bos(const kgr_tok *t); /* -1: none */
int32_t kgr_tok_eos(const kgr_tok *t);
int kgr_tok_max_length(const kgr_tok *t); /* WordPiece: the model's maximum sequence length (truncation); 0: none */
/* The same contracts as kgm_tokenize, kgm_token_piece, kgm_is_eog, kgm_chat. */
int kgr_tokenize(kgr_tok *t, const char *text, size_t len, int flags, int32_t *out, int cap);
int kgr_token_piece(const kgr_tok *t, int32_t tok, char *buf, size_t cap);
int kgr_is_eog(const kgr_tok *t, int32_t tok);
int kgr_chat(const kgr_tok *t, const kgm_message *msgs, int n_msgs, int add_assistant, char *buf, size_t cap,
             char *err, size_t errcap);
int kgr_has_chat(const kgr_tok *t);

/* ── a compiled model's metadata (check.c) ──
 * Every check kgm_open makes on the descriptor and the tokenizer blob, run
 * by `kgen compile` too on what it writes. 0, with the tokenizer parsed into
 * *tok_out when tok_out is not NULL (the caller frees it); -1 and a message. */
struct kgm_desc;
int kgr_model_check(const struct kgm_desc *d, const void *tok_blob, size_t tok_size, kgr_tok **tok_out, char *err,
                    size_t errcap);

#endif
