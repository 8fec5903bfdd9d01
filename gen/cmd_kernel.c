/*
 * cmd_kernel.c — `kgen kernel`: specialize one kernel template for exact
 * parameters and a target CPU, and emit it (object, assembly, IR or .so).
 */
#include "gen.h"
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char usage[] =
    "usage: kgen kernel TEMPLATE NAME=VALUE... [--cpu CPU[,+feat,-feat]] [--emit obj|asm|ll|so]\n"
    "                   [--sym SYMBOL] [--no-cache] [-o FILE]\n"
    "       kgen kernel --list [--cpu ...]\n"
    "\n"
    "Binds the template's parameters (see --list: one shown as NAME=VALUE has that\n"
    "default and may be left out) and compiles the instance for the CPU (default:\n"
    "this machine). VALUE is an integer, a number, a tensor\n"
    "type name (Q4_0, F16, ...), f32|q8 (activation modes), or @N: bound at run\n"
    "time to rt[N]. The instance's signature is\n"
    "    void SYMBOL(void *const *p, const int64_t *rt, int ith, int nth).\n"
    "--emit: obj (default), asm, ll (textual IR after O3), so (shared object).\n"
    "asm and ll go to stdout without -o. Artifacts are cached by content hash\n"
    "(see 'kgen cache'); --no-cache compiles without reading or writing it.\n";

/* NAME=VALUE into a gen_param */
static kg_status parse_binding(const char *arg, gen_param *p)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof p->name)
        return kg_err(KG_ERR_ARG, "'%s': expected NAME=VALUE", arg);
    memset(p, 0, sizeof *p);
    memcpy(p->name, arg, (size_t)(eq - arg));
    const char *v = eq + 1;
    char *end;
    if (*v == '@') {
        errno = 0;
        long idx = strtol(v + 1, &end, 10);
        if (*end || end == v + 1 || idx < 0 || idx > 255)
            return kg_err(KG_ERR_ARG, "'%s': @N needs an index 0..255", arg);
        p->runtime = true;
        p->rt_index = (int)idx;
        return KG_OK;
    }
    errno = 0;
    long long ll = strtoll(v, &end, 0);
    if (*v && !*end && errno == 0) {
        p->i = ll;
        p->f = (double)ll;
        return KG_OK;
    }
    double d = strtod(v, &end);
    if (*v && !*end) {
        p->f = d;
        p->i = (int64_t)d;
        return KG_OK;
    }
    if (!strcasecmp(v, "q8")) { p->i = 1; return KG_OK; }
    for (uint32_t t = 0; t < KG_TYPE_COUNT; t++) {
        const kg_type_info *ti = kg_type_get(t);
        if (ti && !strcasecmp(ti->name, v)) { p->i = t; p->f = t; return KG_OK; }
    }
    return kg_err(KG_ERR_ARG, "'%s': '%s' is not a number, a tensor type, f32/q8 or @N", arg, v);
}

static kg_status write_file(const char *path, const void *data, size_t n)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "wb") : stdout;
    if (!f) return kg_err(KG_ERR_IO, "%s: %s", path, strerror(errno));
    size_t w = fwrite(data, 1, n, f);
    int bad = f == stdout ? fflush(f) : fclose(f);
    if (w != n || bad) return kg_err(KG_ERR_IO, "%s: write failed", path);
    return KG_OK;
}

int cmd_kernel(int argc, char **argv)
{
    gen_kinst k;
    memset(&k, 0, sizeof k);
    const char *cpu = NULL, *out = NULL, *emit = "obj";
    bool list = false, use_cache = true;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(usage, stdout); return 0; }
        if (!strcmp(a, "--list")) { list = true; continue; }
        if (!strcmp(a, "--no-cache")) { use_cache = false; continue; }
        if ((!strcmp(a, "--cpu") || !strcmp(a, "--emit") || !strcmp(a, "--sym") || !strcmp(a, "-o")) && i + 1 >= argc) {
            fprintf(stderr, "kgen kernel: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--cpu")) cpu = argv[++i];
        else if (!strcmp(a, "--emit")) emit = argv[++i];
        else if (!strcmp(a, "-o")) out = argv[++i];
        else if (!strcmp(a, "--sym")) snprintf(k.sym, sizeof k.sym, "%s", argv[++i]);
        else if (a[0] == '-') { fprintf(stderr, "kgen kernel: unknown option '%s'\n", a); return 2; }
        else if (!k.tmpl[0] && !strchr(a, '=')) snprintf(k.tmpl, sizeof k.tmpl, "%s", a);
        else if (k.n_params >= GEN_MAX_PARAMS) { fprintf(stderr, "kgen kernel: too many parameters\n"); return 2; }
        else if (parse_binding(a, &k.params[k.n_params++])) { fprintf(stderr, "kgen kernel: %s\n", kg_last_error()); return 2; }
    }
    gen_target t;
    if ((cpu ? gen_target_parse(cpu, &t) : gen_target_host(&t)) != KG_OK) {
        fprintf(stderr, "kgen: %s\n", kg_last_error());
        return 1;
    }
    if (list) {
        printf("templates (%s bitcode, for %s):\n", gen_isa_name(t.isa), t.cpu);
        if (gen_list_templates(t.isa, stdout)) { fprintf(stderr, "kgen: %s\n", kg_last_error()); return 1; }
        return 0;
    }
    if (!k.tmpl[0]) { fputs(usage, stderr); return 2; }
    gen_emit kind = GEN_EMIT_OBJ;
    bool so = false;
    if (!strcmp(emit, "asm")) kind = GEN_EMIT_ASM;
    else if (!strcmp(emit, "ll")) kind = GEN_EMIT_LL;
    else if (!strcmp(emit, "so")) so = true;
    else if (strcmp(emit, "obj")) { fprintf(stderr, "kgen kernel: --emit takes obj, asm, ll or so\n"); return 2; }
    if (!out && (kind == GEN_EMIT_OBJ)) { fprintf(stderr, "kgen kernel: --emit %s needs -o FILE\n", emit); return 2; }
    if (!k.sym[0]) snprintf(k.sym, sizeof k.sym, "kgen_%s", k.tmpl);
    for (const char *c = k.sym; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '_') { fprintf(stderr, "kgen kernel: bad symbol '%s'\n", k.sym); return 2; }

    kg_cache *cache = NULL;
    if (use_cache && kg_cache_open(NULL, &cache) != KG_OK) {
        fprintf(stderr, "kgen: %s\n", kg_last_error());
        return 1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    void *buf = NULL;
    size_t n;
    bool hit;
    kg_status st = gen_compile_cached(cache, &t, &k, 1, kind, &buf, &n, &hit);
    if (st == KG_OK) st = so ? gen_link_so(buf, n, out) : write_file(out ? out : "-", buf, n);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    free(buf);
    kg_cache_close(cache);
    if (st != KG_OK) {
        fprintf(stderr, "kgen: %s\n", kg_last_error());
        return 1;
    }
    if (out)
        fprintf(stderr, "kgen: %s (%s, %s bitcode) -> %s in %.1f ms%s\n", k.sym, t.cpu, gen_isa_name(t.isa), out,
                (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6, hit ? " (from the cache)" : "");
    return 0;
}
