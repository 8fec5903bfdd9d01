/*
 * cmd_tune.c — `kgen tune`: sweep a model's kernel variants on this
 * machine into a tuning file; merge shards; list a file's records.
 */
#include "cli.h"
#include "tmpfile.h"
#include "tune.h"

#include <limits.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: kgen tune MODEL [-o FILE] [--budget SECONDS] [--threads N] [--pp N]\n"
    "                 [--shard I/N] [--list] [--target cuda[:sm_NN]]\n"
    "                 [--quant SCHEME] [--quant-tensor PATTERN=SCHEME]... [--requant]\n"
    "       kgen tune merge A.json B.json ... -o ALL.json\n"
    "       kgen tune ls [FILE]\n"
    "       kgen tune export FILE | import FILE... | clear\n"
    "\n"
    "Sweeps, on this machine's CPU, the variants of every product instance of\n"
    "MODEL (a GGUF file or a Hugging Face directory): the values of their instance\n"
    "knobs (pf: a decode product's prefetch distance; mb: a prefill product's\n"
    "block of activation rows; nc: channels per chunk; mt: a prefill product's\n"
    "activation rows per tile), pruned where they cannot differ. Each variant is\n"
    "first checked against the portable reference kernel (a wrong one is never\n"
    "timed), then timed with the model's shapes, the weights streamed from memory,\n"
    "interleaved with the default; the best few are measured again. A variant is\n"
    "kept only if it beats the default by more than twice the measured noise (and\n"
    "1%); then the whole model with the kept records is timed against the default\n"
    "model, and they stay only if it is faster. The records go to the tuning\n"
    "database beside the cache (KGEN_CACHE_DIR/tuning.json), which 'kgen run',\n"
    "'bench' and 'compile' use for this CPU unless given '--tuning FILE' (that\n"
    "file's records instead) or '--tuning none'; with -o, to FILE instead.\n"
    "\n"
    "  -o FILE          write the records to FILE (JSON, atomically), not the database\n"
    "  --budget S       stop timing after S seconds (instances left are reported;\n"
    "                   default: none, about 2 s per instance)\n"
    "  --threads N      threads per timed call (default: the online CPUs)\n"
    "  --pp N           rows a prefill instance is timed with (default 64)\n"
    "  --shard I/N      only the I-th of N slices of the variants (I from 1): the\n"
    "                   slices partition the variant list exactly, so N machines or\n"
    "                   jobs sweep one model; combine their files with 'tune merge'\n"
    "                   (needs -o)\n"
    "  --list           print the variants (index, instance, knob) and stop\n"
    "  --quant SCHEME, --quant-tensor PATTERN=SCHEME, --requant   sweep the model\n"
    "                   quantized as kgen compile --quant quantizes it (its records\n"
    "                   serve a compile with the same options)\n"
    "  --target cuda    CUDA sweeps: not yet (they need a GPU; none was available\n"
    "                   to build them)\n"
    "\n"
    "merge: the records of every file, one per (instance, target): the one with the\n"
    "larger speedup over its default; the result does not depend on the order.\n"
    "ls: the records of FILE (default: the database), and whether each would be\n"
    "used on this machine (and why not). export: the database into FILE. import:\n"
    "each FILE checked, then its records into the database (replacing those of the\n"
    "same instance and target). clear: empties the database ('kgen cache clear'\n"
    "and 'gc' leave it alone).\n";

static int do_merge(int argc, char **argv)
{
    const char *out = NULL;
    cli c = {"tune merge", argc, argv, 0};
    gen_tuning all = {0};
    int nin = 0;
    const char *first_shard = NULL; /* the first shard file, and its variant list */
    char sw0[17] = "";
    for (c.i = 0; c.i < argc; c.i++) {
        if (!strcmp(argv[c.i], "-o")) {
            if (!(out = cli_value(&c))) return 2;
        } else if (argv[c.i][0] == '-') {
            fprintf(stderr, "kgen tune merge: unknown option '%s'\n%s", argv[c.i], usage);
            return 2;
        } else {
            gen_tuning t = {0};
            kg_status st = gen_tuning_load(argv[c.i], &t);
            if (!st && t.nshards > 1 && !first_shard) first_shard = argv[c.i], memcpy(sw0, t.sweep, sizeof sw0);
            else if (!st && t.nshards > 1 && strcmp(sw0, t.sweep))
                fprintf(stderr, "kgen tune merge: warning: %s and %s are shards of different variant lists (other "
                        "models, kgen versions, CPUs or settings: --pp, KGEN_KNOBS, KGEN_NOFUSE)\n", first_shard, argv[c.i]);
            if (!st) st = gen_tuning_merge(&all, &t);
            gen_tuning_free(&t);
            if (st) {
                fprintf(stderr, "kgen tune merge: %s\n", kg_last_error());
                gen_tuning_free(&all);
                return 1;
            }
            nin++;
        }
    }
    if (!out || !nin) {
        fprintf(stderr, "kgen tune merge: needs input files and -o FILE\n");
        gen_tuning_free(&all);
        return 2;
    }
    if (all.sweep[0] && all.nshards > 1 && all.nshards <= 64) {
        char miss[256] = "";
        size_t at = 0;
        for (int i = 0; i < all.nshards && at < sizeof miss; i++)
            if (!(all.shards >> i & 1)) at += (size_t)snprintf(miss + at, sizeof miss - at, "%s%d", at ? ", " : "", i + 1);
        if (miss[0])
            fprintf(stderr, "kgen tune merge: warning: shards %s of %d are missing: their variants were not timed\n", miss,
                    all.nshards);
    }
    gen_tuning_sort(&all);
    kg_status st = gen_tuning_save(out, &all);
    if (st) fprintf(stderr, "kgen tune merge: %s\n", kg_last_error());
    else fprintf(stderr, "kgen tune merge: %d records from %d files into %s\n", all.n, nin, out);
    gen_tuning_free(&all);
    return st ? 1 : 0;
}

static int do_ls(int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "kgen tune ls: one FILE at most (none: the tuning database)\n");
        return 2;
    }
    gen_tuning t = {0};
    gen_target host;
    char db[PATH_MAX];
    const char *path = argc ? argv[0] : db;
    kg_status st = argc ? KG_OK : gen_tuning_db_path(db, sizeof db);
    if (!st && !argc && access(db, F_OK) != 0) {
        printf("the tuning database %s is empty\n", db);
        return 0;
    }
    if (st || gen_tuning_load(path, &t) || gen_target_host(&host)) {
        fprintf(stderr, "kgen tune ls: %s\n", kg_last_error());
        return 1;
    }
    int usable = 0;
    for (int i = 0; i < t.n; i++) {
        const gen_tune_rec *r = &t.r[i];
        const bool ok = gen_tune_rec_matches(r, &host);
        usable += ok;
        printf("%s\n   ", r->inst);
        for (int k = 0; k < r->nknob; k++) printf(" %s=%lld", r->knob[k], (long long)r->val[k]);
        printf("  %.2f us (default %.2f, noise %.1f%%), %d threads, %s (%s), kgen %s, %s\n", r->us, r->default_us,
               100 * r->noise, r->threads, r->cpu, r->isa, r->version, r->date);
        if (ok) printf("    used on this machine\n");
        else if (strcmp(r->cpu, host.cpu) || strcmp(r->isa, gen_isa_name(host.isa)))
            printf("    skipped here: measured on %s (%s), this machine is %s (%s)\n", r->cpu, r->isa, host.cpu,
                   gen_isa_name(host.isa));
        else printf("    skipped here: the same CPU name, but its feature list differs from this machine's\n");
    }
    printf("%d records, %d for this machine (%s)\n", t.n, usable, host.cpu);
    gen_tuning_free(&t);
    return 0;
}

static int do_export(int argc, char **argv)
{
    char db[PATH_MAX];
    gen_tuning t = {0};
    if (argc != 1) {
        fprintf(stderr, "kgen tune export: needs one FILE\n");
        return 2;
    }
    kg_status st = gen_tuning_db_path(db, sizeof db);
    if (!st && access(db, F_OK) == 0) st = gen_tuning_load(db, &t);
    if (!st) st = gen_tuning_save(argv[0], &t);
    if (st) fprintf(stderr, "kgen tune export: %s\n", kg_last_error());
    else fprintf(stderr, "kgen tune export: %d records from %s into %s\n", t.n, db, argv[0]);
    gen_tuning_free(&t);
    return st ? 1 : 0;
}

static int do_import(int argc, char **argv)
{
    if (argc < 1) {
        fprintf(stderr, "kgen tune import: needs FILE...\n");
        return 2;
    }
    gen_tuning all = {0};
    kg_status st = KG_OK;
    for (int i = 0; i < argc && !st; i++) { /* every file checked before any is imported */
        gen_tuning t = {0};
        st = gen_tuning_load(argv[i], &t);
        if (!st) st = gen_tuning_merge(&all, &t);
        gen_tuning_free(&t);
    }
    int n = 0;
    if (!st) st = gen_tuning_db_update(&all, &n);
    if (st) fprintf(stderr, "kgen tune import: %s\n", kg_last_error());
    else fprintf(stderr, "kgen tune import: %d records imported; the database holds %d\n", all.n, n);
    gen_tuning_free(&all);
    return st ? 1 : 0;
}

static int do_clear(int argc, char **argv)
{
    (void)argv;
    int n = 0;
    if (argc) {
        fprintf(stderr, "kgen tune clear: takes no arguments\n");
        return 2;
    }
    kg_status st = gen_tuning_db_clear(&n);
    if (st) fprintf(stderr, "kgen tune clear: %s\n", kg_last_error());
    else fprintf(stderr, "kgen tune clear: %d records removed\n", n);
    return st ? 1 : 0;
}

/* The whole model with the records against the default one: the records
 * stay only if the tuned model is faster (the product of its prefill and
 * decode speedups above 1, neither slower than twice its noise); else
 * they all become "the default stays". A shard's records skip this check
 * (it needs them all): compare the merged file with kgen bench --tuning. */
static kg_status check_model(const gen_tune_opts *o, gen_tuning *res)
{
    gen_tmpdir d = {0};
    char path[PATH_MAX + 32];
    gen_tune_ab ab;
    int kept = 0;
    for (int i = 0; i < res->n; i++) kept += res->r[i].nknob > 0;
    if (!kept) return KG_OK;
    kg_status st = gen_tmpdir_make("tune", &d);
    if (!st) snprintf(path, sizeof path, "%s/trial.json", d.path), st = gen_tuning_save(path, res);
    if (!st) fprintf(stderr, "kgen tune: the whole model with the %d records against the default (compiling both)\n", kept);
    if (!st) st = gen_tune_compare(o, path, &ab);
    gen_tmpdir_remove(&d);
    if (st) return st;
    const double sp = ab.tps[1][0] / ab.tps[0][0], sd = ab.tps[1][1] / ab.tps[0][1];
    fprintf(stderr, "kgen tune: %s %.1f -> %.1f %s (%.3fx, noise %.1f%%), %s %.1f -> %.1f (%.3fx, noise %.1f%%); "
            "medians of %d interleaved rounds\n", ab.what[0], ab.tps[0][0], ab.tps[1][0], ab.unit, sp,
            100 * ab.noise[0], ab.what[1], ab.tps[0][1], ab.tps[1][1], sd, 100 * ab.noise[1], ab.rounds);
    /* faster overall, and neither slower by more than twice its noise */
    if (sp * sd <= 1.0 || sp < 1 - 2 * ab.noise[0] || sd < 1 - 2 * ab.noise[1]) {
        fprintf(stderr, "kgen tune: the tuned model is not faster: its records are dropped\n");
        for (int i = 0; i < res->n; i++) /* measured: the defaults stay */
            res->r[i].nknob = 0, res->r[i].us = res->r[i].default_us;
    }
    return KG_OK;
}

int cmd_tune(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) /* every form's --help: the one text */
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage, stdout);
            return 0;
        }
    if (argc >= 1 && !strcmp(argv[0], "merge")) return do_merge(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0], "ls")) return do_ls(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0], "export")) return do_export(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0], "import")) return do_import(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0], "clear")) return do_clear(argc - 1, argv + 1);
    gen_tune_opts o = {0};
    const char *out = NULL;
    cli c = {"tune", argc, argv, 0};
    cli_quant q = {0};
    int64_t n;
    for (c.i = 0; c.i < argc; c.i++) {
        const char *a = argv[c.i];
        const int qo = cli_quant_opt(&c, &q);
        if (qo < 0) return 2;
        if (qo) continue;
        if (!strcmp(a, "-o")) {
            if (!(out = cli_value(&c))) return 2;
        } else if (!strcmp(a, "--budget")) {
            if (!cli_num(&c, 1, 1e7, &o.budget_s)) return 2;
        } else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
            if (!cli_int(&c, 1, 256, &n)) return 2;
            o.threads = (int)n;
        } else if (!strcmp(a, "--pp")) {
            if (!cli_int(&c, 2, 4096, &n)) return 2;
            o.pp = (int)n;
        } else if (!strcmp(a, "--shard")) {
            const char *v = cli_value(&c);
            int64_t i, m;
            const char *sl = v ? strchr(v, '/') : NULL;
            char first[24];
            if (!v) return 2;
            if (!sl || (size_t)(sl - v) >= sizeof first) goto bad_shard;
            memcpy(first, v, (size_t)(sl - v));
            first[sl - v] = 0;
            if (!cli_parse_i64(first, 1, 1 << 20, &i) || !cli_parse_i64(sl + 1, 1, 1 << 20, &m) || i > m) goto bad_shard;
            o.shard = (int)i, o.nshards = (int)m;
            continue;
        bad_shard:
            fprintf(stderr, "kgen tune: --shard %s: expected I/N with 1 <= I <= N, e.g. 2/4\n", v);
            return 2;
        } else if (!strcmp(a, "--list")) {
            o.list = true;
        } else if (!strcmp(a, "--target")) {
            const char *v = cli_value(&c);
            if (!v) return 2;
            fprintf(stderr, "kgen tune: --target %s: CUDA sweeps are not built yet (they need a GPU to time on); "
                    "tune on the CPU without --target\n", v);
            return 1;
        } else if (a[0] == '-') {
            fprintf(stderr, "kgen tune: unknown option '%s'\n%s", a, usage);
            return 2;
        } else if (!o.model) {
            o.model = a;
        } else {
            fprintf(stderr, "kgen tune: one MODEL only ('%s' is a second)\n", a);
            return 2;
        }
    }
    if (!o.model) {
        fprintf(stderr, "kgen tune: needs MODEL\n%s", usage);
        return 2;
    }
    if (!cli_quant_spec(&c, &q, &o.quant)) return 2;
    o.requant = q.requant;
    if (o.nshards > 1 && !out && !o.list) {
        fprintf(stderr, "kgen tune: --shard needs -o FILE (shards are merged with 'kgen tune merge')\n");
        return 2;
    }
    o.out = o.list ? stdout : stderr;
    gen_tuning res;
    kg_status st = gen_tune_run(&o, &res);
    if (!st && !o.list) {
        gen_tuning_sort(&res);
        if (o.nshards <= 1) st = check_model(&o, &res);
        char db[PATH_MAX];
        int n = 0;
        int kept = 0;
        for (int i = 0; i < res.n; i++) kept += res.r[i].nknob > 0;
        if (!st && !out) {
            st = gen_tuning_db_update(&res, &n);
            if (!st && !gen_tuning_db_path(db, sizeof db))
                fprintf(stderr, "kgen tune: %d records with knobs kept; the tuning database %s holds %d\n", kept, db, n);
        } else if (!st) {
            st = gen_tuning_save(out, &res);
            if (!st)
                fprintf(stderr, "kgen tune: %d records written to %s (%d with knobs, %d where the default stays)\n", res.n,
                        out, kept, res.n - kept);
        }
    }
    if (st) fprintf(stderr, "kgen tune: %s\n", kg_last_error());
    gen_tuning_free(&res);
    return st ? 1 : 0;
}
