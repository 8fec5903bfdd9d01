/* A program built against an installed kgen (tests/install/check.sh): the
 * library's GGUF reader, and the model headers, in strict C11 with POSIX. */
#define _POSIX_C_SOURCE 200809L
#include <kgen.h>
#include <kgen_check.h>
#include <kgen_model.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc != 2) return 2;
    kg_gguf *g;
    if (kg_gguf_open(argv[1], &g) != KG_OK) {
        fprintf(stderr, "%s\n", kg_last_error());
        return 1;
    }
    printf("%llu tensors; ABI %d\n", (unsigned long long)kg_gguf_n_tensors(g), KGM_ABI_VERSION);
    kg_gguf_close(g);
    char err[256];
    return kgm_check_file(argv[1], err, sizeof err) == 0; /* a GGUF is not a model: 0 expected from main */
}
