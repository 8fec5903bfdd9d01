/*
 * kt_cuda.h — one kernel instance run on the GPU from the tests, with the
 * buffers of a CPU template's call: the "cuda" implementation the kernel
 * tests check against the same scalar references as the CPU templates
 * (make check-gpu; every test using it skips, saying why, without a GPU).
 *
 * The stand-in (KGEN_TEST_GPU_STANDIN=1; make check runs the gpu_ tests so
 * under ASan): the CPU runs each instance in the GPU's place, to keep the
 * GPU tests honest where no GPU is. Every instance is still compiled
 * through NVRTC (for sm_90), then compiled for the host by kgen's LLVM
 * backend, which takes exactly the parameters lowering gives (so the tests'
 * instances are checked to be lowering's), and run on copies of the
 * buffers of exactly bytes[i], each ending at an inaccessible page (so a
 * size smaller than the kernel needs faults; under ASan, a larger one than
 * the test allocated is reported).
 * It checks the tests, not the CUDA kernels: those run only on a GPU.
 */
#ifndef KGEN_KT_CUDA_H
#define KGEN_KT_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gen.h"

/* A driver, a device and NVRTC (the stand-in: NVRTC)? If not, why (for
 * KT_SKIP). */
bool ktc_available(char *why, size_t cap);
/* the CPU stands in for the GPU (KGEN_TEST_GPU_STANDIN): the tests'
 * plumbing is checked, not the CUDA kernels, so a test may run fewer cases */
bool ktc_standin(void);

/* Compiles k for this GPU (through the cache), copies the np buffers p[i]
 * (bytes[i] each; NULL: none; a pointer equal to an earlier one shares its
 * device buffer) to the device, launches k with rt[RT_M] = M (grid scaled
 * by M as the runtime scales it) and rt[RT_NCTX] = n_ctx, and copies every
 * buffer back. An instance that needs scratch (decode attention) gets it
 * zeroed in p[5], as gen/cuda.c binds it. 0, or -1 with a message in err. */
int ktc_run(const gen_kinst *k, int64_t M, int64_t n_ctx, void *const *p, const size_t *bytes, int np, char *err,
            size_t cap);

/* k's template, params[i] = names[i] with the constant vals[i]; as lowering
 * binds them, "M" at run time (rt[RT_M]) when m_runtime, "n_ctx" always
 * (rt[RT_NCTX]; its value here is unused). */
gen_kinst ktc_inst(const char *tmpl, int n, const char *const *names, const int64_t *vals, bool m_runtime);

/* adds the double parameter name = f (eps, freq_base ...) to k */
void ktc_param_f(gen_kinst *k, const char *name, double f);

#endif
