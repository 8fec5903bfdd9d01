/* error.c — per-thread error messages, status names, display escaping. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char errbuf[1024];

kg_status kg_err(kg_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    return s;
}

void kg_err_clear(void) { errbuf[0] = 0; }

const char *kg_last_error(void) { return errbuf; }

const char *kg_status_name(kg_status s)
{
    switch (s) {
    case KG_OK: return "ok";
    case KG_ERR_IO: return "io";
    case KG_ERR_FORMAT: return "format";
    case KG_ERR_NOMEM: return "nomem";
    case KG_ERR_UNSUPPORTED: return "unsupported";
    case KG_ERR_ARG: return "arg";
    case KG_ERR_NOTFOUND: return "notfound";
    case KG_ERR_CORRUPT: return "corrupt";
    }
    return "unknown";
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, uint64_t n)
{
    size_t len;
    uint32_t cp;
    if (s[0] < 0x80) return 1;
    if ((s[0] & 0xE0) == 0xC0) { len = 2; cp = s[0] & 0x1F; }
    else if ((s[0] & 0xF0) == 0xE0) { len = 3; cp = s[0] & 0x0F; }
    else if ((s[0] & 0xF8) == 0xF0) { len = 4; cp = s[0] & 0x07; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

char *kg_escape(char *dst, size_t cap, const char *src, uint64_t len, size_t max)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t o = 0;
    bool cut = len > max;
    uint64_t n = cut ? max : len;
    if (cap == 0) return dst;
    for (uint64_t i = 0; i < n;) {
        char tmp[8];
        size_t k = utf8_len(s + i, n - i), w;
        if (k == 1 && s[i] >= 0x20 && s[i] < 0x7F && s[i] != '"' && s[i] != '\\') {
            tmp[0] = (char)s[i]; w = 1;
        } else if (k == 1 && (s[i] == '"' || s[i] == '\\')) {
            tmp[0] = '\\'; tmp[1] = (char)s[i]; w = 2;
        } else if (k > 1) {
            memcpy(tmp, s + i, k); w = k;
        } else {
            snprintf(tmp, sizeof tmp, "\\x%02X", s[i]); w = 4; k = 1;
        }
        if (o + w + 4 >= cap) { cut = true; break; }
        memcpy(dst + o, tmp, w);
        o += w;
        i += k;
    }
    if (cut && o + 3 < cap) { memcpy(dst + o, "...", 3); o += 3; }
    dst[o] = 0;
    return dst;
}
