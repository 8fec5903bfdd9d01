/*
 * cache_key.c — the cache's key text builder and key formatting: the
 * canonical "name=value\n" text of everything that changes an artifact, and
 * its XXH3-128 (kgen.h, section "cache", says what belongs in a key).
 *
 * The text always starts with "kgen.cache.format=<KG_CACHE_FORMAT>\n". Names
 * are [a-z0-9_.-]{1,64}; string values escape '\\' as "\\\\" and a newline as
 * "\\n", so no value can forge a line and distinct line sequences give
 * distinct texts. Integers are decimal; doubles are C99 hex floats (%a),
 * which are exact.
 */
#include "internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define NAME_MAX_KEY 64

struct kg_keytext {
    char *buf;
    size_t len, cap;
    kg_status err;  /* sticky: the first failure */
    char msg[256];  /* its message */
};

static kg_status kt_fail_sticky(kg_keytext *t, kg_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static kg_status kt_fail_sticky(kg_keytext *t, kg_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->msg, sizeof t->msg, fmt, ap);
    va_end(ap);
    t->err = s;
    return kg_err(s, "%s", t->msg);
}

static bool kt_grow(kg_keytext *t, size_t more)
{
    if (t->len + more + 1 <= t->cap) return true;
    size_t cap = t->cap ? t->cap : 256;
    while (cap < t->len + more + 1) {
        if (cap > SIZE_MAX / 2) return false;
        cap *= 2;
    }
    char *b = realloc(t->buf, cap);
    if (!b) return false;
    t->buf = b;
    t->cap = cap;
    return true;
}

/* Appends "name=value\n", escaping '\\' and '\n' in the value if `escape`. */
static kg_status kt_line(kg_keytext *t, const char *name, const char *v, bool escape)
{
    if (!t) return kg_err(KG_ERR_ARG, "key text: NULL builder");
    if (t->err) return kg_err(t->err, "%s", t->msg);
    size_t nl = name ? strlen(name) : 0;
    if (nl == 0 || nl > NAME_MAX_KEY)
        return kt_fail_sticky(t, KG_ERR_ARG, "key text: field name '%s' is empty or longer than 64 characters",
                              name ? name : "(null)");
    for (size_t i = 0; i < nl; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-')) {
            char shown[4 * NAME_MAX_KEY + 8];
            return kt_fail_sticky(t, KG_ERR_ARG, "key text: field name '%s' has a character outside [a-z0-9_.-]",
                                  kg_escape(shown, sizeof shown, name, nl, NAME_MAX_KEY));
        }
    }
    if (!v) return kt_fail_sticky(t, KG_ERR_ARG, "key text: field '%s' has a NULL value", name);
    size_t vl = 0;
    for (const char *p = v; *p; p++) vl += escape && (*p == '\\' || *p == '\n') ? 2 : 1;
    if (!kt_grow(t, nl + vl + 2))
        return kt_fail_sticky(t, KG_ERR_NOMEM, "key text: out of memory appending field '%s'", name);
    memcpy(t->buf + t->len, name, nl);
    t->len += nl;
    t->buf[t->len++] = '=';
    for (const char *p = v; *p; p++) {
        if (escape && *p == '\\') { t->buf[t->len++] = '\\'; t->buf[t->len++] = '\\'; }
        else if (escape && *p == '\n') { t->buf[t->len++] = '\\'; t->buf[t->len++] = 'n'; }
        else t->buf[t->len++] = *p;
    }
    t->buf[t->len++] = '\n';
    t->buf[t->len] = 0;
    return KG_OK;
}

kg_status kg_keytext_new(kg_keytext **out)
{
    if (!out) return kg_err(KG_ERR_ARG, "kg_keytext_new: NULL output");
    *out = NULL;
    kg_keytext *t = calloc(1, sizeof *t);
    if (!t) return kg_err(KG_ERR_NOMEM, "key text: out of memory");
    kg_status s = kg_keytext_u64(t, "kgen.cache.format", KG_CACHE_FORMAT);
    if (s != KG_OK) {
        kg_keytext_free(t);
        return s;
    }
    *out = t;
    return KG_OK;
}

void kg_keytext_free(kg_keytext *t)
{
    if (!t) return;
    free(t->buf);
    free(t);
}

kg_status kg_keytext_str(kg_keytext *t, const char *name, const char *value)
{
    return kt_line(t, name, value, true);
}

kg_status kg_keytext_i64(kg_keytext *t, const char *name, int64_t value)
{
    char v[32];
    snprintf(v, sizeof v, "%" PRId64, value);
    return kt_line(t, name, v, false);
}

kg_status kg_keytext_u64(kg_keytext *t, const char *name, uint64_t value)
{
    char v[32];
    snprintf(v, sizeof v, "%" PRIu64, value);
    return kt_line(t, name, v, false);
}

kg_status kg_keytext_f64(kg_keytext *t, const char *name, double value)
{
    char v[64];
    snprintf(v, sizeof v, "%a", value);
    return kt_line(t, name, v, false);
}

kg_status kg_keytext_blob(kg_keytext *t, const char *name, const void *data, size_t size)
{
    if (!data && size) return kt_line(t, name, NULL, false); /* the NULL-value error */
    XXH128_hash_t h = XXH3_128bits(size ? data : "", size);
    char v[33];
    kg_key_hex((kg_key){h.high64, h.low64}, v);
    return kt_line(t, name, v, false);
}

const char *kg_keytext_text(const kg_keytext *t)
{
    return t && !t->err && t->buf ? t->buf : "";
}

kg_status kg_keytext_finish(const kg_keytext *t, kg_key *out)
{
    if (out) *out = (kg_key){0, 0};
    if (!t || !out) return kg_err(KG_ERR_ARG, "kg_keytext_finish: NULL argument");
    if (t->err) return kg_err(t->err, "%s", t->msg);
    XXH128_hash_t h = XXH3_128bits(t->buf, t->len);
    *out = (kg_key){h.high64, h.low64};
    return KG_OK;
}

char *kg_key_hex(kg_key key, char out[33])
{
    snprintf(out, 33, "%016" PRIx64 "%016" PRIx64, key.hi, key.lo);
    return out;
}
