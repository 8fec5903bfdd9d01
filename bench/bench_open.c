/*
 * bench_open.c — how long opening a model from the cache takes: gen_load
 * of a GGUF file (or Hugging Face directory) on a cache hit, the way
 * `kgen run` and `kgen bench` open it, repeated in one process. Prints the
 * median, minimum and maximum of the lookup (the GGUF's content hash
 * through its memo, then finding and verifying the cache entry), of the
 * load (dlopen + kgm_open) and of their sum.
 *
 * The first open (not counted) compiles on a miss and stores the model in
 * the cache ($KGEN_CACHE_DIR); every counted open must be a hit.
 *
 * usage: bench-open MODEL [RUNS]   (RUNS: 1..1000, default 21)
 */
#include "bench.h"
#include "loader.h"

#include <stdio.h>
#include <stdlib.h>

enum { MAX_RUNS = 1000 };

static void stats(const char *what, double *v, int n)
{
    double lo = v[0], hi = v[0];
    for (int i = 1; i < n; i++) lo = v[i] < lo ? v[i] : lo, hi = v[i] > hi ? v[i] : hi;
    printf("%-8s median %7.2f ms  min %7.2f ms  max %7.2f ms\n", what, bench_median(v, n) * 1e3, lo * 1e3, hi * 1e3);
}

int main(int argc, char **argv)
{
    int runs = argc > 2 ? atoi(argv[2]) : 21;
    if (argc < 2 || argc > 3 || runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: bench-open MODEL [RUNS]   (RUNS: 1..%d, default 21)\n", MAX_RUNS);
        return 2;
    }
    static double lookup[MAX_RUNS], load[MAX_RUNS], total[MAX_RUNS];
    gen_load_opts o = {.open = {.n_threads = 1}};
    for (int r = -1; r < runs; r++) {
        gen_loaded l;
        double t = bench_now();
        if (gen_load(argv[1], &o, &l)) {
            fprintf(stderr, "bench-open: %s\n", kg_last_error());
            return 1;
        }
        double dt = bench_now() - t;
        bool compiled = l.compiled;
        gen_unload(&l);
        if (r < 0) continue; /* the warm-up: compiles on a miss */
        if (compiled) {
            fprintf(stderr, "bench-open: open %d compiled (a cache miss): is the cache being cleared?\n", r + 1);
            return 1;
        }
        lookup[r] = l.lookup_s, load[r] = l.open_s, total[r] = dt;
    }
    printf("%s: %d opens from the cache\n", argv[1], runs);
    stats("lookup", lookup, runs);
    stats("load", load, runs);
    stats("total", total, runs);
    return 0;
}
