/*
 * quant.c — kgen's quantization schemes (gen/quant.h): their names, the
 * spec the CLI builds from --quant and --quant-tensor, and the row
 * quantizers.
 *
 * The quantizers are ggml's reference ones (ggml-quants.c's
 * quantize_row_*_ref), which the `gguf` package's numpy quantizers
 * reproduce bit for bit; tests/ref/quant_ref.py checks kgen's output
 * against those. Per block of 32 (d stored as f16, rounded to nearest even):
 *
 *   Q8_0  d = amax / 127, q = roundf(x / d)                  (w8g32)
 *   Q4_0  d = m / -8 (m: the value of largest magnitude),
 *         q = min(15, trunc(x / d + 8.5))                    (w4g32)
 *   Q4_1  d = (max - min) / 15, q = min(15, trunc((x - min) / d + 0.5)),
 *         the minimum stored too                            (w4g32a)
 *   Q5_0, Q5_1   the same with 16 / 31 levels              (w5g32, w5g32a)
 *
 * "x / d" is x * (1 / d) in float, as the reference computes it.
 */
#include "quant.h"

#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    int type;
} schemes[] = {
    {"w8g32", KG_TYPE_Q8_0}, {"w4g32", KG_TYPE_Q4_0}, {"w4g32a", KG_TYPE_Q4_1}, {"w5g32", KG_TYPE_Q5_0},
    {"w5g32a", KG_TYPE_Q5_1}, {"f16", KG_TYPE_F16}, {"none", -1},
};

int gen_quant_scheme_type(const char *name)
{
    for (size_t i = 0; i < sizeof schemes / sizeof *schemes; i++)
        if (!strcmp(schemes[i].name, name)) return schemes[i].type;
    return -2;
}

kg_status gen_quant_parse(const char *spec, char **buf, gen_quant_rule **rules, int *n)
{
    char *copy = strdup(spec ? spec : ""), *save = NULL;
    gen_quant_rule *r = calloc(strlen(copy) / 2 + 2, sizeof *r); /* items are 2 bytes apart at least */
    *buf = NULL, *rules = NULL, *n = 0;
    kg_status st = copy && r ? KG_OK : kg_err(KG_ERR_NOMEM, "out of memory");
    int i = 0;
    for (char *it = st ? NULL : strtok_r(copy, ";", &save); it && !st; it = strtok_r(NULL, ";", &save), i++) {
        char *eq = i ? strrchr(it, '=') : NULL;
        const char *scheme = eq ? eq + 1 : it;
        if (i && (!eq || eq == it)) {
            st = kg_err(KG_ERR_ARG, "--quant-tensor '%s': expected PATTERN=SCHEME", it);
        } else if (gen_quant_scheme_type(scheme) == -2) {
            st = kg_err(KG_ERR_ARG, "%s '%s': unknown scheme '%s' (known: " GEN_QUANT_NAMES ")",
                        i ? "--quant-tensor" : "--quant", it, scheme);
        } else {
            if (eq) *eq = 0;
            r[i] = (gen_quant_rule){i ? it : NULL, scheme, gen_quant_scheme_type(scheme), 0};
        }
    }
    if (st || i == 0) {
        free(copy), free(r);
        return st ? st : kg_err(KG_ERR_ARG, "--quant: an empty spec");
    }
    *buf = copy, *rules = r, *n = i;
    return KG_OK;
}

kg_status gen_quant_check(const char *spec)
{
    if (!spec || !*spec) return KG_OK;
    char *buf;
    gen_quant_rule *rules;
    int n;
    kg_status st = gen_quant_parse(spec, &buf, &rules, &n);
    if (!st) free(buf), free(rules);
    return st;
}

/* ─────────────── row quantizers ─────────────── */

static void put_f16(uint8_t *p, float v)
{
    _Float16 h = (_Float16)v;
    memcpy(p, &h, 2);
}

/* the 32 quants q[] (each below 2^bits) as nibbles: q[j] low, q[j+16] high;
 * bit 4 of each into the 32-bit qh (Q5's) */
static void pack_nibbles(const uint8_t q[32], uint8_t *qs, uint8_t *qh)
{
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
    for (int j = 0; j < 32; j++) h |= (uint32_t)(q[j] >> 4 & 1) << j;
    if (qh) memcpy(qh, &h, 4);
}

/* a symmetric block (Q4_0, Q5_0): `levels` 8 or 16 */
static void block_sym(const float *x, int levels, uint8_t *b)
{
    float m = x[0], am = fabsf(x[0]); /* the first of the largest magnitude, as numpy's argmax */
    for (int j = 1; j < 32; j++)
        if (fabsf(x[j]) > am) am = fabsf(x[j]), m = x[j];
    const float d = m / (float)-levels, id = d != 0 ? 1.0f / d : 0.0f;
    uint8_t q[32];
    for (int j = 0; j < 32; j++) {
        const float v = truncf(x[j] * id + ((float)levels + 0.5f));
        q[j] = (uint8_t)(v > 2 * levels - 1 ? 2 * levels - 1 : v < 0 ? 0 : v);
    }
    put_f16(b, d);
    if (levels == 8) pack_nibbles(q, b + 2, NULL);
    else pack_nibbles(q, b + 6, b + 2);
}

/* a block with a minimum (Q4_1, Q5_1): `top` 15 or 31 */
static void block_min(const float *x, int top, uint8_t *b)
{
    float mn = x[0], mx = x[0];
    for (int j = 1; j < 32; j++) mn = x[j] < mn ? x[j] : mn, mx = x[j] > mx ? x[j] : mx;
    const float d = (mx - mn) / (float)top, id = d != 0 ? 1.0f / d : 0.0f;
    uint8_t q[32];
    for (int j = 0; j < 32; j++) {
        const float v = truncf((x[j] - mn) * id + 0.5f);
        q[j] = (uint8_t)(v > top ? top : v < 0 ? 0 : v);
    }
    put_f16(b, d);
    put_f16(b + 2, mn);
    if (top == 15) pack_nibbles(q, b + 4, NULL);
    else pack_nibbles(q, b + 8, b + 4);
}

static void block_q8_0(const float *x, uint8_t *b)
{
    float am = 0;
    for (int j = 0; j < 32; j++) am = fabsf(x[j]) > am ? fabsf(x[j]) : am;
    const float d = am / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    put_f16(b, d);
    for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

bool gen_quant_row(int type, const float *x, int64_t k, void *out)
{
    for (int64_t e = 0; e < k; e++)
        if (!isfinite(x[e])) return false;
    uint8_t *o = out;
    if (type == KG_TYPE_F16) {
        for (int64_t e = 0; e < k; e++) put_f16(o + 2 * e, x[e]);
        return true;
    }
    const kg_type_info *ti = kg_type_get((uint32_t)type);
    for (int64_t b = 0; b < k / 32; b++, x += 32, o += ti->size) {
        switch (type) {
        case KG_TYPE_Q8_0: block_q8_0(x, o); break;
        case KG_TYPE_Q4_0: block_sym(x, 8, o); break;
        case KG_TYPE_Q5_0: block_sym(x, 16, o); break;
        case KG_TYPE_Q4_1: block_min(x, 15, o); break;
        case KG_TYPE_Q5_1: block_min(x, 31, o); break;
        default: return false;
        }
    }
    return true;
}
