/*
 * test_abi.c — the model ABI's compatibility promise (include/kgen_model.h,
 * "Compatibility"):
 *
 *   abi_released_headers   a program built against every released header
 *                          (tests/abi/kgen_model_v*.h) opens a model this
 *                          kgen compiles, describes it, generates text
 *   abi_older_model        a model whose kgm_api reports an older ABI is
 *                          refused with a message, by kgen run and by such a
 *                          program (it checks abi_version as the README says)
 */
#include "kt.h"
#include "kt_cli.h"

#include <dirent.h>
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A program using every v1 function but chat formatting, through the table. */
static const char prog_src[] =
    "#include <dlfcn.h>\n#include <stdio.h>\n#include <string.h>\n#include KGM_HEADER\n"
    "int main(int argc, char **argv) {\n"
    "    if (argc != 2) return 2;\n"
    "    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);\n"
    "    const kgm_api_v1 *api = h ? dlsym(h, \"kgm_api\") : NULL;\n"
    "    if (!api) { fprintf(stderr, \"%s: not a model\\n\", argv[1]); return 1; }\n"
    "    if (api->abi_version < KGM_ABI_VERSION) {\n"
    "        fprintf(stderr, \"%s: ABI %d, older than this program's %d\\n\", argv[1], api->abi_version, KGM_ABI_VERSION);\n"
    "        return 1;\n"
    "    }\n"
    "    char err[512];\n"
    "    kgm_model *m = api->open(&(kgm_open_params){.n_threads = 1, .n_ctx = 64}, err, sizeof err);\n"
    "    if (!m) { fprintf(stderr, \"%s\\n\", err); return 1; }\n"
    "    kgm_info info;\n"
    "    api->describe(m, &info);\n"
    "    printf(\"abi %d vocab %d ctx %d layers %d\\n\", info.abi_version, info.n_vocab, info.n_ctx, info.n_layer);\n"
    "    int32_t toks[64];\n"
    "    int n = api->tokenize(m, \"hello there\", 11, KGM_TOK_BOS, toks, 64);\n"
    "    const float *lg = n > 0 && n < 32 ? api->prefill(m, toks, n, 0) : NULL;\n"
    "    api->sampler_init(m, &(kgm_sampler_params){.temp = 0, .seed = 1});\n"
    "    for (int i = 0; lg && i < 8; i++) {\n"
    "        int32_t t = api->sample(m, lg);\n"
    "        char piece[64];\n"
    "        int len = api->token_piece(m, t, piece, sizeof piece);\n"
    "        if (len > 0) fwrite(piece, 1, len < 64 ? (size_t)len : 64, stdout);\n"
    "        lg = api->decode(m, t, n + i);\n"
    "    }\n"
    "    api->reset(m);\n"
    "    if (!lg) fprintf(stderr, \"%s\\n\", api->error(m));\n"
    "    api->close(m);\n"
    "    dlclose(h);\n"
    "    return lg ? 0 : 1;\n"
    "}\n";

/* Builds the program against tests/abi/HEADER into kt_tmpdir()/abi/NAME. */
static bool build(const char *header, char *prog, size_t cap)
{
    char dir[600], src[700], def[700];
    kc_tpath(dir, sizeof dir, "abi");
    if (!kc_make_dir(dir)) return false;
    snprintf(src, sizeof src, "%s/prog.c", dir);
    snprintf(prog, cap, "%s/prog-%s", dir, header);
    snprintf(def, sizeof def, "-DKGM_HEADER=\"%s\"", header);
    FILE *f = fopen(src, "w");
    if (!f || fputs(prog_src, f) < 0 || fclose(f)) return false;
    int rc = SH("cc", "-std=gnu11", "-Wall", "-Werror", "-Itests/abi", def, src, "-o", prog, "-ldl");
    KT_CHECKF(rc == 0, "a program against tests/abi/%s does not build (%d): %s", header, rc, kc_err);
    return rc == 0;
}

KT_TEST(abi_released_headers)
{
    NEED_TINY();
    DIR *d = opendir("tests/abi");
    if (!d) KT_SKIP("tests/abi not found (run from the repository root)");
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, "kgen_model_v", 12) || !strstr(e->d_name, ".h")) continue;
        char prog[800];
        n++;
        if (!build(e->d_name, prog, sizeof prog)) continue;
        int rc = kc_runl(prog, kc_tiny_so, (const char *)NULL);
        KT_CHECKF(rc == 0 && strstr(kc_out, "vocab 300 ctx 64 layers 2"),
                  "a program built against %s on a new model: exit %d: %s%s", e->d_name, rc, kc_out, kc_err);
    }
    closedir(d);
    KT_CHECKF(n >= 1, "no released header in tests/abi");
}

/* Sets the model's kgm_api.abi_version in the file (the table is exported:
 * nm -D gives its address, the program headers its file offset). */
static bool patch_abi(const char *so, int32_t v)
{
    if (SH("nm", "-D", "--defined-only", so) != 0) return false;
    unsigned long long addr = 0;
    for (const char *l = kc_out; l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        char name[64];
        if (sscanf(l, "%llx %*s %63s", &addr, name) == 2 && !strcmp(name, "kgm_api")) break;
        addr = 0;
    }
    FILE *f = addr ? fopen(so, "r+b") : NULL;
    if (!f) return false;
    Elf64_Ehdr eh;
    bool ok = fread(&eh, sizeof eh, 1, f) == 1;
    long off = -1;
    for (int i = 0; ok && i < eh.e_phnum && off < 0; i++) {
        Elf64_Phdr ph;
        ok = fseek(f, (long)(eh.e_phoff + (uint64_t)i * sizeof ph), SEEK_SET) == 0 && fread(&ph, sizeof ph, 1, f) == 1;
        if (ok && ph.p_type == PT_LOAD && addr >= ph.p_vaddr && addr + 4 <= ph.p_vaddr + ph.p_filesz)
            off = (long)(addr - ph.p_vaddr + ph.p_offset);
    }
    ok = ok && off >= 0 && fseek(f, off, SEEK_SET) == 0 && fwrite(&v, 4, 1, f) == 1;
    return fclose(f) == 0 && ok;
}

KT_TEST(abi_older_model)
{
    NEED_TINY();
    char old[600], prog[800];
    kc_tpath(old, sizeof old, "abi/old.so");
    KT_REQUIRE(kc_make_dir(kc_tpath(prog, sizeof prog, "abi")));
    KT_REQUIRE(SH("cp", kc_tiny_so, old) == 0);
    REQUIRE_F(patch_abi(old, 0), "cannot find and patch kgm_api in %s", old);
    int rc = KGEN("run", old, "-p", "hi", "-n", "1");
    KT_CHECKF(rc == 1 && strstr(kc_err, "old.so") && strstr(kc_err, "ABI version 0"),
              "kgen run of a model of ABI 0: exit %d: %s", rc, kc_err);
    KT_REQUIRE(build("kgen_model_v1.h", prog, sizeof prog));
    rc = kc_runl(prog, old, (const char *)NULL);
    KT_CHECKF(rc == 1 && strstr(kc_err, "ABI 0, older"), "the v1 program on a model of ABI 0: exit %d: %s", rc, kc_err);
}
