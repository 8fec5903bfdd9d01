/*
 * source.c — the model-source interface (source.h): opening a model by its
 * format, the metadata helpers every builder shares, and the first
 * implementation, a GGUF file (tensors and keys as the file names them; the
 * tokenizer serialized by gen/tokdata.c).
 */
#include "gen.h"
#include "internal.h"
#include "source.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ─────────────── metadata helpers ─────────────── */

static bool is_signed(kg_vtype t) { return t == KG_V_I8 || t == KG_V_I16 || t == KG_V_I32 || t == KG_V_I64; }
static bool is_unsigned(kg_vtype t)
{
    return t == KG_V_U8 || t == KG_V_U16 || t == KG_V_U32 || t == KG_V_U64 || t == KG_V_BOOL;
}

static kg_status absent(const gen_source *s, const char *key)
{
    return kg_err(KG_ERR_FORMAT, "%s: metadata key %s is missing", s->name, key);
}

static kg_status wrong(const gen_source *s, const char *key, const kg_value *v, const char *want)
{
    return kg_err(KG_ERR_FORMAT, "%s: metadata key %s has type %s (expected %s)", s->name, key, kg_vtype_name(v->type),
                  want);
}

kg_status gen_src_i64(const gen_source *s, const char *key, bool required, int64_t dflt, int64_t *out)
{
    const kg_value *v = gen_src_find(s, key);
    *out = dflt;
    if (!v) return required ? absent(s, key) : KG_OK;
    if (is_signed(v->type)) *out = v->i;
    else if (is_unsigned(v->type) && v->u <= INT64_MAX) *out = (int64_t)v->u;
    else if (is_unsigned(v->type))
        return kg_err(KG_ERR_FORMAT, "%s: metadata key %s is too large (%" PRIu64 ")", s->name, key, v->u);
    else return wrong(s, key, v, "an integer");
    return KG_OK;
}

kg_status gen_src_f64(const gen_source *s, const char *key, bool required, double dflt, double *out)
{
    const kg_value *v = gen_src_find(s, key);
    *out = dflt;
    if (!v) return required ? absent(s, key) : KG_OK;
    if (v->type == KG_V_F32 || v->type == KG_V_F64) *out = v->f;
    else if (is_signed(v->type)) *out = (double)v->i;
    else if (is_unsigned(v->type) && v->type != KG_V_BOOL) *out = (double)v->u;
    else return wrong(s, key, v, "a number");
    return KG_OK;
}

kg_status gen_src_str(const gen_source *s, const char *key, bool required, kg_str *out)
{
    const kg_value *v = gen_src_find(s, key);
    *out = (kg_str){0};
    if (!v) return required ? absent(s, key) : KG_OK;
    if (v->type != KG_V_STRING) return wrong(s, key, v, "a string");
    *out = v->str;
    return KG_OK;
}

kg_status gen_src_bool(const gen_source *s, const char *key, bool dflt, bool *out)
{
    const kg_value *v = gen_src_find(s, key);
    *out = dflt;
    if (!v) return KG_OK;
    if (v->type != KG_V_BOOL) return wrong(s, key, v, "a bool");
    *out = v->u != 0;
    return KG_OK;
}

/* ─────────────── GGUF ─────────────── */

typedef struct {
    kg_gguf *owned; /* NULL when the caller owns the file */
    const kg_gguf *g;
} gguf_src;

static const kg_gguf *gg(const gen_source *s) { return ((const gguf_src *)s->impl)->g; }

static const kg_value *gguf_find(const gen_source *s, const char *key) { return kg_gguf_find(gg(s), key); }
static const kg_tensor *gguf_tensor(const gen_source *s, const char *name) { return kg_gguf_find_tensor(gg(s), name); }
static const kg_tensor *gguf_tensor_at(const gen_source *s, uint64_t i) { return kg_gguf_tensor(gg(s), i); }
static kg_status gguf_tokdata(const gen_source *s, const char *chat_template, void **blob, size_t *size)
{
    return gen_tokdata(gg(s), chat_template, blob, size);
}
static void gguf_close(gen_source *s)
{
    gguf_src *g = s->impl;
    if (g->owned) kg_gguf_close(g->owned);
    free(g);
    free(s);
}

static const gen_source_vt gguf_vt = {"GGUF", gguf_find, gguf_tensor, gguf_tensor_at, gguf_tokdata, gguf_close};

static kg_status wrap(kg_gguf *owned, const kg_gguf *g, gen_source **out)
{
    gen_source *s = calloc(1, sizeof *s);
    gguf_src *impl = calloc(1, sizeof *impl);
    if (!s || !impl) {
        free(s), free(impl);
        if (owned) kg_gguf_close(owned);
        return kg_err(KG_ERR_NOMEM, "out of memory");
    }
    impl->owned = owned, impl->g = g;
    s->vt = &gguf_vt, s->impl = impl, s->name = kg_gguf_name(g);
    *out = s;
    return KG_OK;
}

kg_status gen_source_gguf(const kg_gguf *g, gen_source **out) { return wrap(NULL, g, out); }

kg_status gen_source_open(const char *path, gen_source **out)
{
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return gen_source_hf(path, out);
    size_t n = strlen(path);
    if (n > 12 && !strcmp(path + n - 12, ".safetensors"))
        return kg_err(KG_ERR_ARG, "%s: a safetensors file holds weights without the model's configuration: give the "
                      "directory that has it (config.json)", path);
    kg_gguf *g;
    kg_status st = kg_gguf_open(path, &g);
    return st ? st : wrap(g, g, out);
}

void gen_source_close(gen_source *s)
{
    if (s) s->vt->close(s);
}
