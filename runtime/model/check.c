/*
 * check.c — kgr_model_check: every check on a compiled model's metadata
 * (descriptor and tokenizer blob) that kgm_open makes before it runs
 * anything. `kgen compile` runs the same function on what it is about to
 * write (gen/model.c), so that a model it writes can open: one function,
 * so the two can never disagree. Checks of the machine (CPU features, the
 * CUDA driver), of the caller's parameters and of the weights file stay in
 * kgm_open.
 */
#include "desc.h"
#include "rt.h"

#include <string.h>

/* a fixed-size string field of the descriptor ends inside its array */
#define TERMINATED(field) (memchr((field), 0, sizeof(field)) != NULL)

int kgr_model_check(const kgm_desc *d, const void *tok_blob, size_t tok_size, kgr_tok **tok_out, char *err,
                    size_t errcap)
{
    if (tok_out) *tok_out = NULL;
    if (d->magic != KGM_DESC_MAGIC || d->version != KGM_DESC_VERSION)
        return kgr_msg(err, errcap, "the model's descriptor is not one this runtime reads (version %u, expected %u)",
                       d->version, KGM_DESC_VERSION);
    if (d->backend != KGM_BACKEND_CPU && d->backend != KGM_BACKEND_CUDA)
        return kgr_msg(err, errcap, "the model's code is for an unknown backend (%d)", d->backend);
    if (!TERMINATED(d->arch) || !TERMINATED(d->name) || !TERMINATED(d->weight_type) || !TERMINATED(d->target_cpu) ||
        !TERMINATED(d->content_hash) || !TERMINATED(d->weights_hash) || !TERMINATED(d->weights_file))
        return kgr_msg(err, errcap, "the model's descriptor has an unterminated string");
    if (d->n_layer < 1 || d->n_embd < 1 || d->n_head < 1 || d->n_head_kv < 1 || d->head_dim < 1 || d->n_vocab < 1 ||
        d->n_ctx_train < 1 || d->n_batch < 1 ||
        (int64_t)d->n_kv_tensors != (d->encoder ? 0 : 2 * (int64_t)d->n_layer) ||
        (d->kv_elem_bytes != 2 && d->kv_elem_bytes != 4 && !(d->kv_elem_bytes == 1 && d->head_dim % 32 == 0)))
        return kgr_msg(err, errcap,
                       "the model's descriptor has impossible sizes (layers %d, embedding %d, heads %d/%d of %d, "
                       "vocabulary %d, context %d, batch %d)",
                       d->n_layer, d->n_embd, d->n_head, d->n_head_kv, d->head_dim, d->n_vocab, d->n_ctx_train,
                       d->n_batch);
    if (d->encoder != 0 && d->encoder != 1)
        return kgr_msg(err, errcap, "the model's descriptor has a bad kind (%d)", d->encoder);
    if (d->encoder && (d->n_seq < 1 || d->max_len < 2 || (int64_t)d->n_seq * d->max_len != d->n_batch ||
                       d->max_len > d->n_ctx_train || d->pool < 0 || d->backend != KGM_BACKEND_CPU))
        return kgr_msg(err, errcap, "the model's descriptor has impossible encoder shapes (%d sequences of %d, batch %d)",
                       d->n_seq, d->max_len, d->n_batch);
    /* inputs: ids (and positions, or an encoder's lengths); output: logits or pooled vectors */
    const uint64_t ids = (uint64_t)d->n_batch * sizeof(int32_t),
                   pos = d->encoder ? (uint64_t)d->n_seq * sizeof(int32_t) : ids,
                   logits = d->encoder ? (uint64_t)d->n_seq * (uint64_t)d->n_embd * sizeof(float)
                                       : (uint64_t)d->n_vocab * sizeof(float);
    if (d->ws_ids > d->ws_bytes || d->ws_bytes - d->ws_ids < ids || d->ws_pos > d->ws_bytes ||
        d->ws_bytes - d->ws_pos < pos || d->ws_logits > d->ws_bytes || d->ws_bytes - d->ws_logits < logits)
        return kgr_msg(err, errcap, "the model's workspace plan does not hold its inputs and logits");
    kgr_tok *t;
    if (kgr_tok_init(&t, tok_blob, tok_size, err, errcap)) return -1;
    if (kgr_tok_n_vocab(t) != d->n_vocab) {
        kgr_msg(err, errcap,
                "the tokenizer has %d tokens but the model's embedding and output have %d rows: every token id must "
                "have a row",
                kgr_tok_n_vocab(t), d->n_vocab);
        kgr_tok_free(t);
        return -1;
    }
    if (tok_out) *tok_out = t;
    else kgr_tok_free(t);
    return 0;
}

uint64_t kgr_kv_row_bytes(const kgm_desc *d)
{
    return d->kv_elem_bytes == 1 ? (uint64_t)d->head_dim / 32 * 34 : (uint64_t)d->head_dim * (uint64_t)d->kv_elem_bytes;
}
