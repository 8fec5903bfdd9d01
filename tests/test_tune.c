/*
 * test_tune.c — `kgen tune`'s parts that need no timing: the variant
 * enumeration (deterministic, four shards partition it exactly), tuning
 * files (round trip; bad files refused with the file and record named;
 * records of another target skipped, never used), merging (independent of
 * the order), binding records to a plan; and through the CLI, a short real
 * sweep of a tiny model whose tuned build gives the default's tokens.
 */
#include "gen.h"
#include "kgen.h"
#include "kt.h"
#include "kt_cli.h"
#include "lower.h"
#include "source.h"
#include "tiny_llama.h"
#include "tune.h"
#include "templates/cpu/kernel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* a SmolLM2-shaped model (true widths, 2 layers, no tensor data), planned
 * with the host's default knobs */
static bool plan_smol(const char *name, uint32_t wtype, gen_graph *gr, gen_program *pg)
{
    char path[512];
    tl_params p;
    tl_defaults(&p);
    p.n_layer = 2, p.n_embd = 576, p.n_head = 9, p.n_head_kv = 3, p.n_ff = 1536, p.n_vocab = 49152;
    p.wtype = wtype, p.sparse = true;
    kc_tpath(path, sizeof path, "%s.gguf", name);
    if (!tl_write(&p, path)) return false;
    gen_source *src = NULL;
    gen_target t;
    gen_knobs kn;
    kg_status st = gen_target_host(&t);
    if (!st) st = gen_knobs_parse("", &kn);
    if (!st) gen_knobs_resolve(&kn, t.isa, false);
    if (!st) st = gen_source_open(path, &src);
    if (!st) st = gen_model_plan(src, 0, 0, "", &kn, gr, pg);
    gen_source_close(src);
    return st == KG_OK;
}

KT_TEST(tune_variants_shards)
{
    gen_graph gr = {0};
    gen_program pg = {0};
    KT_REQUIRE(plan_smol("tune_enum", KG_TYPE_Q4_0, &gr, &pg));
    gen_tune_variant *v = NULL, *v2 = NULL;
    int n = 0, n2 = 0;
    KT_REQUIRE(gen_tune_variants(&pg, 64, &v, &n) == KG_OK);
    KT_REQUIRE(gen_tune_variants(&pg, 64, &v2, &n2) == KG_OK);
    bool same = n == n2;
    for (int j = 0; same && j < n; j++) same = v[j].inst == v2[j].inst && v[j].knob == v2[j].knob && v[j].value == v2[j].value;
    KT_CHECKF(same, "two enumerations differ (%d, %d variants)", n, n2);
    gen_target t;
    gen_target_host(&t);
    /* x16 where the CPU takes it: decode products then have prefetch variants */
    const bool x16 = t.isa >= GEN_ISA_AVX2;
    int npf = 0, nmb = 0, nnc = 0, nmt = 0;
    for (int j = 0; j < n; j++) {
        const gen_kinst *k = &pg.k[v[j].inst];
        bool prefill = false;
        int64_t layout = 0, pfnow = 0;
        for (int i = 0; i < k->n_params; i++) {
            if (!strcmp(k->params[i].name, "M")) prefill = k->params[i].runtime;
            if (!strcmp(k->params[i].name, "layout")) layout = k->params[i].i;
            if (!strcmp(k->params[i].name, "pf")) pfnow = k->params[i].i;
        }
        KT_CHECKF(!strcmp(k->tmpl, "mm"), "variant %d of template %s", j, k->tmpl);
        if (!strcmp(v[j].knob->name, "pf")) {
            npf++;
            KT_CHECKF(!prefill && layout != KGT_LAYOUT_ROWS, "variant %d: pf on a %s %s instance", j,
                      prefill ? "prefill" : "decode", layout ? "x16" : "rows");
            KT_CHECKF(v[j].value != pfnow, "variant %d repeats the default pf=%lld", j, (long long)pfnow);
        } else if (!strcmp(v[j].knob->name, "mb")) {
            nmb++;
            KT_CHECKF(prefill, "variant %d: mb on a decode instance", j);
        } else if (!strcmp(v[j].knob->name, "mt")) {
            nmt++;
            KT_CHECKF(prefill && layout != KGT_LAYOUT_ROWS, "variant %d: mt on a %s %s instance", j,
                      prefill ? "prefill" : "decode", layout ? "x16" : "rows");
        } else {
            nnc++;
            int64_t flags = 0;
            for (int i = 0; i < k->n_params; i++)
                if (!strcmp(k->params[i].name, "flags")) flags = k->params[i].i;
            KT_CHECKF(!strcmp(v[j].knob->name, "nc") && v[j].value == 16 && !(flags & KGT_EPI_OUT_Q8),
                      "variant %d: %s=%lld (flags %lld)", j, v[j].knob->name, (long long)v[j].value, (long long)flags);
        }
        KT_CHECKF(gen_knob_valid(v[j].knob, v[j].value), "variant %d: value %lld out of range", j, (long long)v[j].value);
    }
    KT_CHECKF(nmb > 0 && nnc > 0, "%d prefill block and %d channel chunk variants among %d", nmb, nnc, n);
    KT_CHECKF(!x16 || (npf > 0 && nmt > 0), "x16 plan, but %d prefetch and %d tile variants among %d", npf, nmt, n);
    /* four shards: every variant in exactly one */
    for (int j = 0; j < n; j++) {
        int in = 0;
        for (int s = 1; s <= 4; s++) in += gen_tune_in_shard(j, s, 4);
        KT_CHECKF(in == 1, "variant %d is in %d of 4 shards", j, in);
    }
    /* and through the CLI: the shards' lists together are the whole list */
    char path[512], all[1 << 16] = "", joined[1 << 16] = "";
    kc_tpath(path, sizeof path, "tune_enum.gguf");
    KT_CHECKF(KGEN("tune", path, "--list") == 0, "tune --list: %s", kc_err);
    kc_save(all, sizeof all, kc_out);
    int lines = 0;
    for (const char *c = all; *c; c++) lines += *c == '\n';
    KT_CHECKF(lines == n, "tune --list printed %d variants, the library enumerates %d", lines, n);
    /* merge the shards' lines by their index: the same text */
    char *line[4096] = {0};
    for (int s = 1; s <= 4; s++) {
        char sh[16];
        snprintf(sh, sizeof sh, "%d/4", s);
        KT_CHECKF(KGEN("tune", path, "--list", "--shard", sh) == 0, "tune --list --shard %s: %s", sh, kc_err);
        for (char *c = kc_out, *e; *c; c = e + 1) {
            e = strchr(c, '\n');
            if (!e) break;
            int idx = atoi(c);
            if (idx >= 0 && idx < 4096 && !line[idx]) line[idx] = strndup(c, (size_t)(e - c + 1));
            else KT_CHECKF(0, "shard %s: index %d twice or out of range", sh, idx);
        }
    }
    size_t at = 0;
    for (int j = 0; j < n && j < 4096; j++) {
        KT_CHECKF(line[j] != NULL, "variant %d in no shard's list", j);
        if (line[j]) at += (size_t)snprintf(joined + at, sizeof joined - at, "%s", line[j]);
        free(line[j]);
    }
    KT_CHECKF(!strcmp(all, joined), "the shards' lists differ from the whole list");
    free(v), free(v2);
    gen_program_free(&pg);
    gen_graph_free(&gr);
}

static gen_tune_rec rec(const char *inst, const char *cpu, const char *knob, int64_t val, double us, double def)
{
    gen_tune_rec r = {0};
    snprintf(r.inst, sizeof r.inst, "%s", inst);
    snprintf(r.cpu, sizeof r.cpu, "%s", cpu);
    snprintf(r.isa, sizeof r.isa, "avx2");
    snprintf(r.features, sizeof r.features, "+avx2,+fma");
    r.threads = 2, r.nknob = 1, r.val[0] = val, r.us = us, r.default_us = def, r.noise = 0.01;
    snprintf(r.knob[0], sizeof r.knob[0], "%s", knob);
    snprintf(r.version, sizeof r.version, "0.1.0");
    snprintf(r.date, sizeof r.date, "2026-12-07T00:00:00Z");
    return r;
}

KT_TEST(tune_merge_order)
{
    /* three shards' files: two instances on one CPU, one on another; the
     * same instance with different speedups in different files */
    gen_tuning f[3] = {{0}};
    const char *a = "mm wtype=2 act=1 M=1 N=576 K=576 flags=0 layout=1", *b = "mm wtype=2 act=1 M=rt N=576 K=576 flags=0 layout=1";
    gen_tune_rec rs[] = {
        rec(a, "znver3", "pf", 1024, 10.0, 11.0), rec(b, "znver3", "mb", 65536, 50.0, 60.0), /* file 0 */
        rec(a, "znver3", "pf", 4096, 10.0, 12.0), rec(a, "sapphirerapids", "pf", 512, 5.0, 6.0), /* file 1 */
        rec(b, "znver3", "mb", 131072, 40.0, 48.0), rec(a, "znver3", "pf", 0, 10.0, 12.0), /* file 2: ties file 1's 1.2x */
    };
    for (int i = 0; i < 6; i++) KT_REQUIRE(gen_tuning_add(&f[i / 2], &rs[i]) == KG_OK);
    /* a time no short decimal holds (the file keeps all 17 digits), and in
     * two files the same key, speedup and knob with other fields: still one
     * answer whatever the order */
    gen_tune_rec odd = rec(b, "x86-64-v3", "mb", 65536, 10.123456789012345, 20.24691357802469), twin = odd;
    twin.threads = 1, twin.noise = 0.02;
    KT_REQUIRE(gen_tuning_add(&f[0], &odd) == KG_OK && gen_tuning_add(&f[2], &twin) == KG_OK);
    static const int orders[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    char first[8192] = "", path[512];
    for (int o = 0; o < 6; o++) {
        gen_tuning m = {0};
        for (int i = 0; i < 3; i++) KT_REQUIRE(gen_tuning_merge(&m, &f[orders[o][i]]) == KG_OK);
        gen_tuning_sort(&m);
        KT_CHECKF(m.n == 4, "order %d: %d records, expected 4 (one per instance and target)", o, m.n);
        char text[8192];
        size_t at = 0;
        for (int i = 0; i < m.n; i++)
            at += (size_t)snprintf(text + at, sizeof text - at, "%s|%s|%s=%lld|%d %.17g\n", m.r[i].inst, m.r[i].cpu,
                                   m.r[i].knob[0], (long long)m.r[i].val[0], m.r[i].threads, m.r[i].noise);
        if (!o) snprintf(first, sizeof first, "%s", text);
        KT_CHECKF(!strcmp(text, first), "merge order %d gives\n%s, order 0 gave\n%s", o, text, first);
        /* the file round trip keeps every field the merge compares */
        kc_tpath(path, sizeof path, "merged%d.json", o);
        gen_tuning back;
        KT_REQUIRE(gen_tuning_save(path, &m) == KG_OK);
        KT_REQUIRE(gen_tuning_load(path, &back) == KG_OK);
        KT_CHECKF(back.n == m.n && !memcmp(back.r, m.r, (size_t)m.n * sizeof *m.r), "order %d: the file round trip differs", o);
        gen_tuning_free(&back);
        gen_tuning_free(&m);
    }
    /* the larger speedup wins, and between equal ones the smaller value:
     * a on znver3 has 1.1x (pf 1024) and 1.2x twice (pf 4096, pf 0): pf 0;
     * b has 1.2x twice (mb 65536: 60/50, mb 131072: 48/40): mb 65536 */
    KT_CHECKF(strstr(first, "M=1 N=576 K=576 flags=0 layout=1|znver3|pf=0|") != NULL, "merged:\n%s", first);
    KT_CHECKF(strstr(first, "M=rt N=576 K=576 flags=0 layout=1|znver3|mb=65536|") != NULL, "merged:\n%s", first);
    /* and through the CLI */
    char p0[512], p1[512], p2[512], out1[512], out2[512];
    kc_tpath(p0, sizeof p0, "shard0.json"), kc_tpath(p1, sizeof p1, "shard1.json"), kc_tpath(p2, sizeof p2, "shard2.json");
    kc_tpath(out1, sizeof out1, "all1.json"), kc_tpath(out2, sizeof out2, "all2.json");
    KT_REQUIRE(gen_tuning_save(p0, &f[0]) == KG_OK && gen_tuning_save(p1, &f[1]) == KG_OK && gen_tuning_save(p2, &f[2]) == KG_OK);
    KT_CHECKF(KGEN("tune", "merge", p0, p1, p2, "-o", out1) == 0, "tune merge: %s", kc_err);
    KT_CHECKF(KGEN("tune", "merge", p2, p0, p1, "-o", out2) == 0, "tune merge: %s", kc_err);
    KT_CHECKF(SH("cmp", out1, out2) == 0, "tune merge: the files differ with the order of the inputs");
    for (int i = 0; i < 3; i++) gen_tuning_free(&f[i]);
}

KT_TEST(tune_bad_files)
{
    static const struct {
        const char *name, *text, *says;
    } bad[] = {
        {"notjson", "{\"kgen_tuning\": 1, \"records\": [", "not JSON"},
        {"empty", "", "not JSON"},
        {"noformat", "{\"records\": []}", "not a kgen tuning file"},
        {"future", "{\"kgen_tuning\": 2, \"records\": []}", "tuning format 2"},
        {"norecs", "{\"kgen_tuning\": 1}", "\"records\" is missing"},
        {"recnotobj", "{\"kgen_tuning\": 1, \"records\": [3]}", "record 0 is not an object"},
#define REC(knobs, extra)                                                                                               \
    "{\"kgen_tuning\": 1, \"records\": [{\"instance\": \"mm wtype=2 act=1 M=1 N=576 K=576 flags=0 layout=1\", "      \
    "\"target\": {\"cpu\": \"znver3\", \"isa\": \"avx2\", \"features\": \"+avx2\"}, \"threads\": 2, \"knobs\": " knobs \
    ", \"us\": 1.0, \"default_us\": 1.2, \"noise\": 0.01, \"kgen_version\": \"0.1.0\"" extra "}]}"
        {"nodate", REC("{\"pf\": 1024}", ""), "\"date\" is missing"},
        {"unknown", REC("{\"speed\": 9}", ", \"date\": \"x\""), "'speed' is no knob of template 'mm'"},
        {"range", REC("{\"pf\": 100}", ", \"date\": \"x\""), "knob pf: expected a number from 0 to 65536"},
        {"neg", REC("{\"mb\": -4096}", ", \"date\": \"x\""), "knob mb: expected"},
        {"strval", REC("{\"pf\": \"1024\"}", ", \"date\": \"x\""), "knob pf: expected"},
        {"dup", REC("{\"pf\": 64, \"pf\": 128}", ", \"date\": \"x\""), "duplicate"},
        {"threads", "{\"kgen_tuning\": 1, \"records\": [{\"instance\": \"mm wtype=2\", \"target\": {\"cpu\": \"a\", "
                    "\"isa\": \"avx2\", \"features\": \"\"}, \"threads\": 2.5, \"knobs\": {}}]}",
         "\"threads\" is missing or not an integer"},
    };
    char path[512], so[512];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        kc_tpath(path, sizeof path, "bad_%s.json", bad[i].name);
        FILE *f = fopen(path, "w");
        KT_REQUIRE(f);
        fputs(bad[i].text, f);
        fclose(f);
        gen_tuning t;
        const kg_status st = gen_tuning_load(path, &t);
        KT_CHECKF(st != KG_OK && strstr(kg_last_error(), bad[i].says) && strstr(kg_last_error(), path),
                  "%s: status %d, message '%s' (expected '%s' and the path)", bad[i].name, (int)st, st ? kg_last_error() : "",
                  bad[i].says);
        if (!st) gen_tuning_free(&t);
    }
    /* "knobs": {} is a measured instance where the default stays: it loads */
    kc_tpath(path, sizeof path, "stays.json");
    FILE *sf = fopen(path, "w");
    KT_REQUIRE(sf);
    fputs(REC("{}", ", \"date\": \"x\""), sf);
    fclose(sf);
    gen_tuning st1;
    KT_CHECKF(gen_tuning_load(path, &st1) == KG_OK && st1.n == 1 && st1.r[0].nknob == 0, "a default-stays record: %s",
              kg_last_error());
    gen_tuning_free(&st1);
    /* the CLI refuses such a file before compiling, and writes nothing */
    char m[512];
    kc_tpath(m, sizeof m, "tune_tiny_bad.gguf");
    tl_params p;
    tl_defaults(&p);
    KT_REQUIRE(tl_write(&p, m));
    kc_tpath(path, sizeof path, "bad_range.json");
    kc_tpath(so, sizeof so, "tune_bad.so");
    KT_CHECKF(KGEN("compile", m, "-o", so, "--tuning", path) == 1 && strstr(kc_err, "knob pf") && !kc_exists(so),
              "compile --tuning BAD: %s", kc_err);
    kc_tpath(path, sizeof path, "missing.json");
    KT_CHECKF(KGEN("compile", m, "-o", so, "--tuning", path) == 1 && strstr(kc_err, "missing.json") && !kc_exists(so),
              "compile --tuning MISSING: %s", kc_err);
}

KT_TEST(tune_apply)
{
    gen_graph gr = {0};
    gen_program pg = {0};
    KT_REQUIRE(plan_smol("tune_apply", KG_TYPE_Q4_0, &gr, &pg));
    gen_target t;
    gen_target_host(&t);
    /* the first prefill product: a record for this target binds its mb,
     * one for another target binds nothing */
    int at = -1;
    char key[256];
    for (int i = 0; i < pg.nk && at < 0; i++) {
        gen_inst_key(&pg.k[i], key, sizeof key);
        if (!strcmp(pg.k[i].tmpl, "mm") && strstr(key, " M=rt ")) at = i;
    }
    KT_REQUIRE(at >= 0);
    gen_tuning tu = {0};
    gen_tune_rec r = rec(key, t.cpu, "mb", 65536, 1, 2), other = rec(key, "not-this-cpu", "mb", 131072, 1, 3);
    gen_tune_rec_target(&r, &t);
    KT_REQUIRE(gen_tuning_add(&tu, &other) == KG_OK && gen_tuning_add(&tu, &r) == KG_OK);
    char why[2048] = "";
    FILE *w = fmemopen(why, sizeof why - 1, "w");
    int applied = -1;
    KT_REQUIRE(gen_tuning_apply(&tu, &t, &pg, &applied, w) == KG_OK);
    fclose(w);
    KT_CHECKF(applied == 1, "%d instances bound, expected 1", applied);
    KT_CHECKF(strstr(why, "not-this-cpu") && strstr(why, "skipped"), "the skipped record's reason: '%s'", why);
    int64_t mb = -1;
    for (int i = 0; i < pg.k[at].n_params; i++)
        if (!strcmp(pg.k[at].params[i].name, "mb")) mb = pg.k[at].params[i].i;
    KT_CHECKF(mb == 65536, "the instance's mb is %lld, expected the record's 65536", (long long)mb);
    /* its key without knobs is unchanged (the record still names it) */
    char key2[256];
    gen_inst_key(&pg.k[at], key2, sizeof key2);
    KT_CHECKF(!strcmp(key, key2), "the key changed: '%s' -> '%s'", key, key2);
    gen_tuning_free(&tu);
    gen_program_free(&pg);
    gen_graph_free(&gr);
}

/* a real sweep of the tiny model, within a small budget; then a record
 * binding every instance to its first variant (whatever the sweep kept):
 * that build generates the default build's tokens */
KT_TEST(tune_cli_sweep)
{
    kc_setup_env();
    char m[512], tf[512], forced[512], so1[512], so2[512];
    tl_params p;
    tl_defaults(&p);
    kc_tpath(m, sizeof m, "tune_tiny.gguf");
    KT_REQUIRE(tl_write(&p, m));
    kc_tpath(tf, sizeof tf, "tiny.tuning.json");
    KT_CHECKF(KGEN("tune", m, "-o", tf, "--budget", "6", "--threads", "2") == 0, "tune: %s", kc_err);
    KT_CHECKF(strstr(kc_err, "records written to"), "tune's report: %s", kc_err);
    gen_tuning t;
    KT_REQUIRE(gen_tuning_load(tf, &t) == KG_OK);
    KT_CHECKF(t.n > 0, "no instance measured");
    for (int i = 0; i < t.n; i++)
        KT_CHECKF(t.r[i].nknob ? t.r[i].us < t.r[i].default_us : t.r[i].us == t.r[i].default_us,
                  "record %d (%d knobs): %.3f us against the default's %.3f", i, t.r[i].nknob, t.r[i].us, t.r[i].default_us);
    gen_tuning_free(&t);
    KT_CHECKF(KGEN("tune", "ls", tf) == 0 && strstr(kc_out, "records,"), "tune ls: %s%s", kc_out, kc_err);
    /* every instance's first variant, as records for this machine */
    KT_REQUIRE(KGEN("tune", m, "--list") == 0);
    gen_target host;
    KT_REQUIRE(gen_target_host(&host) == KG_OK);
    gen_tuning all = {0};
    char last[256] = "";
    for (const char *c = kc_out; *c;) {
        char key[256], knob[32];
        long long val;
        if (sscanf(c, "%*d\t%255[^\t]\t%31[^=]=%lld", key, knob, &val) == 3 && strcmp(key, last)) {
            gen_tune_rec r = rec(key, host.cpu, knob, val, 1, 2);
            gen_tune_rec_target(&r, &host);
            KT_REQUIRE(gen_tuning_add(&all, &r) == KG_OK);
            snprintf(last, sizeof last, "%s", key);
        }
        const char *e = strchr(c, '\n');
        c = e ? e + 1 : c + strlen(c);
    }
    KT_REQUIRE(all.n > 0);
    kc_tpath(forced, sizeof forced, "tiny.forced.json");
    KT_REQUIRE(gen_tuning_save(forced, &all) == KG_OK);
    kc_tpath(so1, sizeof so1, "tiny_default.so"), kc_tpath(so2, sizeof so2, "tiny_tuned.so");
    KT_REQUIRE(KGEN("compile", m, "-o", so1, "--tuning", "none") == 0);
    KT_CHECKF(KGEN("compile", m, "-o", so2, "--tuning", forced) == 0, "compile --tuning: %s", kc_err);
    char says[64];
    snprintf(says, sizeof says, "; %d kernel instances take their knobs", all.n);
    KT_CHECKF(strstr(kc_err, says), "compile --tuning: expected '%s' in: %s", says, kc_err);
    gen_tuning_free(&all);
    char out1[4096];
    KT_REQUIRE(KGEN("run", so1, "-p", "hello world", "-n", "12", "--temp", "0") == 0);
    kc_save(out1, sizeof out1, kc_out);
    KT_CHECKF(KGEN("run", so2, "-p", "hello world", "-n", "12", "--temp", "0") == 0 && !strcmp(out1, kc_out),
              "the tuned model's tokens differ:\n%s\nagainst\n%s", kc_out, out1);
}

/* the tuning database beside the cache: filled by import, listed, used by
 * `kgen run` for this target only (a record of it changes the cache key,
 * so the model is compiled again), exported, skipped when damaged, cleared */
KT_TEST(tune_database)
{
    char cache[512], db[600], m[512], tf[512], ex[512];
    kc_tpath(cache, sizeof cache, "tune_cache");
    KT_REQUIRE(kc_make_dir(cache));
    setenv("KGEN_CACHE_DIR", cache, 1);
    snprintf(db, sizeof db, "%s/tuning.json", cache);
    tl_params p;
    tl_defaults(&p);
    kc_tpath(m, sizeof m, "tune_db.gguf");
    KT_REQUIRE(tl_write(&p, m));
    KT_CHECKF(KGEN("tune", "ls") == 0 && strstr(kc_out, "is empty"), "tune ls of no database: %s%s", kc_out, kc_err);
    KT_CHECKF(KGEN("run", m, "-p", "hello", "-n", "4", "--temp", "0") == 0 && strstr(kc_err, "compiled"),
              "run (first): %s", kc_err);
    char first[4096];
    kc_save(first, sizeof first, kc_out);
    KT_CHECKF(KGEN("run", m, "-p", "hello", "-n", "4", "--temp", "0") == 0 && !strstr(kc_err, "compiled"),
              "run (again, a cache hit): %s", kc_err);
    /* a record for this CPU naming an instance the model does not have: its
     * cache key stays, no compile */
    gen_target t;
    KT_REQUIRE(gen_target_host(&t) == KG_OK);
    {
        gen_tuning fo = {0};
        gen_tune_rec r = rec("mm wtype=2 act=1 M=1 N=999936 K=64 flags=0 layout=1", t.cpu, "pf", 1024, 1, 2);
        gen_tune_rec_target(&r, &t);
        KT_REQUIRE(gen_tuning_add(&fo, &r) == KG_OK);
        kc_tpath(tf, sizeof tf, "tune_db_foreign.json");
        KT_REQUIRE(gen_tuning_save(tf, &fo) == KG_OK);
        gen_tuning_free(&fo);
    }
    KT_CHECKF(KGEN("tune", "import", tf) == 0, "tune import: %s", kc_err);
    KT_CHECKF(KGEN("run", m, "-p", "hello", "-n", "4", "--temp", "0") == 0 && !strstr(kc_err, "compiled"),
              "run with another model's record in the database: a cache hit expected: %s", kc_err);
    KT_CHECKF(KGEN("tune", "clear") == 0, "tune clear: %s", kc_err);
    /* a record for this CPU naming the model's first variant, one for another CPU */
    KT_REQUIRE(KGEN("tune", m, "--list") == 0);
    char key[256] = "", knob[32] = "";
    long long val = 0;
    KT_REQUIRE(sscanf(kc_out, "%*d\t%255[^\t]\t%31[^=]=%lld", key, knob, &val) == 3);
    gen_tuning tu = {0};
    gen_tune_rec here = rec(key, t.cpu, knob, val, 1, 2), other = rec(key, "not-this-cpu", knob, val, 1, 3);
    gen_tune_rec_target(&here, &t);
    KT_REQUIRE(gen_tuning_add(&tu, &here) == KG_OK && gen_tuning_add(&tu, &other) == KG_OK);
    kc_tpath(tf, sizeof tf, "tune_db_in.json");
    KT_REQUIRE(gen_tuning_save(tf, &tu) == KG_OK);
    gen_tuning_free(&tu);
    KT_CHECKF(KGEN("tune", "import", tf) == 0 && strstr(kc_err, "holds 2"), "tune import: %s", kc_err);
    KT_CHECKF(KGEN("tune", "ls") == 0 && strstr(kc_out, "used on this machine") && strstr(kc_out, "skipped here") &&
                  strstr(kc_out, "2 records, 1 for this machine"),
              "tune ls: %s%s", kc_out, kc_err);
    KT_CHECKF(KGEN("run", m, "-p", "hello", "-n", "4", "--temp", "0") == 0 && strstr(kc_err, "compiled") &&
                  !strcmp(kc_out, first),
              "run with the database's record: a new compile and the same tokens expected: %s\n%s", kc_err, kc_out);
    KT_CHECKF(KGEN("run", m, "-p", "hello", "-n", "4", "--temp", "0", "--tuning", "none") == 0 && !strstr(kc_err, "compiled"),
              "run --tuning none: the first compile's entry expected: %s", kc_err);
    kc_tpath(ex, sizeof ex, "tune_db_out.json");
    KT_CHECKF(KGEN("tune", "export", ex) == 0, "tune export: %s", kc_err);
    gen_tuning a, b;
    KT_REQUIRE(gen_tuning_load(tf, &a) == KG_OK && gen_tuning_load(ex, &b) == KG_OK);
    gen_tuning_sort(&a), gen_tuning_sort(&b);
    KT_CHECKF(a.n == b.n && !memcmp(a.r, b.r, (size_t)a.n * sizeof *a.r), "export differs from what was imported");
    gen_tuning_free(&a), gen_tuning_free(&b);
    /* a damaged database: run warns and compiles without it; import refuses */
    FILE *f = fopen(db, "w");
    KT_REQUIRE(f);
    fputs("{\"kgen_tuning\": 1, \"records\": [{\"instance\"", f);
    fclose(f);
    KT_CHECKF(KGEN("run", m, "-p", "hello", "-n", "4", "--temp", "0") == 0 && strstr(kc_err, "without the tuning database") &&
                  !strcmp(kc_out, first),
              "run with a damaged database: %s", kc_err);
    KT_CHECKF(KGEN("tune", "import", tf) == 1 && strstr(kc_err, "tuning.json"), "import into a damaged database: %s", kc_err);
    KT_CHECKF(KGEN("tune", "clear") == 0 && !kc_exists(db), "tune clear: %s", kc_err);
    KT_CHECKF(KGEN("cache", "clear") == 0, "cache clear: %s", kc_err);
    KT_CHECKF(KGEN("tune", "import", tf) == 0 && KGEN("cache", "clear") == 0 && kc_exists(db),
              "cache clear removed the tuning database");
    kc_setup_env(); /* back to the CLI tests' cache */
}

/* make check-slow: a real sharded sweep of SmolLM2 (two shards, then the
 * merge): every instance the unsharded list holds is measured by some
 * shard, the merged file loads, and the model compiled with it generates
 * the untuned model's tokens */
KT_TEST(slow_tune_sharded)
{
    char m[512], s1[512], s2[512], all[512];
    snprintf(m, sizeof m, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", kt_models_dir());
    if (!kc_exists(m)) KT_SKIP("%s not found: run 'make models'", m);
    kc_setup_env();
    kc_tpath(s1, sizeof s1, "smol-1.json"), kc_tpath(s2, sizeof s2, "smol-2.json"), kc_tpath(all, sizeof all, "smol.json");
    KT_CHECKF(KGEN("tune", m, "--shard", "1/2", "-o", s1, "--budget", "60") == 0, "shard 1: %s", kc_err);
    KT_CHECKF(KGEN("tune", m, "--shard", "2/2", "-o", s2, "--budget", "60") == 0, "shard 2: %s", kc_err);
    KT_CHECKF(KGEN("tune", "merge", s1, s2, "-o", all) == 0, "merge: %s", kc_err);
    KT_REQUIRE(KGEN("tune", m, "--list") == 0);
    gen_tuning t;
    KT_REQUIRE(gen_tuning_load(all, &t) == KG_OK);
    int missing = 0;
    for (const char *c = kc_out; *c;) {
        char key[256];
        if (sscanf(c, "%*d\t%255[^\t]", key) == 1) {
            bool found = false;
            for (int i = 0; i < t.n && !found; i++) found = !strcmp(t.r[i].inst, key);
            missing += !found;
        }
        const char *e = strchr(c, '\n');
        c = e ? e + 1 : c + strlen(c);
    }
    KT_CHECKF(missing == 0, "%d listed variants' instances have no record in the merged file", missing);
    gen_tuning_free(&t);
    char first[4096];
    KT_REQUIRE(KGEN("run", m, "-p", "The capital of France is", "-n", "16", "--temp", "0", "--tuning", "none") == 0);
    kc_save(first, sizeof first, kc_out);
    KT_CHECKF(KGEN("run", m, "-p", "The capital of France is", "-n", "16", "--temp", "0", "--tuning", all) == 0 &&
                  !strcmp(first, kc_out),
              "with the merged tuning: %s\nagainst\n%s", kc_out, first);
}

/* tune merge of shard files: a missing shard and shards of different
 * variant lists are warned about; the merged file keeps the sweep only
 * when every input is a shard of it; a malformed "sweep" is refused */
KT_TEST(tune_merge_shards)
{
    static const char *rec1 = "{\"instance\": \"mm wtype=2 act=1 M=1 N=64 K=64 flags=0 layout=1\", \"target\": {\"cpu\": "
                              "\"c\", \"isa\": \"avx2\", \"features\": \"\"}, \"threads\": 2, \"knobs\": {}, \"us\": 1.0, "
                              "\"default_us\": 1.0, \"noise\": 0.01, \"kgen_version\": \"v\", \"date\": \"d\"}";
    char p[4][512], out[512];
    const char *sweeps[4] = {"{\"variants\": \"00112233aabbccdd\", \"of\": 3, \"shards\": [1]}",
                             "{\"variants\": \"00112233aabbccdd\", \"of\": 3, \"shards\": [2]}",
                             "{\"variants\": \"ffff2233aabbccdd\", \"of\": 3, \"shards\": [3]}",
                             "{\"variants\": \"00112233aabbccdd\", \"of\": 3, \"shards\": [7]}"};
    for (int i = 0; i < 4; i++) {
        kc_tpath(p[i], sizeof p[i], "sweep%d.json", i);
        FILE *f = fopen(p[i], "w");
        KT_REQUIRE(f);
        fprintf(f, "{\"kgen_tuning\": 1, \"sweep\": %s, \"records\": [%s]}", sweeps[i], rec1);
        fclose(f);
    }
    kc_tpath(out, sizeof out, "sweep-merged.json");
    KT_CHECKF(KGEN("tune", "merge", p[0], p[1], "-o", out) == 0 && strstr(kc_err, "shards 3 of 3 are missing"),
              "merge of shards 1 and 2 of 3: %s", kc_err);
    gen_tuning t;
    KT_REQUIRE(gen_tuning_load(out, &t) == KG_OK);
    KT_CHECKF(!strcmp(t.sweep, "00112233aabbccdd") && t.nshards == 3 && t.shards == 3, "merged sweep %s of %d, shards %llx",
              t.sweep, t.nshards, (unsigned long long)t.shards);
    gen_tuning_free(&t);
    KT_CHECKF(KGEN("tune", "merge", p[0], p[2], "-o", out) == 0 && strstr(kc_err, "different variant lists") &&
                  strstr(kc_err, "sweep2.json"),
              "merge of shards of two variant lists: %s", kc_err);
    KT_REQUIRE(gen_tuning_load(out, &t) == KG_OK);
    KT_CHECKF(!t.sweep[0], "a merge of two sweeps kept sweep %s", t.sweep);
    gen_tuning_free(&t);
    KT_CHECKF(KGEN("tune", "merge", p[3], "-o", out) == 1 && strstr(kc_err, "a shard outside 1..3"), "shard 7 of 3: %s",
              kc_err);
}

/* make check-slow: the whole-model check of an encoder (all-MiniLM-L6-v2
 * with a record binding its first product's channel chunk): both models
 * embed, the speeds are measured and named as embeddings */
KT_TEST(slow_tune_compare_encoder)
{
    char dir[512], tf[512];
    snprintf(dir, sizeof dir, "%s/all-MiniLM-L6-v2", kt_models_dir());
    if (!kc_exists(dir)) KT_SKIP("%s not found: run 'make models'", dir);
    kc_setup_env();
    gen_graph gr = {0};
    gen_program pg = {0};
    gen_source *src = NULL;
    gen_target t;
    gen_knobs kn;
    KT_REQUIRE(gen_target_host(&t) == KG_OK && gen_knobs_parse("", &kn) == KG_OK);
    gen_knobs_resolve(&kn, t.isa, false);
    KT_REQUIRE(gen_source_open(dir, &src) == KG_OK);
    KT_REQUIRE(gen_model_plan(src, 0, 0, "", &kn, &gr, &pg) == KG_OK);
    gen_source_close(src);
    int at = -1;
    for (int i = 0; i < pg.nk && at < 0; i++)
        if (!strcmp(pg.k[i].tmpl, "mm")) at = i;
    KT_REQUIRE(at >= 0);
    char key[256];
    gen_inst_key(&pg.k[at], key, sizeof key);
    gen_program_free(&pg);
    gen_graph_free(&gr);
    gen_tuning tu = {0};
    gen_tune_rec r = rec(key, t.cpu, "nc", 16, 1, 2);
    gen_tune_rec_target(&r, &t);
    KT_REQUIRE(gen_tuning_add(&tu, &r) == KG_OK);
    kc_tpath(tf, sizeof tf, "minilm.forced.json");
    KT_REQUIRE(gen_tuning_save(tf, &tu) == KG_OK);
    gen_tuning_free(&tu);
    gen_tune_opts o = {.model = dir, .threads = 2};
    gen_tune_ab ab;
    KT_REQUIRE(gen_tune_compare(&o, tf, &ab) == KG_OK);
    KT_CHECKF(!strncmp(ab.what[0], "embed 32 x", 10) && !strcmp(ab.unit, "sentences/s"), "tests '%s', '%s' in %s",
              ab.what[0], ab.what[1], ab.unit);
    for (int w = 0; w < 2; w++)
        for (int k = 0; k < 2; k++) KT_CHECKF(ab.tps[w][k] > 0, "speed [%d][%d] is %g", w, k, ab.tps[w][k]);
}
