#!/usr/bin/env python3
"""quant_ref.py IN.gguf OUT.gguf --quant SCHEME [--quant-tensor PATTERN=SCHEME]... [--requant]
— IN with its matrices quantized as `kgen compile --quant` is specified to
quantize them (gen/quant.h), by an independent implementation: the `gguf`
package's numpy quantizers (llama.cpp's own Python, bit-exact with ggml's
reference quantizers) and numpy's float16 rounding. kgen's tests compile
IN with --quant and OUT as it is, and compare the packed weights byte for
byte (tests/test_quant.c).

The rules, written from the specification, not from kgen's code:
  - schemes: w8g32 = Q8_0, w4g32 = Q4_0, w4g32a = Q4_1, w5g32 = Q5_0,
    w5g32a = Q5_1, f16 = F16, none = as in IN;
  - only matrices (2 dimensions) are rewritten; the default scheme applies to
    those named blk.*.weight, token_embd.weight and output.weight; a
    --quant-tensor PATTERN (a shell glob, fnmatch) takes precedence, the last
    matching one winning;
  - a matrix already of the scheme's type is kept; under the default scheme,
    one whose rows are not whole blocks of 32, or that IN has quantized
    (without --requant), is kept too; with --requant a quantized matrix is
    dequantized (gguf's dequantizer) and quantized again.
Prints one line per rewritten tensor.
"""
import argparse
import fnmatch
import sys

sys.dont_write_bytecode = True

try:
    import numpy as np
    from gguf import GGMLQuantizationType as T
    from gguf import GGUFReader, GGUFValueType, GGUFWriter
    from gguf.quants import dequantize, quantize
except ImportError as e:
    print(f"skipped: {e}")
    sys.exit(77)

SCHEMES = {"w8g32": T.Q8_0, "w4g32": T.Q4_0, "w4g32a": T.Q4_1, "w5g32": T.Q5_0, "w5g32a": T.Q5_1,
           "f16": T.F16, "none": None}
FLOATS = (T.F32, T.F16, T.BF16)


def default_set(name):
    return name.endswith(".weight") and (name.startswith("blk.") or name in ("token_embd.weight", "output.weight"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--quant", default="none", choices=sorted(SCHEMES))
    ap.add_argument("--quant-tensor", action="append", default=[])
    ap.add_argument("--requant", action="store_true")
    a = ap.parse_args()
    rules = [tuple(r.rsplit("=", 1)) for r in a.quant_tensor]
    r = GGUFReader(a.src)
    arch = r.fields["general.architecture"].contents()
    w = GGUFWriter(a.dst, arch)
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k == "general.architecture":
            continue
        sub = f.types[1] if f.types[0] == GGUFValueType.ARRAY else None
        w.add_key_value(k, f.contents(), f.types[0], sub)
    n = 0
    for t in r.tensors:
        shape = [int(x) for x in reversed(t.shape)]  # numpy order: rows first
        scheme = a.quant if default_set(t.name) else None
        named = False
        for pat, s in rules:
            if fnmatch.fnmatchcase(t.name, pat):
                scheme, named = s, True
        want = SCHEMES[scheme] if scheme and len(shape) == 2 else None
        if want is not None and want != t.tensor_type:
            quantized = t.tensor_type not in FLOATS
            whole = want == T.F16 or shape[-1] % 32 == 0
            if not whole or (quantized and not a.requant):
                if named:
                    sys.exit(f"quant_ref: {t.name}: {scheme} does not apply (kgen refuses it)")
                want = None
        else:
            want = None
        if want is None:
            if t.tensor_type in FLOATS[:2]:
                w.add_tensor(t.name, np.asarray(t.data).reshape(shape))
            else:
                w.add_tensor(t.name, np.asarray(t.data), raw_dtype=t.tensor_type)
            continue
        x = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(shape)
        if want == T.F16:
            w.add_tensor(t.name, x.astype(np.float16))
        else:
            w.add_tensor(t.name, quantize(x, want), raw_dtype=want)
        print(f"{t.name} {t.tensor_type.name} -> {want.name}")
        n += 1
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"quant_ref: wrote {a.dst}: {n} tensors rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
