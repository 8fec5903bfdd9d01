/*
 * kt_cuda.c — see kt_cuda.h. The driver comes through runtime/model/cudrv
 * (dlopen), the code through gen/cuda.c (NVRTC), as kgen itself does.
 */
#include "kt_cuda.h"

#include "config.h"
#include "cuda.h"
#include "runtime/model/cudrv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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

bool ktc_standin(void)
{
    const char *e = getenv("KGEN_TEST_GPU_STANDIN");
    return e && *e && strcmp(e, "0");
}

bool ktc_available(char *why, size_t cap)
{
    if (ktc_standin()) {
        if (!KGEN_HAVE_CUDA) snprintf(why, cap, "the GPU stand-in: built without NVRTC");
        else printf("    stand-in: the CPU runs each instance in the GPU's place (NVRTC compiles it for sm_90)\n");
        return KGEN_HAVE_CUDA;
    }
    bool ok = ready();
    if (!ok) snprintf(why, cap, "no usable GPU: %s", g_why);
    return ok;
}

gen_kinst ktc_inst(const char *tmpl, int n, const char *const *names, const int64_t *vals, bool m_runtime)
{
    gen_kinst k;
    memset(&k, 0, sizeof k);
    snprintf(k.tmpl, sizeof k.tmpl, "%s", tmpl);
    static unsigned seq; /* symbols unique in the stand-in's JIT */
    snprintf(k.sym, sizeof k.sym, "kgt_%s_test%u", tmpl, seq++);
    for (int i = 0; i < n && i < GEN_MAX_PARAMS - 1; i++) {
        gen_param *p = &k.params[k.n_params++];
        snprintf(p->name, sizeof p->name, "%s", names[i]);
        p->i = vals[i];
        p->runtime = (m_runtime && !strcmp(names[i], "M")) || !strcmp(names[i], "n_ctx");
        p->rt_index = !strcmp(names[i], "n_ctx"); /* RT_M 0, RT_NCTX 1 */
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

/* k alone through NVRTC for sm (and the cache) */
static int compile_one(const gen_kinst *k, int sm, gen_cuda_result *r, char *err, size_t cap)
{
    gen_program pg;
    memset(&pg, 0, sizeof pg);
    pg.k = (gen_kinst *)k, pg.nk = 1;
    if (gen_cuda_compile(&pg, sm, true, r)) return snprintf(err, cap, "NVRTC: %s", kg_last_error()), -1;
    return 0;
}

/* buffer i shares the copy of an earlier equal pointer: its index, or -1 */
static int alias_of(void *const *p, int i)
{
    for (int j = 0; j < i; j++)
        if (p[j] == p[i]) return j;
    return -1;
}

/* the stand-in's host function for k: compiled once per instance (the
 * symbol aside), kept in one JIT for the process */
static gen_kfn standin_fn(const gen_kinst *k, char *err, size_t cap)
{
    enum { MAX_FNS = 1024 };
    static gen_jit *jit;
    static struct { gen_kinst k; gen_kfn f; } fns[MAX_FNS];
    static int nfns;
    for (int i = 0; i < nfns; i++)
        if (!strcmp(fns[i].k.tmpl, k->tmpl) && fns[i].k.n_params == k->n_params &&
            !memcmp(fns[i].k.params, k->params, (size_t)k->n_params * sizeof *k->params))
            return fns[i].f;
    gen_target t;
    void *obj = NULL;
    size_t n;
    gen_kfn f = NULL;
    if (nfns == MAX_FNS) snprintf(err, cap, "the stand-in holds %d instances at most", MAX_FNS);
    else if ((!jit && gen_jit_create(&jit)) || gen_target_host(&t) || gen_compile(&t, k, 1, GEN_EMIT_OBJ, &obj, &n) ||
             gen_jit_add(jit, obj, n) || gen_jit_lookup(jit, k->sym, &f))
        snprintf(err, cap, "the CPU backend: %s", kg_last_error()), f = NULL;
    free(obj);
    if (f) fns[nfns].k = *k, fns[nfns++].f = f;
    return f;
}

/* n bytes ending right where an inaccessible page begins: a read or write
 * past them faults, in the JIT's code too (which ASan does not see) */
static void *guarded(size_t n)
{
    const size_t pg = (size_t)sysconf(_SC_PAGESIZE), len = (n + pg - 1) / pg * pg + pg;
    char *b = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED) return NULL;
    if (mprotect(b + len - pg, pg, PROT_NONE)) return munmap(b, len), NULL;
    return b + len - pg - n;
}

static void unguard(void *p, size_t n)
{
    const size_t pg = (size_t)sysconf(_SC_PAGESIZE), len = (n + pg - 1) / pg * pg + pg;
    munmap((char *)p + n + pg - len, len);
}

/* ktc_run with the CPU in the GPU's place (kt_cuda.h) */
static int standin_run(const gen_kinst *k, int64_t M, int64_t n_ctx, void *const *p, const size_t *bytes, int np,
                       char *err, size_t cap)
{
    gen_cuda_result r;
    if (compile_one(k, 90, &r, err, cap)) return -1;
    gen_cuda_result_free(&r);
    gen_kfn f = standin_fn(k, err, cap);
    if (!f) return -1;
    void *d[KGM_CUDA_PTRS] = {0};
    bool own[KGM_CUDA_PTRS] = {0};
    int rc = 0;
    for (int i = 0; i < np && !rc; i++) {
        if (!p[i] || !bytes[i]) continue;
        const int j = alias_of(p, i);
        if (j >= 0 && d[j]) {
            d[i] = d[j];
            continue;
        }
        if (!(d[i] = guarded(bytes[i]))) rc = -1, snprintf(err, cap, "out of memory");
        else own[i] = true, memcpy(d[i], p[i], bytes[i]);
    }
    const int64_t rt[8] = {M, n_ctx}; /* RT_M, RT_NCTX */
    if (!rc) f(d, rt, 0, 1);
    for (int i = 0; i < np; i++)
        if (own[i]) {
            if (!rc) memcpy(p[i], d[i], bytes[i]);
            unguard(d[i], bytes[i]);
        }
    return rc;
}

int ktc_run(const gen_kinst *k, int64_t M, int64_t n_ctx, void *const *p, const size_t *bytes, int np, char *err,
            size_t cap)
{
    if (np > KGM_CUDA_PTRS) return snprintf(err, cap, "%d pointers (at most %d)", np, KGM_CUDA_PTRS), -1;
    if (ktc_standin()) return standin_run(k, M, n_ctx, p, bytes, np, err, cap);
    if (!ready()) return snprintf(err, cap, "no usable GPU: %s", g_why), -1;
    gen_cuda_result r;
    if (compile_one(k, g_sm, &r, err, cap)) return -1;
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
        const int j = alias_of(p, i);
        if (j >= 0 && d[j]) {
            d[i] = d[j];
            continue;
        }
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
