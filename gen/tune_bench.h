/*
 * tune_bench.h — one product instance checked and timed on this machine
 * for `kgen tune` (gen/tune_bench.c).
 */
#ifndef KGEN_TUNE_BENCH_H
#define KGEN_TUNE_BENCH_H

#include "tune.h"

struct kgr_pool;

enum {
    GEN_TUNE_MAX_CAND = 16,   /* the default and up to 15 variants          */
    GEN_TUNE_MAX_ROUNDS = 64, /* timed rounds per measurement, at most       */
    GEN_TUNE_RETIME = 3,      /* the best few measured again with the default */
};

typedef struct gen_tune_bench_in {
    const gen_kinst *k;            /* the instance as planned (the default) */
    const char *key;               /* its gen_inst_key, for messages */
    const gen_tune_variant *var;   /* its variants */
    int nvar;
    const gen_target *target;
    struct kgr_pool *pool;         /* the threads that run it */
    int pp;                        /* rows of a prefill instance */
    int min_rounds;                /* per measurement */
    double seconds;                /* per measurement, after min_rounds */
} gen_tune_bench_in;

typedef struct gen_tune_bench_out {
    double us[GEN_TUNE_MAX_CAND];    /* median per call: [0] the default, [1 + v] variant v */
    bool bad[GEN_TUNE_MAX_CAND];     /* failed the check against the reference: not timed */
    bool retimed[GEN_TUNE_MAX_CAND]; /* among the best few, measured twice (us: the second) */
    double diff[GEN_TUNE_MAX_CAND];  /* the check: the largest difference over the largest value */
    double noise;                    /* the default's relative spread (last measurement) */
    int rounds, copies;
    uint64_t weight_bytes;
    double compile_s;
} gen_tune_bench_out;

kg_status gen_tune_bench(const gen_tune_bench_in *in, gen_tune_bench_out *out);

/* Random weights of a type with small finite scales in every block (bench/ too). */
void gen_fill_weights(uint8_t *w, uint64_t bytes, int wtype, uint64_t seed);

#endif
