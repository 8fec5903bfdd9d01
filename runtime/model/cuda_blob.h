/*
 * cuda_blob.h — the CUDA part of a model compiled for a CUDA target
 * (gen/cuda.c writes it, runtime/model/cuda.c reads it), in the model's
 * data as kgm_cuda_blob..kgm_cuda_blob_end (empty for CPU models).
 *
 *   offset          what
 *   0               kgm_cuda_hdr
 *   sizeof hdr      kgm_cuda_kernel[n_kernels]     lowered (mangled) names
 *   ...             kgm_cuda_launch[n_launch[0]]   decode, in order
 *   ...             kgm_cuda_launch[n_launch[1]]   prefill, in order
 *   image_off       cubin for sm (image_size bytes)
 *   ptx_off         PTX of the same program, NUL-terminated (JIT-compiled
 *                   by the driver when the GPU is not sm)
 *
 * A launch: kernel, block threads, shared memory, grid; one grid axis may
 * scale with the step's token count M: grid[m_axis] *= ceil(M / m_div)
 * (m_div 0: fixed grid). Its pointers are as the CPU entry points'
 * (runtime/model/desc.h): base + off (+ kv_slot * KV bytes per layer)
 * (+ (M - 1) * last_row_bytes), with one more base, KGM_CUDA_BASE_SCRATCH.
 * Every kernel takes one struct by value: the 8 pointers and the device
 * address of the run-time values (rt).
 */
#ifndef KGEN_CUDA_BLOB_H
#define KGEN_CUDA_BLOB_H

#include <stdint.h>

#define KGM_CUDA_MAGIC 0x5543474bu /* "KGCU" */
#define KGM_CUDA_VERSION 2 /* 2: 8 pointers per launch (rope_kv's p[5..7]) */
#define KGM_CUDA_BASE_SCRATCH 4
#define KGM_CUDA_PTRS 8

typedef struct kgm_cuda_hdr {
    uint32_t magic, version;
    int32_t sm;                 /* 90: the cubin's arch                       */
    uint32_t n_kernels;
    uint32_t n_launch[2];       /* decode, prefill                            */
    uint64_t image_off, image_size, ptx_off, ptx_size;
    uint64_t scratch_bytes;     /* device scratch (attention split partials), zeroed at open */
    uint32_t reserved[8];
} kgm_cuda_hdr;

typedef struct kgm_cuda_kernel {
    char name[240];
    int32_t regs, smem, spill_bytes, stack_bytes; /* from ptxas (for reports) */
} kgm_cuda_kernel;

typedef struct kgm_cuda_ptr {
    int32_t base, pad;          /* KGM_BASE_*, KGM_CUDA_BASE_SCRATCH; -1: NULL */
    int64_t off, kv_slot, last_row_bytes;
} kgm_cuda_ptr;

typedef struct kgm_cuda_launch {
    uint32_t kernel, block, smem, m_axis, m_div;
    uint32_t grid[3];
    kgm_cuda_ptr p[KGM_CUDA_PTRS];
} kgm_cuda_launch;

#endif
