/*
 * llvm.c — specialization through the LLVM C API.
 *
 * For a set of kernel instances (template + bound parameters):
 *   1. parse the embedded template bitcode of the target's ISA level;
 *   2. add one wrapper per instance, `void SYM(ptr p, ptr rt, i32 ith,
 *      i32 nth)`, that calls kgt_TEMPLATE(p, ith, nth, <constants or rt[i]>);
 *   3. make every other function internal, the templates always-inline, and
 *      stamp every function with the target's CPU and features (clang wrote
 *      its own ISA level's; left alone, code would stay at that level);
 *   4. run GEN_OPT_PIPELINE (gen.h) for the target (shapes, types and flags are
 *      constants now: branches fold, loops unroll and vectorize for them);
 *   5. emit an object, assembly or textual IR.
 * Objects run in-process through ORC LLJIT, or are linked into a .so.
 */
#include "gen.h"
#include "tmpfile.h"
#include "internal.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/BitReader.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern const char kgen_bc_generic[], kgen_bc_generic_end[];
extern const char kgen_bc_avx2[], kgen_bc_avx2_end[];
extern const char kgen_bc_avx512[], kgen_bc_avx512_end[];
extern const char kgen_bc_amx[], kgen_bc_amx_end[];

void gen_bitcode(gen_isa isa, const void **data, size_t *size)
{
    const char *b = kgen_bc_generic, *e = kgen_bc_generic_end;
    if (isa == GEN_ISA_AVX2) b = kgen_bc_avx2, e = kgen_bc_avx2_end;
    if (isa == GEN_ISA_AVX512) b = kgen_bc_avx512, e = kgen_bc_avx512_end;
    if (isa == GEN_ISA_AMX) b = kgen_bc_amx, e = kgen_bc_amx_end;
    *data = b;
    *size = (size_t)(e - b);
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_llvm(void)
{
    LLVMInitializeX86TargetInfo();
    LLVMInitializeX86Target();
    LLVMInitializeX86TargetMC();
    LLVMInitializeX86AsmPrinter();
    LLVMInitializeX86AsmParser();
}

/* Turns an LLVMErrorRef into a kgen error (consumes it). */
static kg_status llvm_err(LLVMErrorRef e, const char *what)
{
    char *m = LLVMGetErrorMessage(e);
    kg_status s = kg_err(KG_ERR_UNSUPPORTED, "LLVM: %s: %s", what, m);
    LLVMDisposeErrorMessage(m);
    return s;
}

/* The first error LLVM reports while compiling (diagnostic handler). */
typedef struct diag {
    char msg[512];
} diag;

static void on_diag(LLVMDiagnosticInfoRef di, void *ctx)
{
    diag *d = ctx;
    if (LLVMGetDiagInfoSeverity(di) != LLVMDSError || d->msg[0]) return;
    char *m = LLVMGetDiagInfoDescription(di);
    snprintf(d->msg, sizeof d->msg, "%s", m);
    LLVMDisposeMessage(m);
}

/* ─────────────────────────── module ─────────────────────────── */

static kg_status load_templates(LLVMContextRef ctx, gen_isa isa, LLVMModuleRef *m)
{
    const void *bc;
    size_t n;
    gen_bitcode(isa, &bc, &n);
    LLVMMemoryBufferRef buf = LLVMCreateMemoryBufferWithMemoryRange(bc, n, "templates", 0);
    LLVMBool bad = LLVMParseBitcodeInContext2(ctx, buf, m);
    LLVMDisposeMemoryBuffer(buf);
    if (bad) return kg_err(KG_ERR_UNSUPPORTED, "LLVM: cannot read the %s template bitcode", gen_isa_name(isa));
    return KG_OK;
}

static void set_str_attr(LLVMContextRef ctx, LLVMValueRef f, const char *k, const char *v)
{
    LLVMRemoveStringAttributeAtIndex(f, LLVMAttributeFunctionIndex, k, (unsigned)strlen(k));
    if (v && *v)
        LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                                LLVMCreateStringAttribute(ctx, k, (unsigned)strlen(k), v, (unsigned)strlen(v)));
}

static unsigned attr_kind(const char *name) { return LLVMGetEnumAttributeKindForName(name, strlen(name)); }

/* Target attributes on every function; templates internal + always-inline;
 * the templates' parameter defaults (KG_PARAM_DEFAULT) internal, so that
 * O3 drops them once they are folded into the wrappers. */
static void prepare_functions(LLVMContextRef ctx, LLVMModuleRef m, const gen_target *t)
{
    for (LLVMValueRef g = LLVMGetFirstGlobal(m); g; g = LLVMGetNextGlobal(g)) {
        size_t len;
        const char *name = LLVMGetValueName2(g, &len);
        if (len > 12 && !strncmp(name, "kgt_default_", 12) && !LLVMIsDeclaration(g)) {
            LLVMSetLinkage(g, LLVMInternalLinkage);
            LLVMSetVisibility(g, LLVMDefaultVisibility);
        }
    }
    unsigned noinline = attr_kind("noinline"), optnone = attr_kind("optnone"), always = attr_kind("alwaysinline");
    for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f)) {
        if (LLVMIsDeclaration(f)) continue;
        set_str_attr(ctx, f, "target-cpu", t->cpu);
        set_str_attr(ctx, f, "target-features", t->features);
        set_str_attr(ctx, f, "tune-cpu", NULL);
        LLVMSetLinkage(f, LLVMInternalLinkage);
        LLVMSetVisibility(f, LLVMDefaultVisibility);
        LLVMRemoveEnumAttributeAtIndex(f, LLVMAttributeFunctionIndex, noinline);
        LLVMRemoveEnumAttributeAtIndex(f, LLVMAttributeFunctionIndex, optnone);
        size_t len;
        const char *name = LLVMGetValueName2(f, &len);
        if (len > 4 && !strncmp(name, "kgt_", 4))
            LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(ctx, always, 0));
    }
}

static const gen_param *find_param(const gen_kinst *k, const char *name, size_t len)
{
    for (int i = 0; i < k->n_params; i++)
        if (strlen(k->params[i].name) == len && !memcmp(k->params[i].name, name, len)) return &k->params[i];
    return NULL;
}

/* Template tmpl's default for its parameter `name` of type ty (int64_t or
 * double): KG_PARAM_DEFAULT / KG_PARAM_DEFAULT_F, a constant
 * kgt_default_TMPL__NAME in the bitcode. NULL: none (or of another type). */
static LLVMValueRef param_default(LLVMModuleRef m, const char *tmpl, const char *name, size_t len, LLVMTypeRef ty)
{
    char g[128];
    snprintf(g, sizeof g, "kgt_default_%s__%.*s", tmpl, (int)len, name);
    LLVMValueRef gv = LLVMGetNamedGlobal(m, g);
    LLVMValueRef init = gv && !LLVMIsDeclaration(gv) ? LLVMGetInitializer(gv) : NULL;
    if (!init || LLVMTypeOf(init) != ty) return NULL;
    if (LLVMIsAConstantInt(init)) return LLVMConstInt(ty, (unsigned long long)LLVMConstIntGetSExtValue(init), 1);
    if (LLVMIsAConstantFP(init)) {
        LLVMBool lost;
        return LLVMConstReal(ty, LLVMConstRealGetDouble(init, &lost));
    }
    return NULL;
}

/* void SYM(ptr p, ptr rt, i32 ith, i32 nth) { kgt_T(p, ith, nth, bound...); } */
static kg_status add_wrapper(LLVMContextRef ctx, LLVMModuleRef m, const gen_target *t, const gen_kinst *k)
{
    char fname[64];
    snprintf(fname, sizeof fname, "kgt_%s", k->tmpl);
    LLVMValueRef tf = LLVMGetNamedFunction(m, fname);
    if (!tf || LLVMIsDeclaration(tf))
        return kg_err(KG_ERR_NOTFOUND, "instance %s: no template '%s' (see 'kgen kernel --list')", k->sym, k->tmpl);
    if (LLVMGetNamedFunction(m, k->sym))
        return kg_err(KG_ERR_ARG, "instance %s: the symbol is already defined", k->sym);
    unsigned np = LLVMCountParams(tf);
    LLVMTypeRef ptr = LLVMPointerTypeInContext(ctx, 0), i32 = LLVMInt32TypeInContext(ctx),
                i64 = LLVMInt64TypeInContext(ctx), f64 = LLVMDoubleTypeInContext(ctx);
    if (np < 3 || LLVMTypeOf(LLVMGetParam(tf, 0)) != ptr || LLVMTypeOf(LLVMGetParam(tf, 1)) != i32 ||
        LLVMTypeOf(LLVMGetParam(tf, 2)) != i32 || np - 3 > GEN_MAX_PARAMS)
        return kg_err(KG_ERR_UNSUPPORTED, "template %s does not follow the convention (p, ith, nth, params...)", fname);

    LLVMTypeRef wparams[4] = {ptr, ptr, i32, i32};
    LLVMValueRef w = LLVMAddFunction(m, k->sym, LLVMFunctionType(LLVMVoidTypeInContext(ctx), wparams, 4, 0));
    LLVMBuilderRef b = LLVMCreateBuilderInContext(ctx);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(ctx, w, "entry"));
    LLVMValueRef args[3 + GEN_MAX_PARAMS] = {LLVMGetParam(w, 0), LLVMGetParam(w, 2), LLVMGetParam(w, 3)};
    kg_status st = KG_OK;
    int used = 0;
    for (unsigned i = 3; i < np && st == KG_OK; i++) {
        LLVMValueRef tp = LLVMGetParam(tf, i);
        LLVMTypeRef ty = LLVMTypeOf(tp);
        size_t len;
        const char *pname = LLVMGetValueName2(tp, &len);
        const gen_param *bp = find_param(k, pname, len);
        LLVMValueRef dv = bp || (ty != i64 && ty != f64) ? NULL : param_default(m, k->tmpl, pname, len, ty);
        if (dv) {
            args[i] = dv;
            continue;
        }
        if (!bp) {
            st = kg_err(KG_ERR_ARG, "instance %s: template %s needs parameter '%.*s'", k->sym, k->tmpl, (int)len, pname);
        } else if (ty != i64 && ty != f64) {
            st = kg_err(KG_ERR_UNSUPPORTED, "template %s: parameter '%s' is neither int64_t nor double", k->tmpl, bp->name);
        } else if (bp->runtime && ty != i64) {
            st = kg_err(KG_ERR_ARG, "instance %s: parameter '%s' is a double and cannot be bound at run time", k->sym, bp->name);
        } else if (bp->runtime) {
            LLVMValueRef idx = LLVMConstInt(i64, (unsigned long long)bp->rt_index, 0);
            LLVMValueRef gep = LLVMBuildGEP2(b, i64, LLVMGetParam(w, 1), &idx, 1, "");
            args[i] = LLVMBuildLoad2(b, i64, gep, bp->name);
        } else {
            args[i] = ty == i64 ? LLVMConstInt(i64, (unsigned long long)bp->i, 1) : LLVMConstReal(f64, bp->f);
        }
        used++;
    }
    if (st == KG_OK && used != k->n_params) {
        for (int i = 0; i < k->n_params && st == KG_OK; i++) {
            bool found = false;
            for (unsigned j = 3; j < np && !found; j++) {
                size_t len;
                const char *pname = LLVMGetValueName2(LLVMGetParam(tf, j), &len);
                found = strlen(k->params[i].name) == len && !memcmp(pname, k->params[i].name, len);
            }
            if (!found) st = kg_err(KG_ERR_ARG, "instance %s: template %s has no parameter '%s'", k->sym, k->tmpl, k->params[i].name);
        }
    }
    if (st == KG_OK) {
        LLVMBuildCall2(b, LLVMGlobalGetValueType(tf), tf, args, np, "");
        LLVMBuildRetVoid(b);
        set_str_attr(ctx, w, "target-cpu", t->cpu);
        set_str_attr(ctx, w, "target-features", t->features);
        LLVMAddAttributeAtIndex(w, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(ctx, attr_kind("nounwind"), 0));
    }
    LLVMDisposeBuilder(b);
    return st;
}

static kg_status make_tm(const gen_target *t, LLVMTargetMachineRef *tm)
{
    LLVMTargetRef target;
    char *err = NULL;
    if (LLVMGetTargetFromTriple(t->triple, &target, &err)) {
        kg_status s = kg_err(KG_ERR_UNSUPPORTED, "LLVM: target %s: %s", t->triple, err ? err : "?");
        LLVMDisposeMessage(err);
        return s;
    }
    *tm = LLVMCreateTargetMachine(target, t->triple, t->cpu, t->features, LLVMCodeGenLevelDefault,
                                  LLVMRelocPIC, LLVMCodeModelDefault);
    return *tm ? KG_OK : kg_err(KG_ERR_UNSUPPORTED, "LLVM: cannot create a target machine for %s", t->cpu);
}

static kg_status emit(LLVMTargetMachineRef tm, LLVMModuleRef m, gen_emit kind, void **out, size_t *size)
{
    if (kind == GEN_EMIT_LL) {
        char *s = LLVMPrintModuleToString(m);
        size_t n = strlen(s);
        *out = malloc(n + 1);
        if (*out) memcpy(*out, s, n + 1);
        *size = n;
        LLVMDisposeMessage(s);
        return *out ? KG_OK : kg_err(KG_ERR_NOMEM, "out of memory for the IR text");
    }
    LLVMMemoryBufferRef buf;
    char *err = NULL;
    if (LLVMTargetMachineEmitToMemoryBuffer(tm, m, kind == GEN_EMIT_ASM ? LLVMAssemblyFile : LLVMObjectFile, &err, &buf)) {
        kg_status s = kg_err(KG_ERR_UNSUPPORTED, "LLVM: code generation failed: %s", err ? err : "?");
        LLVMDisposeMessage(err);
        return s;
    }
    *size = LLVMGetBufferSize(buf);
    *out = malloc(*size + 1);
    if (*out) {
        memcpy(*out, LLVMGetBufferStart(buf), *size);
        ((char *)*out)[*size] = 0;
    }
    LLVMDisposeMemoryBuffer(buf);
    return *out ? KG_OK : kg_err(KG_ERR_NOMEM, "out of memory for the object");
}

#define PRUNE_PIPELINE "globaldce,ipsccp,function(sroa,sccp,simplifycfg),globaldce"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

kg_status gen_compile(const gen_target *t, const gen_kinst *k, int n, gen_emit kind, void **out, size_t *size)
{
    return gen_compile_with(t, k, n, NULL, kind, out, size);
}

kg_status gen_compile_with(const gen_target *t, const gen_kinst *k, int n, const gen_hook *hook, gen_emit kind,
                           void **out, size_t *size)
{
    bool dbg = getenv("KGEN_DEBUG") && *getenv("KGEN_DEBUG") && strcmp(getenv("KGEN_DEBUG"), "0");
    double t0 = now_ms(), t_parse = 0, t_setup = 0, t_opt = 0;
    *out = NULL;
    *size = 0;
    pthread_once(&init_once, init_llvm);
    LLVMContextRef ctx = LLVMContextCreate();
    diag d = {{0}};
    LLVMContextSetDiagnosticHandler(ctx, on_diag, &d);
    LLVMModuleRef m = NULL;
    LLVMTargetMachineRef tm = NULL;
    kg_status st = load_templates(ctx, t->isa, &m);
    t_parse = now_ms();
    if (st == KG_OK) st = make_tm(t, &tm);
    if (st == KG_OK) {
        LLVMSetTarget(m, t->triple);
        LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(tm);
        LLVMSetModuleDataLayout(m, dl);
        LLVMDisposeTargetData(dl);
        prepare_functions(ctx, m, t);
    }
    for (int i = 0; i < n && st == KG_OK; i++) st = add_wrapper(ctx, m, t, &k[i]);
    if (st == KG_OK && hook) st = hook->fn(ctx, m, t, hook->arg);
    LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
    /* Prune before optimizing: drop the templates no instance uses; push each
     * wrapper's constants into its (single-caller) template (ipsccp) and fold
     * the branches they decide (sroa, sccp, simplifycfg); drop the helpers
     * that left unused. Otherwise the optimizer, working bottom-up, would first optimize
     * every generic helper of a template (e.g. the dot products of all weight
     * types) before the dead branches that call them are removed. */
    if (st == KG_OK) {
        LLVMErrorRef e = LLVMRunPasses(m, PRUNE_PIPELINE, tm, opts);
        if (e) st = llvm_err(e, "pruning");
    }
    char *vmsg = NULL;
    if (st == KG_OK && LLVMVerifyModule(m, LLVMReturnStatusAction, &vmsg))
        st = kg_err(KG_ERR_UNSUPPORTED, "LLVM: the generated module is invalid: %.300s", vmsg);
    LLVMDisposeMessage(vmsg);
    t_setup = now_ms();
    if (st == KG_OK) {
        LLVMPassBuilderOptionsSetLoopVectorization(opts, 1);
        LLVMPassBuilderOptionsSetSLPVectorization(opts, 1);
        LLVMPassBuilderOptionsSetLoopUnrolling(opts, 1);
        LLVMPassBuilderOptionsSetLoopInterleaving(opts, 1);
        /* (inlining the templates first, "always-inline,default<O3>", was 10x
         * slower on mm: the unsimplified generic body is huge) */
        LLVMErrorRef e = LLVMRunPasses(m, GEN_OPT_PIPELINE, tm, opts);
        if (e) st = llvm_err(e, "optimization");
        t_opt = now_ms();
    }
    LLVMDisposePassBuilderOptions(opts);
    if (st == KG_OK) st = emit(tm, m, kind, out, size);
    if (st == KG_OK && d.msg[0]) {
        free(*out);
        *out = NULL;
        st = kg_err(KG_ERR_UNSUPPORTED, "LLVM: %s (instance %s%s)", d.msg, n ? k[0].sym : "-", n > 1 ? ", ..." : "");
    }
    if (st != KG_OK && n && !strstr(kg_last_error(), "instance")) {
        char prev[600];
        snprintf(prev, sizeof prev, "%s", kg_last_error());
        kg_err(st, "%s (compiling instance %s%s)", prev, k[0].sym, n > 1 ? ", ..." : "");
    }
    if (tm) LLVMDisposeTargetMachine(tm);
    if (m) LLVMDisposeModule(m);
    LLVMContextDispose(ctx);
    if (dbg && st == KG_OK)
        fprintf(stderr, "kgen: compile %s%s: parse %.1f ms, setup %.1f ms, optimize %.1f ms, emit %.1f ms, total %.1f ms\n",
                n ? k[0].sym : "-", n > 1 ? ", ..." : "", t_parse - t0, t_setup - t_parse, t_opt - t_setup,
                now_ms() - t_opt, now_ms() - t0);
    return st;
}

kg_status gen_list_templates(gen_isa isa, FILE *f)
{
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef m;
    kg_status st = load_templates(ctx, isa, &m);
    if (st == KG_OK) {
        for (LLVMValueRef fn = LLVMGetFirstFunction(m); fn; fn = LLVMGetNextFunction(fn)) {
            size_t len;
            const char *name = LLVMGetValueName2(fn, &len);
            if (LLVMIsDeclaration(fn) || LLVMGetLinkage(fn) != LLVMExternalLinkage || len < 5 || strncmp(name, "kgt_", 4))
                continue;
            fprintf(f, "%-16.*s", (int)len - 4, name + 4);
            for (unsigned i = 3; i < LLVMCountParams(fn); i++) {
                LLVMValueRef p = LLVMGetParam(fn, i);
                const char *pn = LLVMGetValueName2(p, &len);
                bool dbl = LLVMGetTypeKind(LLVMTypeOf(p)) == LLVMDoubleTypeKind;
                fprintf(f, " %.*s%s", (int)len, pn, dbl ? ":f64" : "");
                char tmpl[64];
                snprintf(tmpl, sizeof tmpl, "%.*s", (int)(strlen(name) - 4), name + 4);
                LLVMValueRef dv = param_default(m, tmpl, pn, len, LLVMTypeOf(p));
                LLVMBool lost;
                if (dv && dbl) fprintf(f, "=%g", LLVMConstRealGetDouble(dv, &lost));
                else if (dv) fprintf(f, "=%lld", LLVMConstIntGetSExtValue(dv));
            }
            fputc('\n', f);
        }
        LLVMDisposeModule(m);
    }
    LLVMContextDispose(ctx);
    return st;
}

/* ─────────────────────────── .so ─────────────────────────── */

kg_status gen_run_cc(char *const argv[], const char *out)
{
    pid_t pid;
    extern char **environ;
    int rc = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ), status = 0;
    if (rc) return kg_err(KG_ERR_IO, "cannot run '%s': %s (a C compiler driver is needed to link)", argv[0], strerror(rc));
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (!WIFEXITED(status) || WEXITSTATUS(status))
        return kg_err(KG_ERR_IO, "%s: linking failed: '%s' %s %d", out, argv[0],
                      WIFEXITED(status) ? "exited with status" : "was killed by signal",
                      WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    return KG_OK;
}

/* The object goes into a locked work directory, the .so into a locked
 * temporary beside out_path (gen/tmpfile.h): a kill leaves nothing for good. */
kg_status gen_link_so(const void *obj, size_t size, const char *out_path)
{
    gen_tmpdir work;
    gen_tmpout out = {0};
    char o[PATH_MAX + 16], so[PATH_MAX + 16];
    kg_status st = gen_tmpdir_make("link", &work);
    if (st) return st;
    snprintf(o, sizeof o, "%s/kernel.o", work.path);
    snprintf(so, sizeof so, "%s/kernel.so", work.path);
    FILE *f = fopen(o, "wb");
    if (!f || fwrite(obj, 1, size, f) != size) st = kg_err(KG_ERR_IO, "%s: write failed: %s", o, strerror(errno));
    if (f && fclose(f) && !st) st = kg_err(KG_ERR_IO, "%s: write failed: %s", o, strerror(errno));
    const char *cc = getenv("CC") && *getenv("CC") ? getenv("CC") : "cc";
    char *argv[] = {(char *)cc, "-shared", "-o", so, o, "-lm", NULL};
    if (!st) st = gen_tmpout_make(out_path, 0755, &out);
    if (!st) st = gen_run_cc(argv, out_path);
    if (!st) st = gen_tmpout_copy(&out, so);
    if (!st) st = gen_tmpout_commit(&out);
    gen_tmpout_abort(&out);
    gen_tmpdir_remove(&work);
    return st;
}

/* ─────────────────────────── JIT ─────────────────────────── */

struct gen_jit {
    LLVMOrcLLJITRef j;
};

kg_status gen_jit_create(gen_jit **out)
{
    *out = NULL;
    pthread_once(&init_once, init_llvm);
    gen_jit *g = calloc(1, sizeof *g);
    if (!g) return kg_err(KG_ERR_NOMEM, "out of memory");
    LLVMErrorRef e = LLVMOrcCreateLLJIT(&g->j, LLVMOrcCreateLLJITBuilder());
    if (e) {
        free(g);
        return llvm_err(e, "creating the JIT");
    }
    LLVMOrcDefinitionGeneratorRef dg;
    e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&dg, LLVMOrcLLJITGetGlobalPrefix(g->j), NULL, NULL);
    if (e) {
        gen_jit_destroy(g);
        return llvm_err(e, "JIT process symbols");
    }
    LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(g->j), dg);
    *out = g;
    return KG_OK;
}

kg_status gen_jit_add(gen_jit *j, const void *obj, size_t size)
{
    LLVMMemoryBufferRef mb = LLVMCreateMemoryBufferWithMemoryRangeCopy(obj, size, "kgen-object");
    LLVMErrorRef e = LLVMOrcLLJITAddObjectFile(j->j, LLVMOrcLLJITGetMainJITDylib(j->j), mb);
    return e ? llvm_err(e, "adding an object to the JIT") : KG_OK;
}

kg_status gen_jit_lookup(gen_jit *j, const char *sym, gen_kfn *out)
{
    LLVMOrcExecutorAddress a = 0;
    LLVMErrorRef e = LLVMOrcLLJITLookup(j->j, &a, sym);
    *out = NULL;
    if (e) return llvm_err(e, sym);
    *out = (gen_kfn)(uintptr_t)a;
    return KG_OK;
}

const gen_param *gen_kinst_param(const gen_kinst *k, const char *name)
{
    for (int i = 0; i < k->n_params; i++)
        if (!strcmp(k->params[i].name, name)) return &k->params[i];
    return NULL;
}

void gen_jit_destroy(gen_jit *j)
{
    if (!j) return;
    if (j->j) {
        LLVMErrorRef e = LLVMOrcDisposeLLJIT(j->j);
        if (e) LLVMConsumeError(e);
    }
    free(j);
}
