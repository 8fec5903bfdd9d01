/*
 * test_hf_decoders.c — LLaMA and Qwen2 decoders from Hugging Face
 * directories (config.json + safetensors + tokenizer.json).
 *
 * tests/ref/hf_model.py writes random-weight directories (true-ish widths,
 * SmolLM2's 49152-token vocabulary and tokenizer.json, 2 layers), kgen runs
 * them (`kgen run DIR -p TEXT -n 8 --temp 0 --dump-logits F`), and the
 * reference's own forward pass in Hugging Face's layout (rotate-half RoPE on
 * the weights as stored: the independent check of the source's row
 * permutation into GGUF's interleaved layout) checks every generated step's
 * logits with check_e2e.py's tolerances (hf_model.py check). Variants:
 * LLaMA BF16 (tied output), LLaMA F16 in two shards, Qwen2 F32 (Q/K/V
 * biases, separate output).
 *
 *   build/kgen-tests hf_decoder_
 */
#include "kt.h"
#include "kt_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const PROMPTS[] = {"The capital of France is", "def fibonacci(n):\n    return",
                                      "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"};

static void decoder(const char *arch, const char *dtype, const char *shards)
{
    char smol[512], dir[600], dump[3][700];
    snprintf(smol, sizeof smol, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", kt_models_dir());
    if (!kc_exists(smol)) KT_SKIP("%s not found (its vocabulary): run 'make models'", smol);
    kc_setup_env();
    kc_tpath(dir, sizeof dir, "hf-%s-%s-%s", arch, dtype, shards);
    int rc = kc_runl("/usr/bin/env", kt_python(), "tests/ref/hf_model.py", "write", dir, "--arch", arch, "--dtype", dtype,
                     "--shards", shards, "--vocab-from", smol, (const char *)NULL);
    if (rc == 3 || rc == 127) KT_SKIP("hf_model.py: the references' Python packages are missing (make check installs them)");
    KT_REQUIRE(rc == 0 || !printf("    hf_model.py write: %s\n", kc_tail(kc_err, 2000)));
    for (int i = 0; i < 3; i++) {
        kc_tpath(dump[i], sizeof dump[i], "hf-%s-%s-%s-%d.dump", arch, dtype, shards, i);
        rc = KGEN("run", dir, "-p", PROMPTS[i], "-n", "8", "--temp", "0", "--ignore-eos", "-t", "2", "--dump-logits",
                  dump[i]);
        KT_REQUIRE(rc == 0 || !printf("    kgen run: %s\n", kc_tail(kc_err, 2000)));
    }
    char *argv[] = {NULL, NULL, "tests/ref/hf_model.py", "check", dir, dump[0], dump[1], dump[2], NULL};
    kc_ref_check(argv);
}

KT_TEST(hf_decoder_llama_bf16) { decoder("llama", "bf16", "1"); }
KT_TEST(hf_decoder_llama_f16_shards) { decoder("llama", "f16", "2"); }
KT_TEST(hf_decoder_qwen2_f32) { decoder("qwen2", "f32", "1"); }
