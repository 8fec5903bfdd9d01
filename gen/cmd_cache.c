/* cmd_cache.c — placeholder until the cache lands (being written now). */
#include "gen.h"

int cmd_cache(int argc, char **argv)
{
    (void)argc; (void)argv;
    fputs("kgen cache: not built yet\n", stderr);
    return 1;
}
