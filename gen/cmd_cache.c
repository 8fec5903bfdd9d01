/*
 * cmd_cache.c — `kgen cache ls|stats|verify|clear`: look at and repair the
 * compiled-artifact cache (runtime/cache.c). Prints; never exits.
 */
#include "gen.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage_all[] =
    "usage: kgen cache COMMAND [--dir DIR]\n"
    "\n"
    "commands:\n"
    "  ls       one line per entry, sorted by key: key, kind, payload bytes, age\n"
    "  stats    the directory, the number of entries and their bytes, by kind\n"
    "  verify   read and check every entry; remove the bad ones, and temporary\n"
    "           files left by writers that died\n"
    "  clear    remove every entry, and temporary files left by writers that died\n"
    "\n"
    "  --dir DIR   the cache directory (default: $KGEN_CACHE_DIR, else\n"
    "              $XDG_CACHE_HOME/kgen, else ~/.cache/kgen)\n"
    "\n"
    "'kgen cache COMMAND --help' describes a command. Exit status: 0 on success,\n"
    "1 on failure (the reason is printed on stderr), 2 on bad usage.\n";

typedef struct sub {
    const char *name, *help;
    int (*run)(kg_cache *c);
} sub;

static int fail(void)
{
    fprintf(stderr, "kgen: %s\n", kg_last_error());
    return 1;
}

/* ── ls ── */

static void fmt_age(int64_t s, char *out, size_t cap)
{
    if (s < 0) s = 0;
    if (s < 120) snprintf(out, cap, "%" PRId64 "s", s);
    else if (s < 120 * 60) snprintf(out, cap, "%" PRId64 "m", s / 60);
    else if (s < 48 * 3600) snprintf(out, cap, "%" PRId64 "h", s / 3600);
    else snprintf(out, cap, "%" PRId64 "d", s / 86400);
}

static int ls_visit(const kg_cache_entry *e, void *ctx)
{
    char age[32];
    fmt_age((int64_t)time(NULL) - e->mtime, age, sizeof age);
    (void)ctx;
    printf("%s  %-5s %10" PRIu64 "  %s\n", e->key_hex, e->kind, e->size, age);
    return 0;
}

static int run_ls(kg_cache *c) { return kg_cache_foreach(c, 0, ls_visit, NULL) == KG_OK ? 0 : fail(); }

/* ── stats ── */

typedef struct kind_stat {
    char kind[KG_CACHE_KIND_MAX + 1];
    uint64_t n, bytes;
} kind_stat;

typedef struct stats {
    uint64_t n, bytes, disk;
    kind_stat *kinds;
    size_t n_kinds;
    bool nomem;
} stats;

static int stats_visit(const kg_cache_entry *e, void *ctx)
{
    stats *st = ctx;
    st->n++;
    st->bytes += e->size;
    st->disk += e->file_size;
    size_t i = 0;
    while (i < st->n_kinds && strcmp(st->kinds[i].kind, e->kind)) i++;
    if (i == st->n_kinds) {
        kind_stat *k = realloc(st->kinds, (st->n_kinds + 1) * sizeof *k);
        if (!k) { st->nomem = true; return 1; }
        st->kinds = k;
        st->kinds[st->n_kinds++] = (kind_stat){{0}, 0, 0};
        strcpy(st->kinds[i].kind, e->kind);
    }
    st->kinds[i].n++;
    st->kinds[i].bytes += e->size;
    return 0;
}

static int cmp_kind(const void *a, const void *b)
{
    return strcmp(((const kind_stat *)a)->kind, ((const kind_stat *)b)->kind);
}

static int run_stats(kg_cache *c)
{
    stats st = {0};
    if (kg_cache_foreach(c, 0, stats_visit, &st) != KG_OK) { free(st.kinds); return fail(); }
    if (st.nomem) {
        free(st.kinds);
        fputs("kgen: out of memory\n", stderr);
        return 1;
    }
    if (st.n_kinds) qsort(st.kinds, st.n_kinds, sizeof *st.kinds, cmp_kind);
    printf("directory: %s\n", kg_cache_dir(c));
    printf("entries:   %" PRIu64 "\n", st.n);
    printf("bytes:     %" PRIu64 " payload, %" PRIu64 " on disk\n", st.bytes, st.disk);
    if (st.n_kinds) printf("by kind:\n");
    for (size_t i = 0; i < st.n_kinds; i++)
        printf("  %-6s %8" PRIu64 " entries %14" PRIu64 " bytes\n", st.kinds[i].kind, st.kinds[i].n,
               st.kinds[i].bytes);
    free(st.kinds);
    return 0;
}

/* ── verify ── */

static int verify_visit(const kg_cache_entry *e, void *ctx)
{
    uint64_t *counts = ctx; /* [0] checked, [1] bad */
    counts[0]++;
    if (e->problem) {
        counts[1]++;
        printf("removed %s.%s: %s\n", e->key_hex, e->kind, e->problem);
    }
    return 0;
}

static int run_verify(kg_cache *c)
{
    uint64_t counts[2] = {0, 0}, n_tmp = 0;
    kg_status s = kg_cache_foreach(c, KG_CACHE_VERIFY, verify_visit, counts);
    if (s == KG_OK) s = kg_cache_sweep(c, &n_tmp);
    printf("verified %" PRIu64 " entries: %" PRIu64 " ok, %" PRIu64 " bad (removed); "
           "removed %" PRIu64 " stale temporary files\n",
           counts[0], counts[0] - counts[1], counts[1], n_tmp);
    return s == KG_OK ? 0 : fail();
}

/* ── clear ── */

static int run_clear(kg_cache *c)
{
    uint64_t n = 0, n_tmp = 0;
    kg_status s = kg_cache_clear(c, &n, &n_tmp);
    printf("removed %" PRIu64 " entries and %" PRIu64 " temporary files from %s\n", n, n_tmp, kg_cache_dir(c));
    return s == KG_OK ? 0 : fail();
}

static const sub subs[] = {
    {"ls", "usage: kgen cache ls [--dir DIR]\n"
           "One line per entry, sorted by key: the key (32 hex digits), the kind,\n"
           "the payload bytes and the age since it was written (s, m, h or d).\n"
           "Entries are listed, not verified (see 'kgen cache verify').\n", run_ls},
    {"stats", "usage: kgen cache stats [--dir DIR]\n"
              "The cache directory, the number of entries, their payload and on-disk\n"
              "bytes, and the entries and payload bytes of each kind.\n", run_stats},
    {"verify", "usage: kgen cache verify [--dir DIR]\n"
               "Reads every entry and checks its header and payload hash. Bad entries\n"
               "are removed, one line each ('removed KEY.KIND: why'), as are temporary\n"
               "files left by writers that died (files being written are left alone).\n"
               "Ends with the counts. Exit status 0 when every entry could be checked,\n"
               "also when bad ones were removed (the cache is repaired: they will be\n"
               "rebuilt); 1 when something could not be read or removed.\n", run_verify},
    {"clear", "usage: kgen cache clear [--dir DIR]\n"
              "Removes every entry and the temporary files left by writers that died\n"
              "(files being written, and files kgen did not write, are left alone),\n"
              "and prints how many.\n", run_clear},
};

int cmd_cache(int argc, char **argv)
{
    const sub *cmd = NULL;
    const char *dir = NULL;
    bool help = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) help = true;
        else if (!strcmp(a, "--dir") || !strncmp(a, "--dir=", 6)) {
            if (a[5] == '=') dir = a + 6;
            else if (i + 1 < argc) dir = argv[++i];
            else { fputs("kgen cache: --dir needs a directory\n", stderr); return 2; }
            if (!*dir) { fputs("kgen cache: --dir needs a directory\n", stderr); return 2; }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "kgen cache: unknown option '%s' (see 'kgen cache --help')\n", a);
            return 2;
        } else if (cmd) {
            fprintf(stderr, "kgen cache %s: unexpected argument '%s'\n", cmd->name, a);
            return 2;
        } else {
            for (size_t k = 0; k < sizeof subs / sizeof *subs; k++)
                if (!strcmp(a, subs[k].name)) cmd = &subs[k];
            if (!cmd) {
                fprintf(stderr, "kgen cache: unknown command '%s' (see 'kgen cache --help')\n", a);
                return 2;
            }
        }
    }
    if (help) {
        fputs(cmd ? cmd->help : usage_all, stdout);
        return 0;
    }
    if (!cmd) {
        fputs(usage_all, stderr);
        return 2;
    }
    kg_cache *c;
    if (kg_cache_open(dir, &c) != KG_OK) return fail();
    int rc = cmd->run(c);
    kg_cache_close(c);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fputs("kgen: error writing output\n", stderr);
        return 1;
    }
    return rc;
}
