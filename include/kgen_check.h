/*
 * kgen_check.h — is this file a whole kgen model? Checked before dlopen().
 *
 * Header-only (libc and POSIX.1-2008 only; no libkgen needed): include it in the
 * program that loads models and call kgm_check_file() before dlopen(). A
 * model file cut short inside its ELF image makes the dynamic loader map
 * pages past the end of the file, and the first touch of one kills the
 * process with SIGBUS inside dlopen(); a file that is not a model would have
 * its constructors run by dlopen(). This reads only headers (a few KB, with
 * pread) and checks, in order:
 *   - an ELF file: 64-bit, little-endian, a shared object for this machine;
 *   - the program header table, and every segment's file bytes, inside the
 *     file; the section header table too (when there is one);
 *   - the kgen note (below): present, of a version this header reads;
 *   - the model's weights, when appended after the ELF image: present and of
 *     the recorded size (strip(1) drops them). External weights
 *     (--external-weights) are checked by kgm_open: size and content hash.
 * kgen run and kgen bench make the same check, with this header.
 *
 *   char err[512];
 *   if (kgm_check_file(path, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); return 1; }
 *   void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
 *
 * The kgen note: an ELF note (in a PT_NOTE segment, which strip keeps) with
 * name "kgen" and type KGM_NOTE_MODEL, whose descriptor is, little-endian:
 *
 *   offset size  field
 *        0    4  note_version     KGM_NOTE_VERSION
 *        4    4  abi_version      the model's KGM_ABI_VERSION (kgen_model.h)
 *        8    4  weights_where    KGM_WEIGHTS_IN_IMAGE (objects), _APPENDED, _EXTERNAL
 *       12    4  reserved         0
 *       16    8  weights_offset   _APPENDED: the file offset of the weights (page-aligned)
 *       24    8  weight_bytes     the packed weights' size
 *       32  256  weights_file     _EXTERNAL: the weights file's name, NUL-terminated
 */
#ifndef KGEN_CHECK_H
#define KGEN_CHECK_H

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200809L
#error "kgen_check.h needs POSIX.1-2008 (pread, O_CLOEXEC): compile with -D_POSIX_C_SOURCE=200809L, or in the compiler's default (gnu) mode"
#endif

#define KGM_NOTE_MODEL 1
#define KGM_NOTE_VERSION 1
enum { KGM_WEIGHTS_IN_IMAGE = 0, KGM_WEIGHTS_APPENDED = 1, KGM_WEIGHTS_EXTERNAL = 2 };

typedef struct kgm_note {
    uint32_t note_version, abi_version, weights_where, reserved;
    uint64_t weights_offset, weight_bytes;
    char weights_file[256];
} kgm_note;

#if defined(__x86_64__)
#define KGM_ELF_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define KGM_ELF_MACHINE EM_AARCH64
#endif

/* A message into err (when cap > 0); -1. (Through a va_list, so that a
 * caller's fixed-size buffer draws no truncation warning: messages are cut
 * to fit, by design.) */
static inline int kgm__msg(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline int kgm__msg(char *err, size_t cap, const char *fmt, ...)
{
    if (err && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* n bytes at off of fd, all of them, or -1 */
static inline int kgm__pread_all(int fd, void *buf, size_t n, uint64_t off)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

/* [off, off + len) lies inside a file of `size` bytes (no overflow) */
static inline int kgm__inside(uint64_t off, uint64_t len, uint64_t size) { return off <= size && len <= size - off; }

/* The kgen note in the PT_NOTE segment ph (its bytes inside the file): 1
 * found (into *note; its offset in the file into *at), 0 not there, -1 on a
 * malformed note list. */
static inline int kgm__find_note(int fd, const Elf64_Phdr *ph, kgm_note *note, uint64_t *at)
{
    uint64_t p = ph->p_offset, end = ph->p_offset + ph->p_filesz;
    while (end - p >= sizeof(Elf64_Nhdr)) {
        Elf64_Nhdr nh;
        char name[8];
        if (kgm__pread_all(fd, &nh, sizeof nh, p)) return -1;
        uint64_t name_at = p + sizeof nh, desc_at = name_at + (((uint64_t)nh.n_namesz + 3) & ~(uint64_t)3);
        uint64_t next = desc_at + (((uint64_t)nh.n_descsz + 3) & ~(uint64_t)3);
        if (nh.n_namesz > end - name_at || desc_at > end || nh.n_descsz > end - desc_at || next > end + 3) return -1;
        if (nh.n_namesz == 5 && nh.n_type == KGM_NOTE_MODEL && !kgm__pread_all(fd, name, 5, name_at) &&
            !memcmp(name, "kgen", 5)) {
            if (nh.n_descsz != sizeof *note || kgm__pread_all(fd, note, sizeof *note, desc_at)) return -1;
            *at = desc_at;
            return 1;
        }
        p = next;
    }
    return 0;
}

/* The ELF checks above on the open file fd (`path` for messages): 0 with the
 * kgen note in *note, its descriptor's file offset in *note_at and the end of
 * the ELF image's file bytes in *image_end; -1 with a message in err. */
static inline int kgm_read_note(int fd, const char *path, char *err, size_t cap, kgm_note *note, uint64_t *note_at,
                                uint64_t *image_end)
{
#define KGM__FAIL(...) return kgm__msg(err, cap, __VA_ARGS__)
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) KGM__FAIL("%s: not a regular file", path);
    const uint64_t size = (uint64_t)sb.st_size;
    Elf64_Ehdr eh;
    if (size < sizeof eh || kgm__pread_all(fd, &eh, sizeof eh, 0) || memcmp(eh.e_ident, ELFMAG, SELFMAG))
        KGM__FAIL("%s: not a kgen model (not an ELF file%s)", path, size < sizeof eh ? ", or cut short" : "");
    if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_type != ET_DYN)
        KGM__FAIL("%s: not a kgen model (not a 64-bit little-endian ELF shared object)", path);
#ifdef KGM_ELF_MACHINE
    if (eh.e_machine != KGM_ELF_MACHINE)
        KGM__FAIL("%s: a shared object for another machine (ELF machine %u, this one is %u)", path, eh.e_machine,
                  (unsigned)KGM_ELF_MACHINE);
#endif
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum == PN_XNUM ||
        !kgm__inside(eh.e_phoff, (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr), size))
        KGM__FAIL("%s: its ELF program headers are missing or lie past the end of the file (%llu bytes): "
                  "truncated or corrupt",
                  path, (unsigned long long)size);
    if (eh.e_shoff && (eh.e_shentsize != sizeof(Elf64_Shdr) ||
                       !kgm__inside(eh.e_shoff, (uint64_t)eh.e_shnum * sizeof(Elf64_Shdr), size)))
        KGM__FAIL("%s: its ELF section headers lie past the end of the file (%llu bytes): truncated or corrupt", path,
                  (unsigned long long)size);
    uint64_t end = 0;
    int found = 0;
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        if (kgm__pread_all(fd, &ph, sizeof ph, eh.e_phoff + (uint64_t)i * sizeof ph))
            KGM__FAIL("%s: cannot read its program headers: %s", path, strerror(errno));
        if (ph.p_type == PT_LOAD && ph.p_filesz > ph.p_memsz)
            KGM__FAIL("%s: segment %u has more file bytes than memory: corrupt", path, i);
        if (!kgm__inside(ph.p_offset, ph.p_filesz, size))
            KGM__FAIL("%s: segment %u (file bytes %llu..%llu) runs past the end of the file (%llu bytes): the file "
                      "is truncated",
                      path, i, (unsigned long long)ph.p_offset, (unsigned long long)(ph.p_offset + ph.p_filesz),
                      (unsigned long long)size);
        if (ph.p_offset + ph.p_filesz > end) end = ph.p_offset + ph.p_filesz;
        if (ph.p_type == PT_NOTE && !found && (found = kgm__find_note(fd, &ph, note, note_at)) < 0)
            KGM__FAIL("%s: its ELF notes are malformed", path);
    }
    if (!found) KGM__FAIL("%s: not a kgen model (no kgen note; a model from kgen 0.1 must be compiled again)", path);
    if (note->note_version != KGM_NOTE_VERSION)
        KGM__FAIL("%s: kgen note version %u; this program reads version %u", path, note->note_version,
                  (unsigned)KGM_NOTE_VERSION);
    if (note->weights_where > KGM_WEIGHTS_EXTERNAL)
        KGM__FAIL("%s: its kgen note has an unknown weights location (%u)", path, note->weights_where);
    *image_end = end;
    return 0;
#undef KGM__FAIL
}

/* 0 when path holds a whole kgen model for this machine (see above), else -1
 * with the reason, naming the file, in err (when cap > 0). External weights
 * are left to kgm_open, which checks their size and content hash. */
static inline int kgm_check_file(const char *path, char *err, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return kgm__msg(err, cap, "%s: %s", path, strerror(errno));
    kgm_note note;
    uint64_t at = 0, image_end = 0;
    struct stat sb;
    int rc = kgm_read_note(fd, path, err, cap, &note, &at, &image_end);
    if (!rc && note.weights_where == KGM_WEIGHTS_APPENDED) {
        const uint64_t size = fstat(fd, &sb) == 0 ? (uint64_t)sb.st_size : 0;
        if (note.weights_offset < image_end || !kgm__inside(note.weights_offset, note.weight_bytes, size)) {
            rc = kgm__msg(err, cap,
                          "%s: the weights that follow the code in this file are missing or cut short (%llu of %llu "
                          "bytes; was the file stripped or truncated?)",
                          path, (unsigned long long)(size > note.weights_offset ? size - note.weights_offset : 0),
                          (unsigned long long)note.weight_bytes);
        }
    }
    close(fd);
    return rc;
}

#endif
