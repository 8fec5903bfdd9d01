/*
 * test_modelfile.c — a damaged model file is refused before dlopen, never a
 * crash (include/kgen_check.h, gen/loader.c):
 *
 *   modelfile_truncated   the tiny .so cut at every segment and header edge
 *                         (and in their middles), through the weights: each
 *                         cut is refused by kgm_check_file with a message, and
 *                         `kgen run` of it exits 1 naming the file, not by a
 *                         signal (it died of SIGBUS inside dlopen before)
 *   modelfile_stripped    strip(1) drops the appended weights: refused by
 *                         the check, with the reason
 *   modelfile_not_models  ELF files that are not models (a library, an
 *                         object, an executable) and junk are refused
 *                         before dlopen; the whole model passes
 *   modelfile_metadata_overflow  a descriptor the fuzzer found: a layer count
 *                         whose double overflows is refused without UB
 *
 * With KGEN_WRITE_MODEL_CORPUS=DIR, modelfile_truncated also writes seeds for
 * tests/fuzz_model.c there (make fuzz): a small shared object carrying a kgen
 * note and appended weights, cuts of it, and the tiny model's descriptor and
 * tokenizer blob.
 */
#include "kt.h"
#include "kt_cli.h"
#include "kgen.h"
#include "kgen_check.h"
#include "gen.h"
#include "runtime/model/desc.h"
#include "runtime/model/rt.h"

#include <elf.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = len > 0 ? malloc((size_t)len) : NULL;
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) free(b), b = NULL;
    fclose(f);
    *n = b ? (size_t)len : 0;
    return b;
}

static bool spill(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(data, 1, n, f) == n;
    return f ? (fclose(f) == 0 && ok) : false;
}

/* The cut points: every edge of the ELF header, the program and section
 * header tables and each segment's file bytes, one byte either side, the
 * middles, and points in the weights. */
static int cut_points(const unsigned char *img, size_t n, size_t *cuts, int cap)
{
    int k = 0;
#define CUT(x) ((size_t)(x) < n && k < cap ? (void)(cuts[k++] = (size_t)(x)) : (void)0)
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;
    CUT(0), CUT(1), CUT(4), CUT(16), CUT(sizeof *eh - 1), CUT(sizeof *eh);
    CUT(eh->e_phoff + 1), CUT(eh->e_phoff + (size_t)eh->e_phnum * sizeof(Elf64_Phdr) - 1);
    CUT(eh->e_shoff), CUT(eh->e_shoff + 1), CUT(n > 1 ? n - 1 : 0);
    for (int i = 0; i < eh->e_phnum; i++) {
        const Elf64_Phdr *ph = (const Elf64_Phdr *)(img + eh->e_phoff + (size_t)i * sizeof *ph);
        if (!ph->p_filesz) continue;
        CUT(ph->p_offset + 1), CUT(ph->p_offset + ph->p_filesz / 2), CUT(ph->p_offset + ph->p_filesz - 1);
    }
    /* the weights: their first byte, middle and last */
    kgm_note note;
    uint64_t at, end;
    char path[600], err[512];
    kc_tpath(path, sizeof path, "tiny/whole.so");
    FILE *f = fopen(path, "rb");
    if (f) {
        if (!kgm_read_note(fileno(f), path, err, sizeof err, &note, &at, &end) &&
            note.weights_where == KGM_WEIGHTS_APPENDED) {
            CUT(end), CUT(note.weights_offset), CUT(note.weights_offset + 1);
            CUT(note.weights_offset + note.weight_bytes / 2);
        }
        fclose(f);
    }
#undef CUT
    return k;
}

/* seed k of the model fuzzer: the mode byte, then the bytes */
static void seed(const char *dir, int k, uint8_t mode, const void *data, size_t n)
{
    char path[700];
    snprintf(path, sizeof path, "%s/model-%02d.bin", dir, k);
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(&mode, 1, 1, f) == 1 && fwrite(data, 1, n, f) == n;
    KT_CHECKF(f && fclose(f) == 0 && ok, "cannot write %s", path);
}

static void write_seeds(const char *dir, const unsigned char *img, size_t n)
{
    kc_make_dir(dir);
    /* a small shared object with a kgen note and 4 KiB of appended weights */
    char src[600], so[600];
    kc_tpath(src, sizeof src, "tiny/seed.S");
    kc_tpath(so, sizeof so, "tiny/seed.so");
    char note_s[1024];
    int len = snprintf(note_s, sizeof note_s,
                       ".section .note.kgen, \"a\", @note\n.balign 4\n.long 5, %zu, %d\n.asciz \"kgen\"\n.balign 4\n"
                       ".long %d, %d, %d, 0\n.quad 0, 4096\n.zero 256\n.balign 4\n"
                       ".text\n.globl f\nf: ret\n.section .note.GNU-stack, \"\", @progbits\n",
                       sizeof(kgm_note), KGM_NOTE_MODEL, KGM_NOTE_VERSION, 1, KGM_WEIGHTS_APPENDED);
    KT_REQUIRE(spill(src, note_s, (size_t)len) && SH("cc", "-shared", "-nostdlib", src, "-o", so) == 0);
    size_t m;
    unsigned char *small = slurp(so, &m);
    KT_REQUIRE(small);
    FILE *f = fopen(so, "rb");
    kgm_note note;
    uint64_t at, end;
    char err[512];
    KT_REQUIRE(f && !kgm_read_note(fileno(f), so, err, sizeof err, &note, &at, &end));
    fclose(f);
    size_t off = (m + 4095) / 4096 * 4096, total = off + 4096;
    unsigned char *whole = calloc(1, total);
    KT_REQUIRE(whole);
    memcpy(whole, small, m);
    note.weights_offset = off;
    memcpy(whole + at, &note, sizeof note);
    KT_CHECK(spill(so, whole, total) && kgm_check_file(so, err, sizeof err) == 0);
    int k = 0;
    seed(dir, k++, 0, whole, total);
    for (size_t c = 64; c < m; c += m / 7) seed(dir, k++, 0, whole, c);
    free(whole);
    free(small);
    /* the tiny model's descriptor (found by its magic) and tokenizer blob */
    const uint32_t magic[2] = {KGM_DESC_MAGIC, KGM_DESC_VERSION};
    const unsigned char *d = NULL;
    for (size_t o = 0; o + sizeof(kgm_desc) <= n && !d; o += 64)
        if (!memcmp(img + o, magic, sizeof magic)) d = img + o;
    kg_gguf *g;
    void *tok = NULL;
    size_t ntok = 0;
    KT_REQUIRE(d && kg_gguf_open(kc_tiny_gguf, &g) == KG_OK);
    KT_REQUIRE(gen_tokdata(g, NULL, &tok, &ntok) == KG_OK);
    unsigned char *meta = malloc(sizeof(kgm_desc) + ntok);
    KT_REQUIRE(meta);
    memcpy(meta, d, sizeof(kgm_desc));
    memcpy(meta + sizeof(kgm_desc), tok, ntok);
    seed(dir, k++, 1, meta, sizeof(kgm_desc) + ntok);
    printf("    wrote %d model fuzzer seeds to %s\n", k, dir);
    free(meta);
    free(tok);
    kg_gguf_close(g);
}

KT_TEST(modelfile_truncated)
{
    NEED_TINY();
    size_t n;
    unsigned char *img = slurp(kc_tiny_so, &n);
    KT_REQUIRE(img && n > sizeof(Elf64_Ehdr));
    char whole[600], cut[600], err[512];
    kc_tpath(whole, sizeof whole, "tiny/whole.so");
    kc_tpath(cut, sizeof cut, "tiny/cut.so");
    KT_REQUIRE(spill(whole, img, n));
    KT_CHECKF(kgm_check_file(whole, err, sizeof err) == 0, "the whole model is refused: %s", err);
    size_t cuts[64];
    int nc = cut_points(img, n, cuts, 64), runs = 0;
    KT_CHECKF(nc >= 20, "only %d cut points", nc);
    for (int i = 0; i < nc; i++) {
        KT_REQUIRE(spill(cut, img, cuts[i]));
        err[0] = 0;
        KT_CHECKF(kgm_check_file(cut, err, sizeof err) == -1 && strstr(err, cut), "cut at %zu of %zu: check says '%s'",
                  cuts[i], n, err);
        /* kgen run on every few cuts (each is a process) */
        if (i % 3 && i != nc - 1) continue;
        runs++;
        int rc = KGEN("run", cut, "-p", "hi", "-n", "1", "-t", "1");
        KT_CHECKF(rc == 1 && strstr(kc_err, "cut.so"), "kgen run of the model cut at %zu of %zu: exit %d (%s): %s",
                  cuts[i], n, rc, rc > 128 ? strsignal(rc - 128) : "no signal", kc_err);
    }
    printf("    %d cuts checked, %d through kgen run\n", nc, runs);
    const char *corpus = getenv("KGEN_WRITE_MODEL_CORPUS");
    if (corpus && *corpus) write_seeds(corpus, img, n);
    free(img);
}

KT_TEST(modelfile_stripped)
{
    NEED_TINY();
    char so[600], err[512];
    kc_tpath(so, sizeof so, "tiny/stripped.so");
    int rc = SH("cp", kc_tiny_so, so);
    KT_REQUIRE(rc == 0);
    rc = SH("strip", so);
    if (rc == 127) KT_SKIP("strip(1) is not installed");
    KT_REQUIRE(rc == 0);
    KT_CHECKF(kgm_check_file(so, err, sizeof err) == -1 && strstr(err, "stripped"), "check of a stripped model: %s", err);
    rc = KGEN("run", so, "-p", "hi", "-n", "1");
    KT_CHECKF(rc == 1 && strstr(kc_err, "stripped.so") && strstr(kc_err, "stripped or truncated"),
              "kgen run of a stripped model: exit %d: %s", rc, kc_err);
}

KT_TEST(modelfile_not_models)
{
    NEED_TINY();
    char src[600], lib[600], obj[600], exe[600], err[512];
    kc_tpath(src, sizeof src, "tiny/nm.c");
    kc_tpath(lib, sizeof lib, "tiny/nm.so");
    kc_tpath(obj, sizeof obj, "tiny/nm.o");
    kc_tpath(exe, sizeof exe, "tiny/nm");
    KT_REQUIRE(spill(src, "int main(void) { return 0; }\n", 29));
    KT_REQUIRE(SH("cc", "-shared", "-fPIC", src, "-o", lib) == 0);
    KT_REQUIRE(SH("cc", "-c", src, "-o", obj) == 0);
    KT_REQUIRE(SH("cc", src, "-o", exe) == 0);
    const char *const files[] = {lib, obj, exe, "/dev/null", src};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        err[0] = 0;
        KT_CHECKF(kgm_check_file(files[i], err, sizeof err) == -1 && strstr(err, files[i]), "%s: check says '%s'",
                  files[i], err);
    }
    int rc = KGEN("run", lib, "-p", "hi");
    KT_CHECKF(rc == 1 && strstr(kc_err, "not a kgen model"), "kgen run of a library: exit %d: %s", rc, kc_err);
    KT_CHECKF(kgm_check_file(kc_tiny_so, err, sizeof err) == 0, "the tiny model is refused: %s", err);
}

/* Found by tests/fuzz_model.c: a descriptor whose layer count doubles past
 * INT_MAX (UBSan: signed overflow in the check itself) is refused cleanly. */
KT_TEST(modelfile_metadata_overflow)
{
    kgm_desc d;
    memset(&d, 0, sizeof d);
    d.magic = KGM_DESC_MAGIC, d.version = KGM_DESC_VERSION, d.backend = KGM_BACKEND_CPU;
    d.n_layer = 1179010630, d.n_kv_tensors = -1936946036; /* 2 * n_layer wrapped to 32 bits */
    d.n_embd = d.n_head = d.n_head_kv = d.head_dim = d.n_vocab = d.n_ctx_train = d.n_batch = 1;
    d.kv_elem_bytes = 2;
    char err[256] = "";
    KT_CHECK(kgr_model_check(&d, "", 0, NULL, err, sizeof err) == -1);
    KT_CHECKF(strstr(err, "impossible sizes"), "%s", err);
}
