/*
 * test_specialize.c — the LLVM backend: instances compiled from the embedded
 * bitcode run correctly in-process (ORC LLJIT) and from a linked .so, the
 * IR of a fixed-shape instance has its shapes folded in, targets resolve,
 * and bad instances give clear errors.
 */
#include "kt.h"
#include "gen.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static gen_param P(const char *name, int64_t i) { gen_param p = {.i = i, .f = (double)i}; snprintf(p.name, sizeof p.name, "%s", name); return p; }
static gen_param PF(const char *name, double f) { gen_param p = {.f = f}; snprintf(p.name, sizeof p.name, "%s", name); return p; }
static gen_param PRT(const char *name, int idx) { gen_param p = {.runtime = true, .rt_index = idx}; snprintf(p.name, sizeof p.name, "%s", name); return p; }

static gen_kinst inst(const char *tmpl, const char *sym, int n, const gen_param *ps)
{
    gen_kinst k;
    memset(&k, 0, sizeof k);
    snprintf(k.tmpl, sizeof k.tmpl, "%s", tmpl);
    snprintf(k.sym, sizeof k.sym, "%s", sym);
    k.n_params = n;
    memcpy(k.params, ps, (size_t)n * sizeof *ps);
    return k;
}

/* Compiles `k` for the host and returns its function through the JIT. */
static gen_kfn jit_one(gen_jit *j, const gen_kinst *k)
{
    gen_target t;
    void *obj;
    size_t n;
    if (gen_target_host(&t) || gen_compile(&t, k, 1, GEN_EMIT_OBJ, &obj, &n)) {
        kt_fail(__FILE__, __LINE__, "compile %s: %s", k->sym, kg_last_error());
        return NULL;
    }
    gen_kfn f = NULL;
    if (gen_jit_add(j, obj, n) || gen_jit_lookup(j, k->sym, &f)) kt_fail(__FILE__, __LINE__, "jit %s: %s", k->sym, kg_last_error());
    free(obj);
    return f;
}

/* the probe template: y[i] = scale * x[i], rows split by thread */
static void run_probe(gen_kfn f, int64_t n, const int64_t *rt, double scale, int nth)
{
    float *x = malloc((size_t)n * sizeof *x), *y = calloc((size_t)n, sizeof *y);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(i % 97) - 40.5f;
    void *p[2] = {y, x};
    for (int ith = 0; ith < nth; ith++) f(p, rt, ith, nth);
    int bad = 0;
    for (int64_t i = 0; i < n; i++) bad += y[i] != (float)scale * x[i];
    KT_CHECKF(bad == 0, "%d of %lld outputs wrong (nth=%d)", bad, (long long)n, nth);
    free(x);
    free(y);
}

KT_TEST(specialize_jit_constant_and_runtime)
{
    gen_jit *j;
    KT_REQUIRE(gen_jit_create(&j) == KG_OK);
    gen_param c[] = {P("n", 1000), PF("scale", 2.5)}, r[] = {PRT("n", 0), PF("scale", -0.75)};
    gen_kinst kc = inst("probe", "t_probe_const", 2, c), kr = inst("probe", "t_probe_rt", 2, r);
    gen_kfn fc = jit_one(j, &kc), fr = jit_one(j, &kr);
    if (fc) { run_probe(fc, 1000, NULL, 2.5, 1); run_probe(fc, 1000, NULL, 2.5, 3); }
    int64_t rt[1] = {777};
    if (fr) { run_probe(fr, 777, rt, -0.75, 2); rt[0] = 1; run_probe(fr, 1, rt, -0.75, 2); }
    gen_jit_destroy(j);
}

static char *ll_of(const gen_kinst *k, const char *cpu)
{
    gen_target t;
    void *ll = NULL;
    size_t n;
    if ((cpu ? gen_target_parse(cpu, &t) : gen_target_host(&t)) || gen_compile(&t, k, 1, GEN_EMIT_LL, &ll, &n))
        kt_fail(__FILE__, __LINE__, "%s: %s", k->sym, kg_last_error());
    return ll;
}

/* The wrapper's own definition line in the IR. */
static const char *define_line(const char *ll, const char *sym, char *buf, size_t cap)
{
    char pat[96];
    snprintf(pat, sizeof pat, "@%s(", sym);
    const char *d = ll ? strstr(ll, pat) : NULL;
    buf[0] = 0;
    if (!d) return buf;
    while (d > ll && d[-1] != '\n') d--;
    const char *e = strchr(d, '\n');
    snprintf(buf, cap, "%.*s", (int)(e ? e - d : (long)strlen(d)), d);
    return buf;
}

KT_TEST(specialize_ir_has_constants)
{
    gen_param c[] = {P("n", 1000003), PF("scale", 2.5)}, r[] = {PRT("n", 0), PF("scale", 2.5)};
    gen_kinst kc = inst("probe", "t_ir_const", 2, c), kr = inst("probe", "t_ir_rt", 2, r);
    char *a = ll_of(&kc, NULL), *b = ll_of(&kr, NULL), la[512], lb[512];
    KT_REQUIRE(a && b);
    define_line(a, "t_ir_const", la, sizeof la);
    define_line(b, "t_ir_rt", lb, sizeof lb);
    /* the instance keeps only the uniform ABI: (p, rt, ith, nth); with every
     * parameter constant, rt is never read, and the shape is a literal */
    KT_CHECKF(strstr(la, "(ptr") && strstr(la, "readnone %1"), "constant instance reads rt: %s", la);
    KT_CHECKF(!strstr(lb, "readnone %1"), "runtime instance does not read rt: %s", lb);
    KT_CHECKF(strstr(a, "1000003") || strstr(a, "1000002"), "shape constant not folded into the IR");
    KT_CHECKF(!strstr(a, "call void @kgt_") && !strstr(a, "define internal void @kgt_"), "template not inlined/removed");
    KT_CHECKF(!strstr(a, "1000003") || !strstr(b, "1000003"), "runtime instance should not carry the constant");
    free(a);
    free(b);
}

KT_TEST(specialize_so_dlopen)
{
    gen_target t;
    gen_param c[] = {P("n", 64), PF("scale", 3.0)};
    gen_kinst k = inst("probe", "t_so_probe", 2, c);
    void *obj;
    size_t n;
    KT_REQUIRE(gen_target_host(&t) == KG_OK);
    KT_REQUIRE(gen_compile(&t, &k, 1, GEN_EMIT_OBJ, &obj, &n) == KG_OK);
    char so[512];
    snprintf(so, sizeof so, "%s/probe.so", kt_tmpdir());
    KT_CHECKF(gen_link_so(obj, n, so) == KG_OK, "%s", kg_last_error());
    free(obj);
    void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    KT_REQUIRE(h || (printf("    dlopen: %s\n", dlerror()), 0));
    gen_kfn f = (gen_kfn)(uintptr_t)dlsym(h, "t_so_probe");
    KT_CHECK(f != NULL);
    if (f) run_probe(f, 64, NULL, 3.0, 2);
    dlclose(h);
}

KT_TEST(specialize_targets)
{
    gen_target t;
    KT_CHECK(gen_target_host(&t) == KG_OK && t.cpu[0] && strstr(t.triple, "x86_64"));
    static const struct { const char *spec; gen_isa isa; } cases[] = {
        {"znver4", GEN_ISA_AVX512}, {"sapphirerapids", GEN_ISA_AMX}, {"haswell", GEN_ISA_AVX2},
        {"znver4,-avx512f", GEN_ISA_AVX2}, {"skylake-avx512", GEN_ISA_AVX2}, {"x86-64-v2", GEN_ISA_GENERIC},
        {"haswell,-avx2", GEN_ISA_GENERIC},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        kg_status s = gen_target_parse(cases[i].spec, &t);
        KT_CHECKF(s == KG_OK && t.isa == cases[i].isa, "%s: status %d isa %s", cases[i].spec, s, gen_isa_name(t.isa));
    }
    KT_CHECK(gen_target_parse("x86-64", &t) != KG_OK && strstr(kg_last_error(), "x86-64-v2"));
    KT_CHECK(gen_target_parse("bogus", &t) == KG_ERR_ARG && strstr(kg_last_error(), "unknown CPU 'bogus'"));
    KT_CHECK(gen_target_parse("haswell,avx2", &t) == KG_ERR_ARG);
}

KT_TEST(specialize_errors)
{
    gen_target t;
    void *out = NULL;
    size_t n;
    KT_REQUIRE(gen_target_host(&t) == KG_OK);
    gen_param ok[] = {P("n", 8), PF("scale", 1)}, extra[] = {P("n", 8), PF("scale", 1), P("zz", 1)},
              missing[] = {P("n", 8)}, rtdouble[] = {P("n", 8), PRT("scale", 0)};
    struct { gen_kinst k; const char *msg; } cases[] = {
        {inst("nope", "e1", 2, ok), "no template 'nope'"},
        {inst("probe", "e2", 3, extra), "has no parameter 'zz'"},
        {inst("probe", "e3", 1, missing), "needs parameter 'scale'"},
        {inst("probe", "e4", 2, rtdouble), "cannot be bound at run time"},
        {inst("split", "e5", 2, ok), "does not follow the convention"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        kg_status s = gen_compile(&t, &cases[i].k, 1, GEN_EMIT_OBJ, &out, &n);
        KT_CHECKF(s != KG_OK && out == NULL && strstr(kg_last_error(), cases[i].msg), "%s: got %d '%s'",
                  cases[i].k.sym, s, kg_last_error());
    }
    gen_kinst dup[2] = {inst("probe", "same", 2, ok), inst("probe", "same", 2, ok)};
    KT_CHECK(gen_compile(&t, dup, 2, GEN_EMIT_OBJ, &out, &n) != KG_OK && strstr(kg_last_error(), "already defined"));
}

/* compile through the cache: miss then hit with identical bytes; any change
 * of parameter, target or output kind is a different key */
KT_TEST(specialize_cached)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/gen-cache", kt_tmpdir());
    kg_cache *c;
    KT_REQUIRE(kg_cache_open(dir, &c) == KG_OK);
    gen_target t, t2;
    KT_REQUIRE(gen_target_host(&t) == KG_OK && gen_target_parse("haswell", &t2) == KG_OK);
    gen_param a[] = {P("n", 100), PF("scale", 2.0)}, b[] = {P("n", 101), PF("scale", 2.0)};
    gen_kinst ka = inst("probe", "t_cached", 2, a), kb = inst("probe", "t_cached", 2, b);
    struct { const gen_target *t; const gen_kinst *k; gen_emit e; bool want_hit; } steps[] = {
        {&t, &ka, GEN_EMIT_OBJ, false}, {&t, &ka, GEN_EMIT_OBJ, true}, {&t, &kb, GEN_EMIT_OBJ, false},
        {&t2, &ka, GEN_EMIT_OBJ, false}, {&t, &ka, GEN_EMIT_ASM, false}, {&t, &kb, GEN_EMIT_OBJ, true},
    };
    void *first = NULL;
    size_t first_n = 0;
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        void *out;
        size_t n;
        bool hit;
        kg_status s = gen_compile_cached(c, steps[i].t, steps[i].k, 1, steps[i].e, &out, &n, &hit);
        KT_CHECKF(s == KG_OK && hit == steps[i].want_hit, "step %zu: status %d hit %d (%s)", i, s, hit, kg_last_error());
        if (s != KG_OK) continue;
        if (i == 0) { first = out; first_n = n; continue; }
        if (i == 1) KT_CHECK(n == first_n && memcmp(out, first, n) == 0);
        free(out);
    }
    /* template parameter names of any case (M, K) key correctly */
    gen_param rp[] = {P("M", 1), P("K", 64), PF("eps", 1e-5), P("flags", 0)};
    gen_kinst kr = inst("rmsnorm", "t_cached_norm", 4, rp);
    for (int r = 0; r < 2; r++) {
        void *out;
        size_t n;
        bool hit;
        kg_status s = gen_compile_cached(c, &t, &kr, 1, GEN_EMIT_OBJ, &out, &n, &hit);
        KT_CHECKF(s == KG_OK && hit == (r == 1), "rmsnorm round %d: status %d hit %d (%s)", r, s, hit, kg_last_error());
        if (s == KG_OK) free(out);
    }
    /* the cached object runs */
    gen_jit *j;
    gen_kfn f = NULL;
    KT_REQUIRE(gen_jit_create(&j) == KG_OK);
    if (first && gen_jit_add(j, first, first_n) == KG_OK && gen_jit_lookup(j, "t_cached", &f) == KG_OK) run_probe(f, 100, NULL, 2.0, 2);
    else kt_fail(__FILE__, __LINE__, "cached object: %s", kg_last_error());
    gen_jit_destroy(j);
    free(first);
    kg_cache_close(c);
}
