/*
 * fuzz_model.c — libFuzzer target for what kgen reads of a compiled model:
 *
 *   input[0] even: the rest is a model file: kgm_check_file (ELF headers,
 *                  segments, the kgen note, the appended weights) through a
 *                  memfd, as kgen run checks a .so before dlopen;
 *   input[0] odd:  the rest is a descriptor (runtime/model/desc.h) followed
 *                  by a tokenizer blob: kgr_model_check, the metadata checks
 *                  kgm_open and kgen compile share; when it passes, the
 *                  tokenizer is used (tokenize with and without special
 *                  tokens, every piece, chat formatting), byte-level BPE
 *                  or SentencePiece-style (blob version 2, gen/tokdata.c).
 *
 * Any crash, out-of-bounds read, leak or undefined behaviour is a bug.
 * Seeds (make fuzz): tests/test_modelfile.c writes the tiny model's cut
 * points and its metadata with KGEN_WRITE_CORPUS=DIR.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined ... tests/fuzz_model.c runtime/model/...
 */
#include "kgen_check.h"
#include "runtime/model/desc.h"
#include "runtime/model/rt.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile uint64_t sink;

static void model_file(const uint8_t *data, size_t n)
{
    int fd = memfd_create("fuzz-model", MFD_CLOEXEC);
    if (fd < 0) return;
    char path[64], err[512];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    if (write(fd, data, n) == (ssize_t)n) sink += (uint64_t)kgm_check_file(path, err, sizeof err) + (uint8_t)err[0];
    close(fd);
}

static void metadata(const uint8_t *data, size_t n)
{
    kgm_desc d;
    if (n < sizeof d) return;
    memcpy(&d, data, sizeof d);
    /* the tokenizer blob in its own allocation: ASan sees reads past its end */
    size_t nt = n - sizeof d;
    uint8_t *tok = malloc(nt ? nt : 1);
    if (!tok) return;
    memcpy(tok, data + sizeof d, nt);
    kgr_tok *t = NULL;
    char err[512];
    if (kgr_model_check(&d, tok, nt, &t, err, sizeof err) == 0) {
        static const char text[] = "Hello, <|im_start|>world \xF0\x9F\x98\x80 12345 \xC0\x80\xFF caf\xC3\xA9\n\n"
                                   "<start_of_turn>  \xE2\x96\x81x\xE2<0x41>";
        int32_t ids[256];
        sink += (uint64_t)kgr_tokenize(t, text, sizeof text - 1, KGM_TOK_BOS, ids, 256);
        int m = kgr_tokenize(t, text, sizeof text - 1, KGM_TOK_SPECIAL, ids, 256);
        char piece[256];
        for (int i = 0; i < m && i < 256; i++) sink += (uint64_t)kgr_token_piece(t, ids[i], piece, sizeof piece);
        for (int32_t i = 0; i < kgr_tok_n_vocab(t) && i < 4096; i++)
            sink += (uint64_t)kgr_token_piece(t, i, piece, sizeof piece) + (uint64_t)kgr_is_eog(t, i);
        kgm_message msgs[2] = {{"system", "be brief"}, {"user", "hi"}};
        char buf[512];
        sink += (uint64_t)kgr_chat(t, msgs, 2, 1, buf, sizeof buf, err, sizeof err);
        kgr_tok_free(t);
    }
    free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    if (n < 1) return 0;
    if (data[0] & 1) metadata(data + 1, n - 1);
    else model_file(data + 1, n - 1);
    return 0;
}
