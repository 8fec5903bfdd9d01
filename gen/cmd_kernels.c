/*
 * cmd_kernels.c — `kgen kernels`: a model's kernel instances, and for a
 * CUDA target their compilation through NVRTC with ptxas's report per
 * kernel (registers, spilled bytes, stack, shared memory).
 */
#include "cli.h"
#include "cuda.h"
#include "gen.h"
#include "graph.h"
#include "internal.h"
#include "quant.h"
#include "source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: kgen kernels MODEL [--target cuda[:sm_NN]] [--batch N] [--json] [--no-cache]\n"
    "                    [--quant SCHEME] [--quant-tensor PATTERN=SCHEME]... [--requant]\n"
    "\n"
    "Lists the model's distinct kernel instances (template and bound parameters),\n"
    "with --quant those of the model quantized as kgen compile would quantize it.\n"
    "With a CUDA target, compiles them all through NVRTC for that arch (cuda: the\n"
    "local GPU's, else sm_90; through the cache unless --no-cache) and reports,\n"
    "per kernel, registers, bytes spilled to local memory, stack frame and static\n"
    "shared memory. Exit status 1 if any kernel spills.\n";

static void print_inst(const gen_kinst *k, FILE *f)
{
    fprintf(f, "%s(", k->tmpl);
    for (int i = 0; i < k->n_params; i++) {
        const gen_param *p = &k->params[i];
        fprintf(f, "%s%s=", i ? ", " : "", p->name);
        if (p->runtime) fprintf(f, "@%d", p->rt_index);
        else if (p->f != 0.0) fprintf(f, "%g", p->f);
        else fprintf(f, "%lld", (long long)p->i);
    }
    fputc(')', f);
}

int cmd_kernels(int argc, char **argv)
{
    const char *path = NULL, *target = NULL;
    bool json = false, cache = true;
    int n_batch = 0;
    cli c = {"kernels", argc, argv, 0};
    cli_quant q = {0};
    const char *spec = NULL;
    for (c.i = 0; c.i < argc; c.i++) {
        const char *a = argv[c.i];
        int64_t n;
        const int qo = cli_quant_opt(&c, &q);
        if (qo < 0) return 2;
        if (qo) continue;
        if (!strcmp(a, "--json")) json = true;
        else if (!strcmp(a, "--no-cache")) cache = false;
        else if (!strcmp(a, "--target")) { if (!(target = cli_value(&c))) return 2; }
        else if (!strcmp(a, "--batch")) { if (!cli_int(&c, 1, 4096, &n)) return 2; n_batch = (int)n; }
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) return fputs(usage, stdout), 0;
        else if (a[0] == '-') return fprintf(stderr, "kgen kernels: unknown option '%s' (see kgen kernels --help)\n", a), 2;
        else if (path) return fprintf(stderr, "kgen kernels: more than one model given ('%s' and '%s')\n", path, a), 2;
        else path = a;
    }
    if (!path) return fputs(usage, stderr), 2;
    if (!cli_quant_spec(&c, &q, &spec)) return 2;
    if (target && !gen_cuda_is_target(target))
        return fprintf(stderr, "kgen kernels: --target: '%s' is not a CUDA target (cuda or cuda:sm_NN)\n", target), 2;
    gen_source *src = NULL;
    gen_graph gr = {0};
    gen_program pg = {0};
    gen_cuda_result r = {0};
    int sm = 0;
    char note[256] = "";
    kg_status st = gen_source_open_quant(path, spec, q.requant, false, &src);
    gen_knobs kn;
    gen_target ht;
    if (!st) st = gen_knobs_parse(gen_knobs_env(), &kn);
    if (!st) st = gen_target_host(&ht);
    if (!st) gen_knobs_resolve(&kn, ht.isa, target != NULL);
    if (!st) st = gen_model_plan(src, n_batch, 0, gen_nofuse_env(), &kn, &gr, &pg);
    if (!st && target) st = gen_cuda_target(target, &sm, note, sizeof note);
    if (!st && target) st = gen_cuda_compile(&pg, sm, cache, &r);
    if (st) {
        fprintf(stderr, "kgen: %s: %s\n", path, kg_last_error());
        gen_program_free(&pg), gen_graph_free(&gr), gen_source_close(src);
        return 1;
    }
    int spills = 0;
    for (int i = 0; i < r.n; i++) spills += r.k[i].spill_bytes > 0;
    if (json) {
        printf("{\"model\": \"%s\", \"instances\": %d", gr.hp.name, pg.nk);
        if (target)
            printf(", \"target\": \"cuda:sm_%d\", \"sm\": %d, \"nvrtc\": \"%s\", \"seconds\": %.3f, \"cached\": %s, "
                   "\"cubin_bytes\": %zu, \"ptx_bytes\": %zu",
                   sm, sm, r.nvrtc_version, r.seconds, r.hit ? "true" : "false", r.ncubin, r.nptx);
        printf(", \"kernels\": [");
        for (int i = 0; i < pg.nk; i++) {
            printf("%s\n  {\"instance\": \"", i ? "," : "");
            print_inst(&pg.k[i], stdout);
            printf("\"");
            if (target)
                printf(", \"expr\": \"%s\", \"name\": \"%s\", \"regs\": %d, \"spill_bytes\": %d, \"stack_bytes\": %d, "
                       "\"smem\": %d, \"block\": %u",
                       r.shape[i].expr, r.k[i].name, r.k[i].regs, r.k[i].spill_bytes, r.k[i].stack_bytes, r.k[i].smem,
                       r.shape[i].block);
            printf("}");
        }
        printf("]}\n");
    } else {
        if (target) {
            if (note[0]) fprintf(stderr, "kgen: %s\n", note);
            printf("%s: %d kernel instances, CUDA sm_%d (NVRTC %s): %s in %.2f s, cubin %zu KiB, PTX %zu KiB\n", path,
                   pg.nk, sm, r.nvrtc_version, r.hit ? "from the cache" : "compiled", r.seconds, r.ncubin / 1024,
                   r.nptx / 1024);
            printf("%4s %5s %6s %6s %6s  %s\n", "#", "regs", "spill", "stack", "smem", "kernel");
        } else {
            printf("%s: %d kernel instances\n", path, pg.nk);
        }
        for (int i = 0; i < pg.nk; i++) {
            if (target)
                printf("%4d %5d %6d %6d %6d  %s\n", i, r.k[i].regs, r.k[i].spill_bytes, r.k[i].stack_bytes,
                       r.k[i].smem, r.shape[i].expr);
            else {
                printf("%4d  ", i);
                print_inst(&pg.k[i], stdout);
                putchar('\n');
            }
        }
    }
    if (spills) fprintf(stderr, "kgen: %d kernel%s spill registers to local memory\n", spills, spills > 1 ? "s" : "");
    gen_cuda_result_free(&r);
    gen_program_free(&pg), gen_graph_free(&gr), gen_source_close(src);
    return spills ? 1 : 0;
}
