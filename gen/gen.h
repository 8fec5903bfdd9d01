/*
 * gen.h — the kgen tool's internal interfaces (not installed).
 */
#ifndef KGEN_GEN_H
#define KGEN_GEN_H

#include "kgen.h"

#include <stdbool.h>
#include <stdio.h>

/* `kgen inspect`: print what `g` holds to `f`, as text or one JSON object. */
void inspect_print(const kg_gguf *g, FILE *f, bool as_json);

/* `kgen cache ls|stats|verify|clear` (gen/cmd_cache.c): argv after "cache".
 * Returns the process exit status (0 ok, 1 failure, 2 usage). */
int cmd_cache(int argc, char **argv);

#endif
