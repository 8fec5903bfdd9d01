/*
 * cmd_compile.c — `kgen compile`: a GGUF model into one per-model shared
 * object (or object file) with the C ABI of include/kgen_model.h.
 */
#include "chat_tmpl.h"
#include "cli.h"
#include "cuda.h"
#include "gen.h"
#include "internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: kgen compile MODEL -o OUT [--cpu CPU[,+feat,-feat] | --target cuda[:sm_NN]]\n"
    "                    [--emit so|obj] [--external-weights] [--batch N] [--max-len L] [-j N]\n"
    "                    [--no-fuse[=RULES]] [--chat-template NAME] [--kv f16|q8|f32]\n"
    "                    [--tuning FILE] [--knobs K=V,...]\n"
    "                    [--quant SCHEME] [--quant-tensor PATTERN=SCHEME]... [--requant]\n"
    "\n"
    "MODEL is a GGUF file or a Hugging Face directory (config.json, safetensors,\n"
    "tokenizer.json; sentence-transformers' settings when present).\n"
    "Specializes every kernel of the model for its exact shapes and weight types\n"
    "and the CPU (default: this machine), and writes OUT:\n"
    "  --emit so   (default) a shared object holding code, packed weights,\n"
    "              tokenizer and metadata; dlopen it, or link with it\n"
    "  --emit obj  one relocatable object for static linking, and its header\n"
    "              (OUT with .h for its extension: the ABI, include/kgen_model.h);\n"
    "              link with -lm -lpthread; one model per program\n"
    "  --target cuda[:sm_NN]  CUDA kernels instead, compiled by NVRTC for that\n"
    "              arch (cuda: the local GPU's, else sm_90), cubin plus PTX for newer\n"
    "              GPUs; the model then needs an NVIDIA GPU and driver to open\n"
    "  --external-weights  write the packed weights to OUT.weights instead; the\n"
    "              model finds the file beside itself and checks its content hash\n"
    "  --batch N   tokens per prefill step (default 128); for an encoder (BERT),\n"
    "              sequences per step (default 32)\n"
    "  --max-len L an encoder's tokens per sequence (default: the model's maximum\n"
    "              sequence length); longer input is truncated\n"
    "  -j N        code generation threads (default: the online CPUs)\n"
    "  --no-fuse[=RULES]  leave out the fusion rules named (qkv, slices, glu, residual,\n"
    "              q8; comma-separated), or all of them: every op then runs as its\n"
    "              own kernel (slower; the same model). Default: KGEN_NOFUSE's value\n"
    "  --chat-template NAME  the chat format kgm_chat writes: " GEN_CHAT_TEMPLATE_NAMES ";\n"
    "              default: recognized from the file's template (Gemma 3 270M's file\n"
    "              has none: --chat-template gemma)\n"
    "  --knobs K=V,...  performance choices (no result changes beyond rounding;\n"
    "              default: KGEN_KNOBS's value), listed below\n"
    "  --tuning FILE  a tuning file of 'kgen tune': its records for this target\n"
    "              bind the knobs of the kernel instances they name (a record for\n"
    "              another CPU is skipped; 'kgen tune ls FILE' says which)\n"
    "  --kv TYPE   the KV cache's type: f16 (default), q8 (8-bit: per 32 values of\n"
    "              a head, int8 and an f16 scale, GGUF's Q8_0; CPU only; head size\n"
    "              a multiple of 32) or f32\n"
    CLI_QUANT_HELP
    "Progress goes to stderr, with the timings at the end. KGEN_DEBUG=1 also\n"
    "prints the graph after every pass.\n";

int cmd_compile(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    gen_model_opts o = {.progress = true};
    bool ext = false;
    cli c = {"compile", argc, argv, 0};
    cli_quant q = {0};
    for (c.i = 0; c.i < argc; c.i++) {
        const char *a = argv[c.i];
        int64_t n;
        const int qo = cli_quant_opt(&c, &q);
        if (qo) {
            if (qo < 0) return 2;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            fputs("Knobs (--knobs, KGEN_KNOBS):\n", stdout);
            gen_knobs_help(stdout, "  ", 80);
            return 0;
        } else if (!strcmp(a, "-o")) {
            if (!(out = cli_value(&c))) return 2;
        } else if (!strcmp(a, "--cpu")) {
            if (!(o.cpu = cli_value(&c))) return 2;
        } else if (!strcmp(a, "--target")) {
            if (!(o.cuda = cli_value(&c))) return 2;
            if (!gen_cuda_is_target(o.cuda)) {
                fprintf(stderr, "kgen compile: --target %s: expected cuda or cuda:sm_NN (the CPU is the default; see --cpu)\n", o.cuda);
                return 2;
            }
        } else if (!strcmp(a, "--emit")) {
            const char *e = cli_value(&c);
            if (!e) return 2;
            if (!strcmp(e, "so")) o.emit_obj = false;
            else if (!strcmp(e, "obj")) o.emit_obj = true;
            else {
                fprintf(stderr, "kgen compile: --emit %s: expected so or obj\n", e);
                return 2;
            }
        } else if (!strcmp(a, "--batch")) {
            if (!cli_int(&c, 1, 4096, &n)) return 2;
            o.n_batch = (int)n;
        } else if (!strcmp(a, "--max-len")) {
            if (!cli_int(&c, 2, 1 << 16, &n)) return 2;
            o.max_len = (int)n;
        } else if (!strcmp(a, "-j")) {
            if (!cli_int(&c, 1, 16, &n)) return 2;
            o.jobs = (int)n;
        } else if (!strcmp(a, "--no-fuse")) {
            o.nofuse = "all";
        } else if (!strncmp(a, "--no-fuse=", 10)) {
            o.nofuse = a + 10;
            if (gen_fuse_check(o.nofuse)) {
                fprintf(stderr, "kgen compile: --no-fuse: %s\n", kg_last_error());
                return 2;
            }
        } else if (!strcmp(a, "--chat-template")) {
            if (!(o.chat_template = cli_value(&c))) return 2;
            if (!gen_chat_template_known(o.chat_template)) {
                fprintf(stderr, "kgen compile: --chat-template %s: unknown template (known: " GEN_CHAT_TEMPLATE_NAMES ")\n",
                        o.chat_template);
                return 2;
            }
        } else if (!strcmp(a, "--kv")) {
            if (!(o.kv = cli_value(&c))) return 2;
            if (gen_kv_type(o.kv) < 0) {
                fprintf(stderr, "kgen compile: --kv %s: expected " GEN_KV_NAMES "\n", o.kv);
                return 2;
            }
        } else if (!strcmp(a, "--knobs")) {
            gen_knobs kn;
            if (!(o.knobs = cli_value(&c))) return 2;
            if (gen_knobs_parse(o.knobs, &kn)) {
                fprintf(stderr, "kgen compile: --knobs: %s\n", kg_last_error());
                return 2;
            }
        } else if (!strcmp(a, "--tuning")) {
            if (!(o.tuning = cli_value(&c))) return 2;
        } else if (!strcmp(a, "--external-weights")) {
            ext = true;
        } else if (a[0] == '-') {
            fprintf(stderr, "kgen compile: unknown option '%s' (see kgen compile --help)\n", a);
            return 2;
        } else if (in) {
            fprintf(stderr, "kgen compile: more than one model given ('%s' and '%s')\n", in, a);
            return 2;
        } else {
            in = a;
        }
    }
    if (!in || !out) {
        fputs(usage, stderr);
        return 2;
    }
    if (!cli_quant_spec(&c, &q, &o.quant)) return 2;
    o.requant = q.requant;
    char wpath[PATH_MAX], wname[NAME_MAX + 1];
    if (ext) {
        const char *base = strrchr(out, '/') ? strrchr(out, '/') + 1 : out;
        if (snprintf(wpath, sizeof wpath, "%s.weights", out) >= (int)sizeof wpath ||
            snprintf(wname, sizeof wname, "%s.weights", base) >= (int)sizeof wname || strlen(wname) >= 256) {
            fprintf(stderr, "kgen compile: %s: name too long\n", out);
            return 2;
        }
        o.weights_file = wname;
        o.weights_path = wpath;
    }
    gen_model_report r;
    kg_status st = gen_model_compile(in, out, &o, &r);
    if (st != KG_OK) {
        fprintf(stderr, "kgen compile: %s\n", kg_last_error());
        return 1;
    }
    fprintf(stderr,
            "kgen: wrote %s%s%s (code %.0f KiB, weights %.1f MiB, workspace %.0f KiB, %d kernel instances; "
            "content %s)\n"
            "kgen: %.2f s: graph and passes %.2f s, code generation %.2f s, packing %.2f s, link %.2f s\n",
            out, ext ? " and " : "", ext ? wpath : "", r.code_bytes / 1024.0, r.weight_bytes / 1048576.0,
            r.ws_bytes / 1024.0, r.n_instances, r.content_hash, r.total_s, r.graph_s, r.codegen_s, r.pack_s, r.link_s);
    return 0;
}
