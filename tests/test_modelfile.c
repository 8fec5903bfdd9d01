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
 */
#include "kt.h"
#include "kt_cli.h"
#include "kgen_check.h"

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
