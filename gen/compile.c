/*
 * compile.c — kernel instances through the compiled-artifact cache.
 *
 * The key is XXH3-128 over a canonical text of everything that changes the
 * artifact: kgen and LLVM versions, the hash of the generator's sources
 * (gen/, KGEN_GEN_SRC_ID), the template bitcode's content, every
 * instance (template, symbol, each parameter as a constant or rt[i]), the
 * target (triple, CPU, features, ISA level) and the output kind. Never a
 * path or a time.
 */
#include "config.h"
#include "gen.h"
#include "internal.h"
#include "srcid.h" /* KGEN_GEN_SRC_ID: build/gen/srcid.h, from the Makefile */

#include <stdio.h>
#include <stdlib.h>

static const char *const kinds[] = {[GEN_EMIT_OBJ] = "o", [GEN_EMIT_ASM] = "s", [GEN_EMIT_LL] = "ll"};

kg_status gen_keytext_codegen(kg_keytext *kt, const gen_target *t)
{
    const void *bc;
    size_t bcn;
    gen_bitcode(t->isa, &bc, &bcn);
    kg_status st = kg_keytext_str(kt, "kgen.version", KGEN_VERSION);
    if (!st) st = kg_keytext_str(kt, "kgen.gen_sources", KGEN_GEN_SRC_ID);
    if (!st) st = kg_keytext_str(kt, "llvm.version", KGEN_LLVM_VERSION);
    if (!st) st = kg_keytext_blob(kt, "templates.bitcode", bc, bcn);
    if (!st) st = kg_keytext_str(kt, "target.triple", t->triple);
    if (!st) st = kg_keytext_str(kt, "target.cpu", t->cpu);
    if (!st) st = kg_keytext_str(kt, "target.features", t->features);
    if (!st) st = kg_keytext_str(kt, "target.isa", gen_isa_name(t->isa));
    if (!st) st = kg_keytext_str(kt, "opt", GEN_OPT_PIPELINE);
    return st;
}

static kg_status key_of(const gen_target *t, const gen_kinst *k, int n, gen_emit emit, kg_key *key)
{
    kg_keytext *kt;
    char name[64];
    kg_status st = kg_keytext_new(&kt);
    if (st) return st;
    st = gen_keytext_codegen(kt, t);
    if (!st) st = kg_keytext_str(kt, "emit", kinds[emit]);
    for (int i = 0; i < n && !st; i++) {
        snprintf(name, sizeof name, "inst%d.template", i);
        st = kg_keytext_str(kt, name, k[i].tmpl);
        snprintf(name, sizeof name, "inst%d.sym", i);
        if (!st) st = kg_keytext_str(kt, name, k[i].sym);
        for (int j = 0; j < k[i].n_params && !st; j++) {
            /* parameter names are the template's (any case): in the value */
            const gen_param *p = &k[i].params[j];
            char v[128];
            if (p->runtime) snprintf(v, sizeof v, "%s=@%d", p->name, p->rt_index);
            else snprintf(v, sizeof v, "%s=%lld/%a", p->name, (long long)p->i, p->f); /* both readings: the template picks */
            snprintf(name, sizeof name, "inst%d.param%d", i, j);
            st = kg_keytext_str(kt, name, v);
        }
    }
    if (!st) st = kg_keytext_finish(kt, key);
    kg_keytext_free(kt);
    return st;
}

kg_status gen_compile_cached(kg_cache *c, const gen_target *t, const gen_kinst *k, int n, gen_emit emit, void **out,
                             size_t *size, bool *hit)
{
    kg_key key;
    *hit = false;
    if (!c) return gen_compile(t, k, n, emit, out, size);
    kg_status st = key_of(t, k, n, emit, &key);
    if (st) return st;
    st = kg_cache_get(c, key, kinds[emit], out, size);
    if (st == KG_OK) {
        *hit = true;
        return KG_OK;
    }
    if (st == KG_ERR_CORRUPT) /* removed by the get: a miss, but the user should know */
        fprintf(stderr, "kgen: %s; rebuilding\n", kg_last_error());
    else if (st != KG_ERR_NOTFOUND) return st;
    if ((st = gen_compile(t, k, n, emit, out, size))) return st;
    if ((st = kg_cache_put(c, key, kinds[emit], *out, *size))) {
        /* a cache that cannot be written costs speed, not correctness */
        fprintf(stderr, "kgen: warning: %s\n", kg_last_error());
        kg_err_clear();
    }
    return KG_OK;
}
