#!/usr/bin/env python3
"""gguf_dump.py FILE — an independent reading of a GGUF file, for kgen's tests.

Uses the `gguf` package from PyPI (llama.cpp's Python reader), not kgen, and
prints one record per line, which tests/test_models.c compares with kgen's
reader:
    V version alignment data_offset n_kv n_tensors
    K key type value          (scalars; type is kgen's name: u32, f32, ...)
    S key length sha1-of-bytes (strings)
    A key elemtype count       (arrays)
    T name type ne0,ne1,.. n_bytes absolute_offset
Exit status 3 if the gguf package is not installed.
"""
import hashlib
import sys

try:
    import gguf
    from gguf import GGUFReader, GGUFValueType as VT
except ImportError:
    print("the Python package 'gguf' is not installed (pip install gguf)", file=sys.stderr)
    sys.exit(3)

NAMES = {VT.UINT8: "u8", VT.INT8: "i8", VT.UINT16: "u16", VT.INT16: "i16", VT.UINT32: "u32",
         VT.INT32: "i32", VT.FLOAT32: "f32", VT.BOOL: "bool", VT.STRING: "string",
         VT.ARRAY: "array", VT.UINT64: "u64", VT.INT64: "i64", VT.FLOAT64: "f64"}


def main():
    r = GGUFReader(sys.argv[1])
    fields = {k: f for k, f in r.fields.items() if not k.startswith("GGUF.")}
    align = int(r.alignment)
    version = int(r.fields["GGUF.version"].parts[-1][0])
    print(f"V {version} {align} {r.data_offset} {len(fields)} {len(r.tensors)}")
    for key, f in fields.items():
        t = f.types[0]
        if t == VT.ARRAY:
            print(f"A {key} {NAMES[f.types[1]] if len(f.types) > 1 else 'u8'} {len(f.data)}")
        elif t == VT.STRING:
            b = bytes(f.parts[f.data[0]])
            print(f"S {key} {len(b)} {hashlib.sha1(b).hexdigest()}")
        else:
            v = f.parts[f.data[0]][0]
            v = repr(float(v)) if t in (VT.FLOAT32, VT.FLOAT64) else int(v)
            print(f"K {key} {NAMES[t]} {v}")
    for t in r.tensors:
        shape = ",".join(str(int(d)) for d in t.shape)
        print(f"T {t.name} {t.tensor_type.name} {shape} {int(t.n_bytes)} {int(t.data_offset)}")


if __name__ == "__main__":
    main()
