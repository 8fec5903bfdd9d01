/*
 * loader.h — getting a runnable model from what the user named (gen/loader.c):
 * a kgen model (.so) is dlopen()ed as is; a GGUF file or a Hugging Face
 * directory is compiled through the cache (kind "so", keyed by the content of
 * its files, kgen, LLVM, the templates,
 * the model runtime, the target and the options), so only the first run
 * compiles. Used by `kgen run` and `kgen bench`.
 */
#ifndef KGEN_LOADER_H
#define KGEN_LOADER_H

#include "gen.h"
#include "kgen_model.h"
#include "tmpfile.h"

typedef struct gen_load_opts {
    const char *cpu;       /* compile target (GGUF only); NULL: this machine */
    const char *cuda;      /* or a CUDA target, "cuda[:sm_NN]" (GGUF only)    */
    bool no_cache;         /* compile into a temporary file instead          */
    bool force_compile;    /* compile even on a cache hit (bench: cold time) */
    bool progress;
    const char *chat_template; /* a chat template name (GGUF only; NULL: the file's) */
    int n_batch, max_len;  /* gen_model_opts' (0: the defaults)               */
    const char *kv;        /* the KV cache's type, gen_model_opts' kv (GGUF only; NULL: f16) */
    const char *quant;     /* gen_model_opts' quant and requant (not for a .so)  */
    bool requant;
    const char *tuning;    /* gen_model_opts' tuning (GGUF only; NULL: the tuning database,
                              "none": no records) */
    const struct gen_tuning *tuning_set; /* set by the loader: the records resolved once */
    kgm_open_params open;
} gen_load_opts;

typedef struct gen_loaded {
    void *handle;
    const kgm_api_v2 *api;
    kgm_model *m;
    char so_path[4096];    /* what was dlopen()ed */
    bool compiled;         /* compiled now (a cache miss or no cache)       */
    double compile_s;      /* when compiled                                  */
    double lookup_s;       /* hashing the GGUF and finding the cache entry   */
    double open_s;         /* dlopen + kgm_open                              */
    gen_tmpdir work;       /* compiled outside the cache: the .so's locked work
                              directory, removed by gen_unload               */
} gen_loaded;

kg_status gen_load(const char *path, const gen_load_opts *o, gen_loaded *out);
void gen_unload(gen_loaded *l);

#endif
