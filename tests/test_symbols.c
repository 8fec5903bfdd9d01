/*
 * test_symbols.c — every symbol libkgen.a exports starts with kg_ (so the
 * library can be linked into any program without name clashes).
 */
#include "kt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

KT_TEST(symbols_prefix)
{
    const char *lib = getenv("KGEN_LIB") ? getenv("KGEN_LIB") : "build/libkgen.a";
    if (access(lib, R_OK) != 0) KT_SKIP("%s not found (set KGEN_LIB)", lib);
    enum { CAP = 1 << 20 };
    char *out = malloc(CAP), err[2048];
    KT_REQUIRE(out);
    char *argv[] = {"/usr/bin/env", "nm", "-g", "--defined-only", "-P", (char *)lib, NULL};
    int rc = kt_run(argv, out, CAP, err, sizeof err);
    KT_CHECKF(rc == 0, "nm failed (%d): %s", rc, err);
    int n = 0;
    for (char *save, *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[512], type[8];
        /* -P: "name type value size"; archive member headers end in ':' */
        if (sscanf(line, "%511s %7s", name, type) != 2 || name[strlen(name) - 1] == ':') continue;
        n++;
        KT_CHECKF(strncmp(name, "kg_", 3) == 0, "exported symbol without the kg_ prefix: %s (%s)", name, type);
    }
    KT_CHECKF(n > 10, "only %d exported symbols found in %s", n, lib);
    free(out);
}
