/*
 * cli.h — what every kgen command's option parsing shares (gen/cli.c):
 * taking an option's value, and numbers parsed exactly. Each prints its
 * own message ("kgen CMD: ...") and returns false on bad usage; the
 * command then exits 2.
 *
 *   cli c = {"run", argc, argv};
 *   for (c.i = 0; c.i < argc; c.i++) {
 *       const char *o = argv[c.i];
 *       if (!strcmp(o, "-p")) { if (!(prompt = cli_value(&c))) return 2; }
 *       else if (!strcmp(o, "-n")) { if (!cli_int(&c, 0, 1 << 24, &n)) return 2; }
 *       ...
 */
#ifndef KGEN_CLI_H
#define KGEN_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cli {
    const char *cmd; /* "run": messages start "kgen run: "    */
    int argc;
    char **argv;
    int i;           /* the option being parsed: argv[i]  */
} cli;

/* The value of option argv[i] (argv[i + 1], i advanced past it), or NULL
 * after "kgen CMD: option '-p' needs a value". */
const char *cli_value(cli *c);

/* The option's value as an integer in [lo, hi]: decimal digits with an
 * optional sign, nothing else (no fraction, exponent, space or hex), no
 * overflow. On failure: a message naming the option, the value and the
 * range. */
bool cli_int(cli *c, int64_t lo, int64_t hi, int64_t *out);

/* The same for an unsigned 64-bit value (any of 0 .. 2^64 - 1). */
bool cli_u64(cli *c, uint64_t *out);

/* The option's value as a finite number in [lo, hi]. */
bool cli_num(cli *c, double lo, double hi, double *out);

/* Parses s exactly as cli_int does, without messages (lists such as
 * "64,512" use it per item). */
bool cli_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out);

/* Whether option o is the short name s (NULL: none) or the long name l. */
bool cli_is(const char *o, const char *s, const char *l);
/* The whole file, NUL-terminated (malloc'd; *len its bytes, if len is
 * not NULL), or NULL with kg_last_error() naming the file and the reason. */
char *cli_read_file(const char *path, size_t *len);
#endif
