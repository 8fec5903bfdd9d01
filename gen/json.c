/* json.c — minimal streaming JSON writer (see json.h). */
#include "json.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

static void sep(json *j)
{
    if (j->depth > 0 && !j->first[j->depth]) fputc(',', j->f);
    j->first[j->depth] = false;
}

static void open_(json *j, char c)
{
    fputc(c, j->f);
    if (j->depth < 31) j->depth++;
    j->first[j->depth] = true;
}

static void close_(json *j, char c)
{
    fputc(c, j->f);
    if (j->depth > 0) j->depth--;
}

void json_begin(json *j, FILE *f)
{
    j->f = f;
    j->depth = 0;
    j->first[0] = true;
    open_(j, '{');
}

void json_end(json *j)
{
    close_(j, '}');
    fputc('\n', j->f);
}

/* A key is followed by its value, which must not emit another comma. */
static void put_str(json *j, const char *s, uint64_t len);

void json_key(json *j, const char *key)
{
    sep(j);
    put_str(j, key, __builtin_strlen(key));
    fputc(':', j->f);
    j->first[j->depth] = true; /* the value that follows takes no comma */
}

static void value(json *j)
{
    sep(j);
}

void json_obj(json *j) { value(j); open_(j, '{'); }
void json_arr(json *j) { value(j); open_(j, '['); }
void json_close_obj(json *j) { close_(j, '}'); }
void json_close_arr(json *j) { close_(j, ']'); }

void json_strn(json *j, const char *s, uint64_t len)
{
    value(j);
    put_str(j, s, len);
}

static void put_str(json *j, const char *s, uint64_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', j->f);
    for (uint64_t i = 0; i < len;) {
        unsigned c = p[i];
        if (c == '"' || c == '\\') { fputc('\\', j->f); fputc((int)c, j->f); i++; continue; }
        if (c < 0x20) { fprintf(j->f, "\\u%04x", c); i++; continue; }
        if (c < 0x80) { fputc((int)c, j->f); i++; continue; }
        /* validate one UTF-8 sequence */
        unsigned n = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        uint32_t cp = n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
        bool ok = n && len - i >= n;
        for (unsigned k = 1; ok && k < n; k++) {
            ok = (p[i + k] & 0xC0) == 0x80;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (ok && (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))) ok = false;
        if (!ok) { fputs("\\ufffd", j->f); i++; continue; }
        fwrite(p + i, 1, n, j->f);
        i += n;
    }
    fputc('"', j->f);
}

void json_str(json *j, const char *s) { json_strn(j, s, __builtin_strlen(s)); }
void json_u64(json *j, uint64_t v) { value(j); fprintf(j->f, "%" PRIu64, v); }
void json_i64(json *j, int64_t v) { value(j); fprintf(j->f, "%" PRId64, v); }
void json_bool(json *j, bool v) { value(j); fputs(v ? "true" : "false", j->f); }
void json_null(json *j) { value(j); fputs("null", j->f); }

void json_f64(json *j, double v)
{
    value(j);
    if (!isfinite(v)) fputs("null", j->f);
    else fprintf(j->f, "%.9g", v);
}

void json_f32(json *j, float v)
{
    char buf[32];
    value(j);
    if (!isfinite(v)) { fputs("null", j->f); return; }
    for (int p = 6; p <= 9; p++) { /* shortest that reads back as the same float */
        snprintf(buf, sizeof buf, "%.*g", p, (double)v);
        if ((float)strtod(buf, NULL) == v) break;
    }
    fputs(buf, j->f);
}
