/*
 * tiny_llama.c — tiny synthetic llama GGUF files (tiny_llama.h).
 */
#include "tiny_llama.h"
#include "gguf_writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ALIGN 32

/* 41 merged letter pairs: 259 + 41 = 300 tokens */
static const char *const pairs[] = {"th", "he", "in", "er", "an", "re", "on", "at", "en", "nd", "ti",
                                    "es", "or", "te", "of", "ed", "is", "it", "al", "ar", "st", "to",
                                    "nt", "ng", "se", "ha", "as", "ou", "io", "le", "ve", "co", "me",
                                    "de", "hi", "ri", "ro", "ic", "ne", "ea", "ra"};
#define N_PAIRS (int)(sizeof pairs / sizeof *pairs)
#define N_SPECIAL 3
#define N_VOCAB (N_SPECIAL + 256 + N_PAIRS)

static const char CHAT_TEMPLATE[] =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a tiny test model.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

int tl_n_vocab(void) { return N_VOCAB; }

void tl_defaults(tl_params *p)
{
    memset(p, 0, sizeof *p);
    p->arch = "llama";
    p->n_layer = 2;
    p->n_embd = 64;
    p->n_head = 4;
    p->n_head_kv = 2;
    p->n_ff = 128;
    p->n_ctx = 256;
    p->wtype = KG_TYPE_Q8_0;
    p->seed = 1;
    p->edit_type = -1;
}

static uint64_t rnd(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float unif(uint64_t *s) { return (float)(rnd(s) >> 40) / (float)(1u << 24); } /* [0, 1) */

/* f16 bits of a positive normal float (enough for scales) */
static uint16_t f16_bits(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    int e = (int)((x >> 23) & 0xff) - 127 + 15;
    return (uint16_t)((e << 10) | ((x & 0x7fffff) >> 13));
}

/* GPT-2's byte-to-unicode symbol of byte b, as UTF-8 (NUL-terminated) */
static void byte_symbol(int b, char out[4])
{
    unsigned cp;
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
        cp = (unsigned)b;
    } else {
        unsigned n = 0; /* index among the unprintable bytes below b */
        for (int c = 0; c < b; c++)
            if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))) n++;
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp, out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
    }
}

typedef struct tensor_spec {
    char name[64];
    uint32_t n_dims, type;
    uint64_t ne[2];
    bool norm;
} tensor_spec;

/* The tensors of p (mutations applied); returns the count. */
static int tensor_list(const tl_params *p, tensor_spec *t, int cap)
{
    const int64_t E = p->n_embd, F = p->n_ff, D = p->n_head > 0 ? E / p->n_head : E, KV = p->n_head_kv * D;
    int n = 0;
#define ADD(nm, d, e0, e1, ty, isnorm)                                                \
    do {                                                                              \
        if (n < cap) {                                                                \
            snprintf(t[n].name, sizeof t[n].name, "%s", nm);                          \
            t[n].n_dims = d, t[n].ne[0] = (uint64_t)(e0), t[n].ne[1] = (uint64_t)(e1); \
            t[n].type = ty, t[n].norm = isnorm;                                       \
        }                                                                             \
        n++;                                                                          \
    } while (0)
    const int64_t NV = p->n_vocab > N_VOCAB ? p->n_vocab : N_VOCAB;
    ADD("token_embd.weight", 2, E, NV, p->wtype, false);
    if (p->untied) ADD("output.weight", 2, E, NV, p->wtype, false);
    ADD("output_norm.weight", 1, E, 1, KG_TYPE_F32, true);
    for (int64_t l = 0; l < p->n_layer; l++) {
        char nm[64];
#define LAYER(suffix, d, e0, e1, ty, isnorm)                                 \
    snprintf(nm, sizeof nm, "blk.%lld.%s.weight", (long long)l, suffix);    \
    ADD(nm, d, e0, e1, ty, isnorm);
        LAYER("attn_norm", 1, E, 1, KG_TYPE_F32, true)
        LAYER("attn_q", 2, E, E, p->wtype, false)
        LAYER("attn_k", 2, E, KV, p->wtype, false)
        LAYER("attn_v", 2, E, KV, p->wtype, false)
        LAYER("attn_output", 2, E, E, p->wtype, false)
        LAYER("ffn_norm", 1, E, 1, KG_TYPE_F32, true)
        LAYER("ffn_gate", 2, E, F, p->wtype, false)
        LAYER("ffn_up", 2, E, F, p->wtype, false)
        LAYER("ffn_down", 2, F, E, p->wtype, false)
#undef LAYER
    }
#undef ADD
    if (n > cap) return -1;
    /* mutations */
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (p->omit_tensor && !strcmp(t[i].name, p->omit_tensor)) continue;
        if (p->edit_tensor && !strcmp(t[i].name, p->edit_tensor)) {
            if (p->edit_type >= 0) t[i].type = (uint32_t)p->edit_type;
            if (p->edit_ne1) {
                t[i].ne[1] = p->edit_ne1;
                if (t[i].n_dims < 2) t[i].n_dims = 2;
            }
        }
        t[m++] = t[i];
    }
    return m;
}

/* Tensor data: product weights are small random values with f16 scales at
 * the start of every block (Q8_0, Q4_0 and the other legacy block types);
 * norms are F32 near 1; any other type gets random bytes. */
static void tensor_data(const tensor_spec *t, uint64_t n_bytes, uint64_t *s, uint8_t *out)
{
    const kg_type_info *ti = kg_type_get(t->type);
    if (t->type == KG_TYPE_F32) {
        for (uint64_t i = 0; i + 4 <= n_bytes; i += 4) {
            float v = t->norm ? 1.0f + 0.2f * (unif(s) - 0.5f) : 0.1f * (unif(s) - 0.5f);
            memcpy(out + i, &v, 4);
        }
        return;
    }
    for (uint64_t i = 0; i < n_bytes; i++) out[i] = (uint8_t)rnd(s);
    if (!ti || ti->blck != 32) return; /* not a legacy block type: bytes only */
    for (uint64_t b = 0; b + ti->size <= n_bytes; b += ti->size) {
        float d = t->type == KG_TYPE_Q8_0 ? 0.001f + 0.002f * unif(s) : 0.015f + 0.03f * unif(s);
        uint16_t h = f16_bits(d);
        memcpy(out + b, &h, 2);
        if (t->type == KG_TYPE_Q8_0) /* int8 values in -127..127 */
            for (uint32_t j = 2; j < ti->size; j++)
                if (out[b + j] == 0x80) out[b + j] = 0x81;
    }
}

typedef struct kv {
    const char *key;
    tw_val v;
} kv;

bool tl_write(const tl_params *p, const char *path)
{
    /* vocabulary */
    static char sym[256][4];
    static char merged[N_PAIRS][3], merges[N_PAIRS][4];
    const int64_t nv = p->n_vocab > N_VOCAB ? p->n_vocab : N_VOCAB;
    tw_val merge_v[N_PAIRS], *tokens = calloc((size_t)nv, sizeof *tokens);
    int32_t *types = calloc((size_t)nv, sizeof *types);
    char(*unused)[32] = calloc((size_t)(nv - N_VOCAB + 1), sizeof *unused);
    if (!tokens || !types || !unused) {
        free(tokens), free(types), free(unused);
        return false;
    }
    for (int64_t i = N_VOCAB; i < nv; i++) {
        snprintf(unused[i - N_VOCAB], sizeof unused[0], "<unused%lld>", (long long)(i - N_VOCAB));
        tokens[i] = tw_cs(unused[i - N_VOCAB]);
        types[i] = 5;
    }
    static const char *const special[N_SPECIAL] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    for (int i = 0; i < N_SPECIAL; i++) tokens[i] = tw_cs(special[i]), types[i] = 3;
    for (int b = 0; b < 256; b++) {
        byte_symbol(b, sym[b]);
        tokens[N_SPECIAL + b] = tw_cs(sym[b]);
        types[N_SPECIAL + b] = 1;
    }
    for (int i = 0; i < N_PAIRS; i++) {
        snprintf(merged[i], sizeof merged[i], "%s", pairs[i]);
        snprintf(merges[i], sizeof merges[i], "%c %c", pairs[i][0], pairs[i][1]);
        tokens[N_SPECIAL + 256 + i] = tw_cs(merged[i]);
        types[N_SPECIAL + 256 + i] = 1;
        merge_v[i] = tw_cs(merges[i]);
    }

    /* metadata */
    char k[12][96];
    const char *a = p->arch;
    snprintf(k[0], sizeof k[0], "%s.block_count", a);
    snprintf(k[1], sizeof k[1], "%s.context_length", a);
    snprintf(k[2], sizeof k[2], "%s.embedding_length", a);
    snprintf(k[3], sizeof k[3], "%s.feed_forward_length", a);
    snprintf(k[4], sizeof k[4], "%s.attention.head_count", a);
    snprintf(k[5], sizeof k[5], "%s.attention.head_count_kv", a);
    snprintf(k[6], sizeof k[6], "%s.rope.freq_base", a);
    snprintf(k[7], sizeof k[7], "%s.attention.layer_norm_rms_epsilon", a);
    snprintf(k[8], sizeof k[8], "%s.rope.dimension_count", a);
    int64_t head_dim = p->n_head > 0 ? p->n_embd / p->n_head : p->n_embd;
    const kv kvs[] = {
        {"general.architecture", tw_cs(a)},
        {"general.name", tw_cs("tiny-llama")},
        {k[0], tw_int(KG_V_U32, p->n_layer)},
        {k[1], tw_int(KG_V_U32, p->n_ctx)},
        {k[2], tw_int(KG_V_U32, p->n_embd)},
        {k[3], tw_int(KG_V_U32, p->n_ff)},
        {k[4], tw_int(KG_V_U32, p->n_head)},
        {k[5], tw_int(KG_V_U32, p->n_head_kv)},
        {k[6], tw_f32(10000.0f)},
        {k[7], tw_f32(1e-5f)},
        {k[8], tw_int(KG_V_U32, head_dim)},
        {"tokenizer.ggml.model", tw_cs("gpt2")},
        {"tokenizer.ggml.pre", tw_cs("smollm")},
        {"tokenizer.ggml.tokens", tw_arr_of(KG_V_STRING, (uint64_t)nv, tokens)},
        {"tokenizer.ggml.token_type", tw_arr(KG_V_I32, (uint64_t)nv, types)},
        {"tokenizer.ggml.merges", tw_arr_of(KG_V_STRING, N_PAIRS, merge_v)},
        {"tokenizer.ggml.bos_token_id", tw_int(KG_V_U32, 1)},
        {"tokenizer.ggml.add_bos_token", tw_int(KG_V_BOOL, 1)}, /* written only with p->add_bos */
        {"tokenizer.ggml.eos_token_id", tw_int(KG_V_U32, 2)},
        {"tokenizer.ggml.padding_token_id", tw_int(KG_V_U32, 0)},
        {"tokenizer.chat_template", tw_cs(CHAT_TEMPLATE)},
    };

    /* tensors */
    enum { CAP = 3 + 9 * 64 };
    tensor_spec *ts = calloc(CAP, sizeof *ts);
    tw_tdesc *td = calloc(CAP, sizeof *td);
    int nt = ts && td ? tensor_list(p, ts, CAP) : -1;
    if (nt < 0) {
        free(ts), free(td), free(tokens), free(types), free(unused);
        return false;
    }
    for (int i = 0; i < nt; i++) {
        td[i].name = ts[i].name;
        td[i].n_dims = ts[i].n_dims;
        td[i].ne[0] = ts[i].ne[0];
        td[i].ne[1] = ts[i].ne[1];
        td[i].type = ts[i].type;
    }
    tw_layout(td, (size_t)nt, ALIGN);

    tw w;
    tw_init(&w);
    tw_header(&w, 3, 0, 0);
    for (size_t i = 0; i < sizeof kvs / sizeof *kvs; i++)
        if ((!p->omit_key || strcmp(kvs[i].key, p->omit_key)) &&
            (p->add_bos || strcmp(kvs[i].key, "tokenizer.ggml.add_bos_token")))
            tw_kv(&w, kvs[i].key, &kvs[i].v);
    tw_tensors(&w, td, (size_t)nt);
    tw_fix_counts(&w);
    tw_pad(&w, ALIGN);
    uint64_t s = p->seed * 0x9E3779B97F4A7C15ull + 12345, end = w.data_start;
    for (int i = 0; i < nt; i++)
        if (w.data_start + td[i].offset + td[i].n_bytes > end) end = w.data_start + td[i].offset + td[i].n_bytes;
    for (int i = 0; i < nt && !p->sparse; i++) {
        size_t at = w.data_start + td[i].offset;
        if (at > w.len) tw_zeros(&w, at - w.len);
        uint8_t *d = malloc(td[i].n_bytes ? td[i].n_bytes : 1);
        if (!d) {
            tw_free(&w);
            free(ts), free(td), free(tokens), free(types), free(unused);
            return false;
        }
        tensor_data(&ts[i], td[i].n_bytes, &s, d);
        tw_raw(&w, d, td[i].n_bytes);
        free(d);
    }
    bool ok = tw_save(w.buf, w.len, path);
    if (ok && p->sparse) ok = truncate(path, (off_t)end) == 0; /* the data: a hole */
    tw_free(&w);
    free(ts), free(td), free(tokens), free(types), free(unused);
    return ok;
}
