/*
 * cli.c — option values and exact numbers for the kgen commands (cli.h).
 */
#include "cli.h"
#include "internal.h"
#include "quant.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *cli_value(cli *c)
{
    if (c->i + 1 >= c->argc) {
        fprintf(stderr, "kgen %s: option '%s' needs a value (see kgen %s --help)\n", c->cmd, c->argv[c->i], c->cmd);
        return NULL;
    }
    return c->argv[++c->i];
}

/* [+-]digits, into a magnitude and a sign; false on anything else or a
 * magnitude past 2^64 - 1. */
static bool parse_digits(const char *s, bool *neg, uint64_t *mag)
{
    *neg = *s == '-';
    if (*s == '-' || *s == '+') s++;
    if (!*s) return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *mag = v;
    return true;
}

bool cli_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    bool neg;
    uint64_t m;
    if (!parse_digits(s, &neg, &m)) return false;
    if (neg ? m > (uint64_t)INT64_MAX + 1 : m > (uint64_t)INT64_MAX) return false;
    int64_t v = neg ? (m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m) : (int64_t)m;
    if (v < lo || v > hi) return false;
    *out = v;
    return true;
}

bool cli_int(cli *c, int64_t lo, int64_t hi, int64_t *out)
{
    const char *o = c->argv[c->i], *v = cli_value(c);
    if (!v) return false;
    if (cli_parse_i64(v, lo, hi, out)) return true;
    fprintf(stderr, "kgen %s: %s %s: expected an integer from %" PRId64 " to %" PRId64 "\n", c->cmd, o, v, lo, hi);
    return false;
}

bool cli_u64(cli *c, uint64_t *out)
{
    const char *o = c->argv[c->i], *v = cli_value(c);
    bool neg;
    uint64_t m;
    if (!v) return false;
    if (parse_digits(v, &neg, &m) && (!neg || m == 0)) {
        *out = m;
        return true;
    }
    fprintf(stderr, "kgen %s: %s %s: expected an integer from 0 to %" PRIu64 "\n", c->cmd, o, v, UINT64_MAX);
    return false;
}

bool cli_num(cli *c, double lo, double hi, double *out)
{
    const char *o = c->argv[c->i], *v = cli_value(c);
    if (!v) return false;
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (!errno && end != v && !*end && isfinite(d) && d >= lo && d <= hi) {
        *out = d;
        return true;
    }
    fprintf(stderr, "kgen %s: %s %s: expected a number from %g to %g\n", c->cmd, o, v, lo, hi);
    return false;
}

char *cli_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        kg_err(KG_ERR_IO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    for (size_t r; b && (r = fread(b + n, 1, cap - n - 1, f)) > 0;) {
        n += r;
        if (cap - n - 1 == 0) {
            char *q = realloc(b, cap *= 2);
            if (!q) free(b);
            b = q;
        }
    }
    const bool err = ferror(f);
    fclose(f);
    if (!b) {
        kg_err(KG_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (err) {
        free(b);
        kg_err(KG_ERR_IO, "%s: read error", path);
        return NULL;
    }
    b[n] = 0;
    if (len) *len = n;
    return b;
}

bool cli_is(const char *o, const char *s, const char *l) { return (s && !strcmp(o, s)) || !strcmp(o, l); }

int cli_quant_opt(cli *c, cli_quant *q)
{
    const char *o = c->argv[c->i], *v;
    if (!strcmp(o, "--requant")) return q->requant = true, 1;
    if (strcmp(o, "--quant") && strcmp(o, "--quant-tensor")) return 0;
    if (!(v = cli_value(c))) return -1;
    char one[512];
    snprintf(one, sizeof one, "none;%s", v);
    const bool tensor = !strcmp(o, "--quant-tensor"), odd = strchr(v, ';') || strlen(v) >= sizeof one - 6;
    if (odd || gen_quant_check(tensor ? one : v)) {
        if (odd) fprintf(stderr, "kgen %s: %s '%s': a ';' or an over-long value\n", c->cmd, o, v);
        else fprintf(stderr, "kgen %s: %s\n", c->cmd, kg_last_error());
        return -1;
    }
    if (!tensor) return q->scheme = v, 1;
    const size_t n = strlen(q->tensors);
    if (n + strlen(v) + 2 > sizeof q->tensors) {
        fprintf(stderr, "kgen %s: too many --quant-tensor options\n", c->cmd);
        return -1;
    }
    snprintf(q->tensors + n, sizeof q->tensors - n, ";%s", v);
    return 1;
}

bool cli_quant_spec(const cli *c, cli_quant *q, const char **spec)
{
    *spec = NULL;
    if (!q->scheme && !q->tensors[0]) {
        if (q->requant) fprintf(stderr, "kgen %s: --requant: give the scheme (--quant or --quant-tensor)\n", c->cmd);
        return !q->requant;
    }
    snprintf(q->spec, sizeof q->spec, "%s%s", q->scheme ? q->scheme : "none", q->tensors);
    *spec = q->spec;
    return true;
}
