/*
 * source.h — the model-source interface: everything the front end (the
 * architecture builders, the tokenizer serializer, the weights writer)
 * reads from a model, whatever format it came in.
 *
 * Names are GGUF's, the vocabulary llama.cpp's converters established:
 * metadata keys ("general.architecture", "ARCH.block_count", ...) and tensor
 * names ("blk.L.attn_q.weight", ...). A source in another format (a Hugging
 * Face directory: config.json + safetensors, "(4 of 8)") maps its own names
 * to these, so nothing after this interface knows which format a model came
 * from. Values are kg_value (typed scalars, strings, arrays) and tensors
 * kg_tensor (type, shape, bytes in memory), both from kgen.h.
 *
 * Implementations: source.c (a GGUF file), source_hf.c (a Hugging Face
 * directory: config.json, safetensors, tokenizer.json), source_quant.c
 * (another source with some tensors quantized: `--quant`, gen/quant.h).
 * The metadata helpers below (gen_src_*) are shared by every builder.
 */
#ifndef KGEN_SOURCE_H
#define KGEN_SOURCE_H

#include "kgen.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gen_source gen_source;

typedef struct gen_source_vt {
    const char *format;                                              /* "GGUF", ... */
    const kg_value *(*find)(const gen_source *s, const char *key);    /* NULL if absent */
    const kg_tensor *(*tensor)(const gen_source *s, const char *name); /* NULL if absent */
    const kg_tensor *(*tensor_at)(const gen_source *s, uint64_t i);   /* every tensor, in order; NULL past the end */
    /* The tokenizer as the blob runtime/model/tokenizer.c reads (gen/tokdata.c
     * documents it); chat_template: a template name to use instead of the
     * model's (NULL: the model's). *blob is malloc'd. */
    kg_status (*tokdata)(const gen_source *s, const char *chat_template, void **blob, size_t *size);
    void (*close)(gen_source *s);
} gen_source_vt;

struct gen_source {
    const gen_source_vt *vt;
    const char *name; /* for messages: the path as given */
    void *impl;
};

/* Opens the model at path: a GGUF file, or a Hugging Face directory. Errors name the path. */
kg_status gen_source_open(const char *path, gen_source **out);
/* A Hugging Face directory (source_hf.c). */
kg_status gen_source_hf(const char *dir, gen_source **out);
void gen_source_close(gen_source *s);

/* A GGUF already open (the caller keeps owning g). */
kg_status gen_source_gguf(const kg_gguf *g, gen_source **out);

static inline const kg_value *gen_src_find(const gen_source *s, const char *key) { return s->vt->find(s, key); }
static inline const kg_tensor *gen_src_tensor(const gen_source *s, const char *name) { return s->vt->tensor(s, name); }

/* ── metadata helpers: each error names the source and the key ──
 * i64: any integer or bool; f64: any number; str: a string; bool: a bool.
 * required = false: an absent key gives dflt (KG_OK). */
kg_status gen_src_i64(const gen_source *s, const char *key, bool required, int64_t dflt, int64_t *out);
kg_status gen_src_f64(const gen_source *s, const char *key, bool required, double dflt, double *out);
kg_status gen_src_str(const gen_source *s, const char *key, bool required, kg_str *out); /* absent: {NULL, 0} */
kg_status gen_src_bool(const gen_source *s, const char *key, bool dflt, bool *out);

#endif
