"""Is this file a whole kgen model? The checks of include/kgen_check.h
(kgm_check_file), in Python, made before the file is loaded.

kgm_check_file is header-only (a static inline function), so a compiled model
does not export it; and it must run before dlopen(): a model cut short inside
its ELF image makes the dynamic loader touch pages past the end of the file,
which kills the process with SIGBUS, and a file that is not a model would have
its constructors run. This reads only headers and checks, in order:
  - an ELF file: 64-bit, little-endian, a shared object for this machine;
  - the program header table and every segment's file bytes inside the file,
    the section header table too (when there is one);
  - the kgen note (name "kgen", type 1, a 288-byte descriptor) present, of
    note version 1;
  - weights appended after the ELF image: present and of the recorded size.
"""
import os
import platform
import struct

KGM_NOTE_MODEL = 1
KGM_NOTE_VERSION = 1
WEIGHTS_IN_IMAGE, WEIGHTS_APPENDED, WEIGHTS_EXTERNAL = 0, 1, 2
_NOTE_SIZE = 4 * 4 + 8 + 8 + 256
_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")  # Elf64_Ehdr, 64 bytes
_PHDR = struct.Struct("<IIQQQQQQ")  # Elf64_Phdr, 56 bytes
_NHDR = struct.Struct("<III")  # Elf64_Nhdr
_SHDR_SIZE = 64
_ET_DYN, _PT_LOAD, _PT_NOTE, _PN_XNUM = 3, 1, 4, 0xFFFF
_MACHINES = {"x86_64": 62, "amd64": 62, "aarch64": 183, "arm64": 183}


class CheckError(Exception):
    """The file is not a whole kgen model for this machine (the message says why)."""


def _inside(off, length, size):
    return off <= size and length <= size - off


class _File:
    def __init__(self, f, size):
        self.f, self.size = f, size

    def read(self, off, n):
        """n bytes at off, all of them, or None"""
        if not _inside(off, n, self.size):
            return None
        b = os.pread(self.f.fileno(), n, off)
        return b if len(b) == n else None


def _find_note(rf, p_offset, p_filesz):
    """the kgen note's descriptor (bytes) in this PT_NOTE segment, None when
    absent; raises ValueError on a malformed note list"""
    p, end = p_offset, p_offset + p_filesz
    while p + _NHDR.size <= end:
        raw = rf.read(p, _NHDR.size)
        if raw is None:
            raise ValueError
        namesz, descsz, ntype = _NHDR.unpack(raw)
        name_at = p + _NHDR.size
        desc_at = name_at + ((namesz + 3) & ~3)
        nxt = desc_at + ((descsz + 3) & ~3)
        if namesz > end - name_at or desc_at > end or descsz > end - desc_at:
            raise ValueError
        if namesz == 5 and ntype == KGM_NOTE_MODEL and rf.read(name_at, 5) == b"kgen\0":
            desc = rf.read(desc_at, descsz) if descsz == _NOTE_SIZE else None
            if desc is None:
                raise ValueError
            return desc
        p = nxt
    return None


def read_note(path):
    """The kgen note of the model file at path, as a dict (note_version,
    abi_version, weights_where, weights_offset, weight_bytes, weights_file),
    after every check above; raises CheckError naming the file."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise CheckError(f"{path}: {e.strerror}") from None
    with f:
        st = os.fstat(f.fileno())
        import stat as _stat
        if not _stat.S_ISREG(st.st_mode):
            raise CheckError(f"{path}: not a regular file")
        size = st.st_size
        rf = _File(f, size)
        raw = rf.read(0, _EHDR.size)
        if raw is None or raw[:4] != b"\x7fELF":
            raise CheckError(f"{path}: not a kgen model (not an ELF file{', or cut short' if raw is None else ''})")
        (ident, e_type, e_machine, _ver, _entry, e_phoff, e_shoff, _flags, _ehsize, e_phentsize, e_phnum,
         e_shentsize, e_shnum, _shstrndx) = _EHDR.unpack(raw)
        if ident[4] != 2 or ident[5] != 1 or e_type != _ET_DYN:
            raise CheckError(f"{path}: not a kgen model (not a 64-bit little-endian ELF shared object)")
        want = _MACHINES.get(platform.machine().lower())
        if want is not None and e_machine != want:
            raise CheckError(f"{path}: a shared object for another machine (ELF machine {e_machine}, "
                             f"this one is {want})")
        if (e_phentsize != _PHDR.size or e_phnum == 0 or e_phnum == _PN_XNUM
                or not _inside(e_phoff, e_phnum * _PHDR.size, size)):
            raise CheckError(f"{path}: its ELF program headers are missing or lie past the end of the file "
                             f"({size} bytes): truncated or corrupt")
        if e_shoff and (e_shentsize != _SHDR_SIZE or not _inside(e_shoff, e_shnum * _SHDR_SIZE, size)):
            raise CheckError(f"{path}: its ELF section headers lie past the end of the file ({size} bytes): "
                             "truncated or corrupt")
        end, desc = 0, None
        for i in range(e_phnum):
            p_type, _pf, p_offset, _va, _pa, p_filesz, p_memsz, _al = _PHDR.unpack(
                rf.read(e_phoff + i * _PHDR.size, _PHDR.size))
            if p_type == _PT_LOAD and p_filesz > p_memsz:
                raise CheckError(f"{path}: segment {i} has more file bytes than memory: corrupt")
            if not _inside(p_offset, p_filesz, size):
                raise CheckError(f"{path}: segment {i} (file bytes {p_offset}..{p_offset + p_filesz}) runs past "
                                 f"the end of the file ({size} bytes): the file is truncated")
            end = max(end, p_offset + p_filesz)
            if p_type == _PT_NOTE and desc is None:
                try:
                    desc = _find_note(rf, p_offset, p_filesz)
                except ValueError:
                    raise CheckError(f"{path}: its ELF notes are malformed") from None
        if desc is None:
            raise CheckError(f"{path}: not a kgen model (no kgen note; a model from kgen 0.1 must be compiled again)")
        nv, abi, where, _res, w_off, w_bytes = struct.unpack_from("<IIIIQQ", desc)
        wfile = desc[32:].split(b"\0", 1)[0].decode("utf-8", "replace")
        if nv != KGM_NOTE_VERSION:
            raise CheckError(f"{path}: kgen note version {nv}; this program reads version {KGM_NOTE_VERSION}")
        if where > WEIGHTS_EXTERNAL:
            raise CheckError(f"{path}: its kgen note has an unknown weights location ({where})")
        if where == WEIGHTS_APPENDED and (w_off < end or not _inside(w_off, w_bytes, size)):
            raise CheckError(f"{path}: the weights that follow the code in this file are missing or cut short "
                             f"({max(size - w_off, 0)} of {w_bytes} bytes; was the file stripped or truncated?)")
        return {"note_version": nv, "abi_version": abi, "weights_where": where, "weights_offset": w_off,
                "weight_bytes": w_bytes, "weights_file": wfile}


def check_file(path):
    """None when path holds a whole kgen model for this machine, else raises
    CheckError with the reason (as kgm_check_file in include/kgen_check.h)."""
    read_note(path)
