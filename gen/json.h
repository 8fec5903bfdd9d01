/*
 * json.h — a minimal streaming JSON writer for the CLI's --json outputs.
 * The caller writes structure; these take care of separators and escaping.
 */
#ifndef KGEN_JSON_H
#define KGEN_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct json {
    FILE *f;
    int depth;
    bool first[32]; /* per nesting level: no comma needed yet */
} json;

void json_begin(json *j, FILE *f);            /* starts the top-level object */
void json_end(json *j);                       /* closes it, adds a newline */
void json_key(json *j, const char *key);      /* inside an object */
void json_obj(json *j);                       /* value: open object */
void json_arr(json *j);                       /* value: open array */
void json_close_obj(json *j);
void json_close_arr(json *j);
void json_strn(json *j, const char *s, uint64_t len); /* any bytes: invalid UTF-8 becomes U+FFFD */
void json_str(json *j, const char *s);
void json_u64(json *j, uint64_t v);
void json_i64(json *j, int64_t v);
void json_f64(json *j, double v);             /* NaN/inf become null */
void json_f32(json *j, float v);              /* shortest digits that read back exactly */
void json_bool(json *j, bool v);
void json_null(json *j);

#endif
