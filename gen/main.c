/*
 * main.c — the kgen command line. Only this file exits; everything it calls
 * returns a kg_status and leaves a message in kg_last_error().
 */
#include "config.h"
#include "gen.h"
#include "tune.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: kgen COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  inspect MODEL.gguf|MODEL.safetensors|DIR [--json]\n"
    "                                print a model's architecture, hyperparameters,\n"
    "                                tokenizer, tensor table and totals (DIR: a\n"
    "                                Hugging Face model directory)\n"
    "  compile MODEL -o libNAME.so [--cpu CPU] [--emit so|obj] [--external-weights]\n"
    "          [--quant SCHEME]      compile a model (a GGUF file or a Hugging Face\n"
    "                                directory) into one shared object (C ABI:\n"
    "                                include/kgen_model.h), its weights quantized\n"
    "                                at compile time with --quant\n"
    "  run MODEL.gguf|libNAME.so -p PROMPT [-n N] [--chat] [--temp T] [--seed S] [-t N]\n"
    "                                generate text (a GGUF is compiled once, then\n"
    "                                loaded from the cache)\n"
    "  embed MODEL (-p TEXT)... | --file F [--json]\n"
    "                                sentence embeddings from an encoder (BERT)\n"
    "  perplexity MODEL --file TEXT [--ctx N] [--kl-base BASE] [--json]\n"
    "                                perplexity over a text (llama.cpp's definition);\n"
    "                                KL divergence and top-1 agreement against a base\n"
    "  bench MODEL.gguf|libNAME.so [--pp 64,512] [--tg 128] [-r N] [-t N] [--json]\n"
    "                                prefill and decode speed, compile and open time,\n"
    "                                peak memory\n"
    "  kernel TEMPLATE NAME=VALUE... [--cpu CPU] [--emit obj|asm|ll|so] -o FILE\n"
    "                                specialize one kernel template and emit it\n"
    "  kernel --list                 list the kernel templates and their parameters\n"
    "  kernels MODEL [--target cuda[:sm_NN]] [--json]\n"
    "                                a model's kernel instances; for CUDA, compiled\n"
    "                                through NVRTC with registers and spills per kernel\n"
    "  tune MODEL -o FILE [--budget S] [--shard I/N]\n"
    "                                sweep the kernel variants on this machine into a\n"
    "                                tuning file (compile|run|bench --tuning FILE)\n"
    "  tune merge A.json B.json ... -o ALL.json | tune ls FILE\n"
    "                                combine shards' tuning files; list the records\n"
    "  cache ls|stats|verify|gc|clear  the compiled-artifact cache\n"
    "  help                          show this help\n"
    "  version                       print the version\n"
    "\n"
    "'kgen COMMAND --help' describes a command.\n"
    "\n"
    "environment:\n"
    "  KGEN_CACHE_DIR        the cache directory (else $XDG_CACHE_HOME/kgen, else\n"
    "                        ~/.cache/kgen)\n"
    "  KGEN_CACHE_MAX_SIZE   the cache's size limit (500M, 2G, ...; 0: none; default\n"
    "                        the smaller of 10 GiB and a quarter of its filesystem)\n"
    "  KGEN_DEBUG=1          print the phases of every compilation and the graph\n"
    "                        after every pass\n"
    "  KGEN_NOFUSE=RULES     compile models with these fusion rules left out (all,\n"
    "                        or some of qkv,glu,residual,q8); see compile --help\n"
    "  TMPDIR                where compiles keep their temporary files (default /tmp)\n"
    "  CC                    the C compiler driver that links models (default cc)\n"
    "  KGEN_NVRTC, KGEN_LIBCUDA  the NVRTC library and the CUDA driver to load\n"
    "\n"
    "Exit status: 0 on success, 1 on bad input or failure (the reason is printed\n"
    "on stderr), 2 on bad usage.\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "inspect")) return inspect_cmd(argc - 2, argv + 2);
    if (!strcmp(cmd, "cache")) return cmd_cache(argc - 2, argv + 2);
    if (!strcmp(cmd, "kernel")) return cmd_kernel(argc - 2, argv + 2);
    if (!strcmp(cmd, "kernels")) return cmd_kernels(argc - 2, argv + 2);
    if (!strcmp(cmd, "compile")) return cmd_compile(argc - 2, argv + 2);
    if (!strcmp(cmd, "run")) return cmd_run(argc - 2, argv + 2);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 2, argv + 2);
    if (!strcmp(cmd, "embed")) return cmd_embed(argc - 2, argv + 2);
    if (!strcmp(cmd, "perplexity")) return cmd_perplexity(argc - 2, argv + 2);
    if (!strcmp(cmd, "tune")) return cmd_tune(argc - 2, argv + 2);
    if (!strcmp(cmd, "help") || !strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("kgen %s\n", KGEN_VERSION);
        return 0;
    }
    fprintf(stderr, "kgen: unknown command '%s' (see 'kgen help')\n", cmd);
    return 2;
}
