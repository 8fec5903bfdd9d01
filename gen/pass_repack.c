/*
 * pass_repack.c — lay out the weights blob: every weight the live graph
 * reads, in the layout its kernel wants, at a 64-byte aligned offset.
 *
 * Layouts today: GGUF's own rows, with the rows of several tensors
 * concatenated where pass_fuse merged products (the Q/K/V weights become
 * one matrix of n_q + n_k + n_v rows). The blob is written once, at compile
 * time (gen_repack_write), and mapped as is at run time.
 *
 * Requires: the final set of live nodes (after pass_fuse), each weight's
 * parts and row bytes. Invalidates: nothing; sets every read weight's
 * off/size and gr->weight_bytes (unread weights get size 0: not written).
 */
#include "graph.h"
#include "internal.h"
#include "source.h"

#include <errno.h>
#include <string.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#define WALIGN 64

kg_status gen_pass_repack(gen_graph *gr)
{
    uint64_t off = 0;
    for (int i = 0; i < gr->nt; i++) gr->t[i].size = 0;
    for (int i = 0; i < gr->nn; i++)
        for (int k = 0; k < GEN_IN_MAX; k++) {
            int id = gr->n[i].in[k];
            if (id < 0 || gr->t[id].kind != GEN_T_WEIGHT || gr->t[id].size) continue;
            gen_tensor *t = &gr->t[id];
            uint64_t sz = 0;
            for (int p = 0; p < t->n_parts; p++) sz += t->parts[p]->n_bytes;
            if (sz != t->row_bytes * (uint64_t)t->rows)
                return kg_err(KG_ERR_FORMAT, "%s: tensor %s: %llu bytes, expected %llu", gr->src->name, t->name,
                              (unsigned long long)sz, (unsigned long long)(t->row_bytes * (uint64_t)t->rows));
            off = (off + WALIGN - 1) / WALIGN * WALIGN;
            t->off = off;
            t->size = sz;
            off += sz;
        }
    gr->weight_bytes = (off + WALIGN - 1) / WALIGN * WALIGN;
    return KG_OK;
}

kg_status gen_repack_write(const gen_graph *gr, FILE *f, const char *path, char hash_hex[33])
{
    /* f NULL: the hash only */
    XXH3_state_t *h = XXH3_createState();
    if (!h) return kg_err(KG_ERR_NOMEM, "out of memory");
    XXH3_128bits_reset(h);
    static const char zeros[WALIGN];
    uint64_t at = 0;
    kg_status st = KG_OK;
    /* tensors in offset order (they were placed in first-use order) */
    for (uint64_t next = 0; st == KG_OK;) {
        int best = -1;
        for (int i = 0; i < gr->nt; i++)
            if (gr->t[i].kind == GEN_T_WEIGHT && gr->t[i].size && gr->t[i].off >= next &&
                (best < 0 || gr->t[i].off < gr->t[best].off))
                best = i;
        if (best < 0) break;
        const gen_tensor *t = &gr->t[best];
        while (at < t->off && st == KG_OK) {
            size_t n = t->off - at < WALIGN ? (size_t)(t->off - at) : WALIGN;
            if (f && fwrite(zeros, 1, n, f) != n) st = kg_err(KG_ERR_IO, "%s: write failed: %s", path, strerror(errno));
            XXH3_128bits_update(h, zeros, n);
            at += n;
        }
        for (int p = 0; p < t->n_parts && st == KG_OK; p++) {
            const kg_tensor *src = t->parts[p];
            if (f && fwrite(src->data, 1, src->n_bytes, f) != src->n_bytes)
                st = kg_err(KG_ERR_IO, "%s: write failed: %s", path, strerror(errno));
            XXH3_128bits_update(h, src->data, src->n_bytes);
            at += src->n_bytes;
        }
        next = t->off + 1;
    }
    while (st == KG_OK && at < gr->weight_bytes) {
        size_t n = gr->weight_bytes - at < WALIGN ? (size_t)(gr->weight_bytes - at) : WALIGN;
        if (f && fwrite(zeros, 1, n, f) != n) st = kg_err(KG_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        XXH3_128bits_update(h, zeros, n);
        at += n;
    }
    XXH128_hash_t d = XXH3_128bits_digest(h);
    XXH3_freeState(h);
    kg_key_hex((kg_key){d.high64, d.low64}, hash_hex);
    return st;
}
