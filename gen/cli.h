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
/* kgen's own quantization options (gen/quant.h), gathered while parsing:
 *   --quant SCHEME, --quant-tensor PATTERN=SCHEME (repeatable), --requant.
 * cli_quant_opt: 1 if argv[i] was one of them (taken), 0 if not, -1 after
 * a message (bad value). cli_quant_spec: *spec for gen_model_opts' quant
 * (NULL when none was given); false after a message (--requant alone). */
typedef struct cli_quant {
    const char *scheme;
    bool requant;
    char tensors[2048]; /* ";PATTERN=SCHEME" per --quant-tensor */
    char spec[2112];
} cli_quant;
int cli_quant_opt(cli *c, cli_quant *q);
bool cli_quant_spec(const cli *c, cli_quant *q, const char **spec);
/* The text --help shows for them, indented by two spaces */
#define CLI_QUANT_HELP \
    "  --quant SCHEME  quantize the weights at compile time: the matrices (blk.*,\n" \
    "              token_embd, output) whose rows are whole groups of 32 values:\n" \
    "              w8g32 (GGUF Q8_0), w4g32 (Q4_0), w4g32a (Q4_1: with a minimum),\n" \
    "              w5g32 (Q5_0), w5g32a (Q5_1), f16, none; tensors the source has\n" \
    "              quantized stay as they are\n" \
    "  --quant-tensor PATTERN=SCHEME  the tensors whose name matches the glob\n" \
    "              PATTERN take SCHEME instead (repeatable; the last match wins)\n" \
    "  --requant   quantize the source's quantized tensors too, from their values\n"

/* The whole file, NUL-terminated (malloc'd; *len its bytes, if len is
 * not NULL), or NULL with kg_last_error() naming the file and the reason. */
char *cli_read_file(const char *path, size_t *len);
#endif
