#!/usr/bin/env python3
"""st_ref.py — the safetensors reader's independent reference (Hugging Face's
`safetensors` package, numpy API; tests/test_safetensors.c).

  st_ref.py write VALID.safetensors BF16.safetensors EMPTY.safetensors
                  BOOL.safetensors U16.safetensors LISTING
      writes the files with the package (save_file; BF16 through the
      package's own serializer, as numpy has no bfloat16) and LISTING: what
      was written, from the arrays themselves (not read back):
  st_ref.py list MODEL.safetensors
      prints the same listing of a file as the package reads it (safe_open).

Listing lines (names and strings as UTF-8 hex, "-" for empty):
  F <file> <n_tensors> <n_meta>
  T <file> <name> <dtype> <shape, outermost first, comma-separated | -> <bytes> <xxh3_64 of the bytes, hex>
  M <file> <key> <value>
Exit status 3 when the packages are missing.
"""
import sys

try:
    import numpy as np
    import xxhash
    from safetensors import TensorSpec, safe_open, serialize_file
    from safetensors.numpy import save_file
except ImportError as e:  # the test skips, saying so
    print(f"st_ref.py: {e}", file=sys.stderr)
    sys.exit(3)

NAMES = {"float64": "F64", "float32": "F32", "float16": "F16", "int64": "I64", "int32": "I32",
         "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL", "uint16": "U16"}


def hx(s):
    return s.encode("utf-8").hex() if s else "-"


def tensor_line(out, fi, name, dtype, shape, data):
    shp = ",".join(str(d) for d in shape) or "-"
    out.append(f"T {fi} {hx(name)} {dtype} {shp} {len(data)} {xxhash.xxh3_64_hexdigest(data)}")


def listing(out, fi, tensors, meta):
    """tensors: name -> (dtype, shape, bytes)"""
    out.append(f"F {fi} {len(tensors)} {len(meta or {})}")
    for name, (dtype, shape, data) in tensors.items():
        tensor_line(out, fi, name, dtype, shape, data)
    for k, v in (meta or {}).items():
        out.append(f"M {fi} {hx(k)} {hx(v)}")


def arrays(rng):
    """every numpy dtype the package writes that kgen reads, in shapes from
    a scalar to 4 dims, empty ones, and names in several scripts"""
    t = {}
    shapes = [(), (7,), (2, 3), (2, 3, 4), (1, 2, 3, 4), (0,), (3, 0, 2), (5, 1)]
    for i, dt in enumerate(["float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8"]):
        for j, shp in enumerate(shapes):
            if (i + j) % 3 == 2:  # not every pair: 8 x 8 is more than needed
                continue
            if np.dtype(dt).kind == "f":
                a = rng.standard_normal(shp).astype(dt)
            else:
                info = np.iinfo(dt)
                a = rng.integers(info.min, info.max, size=shp, endpoint=True, dtype=dt)
            t[f"layer.{i}.{dt}.{'x'.join(map(str, shp)) or 'scalar'}"] = a
    t["ünïcödé/名前 with spaces & \"quotes\""] = np.arange(6, dtype="float32").reshape(2, 3)
    t[""] = np.array([1, 2, 3], dtype="int8")  # the empty name is a name
    return t


def write(paths):
    valid, bf16, empty, boolf, u16, out_path = paths
    rng = np.random.default_rng(16)
    out = []
    t = arrays(rng)
    meta = {"format": "np", "note": "ünïcödé ✓", "empty": "", "quote\"back\\slash": "new\nline"}
    save_file(t, valid, metadata=meta)
    listing(out, 0, {k: (NAMES[v.dtype.name], v.shape, v.tobytes()) for k, v in t.items()}, meta)

    # bfloat16: the package's serializer with raw bits (numpy has no bfloat16)
    f32 = rng.standard_normal((3, 5)).astype("float32")
    bits = (f32.view("uint32") >> 16).astype("uint16")
    extra = rng.standard_normal((4,)).astype("float32")
    keep = [bits, extra]
    serialize_file({"w.bf16": TensorSpec(dtype="bfloat16", shape=[3, 5], data_ptr=bits.ctypes.data,
                                         data_len=bits.nbytes),
                    "b.f32": TensorSpec(dtype="float32", shape=[4], data_ptr=extra.ctypes.data,
                                        data_len=extra.nbytes)}, bf16, metadata=None)
    del keep
    listing(out, 1, {"w.bf16": ("BF16", (3, 5), bits.tobytes()), "b.f32": ("F32", (4,), extra.tobytes())}, None)

    save_file({}, empty, metadata={"only": "metadata"})
    listing(out, 2, {}, {"only": "metadata"})

    # dtypes kgen refuses (the test checks the message names tensor and dtype)
    save_file({"ok": np.zeros(2, "float32"), "mask": np.array([True, False])}, boolf)
    save_file({"ids16": np.arange(3, dtype="uint16")}, u16)
    with open(out_path, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {len(t)} + 2 tensors in 5 files")


def list_file(path):
    out = []
    with safe_open(path, framework="numpy") as f:
        keys = list(f.keys())
        meta = f.metadata() or {}
        out.append(f"F 0 {len(keys)} {len(meta)}")
        for k in keys:
            a = f.get_tensor(k)
            tensor_line(out, 0, k, f.get_slice(k).get_dtype(), a.shape, np.ascontiguousarray(a).tobytes())
        for k, v in meta.items():
            out.append(f"M 0 {hx(k)} {hx(v)}")
    print("\n".join(out))


if __name__ == "__main__":
    if len(sys.argv) == 8 and sys.argv[1] == "write":
        write(sys.argv[2:])
    elif len(sys.argv) == 3 and sys.argv[1] == "list":
        list_file(sys.argv[2])
    else:
        sys.exit(__doc__)
