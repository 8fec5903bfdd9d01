/*
 * cuda.c — running a model compiled for a CUDA target (cuda_blob.h): the
 * driver through cudrv.h (dlopen), weights uploaded once at open, the KV
 * cache, workspace, run-time values and attention scratch in device memory;
 * prefill launches its kernels with grids scaled by the step's token count;
 * the decode step is captured once as a CUDA graph and replayed, the token,
 * its position and the run-time values copied to device memory before each
 * replay; the logits come back to pinned host memory.
 */
#include "cuda_blob.h"
#include "cudrv.h"
#include "desc.h"
#include "rt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kgr_cuda {
    kgr_cu cu;
    CUdevice dev;
    CUcontext ctx;
    CUstream stream;
    CUmodule mod;
    CUfunction *fn;
    const kgm_cuda_hdr *h;
    const kgm_cuda_launch *launch[2];
    const kgm_desc *d;
    CUdeviceptr base[KGM_CUDA_BASE_SCRATCH + 1];
    int64_t kv_bytes;  /* one layer's K (or V) */
    int n_ctx;
    float *logits;     /* pinned, n_vocab */
    int32_t *staging;  /* pinned: ids[n_batch], pos[n_batch] */
    int64_t *rt;       /* pinned: KGM_RT_COUNT */
    CUgraph graph;
    CUgraphExec exec;
    bool have_ctx;
};

/* the kernels' argument block (templates/cuda/common.cuh kgc::args) */
typedef struct {
    CUdeviceptr p[KGM_CUDA_PTRS];
    CUdeviceptr rt;
} kargs;

/* The blob is part of the model file: checked before use like any input. */
static int check_blob(const unsigned char *b, size_t n, const kgm_desc *d, char *err, size_t cap)
{
    const kgm_cuda_hdr *h = (const kgm_cuda_hdr *)(const void *)b;
    if (n < sizeof *h || h->magic != KGM_CUDA_MAGIC || h->version != KGM_CUDA_VERSION)
        return kgr_msg(err, cap, "the model's CUDA code is missing or of another version");
    uint64_t nl = (uint64_t)h->n_launch[0] + h->n_launch[1];
    uint64_t head = sizeof *h + (uint64_t)h->n_kernels * sizeof(kgm_cuda_kernel) + nl * sizeof(kgm_cuda_launch);
    if (h->n_kernels > 4096 || nl > 1u << 20 || head > n || h->image_off > n || h->image_size > n - h->image_off ||
        h->ptx_off > n || h->ptx_size > n - h->ptx_off || !h->ptx_size || b[h->ptx_off + h->ptx_size - 1])
        return kgr_msg(err, cap, "the model's CUDA code is truncated or malformed");
    const kgm_cuda_launch *L = (const kgm_cuda_launch *)(const void *)(b + sizeof *h + h->n_kernels * sizeof(kgm_cuda_kernel));
    for (uint64_t i = 0; i < nl; i++) {
        if (L[i].kernel >= h->n_kernels || L[i].m_axis > 2 || !L[i].block || L[i].block > 1024)
            return kgr_msg(err, cap, "the model's CUDA launch %llu is malformed", (unsigned long long)i);
        for (int j = 0; j < KGM_CUDA_PTRS; j++)
            if (L[i].p[j].base < -1 || L[i].p[j].base > KGM_CUDA_BASE_SCRATCH)
                return kgr_msg(err, cap, "the model's CUDA launch %llu has a bad pointer", (unsigned long long)i);
    }
    (void)d;
    return 0;
}

void kgr_cuda_free(kgr_cuda *g)
{
    if (!g) return;
    kgr_cu *cu = &g->cu;
    if (g->have_ctx) {
        cu->CtxSetCurrent(g->ctx);
        if (g->stream) cu->StreamSynchronize(g->stream);
        if (g->exec) cu->GraphExecDestroy(g->exec);
        if (g->graph) cu->GraphDestroy(g->graph);
        for (int i = 0; i <= KGM_CUDA_BASE_SCRATCH; i++)
            if (g->base[i]) cu->MemFree(g->base[i]);
        if (g->logits) cu->MemFreeHost(g->logits);
        if (g->staging) cu->MemFreeHost(g->staging);
        if (g->rt) cu->MemFreeHost(g->rt);
        if (g->mod) cu->ModuleUnload(g->mod);
        if (g->stream) cu->StreamDestroy(g->stream);
        cu->DevicePrimaryCtxRelease(g->dev);
    }
    kgr_cu_unload(cu);
    free(g->fn);
    free(g);
}

int kgr_cuda_open(kgr_cuda **out, const kgm_desc *d, const unsigned char *blob, size_t nblob, const void *weights,
                  int n_ctx, char *err, size_t cap)
{
    *out = NULL;
    if (check_blob(blob, nblob, d, err, cap)) return -1;
    kgr_cuda *g = calloc(1, sizeof *g);
    if (!g) return kgr_msg(err, cap, "out of memory");
    g->h = (const kgm_cuda_hdr *)(const void *)blob;
    g->d = d;
    g->n_ctx = n_ctx;
    g->launch[0] = (const kgm_cuda_launch *)(const void *)(blob + sizeof *g->h + g->h->n_kernels * sizeof(kgm_cuda_kernel));
    g->launch[1] = g->launch[0] + g->h->n_launch[0];
    if (kgr_cu_load(&g->cu, err, cap)) {
        free(g);
        return -1;
    }
    kgr_cu *cu = &g->cu;
    int sm = 0, rc = 0;
    char name[128] = "";
    rc = kgr_cu_device(cu, &sm, name, sizeof name, NULL, err, cap);
    if (!rc) rc = kgr_cu_check(cu, cu->DeviceGet(&g->dev, 0), "cuDeviceGet", err, cap);
    if (!rc) rc = kgr_cu_check(cu, cu->DevicePrimaryCtxRetain(&g->ctx, g->dev), "cuDevicePrimaryCtxRetain", err, cap);
    if (!rc) g->have_ctx = true, rc = kgr_cu_check(cu, cu->CtxSetCurrent(g->ctx), "cuCtxSetCurrent", err, cap);
    if (!rc) rc = kgr_cu_check(cu, cu->StreamCreate(&g->stream, 0), "cuStreamCreate", err, cap);
    /* the cubin if it is this GPU's arch, else the PTX (the driver compiles it for newer GPUs) */
    if (!rc && (sm != g->h->sm || cu->ModuleLoadData(&g->mod, blob + g->h->image_off) != 0)) {
        g->mod = NULL;
        CUresult r = cu->ModuleLoadData(&g->mod, blob + g->h->ptx_off);
        if (r) {
            char what[256];
            snprintf(what, sizeof what, "this model was compiled for sm_%d and cannot run on %s (sm_%d): loading its code",
                     g->h->sm, name, sm);
            rc = kgr_cu_check(cu, r, what, err, cap);
        }
    }
    const kgm_cuda_kernel *ks = (const kgm_cuda_kernel *)(const void *)(blob + sizeof *g->h);
    if (!rc && !(g->fn = calloc(g->h->n_kernels, sizeof *g->fn))) rc = kgr_msg(err, cap, "out of memory");
    for (uint32_t i = 0; !rc && i < g->h->n_kernels; i++) {
        char nm[sizeof ks[i].name + 1];
        memcpy(nm, ks[i].name, sizeof ks[i].name);
        nm[sizeof ks[i].name] = 0;
        rc = kgr_cu_check(cu, cu->ModuleGetFunction(&g->fn[i], g->mod, nm), "cuModuleGetFunction", err, cap);
    }
    uint64_t per = (uint64_t)d->n_head_kv * (uint64_t)n_ctx * kgr_kv_row_bytes(d);
    per = (per + 255) / 256 * 256;
    g->kv_bytes = (int64_t)per;
    const size_t sizes[KGM_CUDA_BASE_SCRATCH + 1] = {
        [KGM_BASE_W] = d->weight_bytes ? d->weight_bytes : 1, [KGM_BASE_WS] = d->ws_bytes ? d->ws_bytes : 1,
        [KGM_BASE_KV] = per * (uint64_t)d->n_kv_tensors, [KGM_BASE_RT] = KGM_RT_COUNT * 8,
        [KGM_CUDA_BASE_SCRATCH] = g->h->scratch_bytes ? g->h->scratch_bytes : 1};
    for (int i = 0; !rc && i <= KGM_CUDA_BASE_SCRATCH; i++) {
        if (cu->MemAlloc(&g->base[i], sizes[i]))
            rc = kgr_msg(err, cap, "out of GPU memory: %zu bytes for the model's %s", sizes[i],
                         i == KGM_BASE_W ? "weights" : i == KGM_BASE_KV ? "KV cache" : "workspace");
        else if (i != KGM_BASE_W)
            rc = kgr_cu_check(cu, cu->MemsetD8(g->base[i], 0, sizes[i]), "cuMemsetD8", err, cap);
    }
    if (!rc) rc = kgr_cu_check(cu, cu->MemcpyHtoD(g->base[KGM_BASE_W], weights, d->weight_bytes), "uploading the weights", err, cap);
    if (!rc && (cu->MemAllocHost((void **)&g->logits, (size_t)d->n_vocab * 4) ||
                cu->MemAllocHost((void **)&g->staging, (size_t)d->n_batch * 8) ||
                cu->MemAllocHost((void **)&g->rt, KGM_RT_COUNT * 8)))
        rc = kgr_msg(err, cap, "out of pinned host memory");
    if (rc) {
        kgr_cuda_free(g);
        return -1;
    }
    *out = g;
    return 0;
}

/* the kernels of one mode for a step of M tokens, on the stream */
static int launch_all(kgr_cuda *g, int mode, int64_t M, char *err, size_t cap)
{
    kgr_cu *cu = &g->cu;
    const uint32_t n = g->h->n_launch[mode];
    for (uint32_t i = 0; i < n; i++) {
        const kgm_cuda_launch *L = &g->launch[mode][i];
        kargs a;
        memset(&a, 0, sizeof a);
        a.rt = g->base[KGM_BASE_RT];
        for (int j = 0; j < KGM_CUDA_PTRS; j++) {
            const kgm_cuda_ptr *p = &L->p[j];
            if (p->base < 0) continue;
            a.p[j] = g->base[p->base] + (CUdeviceptr)(p->off + p->kv_slot * g->kv_bytes + (M - 1) * p->last_row_bytes);
        }
        unsigned grid[3] = {L->grid[0], L->grid[1], L->grid[2]};
        if (L->m_div) grid[L->m_axis] *= (unsigned)((M + L->m_div - 1) / L->m_div);
        void *params[] = {&a};
        CUresult r = cu->LaunchKernel(g->fn[L->kernel], grid[0], grid[1], grid[2], L->block, 1, 1, L->smem, g->stream,
                                      params, NULL);
        if (r) return kgr_cu_check(cu, r, "cuLaunchKernel", err, cap);
    }
    return 0;
}

/* One step of k tokens (ids, positions) with the run-time values rt; the
 * logits of the last token, or NULL with a message. */
const float *kgr_cuda_step(kgr_cuda *g, const int32_t *ids, const int32_t *pos, int k, const int64_t *rt, bool decode,
                           char *err, size_t cap)
{
    kgr_cu *cu = &g->cu;
    const kgm_desc *d = g->d;
    if (kgr_cu_check(cu, cu->CtxSetCurrent(g->ctx), "cuCtxSetCurrent", err, cap)) return NULL;
    memcpy(g->staging, ids, (size_t)k * 4);
    memcpy(g->staging + d->n_batch, pos, (size_t)k * 4);
    memcpy(g->rt, rt, KGM_RT_COUNT * 8);
    int rc = kgr_cu_check(cu, cu->MemcpyHtoDAsync(g->base[KGM_BASE_WS] + d->ws_ids, g->staging, (size_t)k * 4, g->stream),
                          "cuMemcpyHtoDAsync", err, cap);
    if (!rc)
        rc = kgr_cu_check(cu, cu->MemcpyHtoDAsync(g->base[KGM_BASE_WS] + d->ws_pos, g->staging + d->n_batch, (size_t)k * 4,
                                                  g->stream),
                          "cuMemcpyHtoDAsync", err, cap);
    if (!rc)
        rc = kgr_cu_check(cu, cu->MemcpyHtoDAsync(g->base[KGM_BASE_RT], g->rt, KGM_RT_COUNT * 8, g->stream),
                          "cuMemcpyHtoDAsync", err, cap);
    if (!rc && decode) {
        if (!g->exec) { /* capture the decode step once */
            rc = kgr_cu_check(cu, cu->StreamBeginCapture(g->stream, KGR_CU_CAPTURE_THREAD_LOCAL), "cuStreamBeginCapture",
                              err, cap);
            if (!rc) {
                int lr = launch_all(g, 0, 1, err, cap);
                CUresult r = cu->StreamEndCapture(g->stream, &g->graph);
                rc = lr ? lr : kgr_cu_check(cu, r, "cuStreamEndCapture", err, cap);
            }
            if (!rc) rc = kgr_cu_check(cu, cu->GraphInstantiate(&g->exec, g->graph, 0), "cuGraphInstantiate", err, cap);
            if (rc && g->graph) cu->GraphDestroy(g->graph), g->graph = NULL; /* the next step captures again */
        }
        if (!rc) rc = kgr_cu_check(cu, cu->GraphLaunch(g->exec, g->stream), "cuGraphLaunch", err, cap);
    } else if (!rc) {
        rc = launch_all(g, 1, k, err, cap);
    }
    if (!rc)
        rc = kgr_cu_check(cu, cu->MemcpyDtoHAsync(g->logits, g->base[KGM_BASE_WS] + d->ws_logits, (size_t)d->n_vocab * 4,
                                                  g->stream),
                          "cuMemcpyDtoHAsync", err, cap);
    if (!rc) rc = kgr_cu_check(cu, cu->StreamSynchronize(g->stream), "running the model on the GPU", err, cap);
    return rc ? NULL : g->logits;
}
