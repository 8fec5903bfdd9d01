/*
 * cuda.c — the CUDA backend of code generation: the program's kernel
 * instances as instantiations of the templates in templates/cuda/ (their
 * name expressions and launch shapes), compiled together by NVRTC into one
 * cubin for the exact sm arch plus PTX for newer GPUs, through the cache;
 * ptxas's report per kernel (registers, spills, stack, shared memory); and
 * the blob a CUDA model carries (runtime/model/cuda_blob.h).
 *
 * NVRTC is loaded with dlopen ($KGEN_NVRTC, else the toolkit configure
 * found, else the loader's search), so kgen runs without the toolkit and
 * only CUDA targets ask for it. The templates are embedded in kgen
 * (gen/bitcode.S) and handed to NVRTC as headers: no include path.
 */
#include "cuda.h"
#include "config.h"
#include "internal.h"
#include "runtime/model/cudrv.h"
#include "runtime/model/desc.h"
#include "templates/cpu/kernel.h"
#include "templates/cpu/ops.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern const char kgen_bc_cu_common[], kgen_bc_cu_common_end[], kgen_bc_cu_mm[], kgen_bc_cu_mm_end[];
extern const char kgen_bc_cu_ops[], kgen_bc_cu_ops_end[], kgen_bc_cu_attn[], kgen_bc_cu_attn_end[];
extern const char kgen_bc_cu_types[], kgen_bc_cu_types_end[];

/* ─────────────── NVRTC, through dlopen ─────────────── */

typedef struct nvrtc_prog *nvrtcProgram;
typedef struct nvrtc_api {
    void *lib;
    int (*Version)(int *, int *);
    const char *(*GetErrorString)(int);
    int (*CreateProgram)(nvrtcProgram *, const char *, const char *, int, const char *const *, const char *const *);
    int (*DestroyProgram)(nvrtcProgram *);
    int (*AddNameExpression)(nvrtcProgram, const char *);
    int (*CompileProgram)(nvrtcProgram, int, const char *const *);
    int (*GetProgramLogSize)(nvrtcProgram, size_t *);
    int (*GetProgramLog)(nvrtcProgram, char *);
    int (*GetLoweredName)(nvrtcProgram, const char *, const char **);
    int (*GetCUBINSize)(nvrtcProgram, size_t *);
    int (*GetCUBIN)(nvrtcProgram, char *);
    int (*GetPTXSize)(nvrtcProgram, size_t *);
    int (*GetPTX)(nvrtcProgram, char *);
} nvrtc_api;

/* Loaded once per process and never closed: NVRTC is C++, and unloading it
 * strands its runtime's allocations (LeakSanitizer reports them). */
static kg_status nvrtc_load_once(nvrtc_api *a);
static kg_status nvrtc_load(nvrtc_api *a)
{
    static nvrtc_api api;
    static bool loaded;
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&mu);
    kg_status st = loaded ? KG_OK : nvrtc_load_once(&api);
    loaded = st == KG_OK;
    *a = api;
    pthread_mutex_unlock(&mu);
    return st;
}

static kg_status nvrtc_load_once(nvrtc_api *a)
{
    memset(a, 0, sizeof *a);
    const char *env = getenv("KGEN_NVRTC");
    const char *cand[] = {env && *env ? env : NULL, KGEN_CUDA_HOME[0] ? KGEN_CUDA_HOME "/lib64/libnvrtc.so" : NULL,
                          "libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"};
    char first[512] = "";
    for (size_t i = 0; i < sizeof cand / sizeof cand[0] && !a->lib; i++) {
        if (!cand[i]) continue;
        a->lib = dlopen(cand[i], RTLD_NOW | RTLD_LOCAL);
        if (!a->lib && !first[0]) snprintf(first, sizeof first, "%s", dlerror());
        if (env && *env && i == 0 && !a->lib) break; /* an explicit choice is not second-guessed */
    }
    if (!a->lib)
        return kg_err(KG_ERR_UNSUPPORTED,
                      "CUDA targets need NVRTC (the CUDA toolkit's libnvrtc.so), which cannot be loaded: %s "
                      "(install the toolkit, or set KGEN_NVRTC to the library)",
                      first);
    static const struct { size_t off; const char *sym; } fns[] = {
#define F(field) {offsetof(nvrtc_api, field), "nvrtc" #field}
        F(Version), F(GetErrorString), F(CreateProgram), F(DestroyProgram), F(AddNameExpression), F(CompileProgram),
        F(GetProgramLogSize), F(GetProgramLog), F(GetLoweredName), F(GetCUBINSize), F(GetCUBIN), F(GetPTXSize), F(GetPTX),
#undef F
    };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        void *f = dlsym(a->lib, fns[i].sym);
        if (!f) {
            dlclose(a->lib);
            return kg_err(KG_ERR_UNSUPPORTED, "NVRTC lacks %s (kgen needs CUDA 12 or later)", fns[i].sym);
        }
        memcpy((char *)a + fns[i].off, &f, sizeof f);
    }
    return KG_OK;
}

/* ─────────────── targets ─────────────── */

bool gen_cuda_is_target(const char *spec) { return spec && !strncmp(spec, "cuda", 4) && (!spec[4] || spec[4] == ':'); }

kg_status gen_cuda_target(const char *spec, int *sm, char *note, size_t cap)
{
    static const int known[] = {75, 80, 86, 87, 89, 90, 100, 120};
    note[0] = 0;
    if (!gen_cuda_is_target(spec)) return kg_err(KG_ERR_ARG, "'%s': not a CUDA target (cuda or cuda:sm_NN)", spec);
    if (spec[4] == ':') {
        const char *a = spec + 5;
        char *end;
        if (strncmp(a, "sm_", 3)) return kg_err(KG_ERR_ARG, "'%s': expected cuda:sm_NN, e.g. cuda:sm_90", spec);
        long v = strtol(a + 3, &end, 10);
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) ok |= v == known[i];
        if (*end || !ok)
            return kg_err(KG_ERR_ARG, "'%s': unknown arch (kgen knows sm_75, sm_80, sm_86, sm_87, sm_89, sm_90, sm_100, sm_120)",
                          spec);
        *sm = (int)v;
        return KG_OK;
    }
    /* "cuda": the local GPU's arch, else sm_90 */
    kgr_cu cu;
    char err[512], name[128] = "";
    int s = 0;
    if (kgr_cu_load(&cu, err, sizeof err) == 0) {
        if (kgr_cu_device(&cu, &s, name, sizeof name, NULL, err, sizeof err) == 0)
            snprintf(note, cap, "the local GPU (%s) is sm_%d", name, s);
        kgr_cu_unload(&cu);
    }
    if (s && s < 75)
        return kg_err(KG_ERR_UNSUPPORTED, "the local GPU (%s) is sm_%d: kgen's CUDA kernels need sm_75 or newer", name, s);
    if (!s) {
        s = 90;
        snprintf(note, cap, "no local GPU: compiling for sm_90 (name one with --target cuda:sm_NN)");
    }
    *sm = s;
    return KG_OK;
}

/* ─────────────── instances as template instantiations ─────────────── */

static long long pv(const gen_kinst *k, const char *name)
{
    const gen_param *p = gen_kinst_param(k, name);
    return p ? (long long)p->i : 0;
}

/* An unbound parameter gets the CPU template's default (its
 * KG_PARAM_DEFAULT / KG_PARAM_DEFAULT_F beside it in templates/cpu/),
 * which the callers of pvd / dbits name: the same instance means the
 * same thing on both backends. */
static long long pvd(const gen_kinst *k, const char *name, long long def)
{
    const gen_param *p = gen_kinst_param(k, name);
    return p ? (long long)p->i : def;
}

static unsigned long long dbits_or(const gen_kinst *k, const char *name, double def)
{
    const gen_param *p = gen_kinst_param(k, name);
    double f = p ? p->f : def;
    unsigned long long u;
    memcpy(&u, &f, 8);
    return u;
}

static unsigned long long dbits(const gen_kinst *k, const char *name) { return dbits_or(k, name, 0.0); }

/* the attention split of decode: about 256 blocks over all heads */
static int attn_split(long long n_head)
{
    long long s = (256 + n_head - 1) / n_head;
    return (int)(s < 1 ? 1 : s > 32 ? 32 : s);
}

enum { MM_THREADS = 128, ROW_THREADS = 128, ATTN_THREADS = 128, ATTN_QROWS = 4, ATTN_KT = 32, MM_MT = 8 };
enum { EW_THREADS = 128, EW_PER = 4 };

/* threads of a block over a head's n items (pairs, dims): a multiple of 32,
 * at most 256 (the kernels stride over more) */
static int head_threads(long long n)
{
    long long t = (n + 31) / 32 * 32;
    return (int)(t < 32 ? 32 : t > 256 ? 256 : t);
}

/* attn_prefill's static shared memory (templates/cuda/attn.cuh): a tile of
 * ATTN_KT K rows (padded by a word) and V rows, and the block's queries */
static long long prefill_smem(long long hd, long long ct)
{
    const long long kw = hd * (ct == KGT_F16 ? 2 : 4) / 4;
    return ATTN_KT * (2 * kw + 1) * 4 + ATTN_QROWS * hd * 4;
}

kg_status gen_cuda_shape(const gen_kinst *k, gen_cuda_shape_t *s)
{
    memset(s, 0, sizeof *s);
    const gen_param *mp = gen_kinst_param(k, "M");
    const int m1 = !(mp && mp->runtime);
    s->grid[0] = s->grid[1] = s->grid[2] = 1;
    if (!strcmp(k->tmpl, "mm")) {
        long long N = pv(k, "N"), fl = pv(k, "flags");
        int cpb = fl & KGT_EPI_OUT_Q8 ? 32 : MM_THREADS / 32, mt = m1 ? 1 : MM_MT;
        long long ldy = pv(k, "ldy"); /* 0 (unbound): N */
        if (ldy && (ldy < N || (fl & KGT_EPI_OUT_Q8 && ldy % 32)))
            return kg_err(KG_ERR_UNSUPPORTED, "CUDA mm: row stride ldy %lld for %lld outputs", ldy, N);
        int n = snprintf(s->expr, sizeof s->expr, "kgc::mm<%lld, %lld, %d, %lld, %lld, %lld, %d", pv(k, "wtype"),
                         pv(k, "act"), m1, N, pv(k, "K"), fl, mt);
        snprintf(s->expr + n, sizeof s->expr - (size_t)n, ldy && ldy != N ? ", %lld>" : ">", ldy);
        s->block = MM_THREADS;
        s->grid[0] = (uint32_t)((N + cpb - 1) / cpb);
        if (!m1) s->m_axis = 1, s->m_div = (uint32_t)mt;
    } else if (!strcmp(k->tmpl, "rmsnorm") || !strcmp(k->tmpl, "layernorm")) {
        /* rmsnorm's G groups per row: a block per group */
        const long long G = k->tmpl[0] == 'r' ? pvd(k, "G", 1) : 1;
        if (G < 1 || G > 65535)
            return kg_err(KG_ERR_UNSUPPORTED, "CUDA rmsnorm: %lld groups per row (1 to 65535)", G);
        snprintf(s->expr, sizeof s->expr, "kgc::norm<%d, %d, %lld, %lld, 0x%llxull>", k->tmpl[0] == 'r', m1, pv(k, "K"),
                 pv(k, "flags"), dbits(k, "eps"));
        s->block = ROW_THREADS;
        s->grid[0] = (uint32_t)G;
        if (!m1) s->m_axis = 0, s->m_div = 1;
    } else if (!strcmp(k->tmpl, "quantize")) {
        snprintf(s->expr, sizeof s->expr, "kgc::quantize<%d, %lld>", m1, pv(k, "K"));
        s->block = ROW_THREADS;
        if (!m1) s->m_axis = 0, s->m_div = 1;
    } else if (!strcmp(k->tmpl, "embed")) {
        /* an encoder's position and token-type tables: pos_len > 0 (the
         * plain instance's name otherwise, as before they existed) */
        const long long pl = pvd(k, "pos_len", 0), pt = pvd(k, "pos_type", KGT_F32);
        if (pl < 0 || (pl > 0 && pt != KGT_F32 && pt != KGT_F16 && pt != KGT_BF16))
            return kg_err(KG_ERR_UNSUPPORTED, "CUDA embed: pos_len %lld, pos_type %lld (F32, F16 or BF16)", pl, pt);
        int n = snprintf(s->expr, sizeof s->expr, "kgc::embed<%lld, %d, %lld, 0x%llxull", pv(k, "wtype"), m1, pv(k, "K"),
                         dbits_or(k, "scale", 1.0));
        snprintf(s->expr + n, sizeof s->expr - (size_t)n, pl > 0 ? ", %lld, %lld>" : ">", pl, pt);
        s->block = ROW_THREADS;
        if (!m1) s->m_axis = 0, s->m_div = 1;
    } else if (!strcmp(k->tmpl, "pool")) {
        /* a block per sequence (fixed grid: B is a compile-time shape) */
        const long long B = pv(k, "B"), L = pv(k, "L"), K = pv(k, "K"), mode = pvd(k, "mode", KGT_POOL_MEAN);
        if (B < 1 || B > 65535 || L < 1 || K < 1 || mode < KGT_POOL_MEAN || mode > KGT_POOL_MEAN_SQRT)
            return kg_err(KG_ERR_UNSUPPORTED, "CUDA pool: B %lld (1 to 65535), L %lld, K %lld, mode %lld (0 to 3)", B, L,
                          K, mode);
        snprintf(s->expr, sizeof s->expr, "kgc::pool<%lld, %lld, %lld, %d>", L, K, mode, pvd(k, "norm", 0) != 0);
        s->block = ROW_THREADS;
        s->grid[0] = (uint32_t)B;
    } else if (!strcmp(k->tmpl, "attn_enc")) {
        /* grid (heads, sequences, blocks of ATTN_QROWS rows), fixed */
        const long long B = pv(k, "B"), L = pv(k, "L"), nh = pv(k, "n_head"), hd = pv(k, "head_dim");
        if (hd % 32 || hd < 32 || hd > 256 || nh < 1 || B < 1 || B > 65535 || L < 1 || (L + ATTN_QROWS - 1) / ATTN_QROWS > 65535)
            return kg_err(KG_ERR_UNSUPPORTED,
                          "CUDA encoder attention: head_dim %lld (a multiple of 32, at most 256), heads %lld, B %lld, "
                          "L %lld",
                          hd, nh, B, L);
        if (prefill_smem(hd, KGT_F32) > 48 * 1024)
            return kg_err(KG_ERR_UNSUPPORTED,
                          "CUDA encoder attention: head_dim %lld needs %lld bytes of shared memory (at most 49152)", hd,
                          prefill_smem(hd, KGT_F32));
        snprintf(s->expr, sizeof s->expr, "kgc::attn_enc<%lld, %lld, %lld, 0x%llxull>", nh, hd, L,
                 dbits_or(k, "scale", 0.0));
        s->block = ATTN_THREADS;
        s->grid[0] = (uint32_t)nh, s->grid[1] = (uint32_t)B, s->grid[2] = (uint32_t)((L + ATTN_QROWS - 1) / ATTN_QROWS);
    } else if (!strcmp(k->tmpl, "rope_kv") || !strcmp(k->tmpl, "rope")) {
        /* block (head, token): a thread per pair of the head's dims */
        long long hd = pv(k, "head_dim"), nh = pv(k, "n_head"), nkv = pv(k, "n_head_kv"), nr = pv(k, "n_rot");
        const bool kv = k->tmpl[4] == '_';
        if (hd < 1 || (kv && hd > 512) || nr < 0 || nr % 2 || nr > hd) /* rope_kv: the CPU's limit */
            return kg_err(KG_ERR_UNSUPPORTED, "CUDA RoPE: head_dim %lld (%s), n_rot %lld (even, <= head_dim)", hd,
                          kv ? "at most 512 with the KV append" : "at least 1", nr);
        const int nt = head_threads((hd + 1) / 2), ff = pvd(k, "ff", 0) != 0, qk = pvd(k, "qk_norm", 0) != 0;
        if (kv)
            snprintf(s->expr, sizeof s->expr,
                     "kgc::rope_kv<%d, %lld, %lld, %lld, %lld, %lld, 0x%llxull, 0x%llxull, %lld, %d, %d, %d, 0x%llxull>", m1,
                     nh, nkv, hd, nr, pv(k, "mode"), dbits(k, "freq_base"), dbits(k, "freq_scale"), pv(k, "cache_type"),
                     nt, ff, qk, dbits_or(k, "eps", 1e-6));
        else
            snprintf(s->expr, sizeof s->expr, "kgc::rope<%d, %lld, %lld, %lld, %lld, 0x%llxull, 0x%llxull, %d, %d>", m1,
                     nh, hd, nr, pv(k, "mode"), dbits(k, "freq_base"), dbits(k, "freq_scale"), nt, ff);
        s->block = (uint32_t)nt;
        s->grid[0] = (uint32_t)(kv ? nh + nkv : nh);
        if (!m1) s->m_axis = 1, s->m_div = 1;
    } else if (!strcmp(k->tmpl, "kv_store")) {
        /* block (KV head, token): a thread per dim */
        long long hd = pv(k, "head_dim"), nkv = pv(k, "n_head_kv");
        const int nt = head_threads(hd);
        snprintf(s->expr, sizeof s->expr, "kgc::kv_store<%d, %lld, %lld, %lld, %d>", m1, nkv, hd, pv(k, "cache_type"), nt);
        s->block = (uint32_t)nt;
        s->grid[0] = (uint32_t)nkv;
        if (!m1) s->m_axis = 1, s->m_div = 1;
    } else if (!strcmp(k->tmpl, "add") || !strcmp(k->tmpl, "glu")) {
        /* block (segment, token): EW_THREADS threads, per elements each
         * (decode: one, for more blocks) */
        long long N = pv(k, "N"), act = pv(k, "act");
        const bool add = k->tmpl[0] == 'a';
        if (!add && act != KGT_GLU_SILU && act != KGT_GLU_GELU)
            return kg_err(KG_ERR_UNSUPPORTED, "CUDA glu: activation %lld (SiLU %d or GELU %d)", act, KGT_GLU_SILU,
                          KGT_GLU_GELU);
        const int op = add ? 0 : act == KGT_GLU_GELU ? 2 : 1, per = m1 ? 1 : EW_PER; /* kgc::EW_ADD, EW_SWIGLU, EW_GEGLU */
        snprintf(s->expr, sizeof s->expr, "kgc::ew<%d, %lld, %d, %d, %d>", m1, N, op, EW_THREADS, per);
        s->block = EW_THREADS;
        s->grid[0] = (uint32_t)((N + EW_THREADS * per - 1) / (EW_THREADS * per));
        if (!m1) s->m_axis = 1, s->m_div = 1;
    } else if (!strcmp(k->tmpl, "softcap")) {
        /* as ew: block (segment, token) */
        const long long N = pv(k, "N");
        const int per = m1 ? 1 : EW_PER;
        snprintf(s->expr, sizeof s->expr, "kgc::softcap<%d, %lld, 0x%llxull, %d, %d>", m1, N, dbits(k, "cap"), EW_THREADS,
                 per);
        s->block = EW_THREADS;
        s->grid[0] = (uint32_t)((N + EW_THREADS * per - 1) / (EW_THREADS * per));
        if (!m1) s->m_axis = 1, s->m_div = 1;
    } else if (!strcmp(k->tmpl, "attn_decode") || !strcmp(k->tmpl, "attn_prefill")) {
        long long hd = pv(k, "head_dim"), nh = pv(k, "n_head"), nkv = pv(k, "n_head_kv"), ct = pv(k, "cache_type");
        const unsigned long long sc = dbits_or(k, "scale", 0.0);
        const long long win = pvd(k, "window", 0);
        if (win < 0) return kg_err(KG_ERR_UNSUPPORTED, "CUDA attention: window %lld", win);
        if (hd % 32 || hd > 256 || nkv < 1 || nh % nkv)
            return kg_err(KG_ERR_UNSUPPORTED,
                          "CUDA attention: head_dim %lld (must be a multiple of 32, at most 256) or heads %lld/%lld", hd,
                          nh, nkv);
        s->block = ATTN_THREADS;
        s->grid[0] = (uint32_t)nh;
        if (k->tmpl[5] == 'd') {
            int sp = attn_split(nh);
            snprintf(s->expr, sizeof s->expr, "kgc::attn_decode<%lld, %lld, %lld, %lld, %d, 0x%llxull, %lld>", nh, nkv, hd,
                     ct, sp, sc, win);
            s->grid[1] = (uint32_t)sp;
            s->scratch = sp > 1 ? (uint64_t)nh * (uint64_t)sp * (uint64_t)(hd + 2) * 4 + (uint64_t)nh * 4 : 0;
        } else {
            if (prefill_smem(hd, ct) > 48 * 1024)
                return kg_err(KG_ERR_UNSUPPORTED,
                              "CUDA prefill attention: head_dim %lld with an f32 cache needs %lld bytes of shared "
                              "memory (at most 49152)",
                              hd, prefill_smem(hd, ct));
            snprintf(s->expr, sizeof s->expr, "kgc::attn_prefill<%lld, %lld, %lld, %lld, 0x%llxull, %lld>", nh, nkv, hd,
                     ct, sc, win);
            s->m_axis = 1, s->m_div = ATTN_QROWS;
        }
    } else {
        return kg_err(KG_ERR_UNSUPPORTED, "the CUDA backend has no template for '%s'", k->tmpl);
    }
    return KG_OK;
}

/* ─────────────── compiling ─────────────── */

static const struct { const char *name, *start, *end; } headers[] = {
    {"common.cuh", kgen_bc_cu_common, kgen_bc_cu_common_end},
    {"mm.cuh", kgen_bc_cu_mm, kgen_bc_cu_mm_end},
    {"ops.cuh", kgen_bc_cu_ops, kgen_bc_cu_ops_end},
    {"attn.cuh", kgen_bc_cu_attn, kgen_bc_cu_attn_end},
    {"kgen_types.h", kgen_bc_cu_types, kgen_bc_cu_types_end},
};
#define N_HEADERS (int)(sizeof headers / sizeof headers[0])
static const char source[] = "#include \"mm.cuh\"\n#include \"ops.cuh\"\n#include \"attn.cuh\"\n";

/* ptxas -v's report: per entry function, stack/spills then registers/smem */
static void parse_log(const char *log, gen_cuda_result *r)
{
    const char *p = log;
    int cur = -1;
    while (p && *p) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line - 1 ? n : sizeof line - 1), p);
        const char *q;
        if ((q = strstr(line, "Compiling entry function '"))) {
            q += strlen("Compiling entry function '");
            const char *e = strchr(q, '\'');
            cur = -1;
            for (int i = 0; e && i < r->n; i++)
                if (strlen(r->k[i].name) == (size_t)(e - q) && !strncmp(r->k[i].name, q, (size_t)(e - q))) cur = i;
        } else if (cur >= 0 && (q = strstr(line, "bytes stack frame"))) {
            int st = 0, ss = 0, sl = 0;
            const char *b = line;
            while (*b == ' ' || *b == '\t' || *b == '.' || (*b >= 'a' && *b <= 'z')) b++;
            if (sscanf(b, "%d bytes stack frame, %d bytes spill stores, %d bytes spill loads", &st, &ss, &sl) == 3) {
                r->k[cur].stack_bytes = st;
                r->k[cur].spill_bytes = ss + sl;
            }
        } else if (cur >= 0 && (q = strstr(line, "Used "))) {
            sscanf(q, "Used %d registers", &r->k[cur].regs);
            const char *sm = strstr(line, "bytes smem");
            if (sm) {
                while (sm > line && sm[-1] == ' ') sm--;
                while (sm > line && sm[-1] >= '0' && sm[-1] <= '9') sm--;
                r->k[cur].smem = atoi(sm);
            }
        }
        p = eol ? eol + 1 : NULL;
    }
    /* two instances naming one kernel (mm with ldy = N and without): one report */
    for (int i = 0; i < r->n; i++)
        for (int j = 0; j < r->n && !r->k[i].regs; j++)
            if (j != i && r->k[j].regs && !strcmp(r->k[i].name, r->k[j].name)) r->k[i] = r->k[j];
}

static const char PAYLOAD_MAGIC[8] = "KGCUART1";

static kg_status serialize(const gen_cuda_result *r, void **out, size_t *n)
{
    size_t sz = 8 + 4 + (size_t)r->n * sizeof *r->k + 8 + r->ncubin + 8 + r->nptx;
    char *b = malloc(sz), *p = b;
    if (!b) return kg_err(KG_ERR_NOMEM, "out of memory");
    uint32_t nk = (uint32_t)r->n;
    uint64_t a = r->ncubin, c = r->nptx;
    memcpy(p, PAYLOAD_MAGIC, 8), p += 8;
    memcpy(p, &nk, 4), p += 4;
    memcpy(p, r->k, (size_t)r->n * sizeof *r->k), p += (size_t)r->n * sizeof *r->k;
    memcpy(p, &a, 8), p += 8;
    memcpy(p, r->cubin, r->ncubin), p += r->ncubin;
    memcpy(p, &c, 8), p += 8;
    memcpy(p, r->ptx, r->nptx);
    *out = b, *n = sz;
    return KG_OK;
}

static bool deserialize(const void *data, size_t n, int want, gen_cuda_result *r)
{
    const char *p = data, *end = p + n;
    uint32_t nk;
    uint64_t a, c;
    if (n < 12 || memcmp(p, PAYLOAD_MAGIC, 8)) return false;
    memcpy(&nk, p + 8, 4), p += 12;
    if ((int)nk != want || (size_t)(end - p) < (size_t)nk * sizeof *r->k + 8) return false;
    memcpy(r->k, p, (size_t)nk * sizeof *r->k), p += (size_t)nk * sizeof *r->k;
    memcpy(&a, p, 8), p += 8;
    if ((uint64_t)(end - p) < a + 8) return false;
    const char *cub = p;
    p += a;
    memcpy(&c, p, 8), p += 8;
    if ((uint64_t)(end - p) != c || !c || p[c - 1]) return false;
    r->cubin = malloc(a ? a : 1), r->ptx = malloc(c);
    if (!r->cubin || !r->ptx) return false;
    memcpy(r->cubin, cub, a), memcpy(r->ptx, p, c);
    r->ncubin = a, r->nptx = c;
    return true;
}

kg_status gen_cuda_keytext(kg_keytext *kt)
{
    kg_status st = kg_keytext_str(kt, "cuda.nvrtc.build", KGEN_NVRTC_VERSION);
    for (int i = 0; i < N_HEADERS && !st; i++)
        st = kg_keytext_blob(kt, headers[i].name, headers[i].start, (size_t)(headers[i].end - headers[i].start));
    return st;
}

static kg_status cache_key(const nvrtc_api *nv, const gen_program *pg, int sm, const gen_cuda_shape_t *sh, kg_key *key,
                           char *ver, size_t vcap)
{
    int ma = 0, mi = 0;
    nv->Version(&ma, &mi);
    snprintf(ver, vcap, "%d.%d", ma, mi);
    kg_keytext *kt;
    kg_status st = kg_keytext_new(&kt);
    if (!st) st = kg_keytext_str(kt, "kind", "cuda-program");
    if (!st) st = kg_keytext_str(kt, "kgen.version", KGEN_VERSION);
    if (!st) st = kg_keytext_str(kt, "nvrtc.version", ver);
    if (!st) st = kg_keytext_i64(kt, "sm", sm);
    for (int i = 0; i < N_HEADERS && !st; i++)
        st = kg_keytext_blob(kt, headers[i].name, headers[i].start, (size_t)(headers[i].end - headers[i].start));
    for (int i = 0; i < pg->nk && !st; i++) st = kg_keytext_str(kt, "instance", sh[i].expr);
    if (!st) st = kg_keytext_finish(kt, key);
    kg_keytext_free(kt);
    return st;
}

static kg_status nvrtc_run(const nvrtc_api *nv, const gen_program *pg, int sm, const gen_cuda_shape_t *sh,
                           gen_cuda_result *r)
{
    char *hsrc[N_HEADERS];
    const char *hname[N_HEADERS];
    kg_status st = KG_OK;
    for (int i = 0; i < N_HEADERS; i++) {
        size_t n = (size_t)(headers[i].end - headers[i].start);
        hsrc[i] = malloc(n + 1);
        if (hsrc[i]) memcpy(hsrc[i], headers[i].start, n), hsrc[i][n] = 0;
        else st = kg_err(KG_ERR_NOMEM, "out of memory");
        hname[i] = headers[i].name;
    }
    nvrtcProgram prog = NULL;
    int rc = st ? 0 : nv->CreateProgram(&prog, source, "kgen_model.cu", N_HEADERS, (const char *const *)hsrc, hname);
    if (!st && rc) st = kg_err(KG_ERR_IO, "nvrtcCreateProgram: %s", nv->GetErrorString(rc));
    for (int i = 0; i < pg->nk && !st; i++)
        if ((rc = nv->AddNameExpression(prog, sh[i].expr)))
            st = kg_err(KG_ERR_IO, "nvrtcAddNameExpression(%s): %s", sh[i].expr, nv->GetErrorString(rc));
    char arch[32];
    snprintf(arch, sizeof arch, "-arch=sm_%d", sm);
    const char *opts[] = {arch, "-std=c++17", "--ptxas-options=-v"};
    char *log = NULL;
    if (!st) {
        rc = nv->CompileProgram(prog, 3, opts);
        size_t ln = 0;
        nv->GetProgramLogSize(prog, &ln);
        log = calloc(1, ln + 1);
        if (log && ln) nv->GetProgramLog(prog, log);
        if (rc)
            st = kg_err(KG_ERR_IO, "NVRTC could not compile the model's CUDA kernels for sm_%d: %s\n%.3000s", sm,
                        nv->GetErrorString(rc), log ? log : "");
    }
    for (int i = 0; i < pg->nk && !st; i++) {
        const char *low = NULL;
        if ((rc = nv->GetLoweredName(prog, sh[i].expr, &low)) || !low || strlen(low) >= sizeof r->k[i].name)
            st = kg_err(KG_ERR_IO, "nvrtcGetLoweredName(%s) failed", sh[i].expr);
        else snprintf(r->k[i].name, sizeof r->k[i].name, "%s", low);
    }
    if (!st && log) parse_log(log, r);
    size_t nc = 0, np = 0;
    if (!st && (nv->GetCUBINSize(prog, &nc) || nv->GetPTXSize(prog, &np) || !nc || !np))
        st = kg_err(KG_ERR_IO, "NVRTC returned no cubin or PTX for sm_%d", sm);
    if (!st) {
        r->cubin = malloc(nc), r->ptx = malloc(np);
        if (!r->cubin || !r->ptx) st = kg_err(KG_ERR_NOMEM, "out of memory");
        else if (nv->GetCUBIN(prog, r->cubin) || nv->GetPTX(prog, r->ptx)) st = kg_err(KG_ERR_IO, "NVRTC: cannot read the code");
        r->ncubin = nc, r->nptx = np;
    }
    if (prog) nv->DestroyProgram(&prog);
    free(log);
    for (int i = 0; i < N_HEADERS; i++) free(hsrc[i]);
    return st;
}

void gen_cuda_result_free(gen_cuda_result *r)
{
    free(r->k), free(r->shape), free(r->cubin), free(r->ptx);
    memset(r, 0, sizeof *r);
}

kg_status gen_cuda_compile(const gen_program *pg, int sm, bool use_cache, gen_cuda_result *r)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    memset(r, 0, sizeof *r);
    r->sm = sm;
    r->n = pg->nk;
    r->k = calloc((size_t)pg->nk + 1, sizeof *r->k);
    r->shape = calloc((size_t)pg->nk + 1, sizeof *r->shape);
    if (!r->k || !r->shape) return kg_err(KG_ERR_NOMEM, "out of memory");
    kg_status st = KG_OK;
    for (int i = 0; i < pg->nk && !st; i++) {
        st = gen_cuda_shape(&pg->k[i], &r->shape[i]);
        if (r->shape[i].scratch > r->scratch) r->scratch = r->shape[i].scratch;
    }
    nvrtc_api nv;
    if (!st) st = nvrtc_load(&nv);
    if (st) {
        gen_cuda_result_free(r);
        return st;
    }
    kg_key key;
    kg_cache *c = NULL;
    st = cache_key(&nv, pg, sm, r->shape, &key, r->nvrtc_version, sizeof r->nvrtc_version);
    if (!st && use_cache && kg_cache_open(NULL, &c) != KG_OK) c = NULL; /* no cache: compile anyway */
    void *data = NULL;
    size_t n = 0;
    kg_status got = !st && c ? kg_cache_get(c, key, "cubin", &data, &n) : KG_ERR_NOTFOUND;
    if (got == KG_OK) {
        r->hit = deserialize(data, n, pg->nk, r);
        free(data);
    } else if (got == KG_ERR_CORRUPT) { /* removed by the get: a miss, but the user should know */
        fprintf(stderr, "kgen: %s; rebuilding\n", kg_last_error());
    }
    if (!st && !r->hit) {
        free(r->cubin), free(r->ptx);
        r->cubin = r->ptx = NULL;
        st = nvrtc_run(&nv, pg, sm, r->shape, r);
        if (!st && c && serialize(r, &data, &n) == KG_OK) {
            if (kg_cache_put(c, key, "cubin", data, n) != KG_OK)
                fprintf(stderr, "kgen: warning: could not store the CUDA kernels in the cache: %s\n", kg_last_error());
            free(data);
        }
    }
    kg_cache_close(c);
    if (st) gen_cuda_result_free(r);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    r->seconds = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    return st;
}

/* ─────────────── the model's blob ─────────────── */

kg_status gen_cuda_blob(const gen_program *pg, const gen_cuda_result *r, void **out, size_t *size)
{
    kgm_cuda_hdr h = {.magic = KGM_CUDA_MAGIC, .version = KGM_CUDA_VERSION, .sm = r->sm, .n_kernels = (uint32_t)r->n};
    h.n_launch[0] = (uint32_t)pg->nc[GEN_MODE_DECODE];
    h.n_launch[1] = (uint32_t)pg->nc[GEN_MODE_PREFILL];
    h.scratch_bytes = r->scratch;
    size_t head = sizeof h + (size_t)r->n * sizeof(kgm_cuda_kernel) + (size_t)(h.n_launch[0] + h.n_launch[1]) * sizeof(kgm_cuda_launch);
    h.image_off = (head + 255) / 256 * 256;
    h.image_size = r->ncubin;
    h.ptx_off = (h.image_off + h.image_size + 255) / 256 * 256;
    h.ptx_size = r->nptx;
    size_t total = (size_t)(h.ptx_off + h.ptx_size);
    char *b = calloc(1, total);
    if (!b) return kg_err(KG_ERR_NOMEM, "out of memory");
    memcpy(b, &h, sizeof h);
    memcpy(b + sizeof h, r->k, (size_t)r->n * sizeof(kgm_cuda_kernel));
    kgm_cuda_launch *L = (kgm_cuda_launch *)(b + sizeof h + (size_t)r->n * sizeof(kgm_cuda_kernel));
    for (int mode = 0; mode < GEN_MODES; mode++)
        for (int c = 0; c < pg->nc[mode]; c++, L++) {
            const gen_call *call = &pg->c[mode][c];
            const gen_cuda_shape_t *s = &r->shape[call->inst];
            L->kernel = (uint32_t)call->inst, L->block = s->block, L->smem = 0;
            L->m_axis = s->m_axis, L->m_div = s->m_div;
            memcpy(L->grid, s->grid, sizeof L->grid);
            for (int j = 0; j < KGM_CUDA_PTRS; j++) {
                kgm_cuda_ptr *p = &L->p[j];
                p->base = -1;
                if (j >= call->np || call->p[j].base < 0) continue;
                p->base = call->p[j].base, p->off = call->p[j].off;
                p->kv_slot = call->p[j].kv_slot, p->last_row_bytes = call->p[j].last_row_bytes;
            }
            /* decode attention's scratch: p[5], NULL on the CPU */
            if (s->scratch) L->p[5].base = KGM_CUDA_BASE_SCRATCH, L->p[5].off = 0;
        }
    memcpy(b + h.image_off, r->cubin, r->ncubin);
    memcpy(b + h.ptx_off, r->ptx, r->nptx);
    *out = b, *size = total;
    return KG_OK;
}
