/*
 * lower.h — the graph lowered to kernel instances and call sequences
 * (gen/lower.c), and their compilation into one object with the entry points.
 */
#ifndef KGEN_LOWER_H
#define KGEN_LOWER_H

#include "graph.h"

enum { GEN_MODE_DECODE, GEN_MODE_PREFILL, GEN_MODES };
enum { GEN_CALL_PTRS = 8 };

/* One pointer argument: base[base] + off (+ slot * rt[KVBYTES] for the KV
 * cache) (+ (rt[M] - 1) * last_row_bytes: the batch's last row). base -1: NULL. */
typedef struct gen_ptr {
    int base;
    int64_t off;
    int64_t kv_slot;
    int64_t last_row_bytes;
} gen_ptr;

typedef struct gen_call {
    int inst;  /* index into gen_program.k */
    bool sync; /* a barrier after it: a later call (before the next barrier)
                  reads or writes what it writes, or writes what it reads */
    int np;
    gen_ptr p[GEN_CALL_PTRS];
    /* A second phase (CPU entry points): where rt[phase_rt] > phase_above,
     * a barrier, then the same call again with p[phase_to] = p[phase_from]
     * (non-NULL: the template's second phase; e.g. decode attention's merge
     * of its chunks). phase_rt < 0: none. */
    int phase_rt, phase_from, phase_to;
    int64_t phase_above;
} gen_call;

typedef struct gen_program {
    gen_kinst *k; /* the distinct instances, shared by both modes */
    int nk, capk;
    gen_call *c[GEN_MODES];
    int nc[GEN_MODES], capc[GEN_MODES];
} gen_program;

kg_status gen_lower(const gen_graph *gr, gen_program *pg);
/* The whole front of the pipeline (gen/model.c): arch, passes, lowering
 * (n_batch 0: 128; encoders: n_batch sequences, 0: 32, of max_len tokens, 0:
 * the model's maximum; nofuse: the fusion rules left out, see gen_pass_fuse).
 * KGEN_DEBUG=1 prints the graph after every pass. */
kg_status gen_model_plan(const struct gen_source *src, int n_batch, int max_len, const char *nofuse,
                         const gen_knobs *knobs, gen_graph *gr,
                         gen_program *pg);
void gen_program_free(gen_program *pg);
/* The objects of every instance and of kgm_gen_decode / kgm_gen_prefill:
 * the instances are split into n_shards modules (balanced by a cost
 * estimate) compiled in parallel threads, each with its own LLVM context.
 * objs[0..n_shards-1] are malloc'd (the rest NULL). */
#define GEN_MAX_SHARDS 16
kg_status gen_program_compile(const gen_program *pg, const gen_target *t, int n_shards, void **objs, size_t *sizes);

#endif
