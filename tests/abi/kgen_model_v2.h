/*
 * kgen_model.h — the C ABI of a model compiled by `kgen compile`.
 *
 * A compiled model is one shared object (or, with `--emit obj`, one object
 * file for static linking) that holds the model's specialized kernels, its
 * repacked weights (unless compiled with --external-weights), its tokenizer,
 * chat template and metadata, and the runtime that drives them: a thread
 * pool, the KV cache, the tokenizer and the sampler. It needs only libc,
 * libm and pthreads; no LLVM, no kgen.
 *
 * Two ways to call it:
 *   - link against it (-lNAME, or the object) and call the kgm_* functions;
 *   - dlopen() it and fetch the one table `kgm_api` (a kgm_api_v2), whose
 *     members are the same functions:
 *
 *       void *h = dlopen("./libsmollm2.so", RTLD_NOW | RTLD_LOCAL);
 *       const kgm_api_v2 *api = dlsym(h, "kgm_api");
 *       kgm_model *m = api->open(&(kgm_open_params){.n_threads = 2}, err, sizeof err);
 *
 * Every model (and every open of one) is independent: there is no global
 * state, so any number may be open in one process. All memory is allocated
 * by kgm_open (weights are mapped, not copied); prefill, decode and sample
 * allocate nothing, tokenize allocates only for a pre-tokenized word longer
 * than 1 KiB (its BPE scratch grows once and is kept), and embed only to sort
 * more texts than one step holds (kgm_embed). A kgm_model
 * is used by one thread at a time.
 *
 * Errors: functions that can fail return NULL or a negative value and leave
 * a message in kgm_error(m); kgm_open writes its message into `err`. No
 * function ever exits or aborts the process.
 *
 * Before dlopen(), check the file with kgm_check_file() (kgen_check.h): a
 * truncated model would otherwise crash inside the dynamic loader.
 *
 * Compatibility. KGM_ABI_VERSION counts additions to this ABI; a model
 * reports its own in kgm_api.abi_version (and in its kgen note). What every
 * later kgen promises:
 *   - the table `kgm_api` keeps this layout: members are only appended, and
 *     each keeps its signature and meaning;
 *   - the structs below never change size or layout; where a later version
 *     needs more, it appends new functions to the table;
 *   - a program built against this header (version N) works with every
 *     model whose abi_version >= N, from any later kgen: it should check
 *     that before use (`api->abi_version >= KGM_ABI_VERSION`), as the
 *     README's example does; a model of an older ABI lacks members it needs;
 *   - a change that cannot keep these would export a table under a new name
 *     (never a new meaning for `kgm_api`).
 * `kgen run` and `kgen bench` open models of their own ABI version or later
 * and refuse older ones, saying so. tests/abi/ keeps every released header;
 * make check builds a program against each and runs it on a new model.
 */
#ifndef KGEN_MODEL_H
#define KGEN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KGM_ABI_VERSION 2 /* 1: kgen 0.1 (tests/abi/kgen_model_v1.h); 2: encoders (kgm_embed*) */

typedef struct kgm_model kgm_model;

typedef struct kgm_open_params {
    int n_threads;            /* worker threads incl. the caller; 0: the online CPUs (at most 64).
                                 1 starts no thread at all                                        */
    int n_ctx;                /* KV cache length in tokens; 0: min(the model's training context,
                                 4096); at most the training context                              */
    const char *weights_path; /* models compiled with --external-weights: the weights file; NULL:
                                 the file named at compile time, beside the .so. Ignored otherwise */
} kgm_open_params;

typedef struct kgm_info {
    int abi_version;          /* KGM_ABI_VERSION of the .so                                    */
    const char *arch;         /* "llama"                                                       */
    const char *name;         /* general.name from the GGUF ("" if absent)                     */
    const char *weight_type;  /* the most common weight type, e.g. "Q4_1"                      */
    const char *target_cpu;   /* the CPU the kernels were compiled for, e.g. "znver3"          */
    const char *content_hash; /* 32 hex digits: XXH3-128 of the packed weights and metadata   */
    int n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab;
    int n_ctx_train;          /* the model's training context                                  */
    int n_ctx;                /* this open's KV cache length                                   */
    int n_batch;              /* tokens per prefill step (longer prompts are split)            */
    int n_threads;
    int32_t bos, eos;         /* -1 when the model has none                                    */
    int has_chat_template;    /* 1 if kgm_chat can format messages for this model              */
    uint64_t weight_bytes;    /* packed weights                                                */
    uint64_t kv_bytes;        /* KV cache of this open                                         */
    uint64_t workspace_bytes; /* activations of this open                                      */
} kgm_info;

/* Tokenize flags. */
enum {
    KGM_TOK_BOS = 1,     /* prepend BOS when the model's metadata asks for it                  */
    KGM_TOK_SPECIAL = 2, /* text spelling a special/control token (e.g. "<|im_end|>") becomes
                            that token; without it such text is tokenized as ordinary text     */
};

typedef struct kgm_message {
    const char *role;    /* "system", "user", "assistant"                                      */
    const char *content;
} kgm_message;

typedef struct kgm_sampler_params {
    float temp;           /* <= 0: greedy (argmax; ties go to the lowest id)                  */
    int top_k;            /* <= 0: off                                                         */
    float top_p;          /* >= 1: off                                                         */
    float min_p;          /* <= 0: off                                                         */
    float repeat_penalty; /* 1: off. Logits of tokens among the last repeat_last_n seen are
                             divided by it when positive, multiplied when negative             */
    int repeat_last_n;    /* window for the penalty (at most 256)                              */
    uint64_t seed;        /* the same seed, model and prompt give the same text every run     */
} kgm_sampler_params;

/* Opens the model. NULL on failure, with the reason in err (if err_size > 0).
 * Checks, before running anything: that this CPU has every feature the
 * kernels were compiled for, the external weights file's size and content
 * hash, the parameters. `params` may be NULL (all defaults). */
kgm_model *kgm_open(const kgm_open_params *params, char *err, size_t err_size);
void kgm_close(kgm_model *m); /* NULL is fine */

/* The last error on m (a message; "" if none). Valid until the next call on m. */
const char *kgm_error(const kgm_model *m);

/* Fills *out; the strings are owned by m. */
void kgm_describe(const kgm_model *m, kgm_info *out);

/* Tokenizes len bytes of text, giving llama.cpp's tokens for them. Text that
 * is not UTF-8 is read as llama.cpp reads it: a byte that starts no sequence
 * or whose sequence is cut short reads as U+FFFD (and the next byte starts
 * the next character), an overlong form as its value (C0 80 as U+0000), a
 * surrogate as itself, a 4-byte form past U+10FFFF as four U+FFFD (where
 * llama.cpp fails). Special-token text is matched on the bytes as given.
 * Bytes the vocabulary has no token for are dropped, as llama.cpp does.
 * Writes at most cap ids to out and returns the number of tokens the text
 * has (so a return value > cap means out was too small), or -1. */
int kgm_tokenize(kgm_model *m, const char *text, size_t len, int flags, int32_t *out, int cap);

/* The bytes of token `tok` as text ("" for control tokens such as BOS/EOS).
 * Writes at most cap bytes (no NUL) and returns the length the piece has,
 * or -1 for an id out of range. A multi-byte UTF-8 character may span tokens. */
int kgm_token_piece(kgm_model *m, int32_t tok, char *buf, size_t cap);

/* 1 if tok ends a generation (EOS, end-of-turn tokens), else 0. */
int kgm_is_eog(const kgm_model *m, int32_t tok);

/* Formats messages with the model's chat template (add_assistant: end with
 * the assistant's turn opening). Writes at most cap bytes and a NUL when it
 * fits; returns the formatted length (without NUL), or -1 (no supported
 * template: see kgm_error). */
int kgm_chat(kgm_model *m, const kgm_message *msgs, int n_msgs, int add_assistant, char *buf, size_t cap);

/* Runs n tokens at positions pos..pos+n-1 (the cache must hold positions
 * 0..pos-1 from earlier calls; pos + n <= n_ctx). Returns the logits
 * (n_vocab floats, owned by m, valid until the next prefill/decode) of the
 * last token, or NULL. Prompts longer than n_batch are run in steps. */
const float *kgm_prefill(kgm_model *m, const int32_t *tokens, int n, int pos);

/* One token at position pos: the same as kgm_prefill(m, &token, 1, pos),
 * through the decode kernels. */
const float *kgm_decode(kgm_model *m, int32_t token, int pos);

/* Forgets the KV cache and the sampler's history (not its parameters). */
void kgm_reset(kgm_model *m);

/* Sets the sampler's parameters and reseeds it. Defaults (before any call):
 * greedy. NULL params: the defaults. */
void kgm_sampler_init(kgm_model *m, const kgm_sampler_params *params);

/* Samples one token from logits (n_vocab floats; not modified) and records
 * it in the repetition-penalty window. Returns the id, or -1. */
int32_t kgm_sample(kgm_model *m, const float *logits);

/* Records a token in the repetition-penalty window without sampling it
 * (prompt tokens). */
void kgm_sampler_accept(kgm_model *m, int32_t tok);

/* ── Encoders (ABI 2): models whose kgm_info.arch is "bert" ──
 * For an encoder, kgm_info's n_batch is the compiled batch (sequences per
 * step) and n_ctx the compiled maximum length (tokens per sequence, with
 * [CLS] and [SEP]); prefill and decode refuse to run. */

/* The floats per embedding (the model's width); 0 for decoders. */
int kgm_embed_dim(const kgm_model *m);

/* Embeds n texts (each NUL-terminated UTF-8): tokenized with [CLS] ... [SEP]
 * (special-token text such as "[MASK]" is that token, as sentence-transformers
 * reads it), truncated to the maximum length (keeping [SEP]), run, pooled and
 * normalized as the model's sentence-transformers configuration says, into
 * out[n][kgm_embed_dim(m)]. Any n: more than the compiled batch run in
 * several steps, sorted by length (the call then allocates 12 bytes per text,
 * and tokenizes each twice); each step is padded only to its longest text.
 * Returns n, or -1 (kgm_error says why). */
int kgm_embed(kgm_model *m, const char *const *texts, int n, float *out);

/* The same from token ids: sequence i is ids[i][0..n_ids[i]-1], already with
 * its [CLS] and [SEP]; longer than the maximum length, it keeps its first
 * max - 1 tokens and its last. */
int kgm_embed_tokens(kgm_model *m, const int32_t *const *ids, const int *n_ids, int n, float *out);

/* The same functions as one table: dlsym(h, "kgm_api"). */
typedef struct kgm_api_v1 {
    int abi_version; /* KGM_ABI_VERSION */
    kgm_model *(*open)(const kgm_open_params *, char *, size_t);
    void (*close)(kgm_model *);
    const char *(*error)(const kgm_model *);
    void (*describe)(const kgm_model *, kgm_info *);
    int (*tokenize)(kgm_model *, const char *, size_t, int, int32_t *, int);
    int (*token_piece)(kgm_model *, int32_t, char *, size_t);
    int (*is_eog)(const kgm_model *, int32_t);
    int (*chat)(kgm_model *, const kgm_message *, int, int, char *, size_t);
    const float *(*prefill)(kgm_model *, const int32_t *, int, int);
    const float *(*decode)(kgm_model *, int32_t, int);
    void (*reset)(kgm_model *);
    void (*sampler_init)(kgm_model *, const kgm_sampler_params *);
    int32_t (*sample)(kgm_model *, const float *);
    void (*sampler_accept)(kgm_model *, int32_t);
} kgm_api_v1;

/* ABI 2: kgm_api_v1's members, then the encoder calls */
typedef struct kgm_api_v2 {
    int abi_version; /* KGM_ABI_VERSION */
    kgm_model *(*open)(const kgm_open_params *, char *, size_t);
    void (*close)(kgm_model *);
    const char *(*error)(const kgm_model *);
    void (*describe)(const kgm_model *, kgm_info *);
    int (*tokenize)(kgm_model *, const char *, size_t, int, int32_t *, int);
    int (*token_piece)(kgm_model *, int32_t, char *, size_t);
    int (*is_eog)(const kgm_model *, int32_t);
    int (*chat)(kgm_model *, const kgm_message *, int, int, char *, size_t);
    const float *(*prefill)(kgm_model *, const int32_t *, int, int);
    const float *(*decode)(kgm_model *, int32_t, int);
    void (*reset)(kgm_model *);
    void (*sampler_init)(kgm_model *, const kgm_sampler_params *);
    int32_t (*sample)(kgm_model *, const float *);
    void (*sampler_accept)(kgm_model *, int32_t);
    int (*embed_dim)(const kgm_model *);
    int (*embed)(kgm_model *, const char *const *, int, float *);
    int (*embed_tokens)(kgm_model *, const int32_t *const *, const int *, int, float *);
} kgm_api_v2;

extern const kgm_api_v2 kgm_api;

#ifdef __cplusplus
}
#endif
#endif
