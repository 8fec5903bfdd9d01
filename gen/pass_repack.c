/*
 * pass_repack.c — lay out the weights blob: every weight the live graph
 * reads, in the layout its kernel wants, at a 64-byte aligned offset.
 *
 * A weight's rows are GGUF's own, with the rows of several tensors
 * concatenated where pass_fuse merged products (the Q/K/V weights become
 * one matrix of n_q + n_k + n_v rows), then rewritten into a layout
 * (layout.h): the graph's layout knob (gr->layout) for a weight it fits
 * that only products (as W or W_up, with q8 activations for the quantized
 * types) and embedding lookups read, a product's two weights taking one
 * layout (F16, BF16 weights: x16b in place of x16 under the ftile knob's
 * bf16, gr->ftile_bf16); GGUF's rows for the rest. The blob is written once, at compile
 * time (gen_repack_write), and mapped as is at run time.
 *
 * Requires: the final set of live nodes (after pass_fuse), each weight's
 * parts and row bytes, gr->layout, gr->ftile_bf16. Invalidates: nothing; sets every read
 * weight's layout, off/size and gr->weight_bytes (unread weights get size 0:
 * not written).
 */
#include "graph.h"
#include "internal.h"
#include "layout.h"
#include "source.h"

#include "templates/cpu/kernel.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#define WALIGN 64

/* Do the layout kernels read weight id wherever it is read: products
 * taking it as W or W_up (quantized weights: with q8 activations; float
 * weights have f32 ones only) and embedding lookups of its rows (kgt_embed
 * reads the layouts too: a tied output's table)? */
static bool readers_take_layouts(const gen_graph *gr, int id)
{
    int rd[64];
    const int n = gen_graph_readers(gr, id, rd, 64);
    const int type = gr->t[id].type;
    const bool fw = type == KGT_F32 || type == KGT_F16 || type == KGT_BF16;
    if (n < 1 || n > 64) return false;
    for (int i = 0; i < n; i++) {
        const gen_node *nd = &gr->n[rd[i]];
        if (nd->op == GEN_OP_EMBED && nd->in[0] == id) continue;
        if (nd->op != GEN_OP_MATMUL || (!fw && gr->t[nd->in[1]].type != GEN_ACT_Q8)) return false;
        for (int k = 0; k < GEN_IN_MAX; k++)
            if (nd->in[k] == id && k != 0 && k != 2) return false;
    }
    return true;
}

/* every weight's layout: the knob's where it fits, then rows for both
 * weights of a product whose W and W_up disagree, until none do */
static void choose_layouts(gen_graph *gr)
{
    for (int i = 0; i < gr->nt; i++) {
        gen_tensor *t = &gr->t[i];
        const int want = gr->layout == KGT_LAYOUT_X16 && gr->ftile_bf16 && (t->type == KGT_F16 || t->type == KGT_BF16)
                             ? KGT_LAYOUT_X16B
                             : gr->layout;
        t->layout = KGT_LAYOUT_ROWS;
        if (t->kind == GEN_T_WEIGHT && want != KGT_LAYOUT_ROWS && gen_layout_fits(want, t->type, t->rows, t->cols) &&
            readers_take_layouts(gr, i))
            t->layout = want;
    }
    for (bool changed = true; changed;) {
        changed = false;
        for (int i = 0; i < gr->nn; i++) {
            const gen_node *n = &gr->n[i];
            if (n->dead || n->op != GEN_OP_MATMUL || n->in[2] < 0) continue;
            gen_tensor *w = &gr->t[n->in[0]], *u = &gr->t[n->in[2]];
            if (w->layout != u->layout) w->layout = u->layout = KGT_LAYOUT_ROWS, changed = true;
        }
    }
}

kg_status gen_pass_repack(gen_graph *gr)
{
    uint64_t off = 0;
    choose_layouts(gr);
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

/* Row r of weight t: in the part that holds it (parts are whole rows). */
static const uint8_t *row_of(const gen_tensor *t, int64_t r)
{
    for (int p = 0; p < t->n_parts; p++) {
        const int64_t n = (int64_t)(t->parts[p]->n_bytes / t->row_bytes);
        if (r < n) return (const uint8_t *)t->parts[p]->data + (uint64_t)r * t->row_bytes;
        r -= n;
    }
    return NULL; /* not reached: the parts' bytes are rows x row_bytes (gen_pass_repack) */
}

/* t rewritten into its layout, group by group, to f (NULL: hashed only) */
static kg_status write_rewritten(const gen_tensor *t, FILE *f, const char *path, XXH3_state_t *h, uint64_t *at)
{
    const int g = gen_layout_group(t->layout);
    const uint64_t gb = (uint64_t)g * t->row_bytes;
    uint8_t *buf = malloc(gb);
    if (!buf) return kg_err(KG_ERR_NOMEM, "out of memory (%llu bytes)", (unsigned long long)gb);
    kg_status st = KG_OK;
    for (int64_t r0 = 0; r0 < t->rows && st == KG_OK; r0 += g) {
        const uint8_t *rows[16];
        for (int i = 0; i < g; i++) rows[i] = row_of(t, r0 + i);
        gen_layout_write(t->layout, t->type, t->cols, rows, t->row_bytes, buf);
        if (f && fwrite(buf, 1, gb, f) != gb) st = kg_err(KG_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        XXH3_128bits_update(h, buf, gb);
        *at += gb;
    }
    free(buf);
    return st;
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
        if (t->layout == KGT_LAYOUT_ROWS)
            for (int p = 0; p < t->n_parts && st == KG_OK; p++) {
                const kg_tensor *src = t->parts[p];
                if (f && fwrite(src->data, 1, src->n_bytes, f) != src->n_bytes)
                    st = kg_err(KG_ERR_IO, "%s: write failed: %s", path, strerror(errno));
                XXH3_128bits_update(h, src->data, src->n_bytes);
                at += src->n_bytes;
            }
        else
            st = write_rewritten(t, f, path, h, &at);
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
