/*
 * tune.h — tuning records (gen/tune_db.c) and the sweep that finds them
 * (gen/tune.c, `kgen tune`).
 *
 * A record says: on this exact target, this kernel instance (its key
 * without its knobs) runs fastest with these instance knobs (gen.h's
 * gen_knob_def with a template), measured so against the default. A
 * tuning file is JSON (the format: gen/tune_db.c); `kgen compile
 * --tuning FILE` binds the knobs of every instance a record of the
 * compile's target names. A record for another target, from another
 * format version, with an unknown knob or a value out of its range is
 * never used: loading refuses a malformed file, and applying skips such
 * records with the reason (gen_tuning_apply's `why`).
 */
#ifndef KGEN_TUNE_H
#define KGEN_TUNE_H

#include "gen.h"
#include "lower.h"

#define GEN_TUNE_FORMAT 1 /* the file's "kgen_tuning" */
#define GEN_TUNE_MAX_RECORDS 65536 /* per file: a bigger one is refused */
enum { GEN_TUNE_MAX_KNOBS = 4 };

typedef struct gen_tune_rec {
    char inst[256];           /* gen_inst_key: "mm wtype=2 act=1 M=1 N=576 K=576 flags=0 layout=1" */
    char cpu[64], isa[16];    /* the target: LLVM CPU name, ISA level, */
    char features[4096];      /* and its feature list, exactly           */
    int threads;              /* the threads it was timed with           */
    int nknob;
    char knob[GEN_TUNE_MAX_KNOBS][32];
    int64_t val[GEN_TUNE_MAX_KNOBS];
    double us, default_us;    /* medians per call: the winner, the default */
    double noise;             /* the default's relative spread            */
    char version[32], date[32];
} gen_tune_rec;

typedef struct gen_tuning {
    gen_tune_rec *r;
    int n, cap;
    /* a sweep's file (optional "sweep" in the file): the variant list's
     * identity (16 hex digits of XXH3-64 over the whole list and --pp;
     * "" for none) and, for a shard, which shards of how many it holds
     * (a bit per shard, up to 64) */
    char sweep[17];
    int nshards;
    uint64_t shards;
} gen_tuning;

/* The instance's key without its knobs (instance knobs left out),
 * parameters in their order, runtime ones as "NAME=rt". */
void gen_inst_key(const gen_kinst *k, char *out, size_t cap);
/* Does the record's target equal t? */
bool gen_tune_rec_matches(const gen_tune_rec *r, const gen_target *t);
void gen_tune_rec_target(gen_tune_rec *r, const gen_target *t);

kg_status gen_tuning_add(gen_tuning *tu, const gen_tune_rec *r);
void gen_tuning_free(gen_tuning *tu);
/* Reads and checks a tuning file: refused (KG_ERR_FORMAT, naming the file
 * and the record) if it is not JSON of this format, a field is missing or
 * of the wrong type, a knob is unknown or out of its range. */
kg_status gen_tuning_load(const char *path, gen_tuning *tu);
/* Writes it atomically (a temporary renamed into place). */
kg_status gen_tuning_save(const char *path, const gen_tuning *tu);
/* Adds b's records to a (a's sweep: the union of the shards if both hold
 * shards of one sweep, else none), keeping per (instance, target) the
 * record with
 * the larger speedup (default_us / us; ties: the smaller knob values, then
 * every other field), so the result does not depend on the order of
 * merges; a is left sorted. A record with no knob (measured, the default
 * stays) has speedup 1. */
kg_status gen_tuning_merge(gen_tuning *a, const gen_tuning *b);
/* Sorts by (instance, target): a merged file reads the same either way. */
void gen_tuning_sort(gen_tuning *tu);
/* Has `sorted` (gen_tuning_sort'ed) a record of r's (instance, target)? */
bool gen_tuning_has_key(const gen_tuning *sorted, const gen_tune_rec *r);

/* ── the tuning database: KGEN_CACHE_DIR/tuning.json, beside the artifact
 *    cache (whose clear and gc leave it alone; `kgen tune clear` empties it) ── */

/* Its path (the cache directory is created if missing). */
kg_status gen_tuning_db_path(char *out, size_t cap);
/* What a compile uses: spec NULL, the database (missing: no records;
 * unreadable or malformed: no records, and a warning on stderr naming it);
 * "none", no records; else the tuning file spec (errors are errors).
 * `what` gets a description for messages. */
kg_status gen_tuning_resolve(const char *spec, gen_tuning *tu, char *what, size_t cap);
/* Under the database's lock: every record of `measured`'s (instance,
 * target) pairs removed, then those of its records that hold knobs added
 * (a record with no knob says: measured, the default stays). */
kg_status gen_tuning_db_update(const gen_tuning *measured, int *n_after);
/* Empties the database (its file removed). */
kg_status gen_tuning_db_clear(int *n_removed);

/* Binds the knobs of every instance of pg that a record for target t
 * names. *applied: how many instances changed. why (may be NULL): a line
 * per record skipped, with the reason. */
kg_status gen_tuning_apply(const gen_tuning *tu, const gen_target *t, gen_program *pg, int *applied, FILE *why);
/* tu reduced to the records for target t that name an instance of the
 * model at `path` as compiled with o (its plan; gen/model.c): what binds,
 * and so what the cache key needs. Plans only when tu has records for t. */
kg_status gen_tuning_for_model(const char *path, const gen_model_opts *o, const gen_target *t, gen_tuning *tu);
/* The text of the records for t, for the model's cache key (loader.c). */
kg_status gen_tuning_keytext(const gen_tuning *tu, const gen_target *t, kg_keytext *kt);

/* ── the sweep (gen/tune.c) ── */

typedef struct gen_tune_opts {
    const char *model;     /* a GGUF file or a Hugging Face directory */
    int threads;           /* 0: the online CPUs */
    int pp;                /* prefill instances are timed with this many rows (0: 64) */
    double budget_s;       /* 0: none */
    int shard, nshards;    /* 1-based shard of nshards (0/0: all) */
    bool list;             /* only print the variants (no compile, no timing) */
    const char *quant;     /* gen_model_opts' quant and requant: the model quantized */
    bool requant;
    FILE *out;             /* the table, the progress (NULL: stderr) */
} gen_tune_opts;

/* One variant: instance `inst` of the plan with knob `knob` = `value`. */
typedef struct gen_tune_variant {
    int inst;
    const gen_knob_def *knob;
    int64_t value;
} gen_tune_variant;

/* The variants of a planned model, in a fixed order (instances by key,
 * then the knobs' table order, then their sweep order), pruned by what
 * cannot differ (a prefetch past the instance's weights; a block past
 * the rows it is timed with; tiles over 4 rows when timing 4). A
 * deterministic function of the plan. */
kg_status gen_tune_variants(const gen_program *pg, int pp, gen_tune_variant **out, int *n);
/* shard i (1-based) of n: variant j belongs to it if j % n == i - 1 */
static inline bool gen_tune_in_shard(int j, int shard, int nshards)
{
    return nshards <= 1 || j % nshards == shard - 1;
}

/* result: a record per instance measured, with the winning knob, or with
 * none where the default stays (written so too: "knobs": {}; a merge or
 * an import then replaces an older winner of that instance). */
kg_status gen_tune_run(const gen_tune_opts *o, gen_tuning *result);

/* The model compiled with the tuning file against the model with none
 * (gen/tune_model.c): prefill of o->pp tokens (0: 64) and decode of 32
 * (encoders: embedding 32 sequences of up to 128 tokens, and one), both
 * models in alternating order, medians of the rounds. */
typedef struct gen_tune_ab {
    double tps[2][2]; /* [default, tuned][test]: tokens (encoders: sentences) per second */
    double noise[2];  /* the default's, per test: median absolute deviation / median */
    char what[2][40]; /* the tests: "prefill pp64", "decode tg32"; encoders: a batch of 32, and 1 */
    const char *unit;
    int rounds;
} gen_tune_ab;
kg_status gen_tune_compare(const gen_tune_opts *o, const char *tuning, gen_tune_ab *ab);

int cmd_tune(int argc, char **argv);

#endif
