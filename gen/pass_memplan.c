/*
 * pass_memplan.c — one workspace arena for all activations and inputs, with
 * offsets planned at compile time: tensors whose lifetimes (first to last
 * live node using them) do not overlap share memory. First fit, in order of
 * first use, 64-byte aligned (a cache line: no two threads' rows share one).
 * Token ids, positions and the logits live for the whole step.
 *
 * Requires: the final live nodes in execution order (after pass_fuse; node
 * order is what liveness means). Invalidates: nothing; sets first/last,
 * off and size of every activation and input, and gr->ws_bytes. Tensors
 * that share memory are ordered by the nodes, not by barriers: lower.c's
 * barrier placement compares these offsets, so a reuse is never raced.
 */
#include "graph.h"
#include "internal.h"

#include <stdlib.h>

#define ALIGN 64

kg_status gen_pass_memplan(gen_graph *gr)
{
    gen_graph_liveness(gr);
    int *placed = malloc((size_t)(gr->nt ? gr->nt : 1) * sizeof *placed), np = 0;
    if (!placed) return kg_err(KG_ERR_NOMEM, "out of memory");
    uint64_t top = 0;
    for (int i = 0; i < gr->nt; i++) {
        gen_tensor *t = &gr->t[i];
        if (t->kind != GEN_T_ACT && t->kind != GEN_T_INPUT) continue;
        if (t->first < 0 && i != gr->logits) continue; /* unused */
        if (t->kind == GEN_T_INPUT || i == gr->logits) t->first = 0, t->last = gr->nn;
        uint64_t rows = t->per_token ? (uint64_t)gr->hp.n_batch : 1;
        t->size = (rows * t->row_bytes + ALIGN - 1) / ALIGN * ALIGN;
        /* the lowest offset clear of every placed tensor alive at the same time */
        uint64_t off = 0;
        for (bool moved = true; moved;) {
            moved = false;
            for (int k = 0; k < np; k++) {
                const gen_tensor *o = &gr->t[placed[k]];
                bool live = !(o->last < t->first || t->last < o->first);
                if (live && off < o->off + o->size && o->off < off + t->size) {
                    off = o->off + o->size;
                    moved = true;
                }
            }
        }
        t->off = off;
        placed[np++] = i;
        if (off + t->size > top) top = off + t->size;
    }
    free(placed);
    gr->ws_bytes = top ? top : ALIGN;
    return KG_OK;
}
