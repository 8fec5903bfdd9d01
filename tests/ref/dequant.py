#!/usr/bin/env python3
"""dequant.py FILE TYPE NE0 [FILE TYPE NE0 ...] — llama.cpp's dequantization
of raw GGUF tensor rows, for kgen's tests.

Each FILE holds whole rows of NE0 elements of the GGML type TYPE (its name:
Q4_1, F16, ...), as they lie in a GGUF file. The dequantizers are the `gguf`
package's from PyPI (llama.cpp's numpy code, gguf.quants.dequantize), not
kgen's; tests/test_kernels_mm.c compares kgen's reference dequantizers
(tests/ref_kernels.c) and its templates with them, on real tensors' rows and
on random blocks. For each FILE prints "= FILE", then one line per row: the
row's float32 values as 8-digit hex bit patterns, separated by spaces.
Exit status 3 if the gguf package is not installed, 2 on bad usage.
"""
import sys

try:
    import numpy as np
    from gguf import GGMLQuantizationType
    from gguf.constants import GGML_QUANT_SIZES
    from gguf.quants import dequantize
except ImportError:
    print("the Python package 'gguf' is not installed (pip install gguf)", file=sys.stderr)
    sys.exit(3)


def main():
    args = sys.argv[1:]
    if not args or len(args) % 3:
        print(__doc__.splitlines()[0], file=sys.stderr)
        sys.exit(2)
    for i in range(0, len(args), 3):
        path, qtype, ne0 = args[i], GGMLQuantizationType[args[i + 1]], int(args[i + 2])
        block, size = GGML_QUANT_SIZES[qtype]
        data = np.fromfile(path, dtype=np.uint8).reshape(-1, ne0 // block * size)
        vals = dequantize(data, qtype).reshape(-1, ne0).astype(np.float32)
        print(f"= {path}")
        for row in vals:
            print(" ".join(f"{v:08x}" for v in row.view(np.uint32)))


if __name__ == "__main__":
    main()
