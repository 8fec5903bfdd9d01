/*
 * cmd_cache.c — `kgen cache ls|stats|verify|gc|clear`: look at, repair and
 * trim the compiled-artifact cache (runtime/cache.c, runtime/cache_gc.c).
 * Prints; never exits.
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
    "  gc       remove least recently used entries until the cache fits a size\n"
    "  clear    remove every entry, and temporary files left by writers that died\n"
    "\n"
    "  --dir DIR         the cache directory (default: $KGEN_CACHE_DIR, else\n"
    "                    $XDG_CACHE_HOME/kgen, else ~/.cache/kgen)\n"
    "  --max-size SIZE   gc only: the size to fit (default: the cache's limit)\n"
    "\n"
    "'kgen cache COMMAND --help' describes a command. Exit status: 0 on success,\n"
    "1 on failure (the reason is printed on stderr) and, for verify, when bad\n"
    "entries were found; 2 on bad usage.\n";

typedef struct opts {
    bool have_max;     /* --max-size given */
    uint64_t max_size;
} opts;

typedef struct sub {
    const char *name, *help;
    int (*run)(kg_cache *c, const opts *o);
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

static int run_ls(kg_cache *c, const opts *o)
{
    (void)o;
    return kg_cache_foreach(c, 0, ls_visit, NULL) == KG_OK ? 0 : fail();
}

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

/* "1.5 GiB" (binary units, one decimal) */
static const char *human(uint64_t n, char *out, size_t cap)
{
    static const char *unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    int u = 0;
    double v = (double)n;
    while (v >= 1024 && u < 6) { v /= 1024; u++; }
    if (u == 0) snprintf(out, cap, "%" PRIu64 " bytes", n);
    else snprintf(out, cap, "%.1f %s", v, unit[u]);
    return out;
}

static int run_stats(kg_cache *c, const opts *o)
{
    (void)o;
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
    const char *src;
    uint64_t max = kg_cache_max_size(c, &src);
    char h[32];
    if (!strcmp(src, "default"))
        printf("limit:     %" PRIu64 " bytes (%s; the default: the smaller of 10 GiB and a quarter of the filesystem)\n",
               max, human(max, h, sizeof h));
    else if (!max) printf("limit:     none (KGEN_CACHE_MAX_SIZE=0)\n");
    else printf("limit:     %" PRIu64 " bytes (%s; KGEN_CACHE_MAX_SIZE=%s)\n", max, human(max, h, sizeof h),
                getenv("KGEN_CACHE_MAX_SIZE"));
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

static int run_verify(kg_cache *c, const opts *o)
{
    (void)o;
    uint64_t counts[2] = {0, 0}, n_tmp = 0;
    kg_status s = kg_cache_foreach(c, KG_CACHE_VERIFY, verify_visit, counts);
    if (s == KG_OK) s = kg_cache_sweep(c, &n_tmp);
    printf("verified %" PRIu64 " entries: %" PRIu64 " ok, %" PRIu64 " bad (removed); "
           "removed %" PRIu64 " stale temporary files\n",
           counts[0], counts[0] - counts[1], counts[1], n_tmp);
    if (s != KG_OK) return fail();
    return counts[1] ? 1 : 0; /* as fsck: repaired, but something was wrong */
}

/* ── gc ── */

static int gc_visit(const kg_cache_entry *e, void *ctx)
{
    char age[32];
    (void)ctx;
    fmt_age((int64_t)time(NULL) - e->used, age, sizeof age);
    printf("removed %s.%s: %" PRIu64 " bytes, last used %s ago\n", e->key_hex, e->kind, e->file_size, age);
    return 0;
}

static int run_gc(kg_cache *c, const opts *o)
{
    const char *src;
    uint64_t max = o->have_max ? o->max_size : kg_cache_max_size(c, &src), n_tmp = 0;
    if (!o->have_max && !max) {
        fputs("kgen cache gc: the cache has no limit (KGEN_CACHE_MAX_SIZE=0): give --max-size SIZE\n", stderr);
        return 2;
    }
    kg_cache_gc_stats st;
    kg_status s = kg_cache_gc(c, max, gc_visit, NULL, &st);
    if (s == KG_OK) s = kg_cache_sweep(c, &n_tmp);
    char hb[32], h[40] = "";
    if (st.bytes_left >= 1024) snprintf(h, sizeof h, " (%s)", human(st.bytes_left, hb, sizeof hb));
    printf("removed %" PRIu64 " of %" PRIu64 " entries (%" PRIu64 " of %" PRIu64 " bytes); left %" PRIu64
           " entries, %" PRIu64 " bytes%s, limit %" PRIu64 " bytes; removed %" PRIu64 " stale temporary files\n",
           st.n_removed, st.n_entries, st.bytes_removed, st.bytes, st.n_left, st.bytes_left, h,
           max, n_tmp);
    if (st.n_busy)
        printf("kept %" PRIu64 " entries that were used or rewritten while it ran%s\n", st.n_busy,
               st.bytes_left > max ? ": still over the limit" : "");
    return s == KG_OK ? 0 : fail();
}

/* ── clear ── */

static int run_clear(kg_cache *c, const opts *o)
{
    (void)o;
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
               "Opening a model from the cache re-reads its weights only when the file\n"
               "changed since they were last verified; verify reads every byte, so it\n"
               "also finds damage the file system did not see (a failing disk).\n"
               "Ends with the counts. Exit status, as fsck's: 0 when every entry was\n"
               "checked and good; 1 when bad entries were found (they are removed and\n"
               "will be rebuilt: the cache is repaired, but something damaged it) or\n"
               "something could not be read or removed.\n", run_verify},
    {"gc", "usage: kgen cache gc [--max-size SIZE] [--dir DIR]\n"
           "Removes entries, least recently used first, until the entries' bytes on\n"
           "disk are at most SIZE, one line each ('removed KEY.KIND: N bytes, last\n"
           "used AGE ago'), then the stale temporary files, and prints the totals.\n"
           "Used means read by a hit, or written. Entries of every kind are alike.\n"
           "SIZE: digits, optionally a fraction, then optionally a unit: K M G T P or\n"
           "KiB..PiB (powers of 1024), KB..PB (powers of 1000), B (500M, 2G, 1.5GiB,\n"
           "1000000); 0 removes every entry. Without --max-size: the cache's limit\n"
           "($KGEN_CACHE_MAX_SIZE, else the smaller of 10 GiB and a quarter of the\n"
           "filesystem; see 'kgen cache stats'), which puts also keep by themselves.\n"
           "Entries being written are never touched; a process reading an entry\n"
           "that is removed keeps its copy. Exit status 0, 1 on failure, 2 for a\n"
           "SIZE that is not one.\n", run_gc},
    {"clear", "usage: kgen cache clear [--dir DIR]\n"
              "Removes every entry and the temporary files left by writers that died\n"
              "(files being written, and files kgen did not write, are left alone),\n"
              "and prints how many.\n", run_clear},
};

int cmd_cache(int argc, char **argv)
{
    const sub *cmd = NULL;
    const char *dir = NULL, *max = NULL;
    bool help = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) help = true;
        else if (!strcmp(a, "--dir") || !strncmp(a, "--dir=", 6)) {
            if (a[5] == '=') dir = a + 6;
            else if (i + 1 < argc) dir = argv[++i];
            else { fputs("kgen cache: --dir needs a directory\n", stderr); return 2; }
            if (!*dir) { fputs("kgen cache: --dir needs a directory\n", stderr); return 2; }
        } else if (!strcmp(a, "--max-size") || !strncmp(a, "--max-size=", 11)) {
            if (a[10] == '=') max = a + 11;
            else if (i + 1 < argc) max = argv[++i];
            else { fputs("kgen cache: --max-size needs a size\n", stderr); return 2; }
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
    opts o = {0};
    if (max && strcmp(cmd->name, "gc")) {
        fprintf(stderr, "kgen cache %s: --max-size is for gc only\n", cmd->name);
        return 2;
    }
    if (max && kg_cache_parse_size(max, &o.max_size) != KG_OK) {
        fprintf(stderr, "kgen cache gc: --max-size: %s\n", kg_last_error());
        return 2;
    }
    o.have_max = max != NULL;
    kg_cache *c;
    if (kg_cache_open(dir, &c) != KG_OK) return fail();
    int rc = cmd->run(c, &o);
    kg_cache_close(c);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fputs("kgen: error writing output\n", stderr);
        return 1;
    }
    return rc;
}
