/*
 * target.c — what CPU the generated code is for, and which template
 * bitcode (ISA level) it can use.
 *
 * The host: LLVM's host CPU name and its full, explicit feature list.
 * `--cpu NAME[,+feat,-feat...]`: LLVM derives the features from NAME; the
 * ISA level comes from the table below, lowered by any "-feat" that removes
 * something the level needs. A CPU missing from the table is refused: LLVM's
 * C API cannot tell whether it knows a CPU name, and an unknown one makes
 * LLVM abort the process instead of returning an error. A feature must be
 * one LLVM's host detection lists (LLVMGetHostCPUFeatures names every x86
 * ISA feature it knows, present or not: 108 in LLVM 19): LLVM itself only
 * warns about an unknown one, on stderr, and ignores it.
 */
#include "gen.h"
#include "internal.h"

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

#include <stdio.h>
#include <string.h>

/* features each level's bitcode was compiled for (see ISA_* in Makefile.in) */
static const char *const level_needs[GEN_ISA_COUNT] = {
    [GEN_ISA_GENERIC] = "sse4.2,popcnt,ssse3,cx16",
    [GEN_ISA_AVX2] = "avx2,fma,f16c,bmi,bmi2,lzcnt,movbe,sse4.2,popcnt",
    [GEN_ISA_AVX512] = "avx512f,avx512bw,avx512vl,avx512dq,avx512cd,avx512vnni,avx2,fma,f16c,bmi2",
    [GEN_ISA_AMX] = "amx-tile,amx-int8,amx-bf16,avx512bf16,avx512f,avx512bw,avx512vl,avx512dq,avx512cd,avx512vnni,avx2,"
                    "fma,f16c,bmi2",
};

static const struct {
    const char *cpu;
    gen_isa isa;
} cpu_levels[] = {
    {"cascadelake", GEN_ISA_AVX512}, {"cooperlake", GEN_ISA_AVX512}, {"icelake-client", GEN_ISA_AVX512},
    {"icelake-server", GEN_ISA_AVX512}, {"tigerlake", GEN_ISA_AVX512}, {"rocketlake", GEN_ISA_AVX512},
    {"sapphirerapids", GEN_ISA_AMX}, {"emeraldrapids", GEN_ISA_AMX}, {"graniterapids", GEN_ISA_AMX},
    {"graniterapids-d", GEN_ISA_AMX}, {"znver4", GEN_ISA_AVX512}, {"znver5", GEN_ISA_AVX512},
    {"haswell", GEN_ISA_AVX2}, {"broadwell", GEN_ISA_AVX2}, {"skylake", GEN_ISA_AVX2},
    {"skylake-avx512", GEN_ISA_AVX2}, {"cannonlake", GEN_ISA_AVX2}, {"alderlake", GEN_ISA_AVX2},
    {"raptorlake", GEN_ISA_AVX2}, {"meteorlake", GEN_ISA_AVX2}, {"arrowlake", GEN_ISA_AVX2},
    {"znver1", GEN_ISA_AVX2}, {"znver2", GEN_ISA_AVX2}, {"znver3", GEN_ISA_AVX2},
    {"x86-64-v3", GEN_ISA_AVX2}, {"x86-64-v4", GEN_ISA_AVX2}, {"x86-64-v2", GEN_ISA_GENERIC},
    {"nehalem", GEN_ISA_GENERIC}, {"westmere", GEN_ISA_GENERIC}, {"sandybridge", GEN_ISA_GENERIC},
    {"ivybridge", GEN_ISA_GENERIC}, {"btver2", GEN_ISA_GENERIC}, {"bdver1", GEN_ISA_GENERIC},
    {"bdver2", GEN_ISA_GENERIC}, {"bdver3", GEN_ISA_GENERIC}, {"bdver4", GEN_ISA_GENERIC},
    {"goldmont", GEN_ISA_GENERIC}, {"goldmont-plus", GEN_ISA_GENERIC}, {"tremont", GEN_ISA_GENERIC},
    {"silvermont", GEN_ISA_GENERIC}, {"gracemont", GEN_ISA_AVX2}, {"sierraforest", GEN_ISA_AVX2},
    {"grandridge", GEN_ISA_AVX2}, {"clearwaterforest", GEN_ISA_AVX2}, {"lunarlake", GEN_ISA_AVX2},
    {"pantherlake", GEN_ISA_AVX2}, {"diamondrapids", GEN_ISA_AMX},
};

const char *gen_isa_name(gen_isa isa)
{
    static const char *names[GEN_ISA_COUNT] = {"generic", "avx2", "avx512", "amx"};
    return isa < GEN_ISA_COUNT ? names[isa] : "?";
}

/* Is "+name" (or, with sign '-', "-name") an item of the comma list? */
static bool has_item(const char *list, char sign, const char *name, size_t n)
{
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n + 1 && p[0] == sign && !memcmp(p + 1, name, n)) return true;
        p = e ? e + 1 : NULL;
    }
    return false;
}

/* Does the feature list satisfy `needs`? explicit: every need is "+";
 * implied (named CPU): no need is "-". */
static bool satisfies(const char *features, const char *needs, bool explicit_list)
{
    for (const char *p = needs; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (explicit_list ? !has_item(features, '+', p, n) : has_item(features, '-', p, n)) return false;
        p = e ? p + n + 1 : p + n;
    }
    return true;
}

static kg_status finish(gen_target *t, gen_isa top, bool explicit_list)
{
    char *tr = LLVMGetDefaultTargetTriple(), *norm = LLVMNormalizeTargetTriple(tr);
    snprintf(t->triple, sizeof t->triple, "%s", norm);
    LLVMDisposeMessage(tr);
    LLVMDisposeMessage(norm);
    if (strncmp(t->triple, "x86_64", 6) != 0)
        return kg_err(KG_ERR_UNSUPPORTED, "target %s: kgen's CPU templates are built for x86-64 only", t->triple);
    int isa = (int)top;
    while (isa >= 0 && !satisfies(t->features, level_needs[isa], explicit_list)) isa--;
    if (isa < 0)
        return kg_err(KG_ERR_UNSUPPORTED, "CPU '%s' lacks x86-64-v2 (%s), which kgen's code needs", t->cpu,
                      level_needs[GEN_ISA_GENERIC]);
    t->isa = (gen_isa)isa;
    return KG_OK;
}

kg_status gen_target_host(gen_target *t)
{
    char *cpu = LLVMGetHostCPUName(), *feat = LLVMGetHostCPUFeatures();
    memset(t, 0, sizeof *t);
    snprintf(t->cpu, sizeof t->cpu, "%s", cpu);
    int n = snprintf(t->features, sizeof t->features, "%s", feat);
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(feat);
    if (n < 0 || (size_t)n >= sizeof t->features)
        return kg_err(KG_ERR_UNSUPPORTED, "host CPU feature list too long");
    return finish(t, GEN_ISA_AMX, true);
}

kg_status gen_target_parse(const char *spec, gen_target *t)
{
    memset(t, 0, sizeof *t);
    if (!spec || !*spec) return kg_err(KG_ERR_ARG, "--cpu: empty CPU name");
    if (!strcmp(spec, "host") || !strcmp(spec, "native")) return gen_target_host(t);
    const char *comma = strchr(spec, ',');
    size_t n = comma ? (size_t)(comma - spec) : strlen(spec);
    if (n == 0 || n >= sizeof t->cpu) return kg_err(KG_ERR_ARG, "--cpu '%s': bad CPU name", spec);
    memcpy(t->cpu, spec, n);
    if (comma) {
        if (strlen(comma + 1) >= sizeof t->features) return kg_err(KG_ERR_ARG, "--cpu: feature list too long");
        snprintf(t->features, sizeof t->features, "%s", comma + 1);
        char *known = LLVMGetHostCPUFeatures();
        kg_status st = KG_OK;
        for (const char *p = t->features; *p && !st;) {
            const char *e = strchr(p, ',');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            if ((*p != '+' && *p != '-') || len < 2)
                st = kg_err(KG_ERR_ARG, "--cpu '%s': features must look like +avx2 or -avx512f", spec);
            else if (!has_item(known, '+', p + 1, len - 1) && !has_item(known, '-', p + 1, len - 1))
                st = kg_err(KG_ERR_ARG, "--cpu '%s': unknown CPU feature '%.*s' (LLVM's x86 feature names, "
                            "e.g. avx2, fma, f16c, avx512f, avx512bw, avx512vnni, amx-int8)", spec, (int)len - 1, p + 1);
            p = e ? e + 1 : p + len;
        }
        LLVMDisposeMessage(known);
        if (st) return st;
    }
    gen_isa top = GEN_ISA_GENERIC;
    bool known = false;
    for (size_t i = 0; i < sizeof cpu_levels / sizeof *cpu_levels; i++)
        if (!strcmp(cpu_levels[i].cpu, t->cpu)) { top = cpu_levels[i].isa; known = true; }
    if (!strcmp(t->cpu, "x86-64"))
        return kg_err(KG_ERR_UNSUPPORTED, "CPU 'x86-64' (baseline) lacks x86-64-v2 (%s), which kgen's code needs; "
                      "use x86-64-v2 or newer", level_needs[GEN_ISA_GENERIC]);
    if (!known) {
        char names[1024];
        size_t o = 0;
        for (size_t i = 0; i < sizeof cpu_levels / sizeof *cpu_levels && o < sizeof names; i++)
            o += (size_t)snprintf(names + o, sizeof names - o, "%s%s", i ? " " : "", cpu_levels[i].cpu);
        return kg_err(KG_ERR_ARG, "unknown CPU '%s' (known: host %s)", t->cpu, names);
    }
    return finish(t, top, false);
}
