/*
 * kt_cuda.c — see kt_cuda.h. The driver comes through runtime/model/cudrv
 * (dlopen), the code through gen/cuda.c (NVRTC), as kgen itself does.
 */
#include "kt_cuda.h"

#include "cuda.h"
#include "runtime/model/cudrv.h"

#include <stdio.h>
#include <string.h>

static kgr_cu g_cu;
static int g_state; /* 0 unknown, 1 ready, -1 unavailable */
static int g_sm;
static char g_why[512];

static bool ready(void)
{
    if (g_state) return g_state > 0;
    g_state = -1;
    CUcontext ctx;
    CUdevice dev;
    char name[128];
    int nsm;
    if (kgr_cu_load(&g_cu, g_why, sizeof g_why)) {
        /* the runtime's message speaks of a model: keep its cause */
        char *o = strchr(g_why, '('), *c = o ? strchr(o, ')') : NULL;
        if (o && c && strstr(g_why, "compiled for CUDA")) *c = 0, memmove(g_why, o + 1, strlen(o + 1) + 1);
        return false;
    }
    if (kgr_cu_device(&g_cu, &g_sm, name, sizeof name, &nsm, g_why, sizeof g_why) ||
        kgr_cu_check(&g_cu, g_cu.DeviceGet(&dev, 0), "cuDeviceGet", g_why, sizeof g_why) ||
        kgr_cu_check(&g_cu, g_cu.DevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain", g_why, sizeof g_why) ||
        kgr_cu_check(&g_cu, g_cu.CtxSetCurrent(ctx), "cuCtxSetCurrent", g_why, sizeof g_why))
        return false;
    g_state = 1;
    return true;
}

bool ktc_available(char *why, size_t cap)
{
    bool ok = ready();
    if (!ok) snprintf(why, cap, "no usable GPU: %s", g_why);
    return ok;
}

gen_kinst ktc_inst(const char *tmpl, int n, const char *const *names, const int64_t *vals, bool m_runtime)
{
    gen_kinst k;
    memset(&k, 0, sizeof k);
    snprintf(k.tmpl, sizeof k.tmpl, "%s", tmpl);
    snprintf(k.sym, sizeof k.sym, "kgt_%s_test", tmpl);
    for (int i = 0; i < n && i < GEN_MAX_PARAMS - 1; i++) {
        gen_param *p = &k.params[k.n_params++];
        snprintf(p->name, sizeof p->name, "%s", names[i]);
        p->i = vals[i];
        p->runtime = m_runtime && !strcmp(names[i], "M");
    }
    return k;
}

void ktc_param_f(gen_kinst *k, const char *name, double f)
{
    if (k->n_params >= GEN_MAX_PARAMS) return;
    gen_param *e = &k->params[k->n_params++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->f = f;
}

int ktc_run(const gen_kinst *k, int64_t M, int64_t n_ctx, void *const *p, const size_t *bytes, int np, char *err,
            size_t cap)
{
    if (!ready()) return snprintf(err, cap, "no usable GPU: %s", g_why), -1;
    if (np > KGM_CUDA_PTRS) return snprintf(err, cap, "%d pointers (at most %d)", np, KGM_CUDA_PTRS), -1;
    gen_program pg;
    memset(&pg, 0, sizeof pg);
    pg.k = (gen_kinst *)k, pg.nk = 1;
    gen_cuda_result r;
    if (gen_cuda_compile(&pg, g_sm, true, &r)) return snprintf(err, cap, "%s", kg_last_error()), -1;
    kgr_cu *cu = &g_cu;
    CUmodule mod = NULL;
    CUfunction fn;
    CUdeviceptr d[KGM_CUDA_PTRS] = {0}, rt = 0;
    int64_t rth[8] = {0};
    rth[0] = M, rth[1] = n_ctx; /* RT_M, RT_NCTX */
    int rc = kgr_cu_check(cu, cu->ModuleLoadData(&mod, r.cubin), "cuModuleLoadData", err, cap) ||
             kgr_cu_check(cu, cu->ModuleGetFunction(&fn, mod, r.k[0].name), "cuModuleGetFunction", err, cap) ||
             kgr_cu_check(cu, cu->MemAlloc(&rt, sizeof rth), "cuMemAlloc", err, cap) ||
             kgr_cu_check(cu, cu->MemcpyHtoD(rt, rth, sizeof rth), "cuMemcpyHtoD", err, cap);
    bool own[KGM_CUDA_PTRS] = {0};
    for (int i = 0; i < np && !rc; i++) {
        if (!p[i] || !bytes[i]) continue;
        for (int j = 0; j < i && !d[i]; j++)
            if (p[j] == p[i] && d[j]) d[i] = d[j];
        if (d[i]) continue;
        own[i] = true;
        rc = kgr_cu_check(cu, cu->MemAlloc(&d[i], bytes[i]), "cuMemAlloc", err, cap) ||
             kgr_cu_check(cu, cu->MemcpyHtoD(d[i], p[i], bytes[i]), "cuMemcpyHtoD", err, cap);
    }
    CUdeviceptr scratch = 0;
    if (!rc && r.shape[0].scratch) {
        if (np > 5 && p[5]) rc = 1, snprintf(err, cap, "p[5] is the instance's scratch");
        else rc = kgr_cu_check(cu, cu->MemAlloc(&scratch, r.shape[0].scratch), "cuMemAlloc", err, cap) ||
                  kgr_cu_check(cu, cu->MemsetD8(scratch, 0, r.shape[0].scratch), "cuMemsetD8", err, cap);
        d[5] = scratch;
    }
    if (!rc) {
        const gen_cuda_shape_t *s = &r.shape[0];
        unsigned grid[3] = {s->grid[0], s->grid[1], s->grid[2]};
        if (s->m_div) grid[s->m_axis] *= (unsigned)((M + s->m_div - 1) / s->m_div);
        struct {
            CUdeviceptr p[KGM_CUDA_PTRS];
            CUdeviceptr rt;
        } a;
        memcpy(a.p, d, sizeof a.p);
        a.rt = rt;
        void *params[] = {&a};
        rc = kgr_cu_check(cu, cu->LaunchKernel(fn, grid[0], grid[1], grid[2], s->block, 1, 1, 0, NULL, params, NULL),
                          "cuLaunchKernel", err, cap) ||
             kgr_cu_check(cu, cu->StreamSynchronize(NULL), r.shape[0].expr, err, cap);
    }
    for (int i = 0; i < np && !rc; i++)
        if (own[i])
            rc = kgr_cu_check(cu, cu->MemcpyDtoHAsync(p[i], d[i], bytes[i], NULL), "cuMemcpyDtoH", err, cap) ||
                 kgr_cu_check(cu, cu->StreamSynchronize(NULL), "cuStreamSynchronize", err, cap);
    for (int i = 0; i < np; i++)
        if (own[i]) cu->MemFree(d[i]);
    if (scratch) cu->MemFree(scratch);
    if (rt) cu->MemFree(rt);
    if (mod) cu->ModuleUnload(mod);
    gen_cuda_result_free(&r);
    return rc ? -1 : 0;
}
