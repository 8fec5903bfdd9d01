/*
 * cuda.h — the CUDA backend of code generation (gen/cuda.c): kernel
 * instances as CUDA template instantiations, compiled by NVRTC (loaded
 * with dlopen) for one sm arch, cached; the blob a CUDA model carries.
 */
#ifndef KGEN_GEN_CUDA_H
#define KGEN_GEN_CUDA_H

#include "lower.h"
#include "runtime/model/cuda_blob.h"

/* An instance's name expression and launch shape (cuda_blob.h). */
typedef struct gen_cuda_shape_t {
    char expr[256];
    uint32_t block, grid[3], m_axis, m_div;
    uint64_t scratch; /* device scratch it needs (decode attention) */
} gen_cuda_shape_t;

typedef struct gen_cuda_result {
    int sm, n;                 /* arch; instances (= the program's)         */
    kgm_cuda_kernel *k;        /* per instance: lowered name, ptxas report  */
    gen_cuda_shape_t *shape;   /* per instance                              */
    void *cubin;
    size_t ncubin;
    char *ptx;                 /* NUL-terminated                            */
    size_t nptx;
    uint64_t scratch;
    bool hit;                  /* from the cache                            */
    double seconds;
    char nvrtc_version[16];
} gen_cuda_result;

/* "cuda" or "cuda:sm_NN"? */
bool gen_cuda_is_target(const char *spec);
/* The arch of a CUDA target; "cuda" alone: the local GPU's, else sm_90
 * (note says which, for the progress line). */
kg_status gen_cuda_target(const char *spec, int *sm, char *note, size_t cap);
kg_status gen_cuda_shape(const gen_kinst *k, gen_cuda_shape_t *s);
/* Every instance of pg in one NVRTC program for sm_<sm>, through the
 * cache (use_cache false: neither read nor written). */
kg_status gen_cuda_compile(const gen_program *pg, int sm, bool use_cache, gen_cuda_result *r);
void gen_cuda_result_free(gen_cuda_result *r);
/* Appends the CUDA templates and the NVRTC version kgen was built with to
 * a cache key text (models compiled through the cache). */
kg_status gen_cuda_keytext(kg_keytext *kt);
/* The model's CUDA blob (malloc'd). */
kg_status gen_cuda_blob(const gen_program *pg, const gen_cuda_result *r, void **out, size_t *size);

#endif
