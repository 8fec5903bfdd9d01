/*
 * gen.h — the kgen tool's internal interfaces (not installed).
 */
#ifndef KGEN_GEN_H
#define KGEN_GEN_H

#include "kgen.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

/* seconds on the monotonic clock (for the commands' timings) */
static inline double gen_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* `kgen inspect`: print what `g` holds to `f`, as text or one JSON object. */
void inspect_print(const kg_gguf *g, FILE *f, bool as_json);
/* ... a safetensors file; and whatever `path` is (a GGUF file, a
 * safetensors file, a Hugging Face directory), inspected into `f`; and the
 * `kgen inspect` command itself (argv after "inspect"; the exit status). */
void inspect_st_print(const kg_safetensors *st, FILE *f, bool as_json);
kg_status inspect_path(const char *path, FILE *f, bool as_json);
int inspect_cmd(int argc, char **argv);

/* `kgen cache ls|stats|verify|clear` (gen/cmd_cache.c): argv after "cache".
 * Returns the process exit status (0 ok, 1 failure, 2 usage). */
int cmd_cache(int argc, char **argv);

/* `kgen kernel`: specialize and emit one kernel instance (gen/cmd_kernel.c). */
int cmd_kernel(int argc, char **argv);
int cmd_kernels(int argc, char **argv);

/* ─────────────── targets (gen/target.c) ─────────────── */

/* Which template bitcode a target can use (Makefile.in: ISA_*). */
typedef enum gen_isa { GEN_ISA_GENERIC, GEN_ISA_AVX2, GEN_ISA_AVX512, GEN_ISA_AMX, GEN_ISA_COUNT } gen_isa;

typedef struct gen_target {
    char triple[64];      /* normalized, e.g. x86_64-pc-linux-gnu */
    char cpu[64];         /* LLVM CPU name, e.g. znver4 */
    char features[4096];  /* LLVM feature list "+avx2,-avx512f,..." (explicit part) */
    gen_isa isa;
} gen_target;

kg_status gen_target_host(gen_target *t);
/* "NAME[,+feat,-feat...]"; "host" or "native" mean the host. */
kg_status gen_target_parse(const char *spec, gen_target *t);
const char *gen_isa_name(gen_isa isa);

/* ─────────────── knobs (gen/knobs.c) ─────────────── */

/* Performance choices of code generation, each a named value that changes
 * no result beyond rounding. Two kinds, both in gen/knobs.c's one table:
 *   model knobs     set by `kgen compile --knobs NAME=VALUE,...` or
 *                   KGEN_KNOBS (same syntax), each with a default per target
 *                   that gen_knobs_resolve fills in (`kgen compile --help`
 *                   lists them: layout, amx, ftile, prefetch, mtile);
 *   instance knobs  parameters of one template (mm's `pf`, `mb`, `nc`, `mt`), bound
 *                   per kernel instance by tuning records (gen/tune.h):
 *                   what `kgen tune` sweeps. */
typedef struct gen_knobs {
    int layout; /* -1: the target's default */
    int amx;    /* -1: the target's default, else 0 or 1 */
    int ftile;  /* -1: the target's default, else 0 (f32) or 1 (bf16) */
    int amx_bf16; /* resolved from amx: AMX-BF16 for x16b weights (0 or 1); not parsed */
    int prefetch; /* -1: the target's default, else bytes (0: none) */
    int mtile;    /* -1: the target's default, else 4, 6 or 8; resolved: for float weights */
    int mtile_q;  /* resolved from mtile: for quantized weights; not parsed */
} gen_knobs;

/* Where an instance knob applies (flags). */
enum { GEN_KNOB_ALL = 0, GEN_KNOB_DECODE = 1, GEN_KNOB_PREFILL = 2, GEN_KNOB_NOT_ROWS = 4 };

typedef struct gen_knob_def {
    const char *name;
    const char *tmpl;          /* NULL: a model knob; else the template whose parameter it is */
    int where;                 /* instance knobs: GEN_KNOB_* flags */
    ptrdiff_t field;           /* model knobs: the gen_knobs field (an int) */
    const char *const *words;  /* named values (value = index), NULL-terminated; NULL: a number */
    int64_t lo, hi, step;      /* numbers: the range, and a step the value is a multiple of */
    int64_t def;               /* instance knobs: the template's KG_PARAM_DEFAULT (test_knobs checks) */
    int64_t sweep[8];          /* instance knobs: the values `kgen tune` tries */
    int nsweep;
    const char *help;
} gen_knob_def;

const gen_knob_def *gen_knob_defs(int *n);
/* tmpl NULL: a model knob; else an instance knob of that template. NULL: none */
const gen_knob_def *gen_knob_find(const char *tmpl, const char *name);
bool gen_knob_valid(const gen_knob_def *d, int64_t v);
void gen_knob_range(const gen_knob_def *d, char *out, size_t cap); /* "off, on"; "a number from..." */

kg_status gen_knobs_parse(const char *spec, gen_knobs *k); /* NULL or "": every default */
const char *gen_knobs_env(void);                           /* KGEN_KNOBS, or "" */
void gen_knobs_resolve(gen_knobs *k, gen_isa isa, bool cuda);
/* the model knobs, one wrapped paragraph each (`--help`) */
void gen_knobs_help(FILE *f, const char *indent, int width);

/* ─────────────── kernel instances (gen/llvm.c) ─────────────── */

/* Every compiled instance has this signature: p are the kernel's pointers
 * (see its template), rt the values of parameters bound at run time. */
typedef void (*gen_kfn)(void *const *p, const int64_t *rt, int ith, int nth);

#define GEN_MAX_PARAMS 16
typedef struct gen_param {
    char name[32];        /* the template parameter's name */
    bool runtime;         /* read from rt[rt_index] instead of a constant (int64 only) */
    int rt_index;
    int64_t i;            /* the constant, for int64 parameters */
    double f;             /* the constant, for double parameters */
} gen_param;

typedef struct gen_kinst {
    char tmpl[32];        /* template name without "kgt_", e.g. "mm" */
    char sym[64];         /* the instance's exported symbol */
    int n_params;
    gen_param params[GEN_MAX_PARAMS];
} gen_kinst;

/* The instance's parameter `name`, or NULL where it is unbound. */
const gen_param *gen_kinst_param(const gen_kinst *k, const char *name);

/* The optimization pipeline after pruning. O1, not O3: the templates are
 * vectorized by hand and fully specialized, so O3's loop vectorizer and
 * unroller add compile time and no speed (measured on SmolLM2 and a
 * TinyLlama-shaped model: O1 compiles 2-2.5x faster and decodes as fast or
 * faster; see README, Performance). */
#define GEN_OPT_PIPELINE "default<O1>"

typedef enum gen_emit { GEN_EMIT_OBJ, GEN_EMIT_ASM, GEN_EMIT_LL } gen_emit;

/* Specialize `n` instances into one module for target `t`, optimize (O3),
 * emit. *out is malloc'd (free it); for GEN_EMIT_LL it is NUL-terminated. */
kg_status gen_compile(const gen_target *t, const gen_kinst *k, int n, gen_emit emit, void **out, size_t *size);

/* gen_compile, and before optimizing, hook->fn(ctx, module, t, arg) adds
 * more to the module (an LLVMContextRef and LLVMModuleRef, passed as void *
 * so this header needs no LLVM headers): lower.c's entry points. */
typedef struct gen_hook {
    kg_status (*fn)(void *ctx, void *module, const gen_target *t, void *arg);
    void *arg;
} gen_hook;
kg_status gen_compile_with(const gen_target *t, const gen_kinst *k, int n, const gen_hook *hook, gen_emit emit,
                           void **out, size_t *size);

/* gen_compile through the cache `c` (NULL: no cache). *hit tells whether
 * the artifact came from the cache. A failure to store is only a warning. */
kg_status gen_compile_cached(kg_cache *c, const gen_target *t, const gen_kinst *k, int n, gen_emit emit,
                             void **out, size_t *size, bool *hit);

/* Appends to a cache key text everything of code generation that changes
 * an artifact: kgen and LLVM versions, the template bitcode, the target
 * (triple, CPU, features, ISA level), the optimization pipeline. */
kg_status gen_keytext_codegen(kg_keytext *kt, const gen_target *t);

/* The embedded bitcode of an ISA level (for hashing into cache keys). */
void gen_bitcode(gen_isa isa, const void **data, size_t *size);

/* Print the templates and their parameters (name and type). */
kg_status gen_list_templates(gen_isa isa, FILE *f);

/* Link an object into a shared object with the system compiler driver
 * ($CC, else cc). */
kg_status gen_link_so(const void *obj, size_t size, const char *out_path);
/* Runs the C compiler driver argv (argv[0] found on PATH) and waits; an
 * error names `out`, what it was making. */
kg_status gen_run_cc(char *const argv[], const char *out);

/* In-process execution through ORC LLJIT. */
typedef struct gen_jit gen_jit;
kg_status gen_jit_create(gen_jit **out);
kg_status gen_jit_add(gen_jit *j, const void *obj, size_t size);  /* copies obj */
kg_status gen_jit_lookup(gen_jit *j, const char *sym, gen_kfn *out);
void gen_jit_destroy(gen_jit *j);

/* ─────────────── whole models (gen/model.c) ─────────────── */

typedef struct gen_model_opts {
    const char *cpu;          /* target "NAME[,+f,-f]"; NULL: this machine          */
    const char *cuda;         /* a CUDA target ("cuda", "cuda:sm_90"); NULL: the CPU */
    int n_batch;              /* tokens per prefill step; 0: 128 (encoders: sequences
                                 per step; 0: 32)                                    */
    int max_len;              /* encoders: tokens per sequence; 0: the model's
                                 maximum sequence length                             */
    bool emit_obj;            /* a relocatable object instead of a shared object     */
    const char *weights_file; /* external weights: the name stored in the model
                                 (found beside it at open); NULL: embedded           */
    const char *weights_path; /* external weights: where to write them               */
    bool progress;            /* a line per phase on stderr                          */
    int jobs;                 /* code generation threads; 0: the online CPUs         */
    const char *nofuse;       /* fusion rules left out (gen_pass_fuse); NULL:
                                 KGEN_NOFUSE's value (gen_nofuse_env)                */
    const char *chat_template; /* a chat template name (--chat-template); NULL: the file's */
    const char *knobs;        /* gen_knobs_parse's spec; NULL: KGEN_KNOBS's value     */
    const char *tuning;       /* a tuning file (gen/tune.h; `kgen tune`): the knobs of
                                 the instances its records for this target name;
                                 NULL: the tuning database's; "none": no records  */
    const struct gen_tuning *tuning_set; /* instead of `tuning`: records already read
                                 (the loader's, which keyed the cache by them)  */
    const char *kv;           /* the KV cache's type: "f16", "q8" (GGUF Q8_0 blocks;
                                 head_dim a multiple of 32; CPU only) or "f32";
                                 NULL: f16 (gen_kv_type)                             */
    const char *quant;        /* kgen's own quantization of the weights: a spec of
                                 gen/quant.h ("SCHEME[;PATTERN=SCHEME]..."); NULL: none */
    bool requant;             /* with quant: tensors the source has quantized too    */
} gen_model_opts;

/* The cache type id (KG_TYPE_F16, KG_TYPE_Q8_0, KG_TYPE_F32) that `kgen compile --kv`
 * names; -1 for another name. NULL is f16. (gen/model.c) */
int gen_kv_type(const char *kv);
#define GEN_KV_NAMES "f16, q8, f32"

/* KGEN_NOFUSE's value, "" when unset. */
const char *gen_nofuse_env(void);
/* a valid nofuse value? (gen/pass_fuse.c) */
kg_status gen_fuse_check(const char *nofuse);

typedef struct gen_model_report {
    int n_nodes, n_instances;
    uint64_t weight_bytes, ws_bytes, code_bytes;
    char cpu[64];
    char content_hash[40];
    double graph_s, codegen_s, pack_s, link_s, total_s;
} gen_model_report;

/* GGUF file -> model .so (or object) at out_path, written atomically. */
kg_status gen_model_compile(const char *gguf_path, const char *out_path, const gen_model_opts *o, gen_model_report *r);

/* `kgen compile|run|bench` (gen/cmd_*.c): argv after the command name. */
int cmd_compile(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);

/* ─────────────── tokenizer data (gen/tokdata.c) ─────────────── */

/* Serializes the GGUF's tokenizer (tokenizer.ggml.*, tokenizer.chat_template)
 * into the blob runtime/model/tokenizer.c reads (format: gen/tokdata.c).
 * chat_template: NULL, the file's template; else a template name (chatml,
 * llama3, gemma, phi3; gen/chat_tmpl.h) stored in its place, KG_ERR_ARG for
 * another. Errors name the key that is missing or malformed. *blob is malloc'd. */
kg_status gen_tokdata(const kg_gguf *g, const char *chat_template, void **blob, size_t *size);

/* The same blob from a Hugging Face model directory: DIR/tokenizer.json
 * (model.type WordPiece, or BPE with a ByteLevel pre-tokenizer whose Split
 * regex the runtime implements), else DIR/vocab.txt (WordPiece), with
 * DIR/tokenizer_config.json (optional: bos/eos tokens, add_bos_token,
 * do_lower_case..., chat_template). chat_template as gen_tokdata's. Errors
 * name the file and the key (gen/tokdata_hf.c). *blob is malloc'd. */
kg_status gen_tokdata_hf(const char *dir, const char *chat_template, void **blob, size_t *size);

/* What both fronts describe and gen_tok_write serializes (gen/tokdata.c has
 * the format and the checks). Strings are not copied; name is the file the
 * description came from, for messages. */
typedef struct gen_tokdesc {
    uint32_t n_tok, n_merge;
    const kg_str *tok;      /* [n_tok], as in the blob */
    const uint8_t *type;    /* [n_tok], llama.cpp's token types */
    const float *score;     /* SentencePiece: [n_tok]; else NULL */
    const kg_str *merge;    /* [n_merge], "LEFT RIGHT" */
    int32_t bos, eos, unk, pad, eot; /* -1: none */
    bool add_bos, spm, add_space, wpm;
    kg_str pre, tmpl;
    /* WordPiece */
    bool lowercase, strip_accents, chinese, clean;
    uint32_t max_chars, max_length;
    int32_t cls, sep, mask;
    kg_str prefix;
} gen_tokdesc;
kg_status gen_tok_write(const char *name, const gen_tokdesc *d, void **blob, size_t *size);
kg_status gen_tokdata_check_template(const char *chat_template); /* the chat_template argument's check */

#endif
