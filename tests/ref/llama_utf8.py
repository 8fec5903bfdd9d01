#!/usr/bin/env python3
"""llama_utf8.py — how llama.cpp reads bytes as code points (its
unicode_cpts_from_utf8 in src/unicode.cpp, at the commit llama-cpp-python
0.3.36 vendors, 0c1e57098), written here from that rule, for tok_ref.py's
reference and tok_llama_cpp.py. Standard library only.

An ASCII byte is itself. A lead byte 110xxxxx, 1110xxxx or 11110xxx
followed by 1, 2 or 3 continuation bytes 10xxxxxx is the value of their
payload bits: overlong forms are read as their value (C0 80 is U+0000, E0 81 81
is 'A') and surrogates as themselves (ED A0 80 is U+D800). Any other byte (a
continuation byte or F8..FF first, a lead byte whose sequence is cut short by
another byte or by the end) is U+FFFD, and reading goes on at the next byte.

A 4-byte form past U+10FFFF (F4 90 80 80 .. F7 BF BF BF) reads as its value
too, and then llama.cpp's unicode_cpt_to_utf8 throws std::invalid_argument out
of llama_tokenize, which ends the process (std::terminate). There is nothing
to match; kgen reads such a lead byte like any other failure, U+FFFD and on
at the next byte, and so does llama_cpp_read.
"""
import re

SEQ = re.compile(rb"[\xc0-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf7][\x80-\xbf]{3}")


def llama_cpp_read(b, past_max=None):
    """The code points of bytes b as read by the rule above; the offset of
    each 4-byte form past U+10FFFF met is appended to past_max (a list)."""
    cps, i = [], 0
    while i < len(b):
        if b[i] < 0x80:
            cps.append(b[i])
            i += 1
            continue
        m, cp = SEQ.match(b, i), None
        if m:
            seq = m.group()
            cp = seq[0] & (0x7F >> len(seq))
            for c in seq[1:]:
                cp = cp << 6 | (c & 0x3F)
            if cp > 0x10FFFF:
                if past_max is not None:
                    past_max.append(i)
                cp = None
        if cp is None:
            cps.append(0xFFFD)
            i += 1
        else:
            cps.append(cp)
            i += len(seq)
    return cps


def utf8(cps):
    """Code points in UTF-8, a surrogate as its three bytes (as llama.cpp's
    unicode_cpt_to_utf8 writes it)."""
    return b"".join(chr(c).encode("utf-8", "surrogatepass") for c in cps)
