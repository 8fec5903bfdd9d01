#!/usr/bin/env python3
"""arch_bad_model.py OUT.gguf --case NAME — a small model of one architecture
whose metadata contradicts its tensors (or names no supported architecture),
for tests/test_archs.c's arch_bad_* tests; --list prints the cases with the
names a refusal must mention.

The model is a narrow variant of bench/gen_model.py's architecture shape
(256 wide, 4 heads x 64, 2 KV heads, ff 512, 2 layers, 512-token vocabulary,
Q8_0), written by gen_model.write_arch_gguf and then rewritten with the
case's edit: keys set (types kept), tensors dropped or replaced, or every
ARCH.* key renamed to another architecture. Exit status 3 without numpy/gguf.
"""
import argparse
import os
import sys
import tempfile

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
try:
    import numpy as np
    from gguf import GGUFReader, GGUFValueType, GGUFWriter
    from gguf.constants import GGMLQuantizationType as T
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    os.environ["KGEN_GEN_MODEL_REEXEC"] = "1"  # never re-exec under bench/.venv
    import gen_model
except ImportError:
    print("the Python packages 'numpy' and 'gguf' are needed (pip install gguf)", file=sys.stderr)
    sys.exit(3)

TINY = dict(n_layer_real=2, layers=(0, 1), n_embd=256, n_head=4, n_head_kv=2, head_dim=64, n_ff=512, n_vocab=512,
            n_ctx=4096)

# name: (shape, edit, what the refusal must name). edit: set {key: value},
# drop [tensor], replace {tensor: float32 array}, rename_arch.
CASES = {
    # no key_length: head_dim = n_embd / n_head, and 6 does not divide 256
    "head_count": ("qwen2-0.5b", dict(set={"qwen2.attention.head_count": 6}), ["qwen2.attention.head_count"]),
    "head_count_kv": ("llama3.2-1b", dict(set={"llama.attention.head_count_kv": 3}),
                      ["llama.attention.head_count_kv"]),
    "window": ("gemma3-270m", dict(set={"gemma3.attention.sliding_window": 8192}),
               ["gemma3.attention.sliding_window"]),
    "post_ffw_norm": ("gemma3-270m", dict(drop=["blk.1.post_ffw_norm.weight"]), ["blk.1.post_ffw_norm.weight"]),
    "q_norm": ("qwen3-0.6b", dict(drop=["blk.0.attn_q_norm.weight"]), ["blk.0.attn_q_norm.weight"]),
    "bias": ("qwen2-0.5b", dict(replace={"blk.0.attn_k.bias": np.zeros(129, np.float32)}), ["blk.0.attn_k.bias"]),
    "qkv_rows": ("phi3-mini", dict(replace={"blk.1.attn_qkv.weight": np.zeros((700, 256), np.float32)}),
                 ["blk.1.attn_qkv.weight"]),
    # what no registry row computes: refused, never silently ignored
    "experts": ("llama3.2-1b", dict(set={"llama.expert_count": 8}), ["llama.expert_count", "mixture-of-experts"]),
    "longrope": ("phi3-mini", dict(replace={"rope_factors_long.weight": np.ones(32, np.float32)}),
                 ["rope_factors_long.weight", "LongRoPE"]),
    "unknown_arch": ("qwen3-0.6b", dict(rename_arch="mamba9"),
                     ["mamba9", "llama", "qwen2", "qwen3", "gemma3", "phi3"]),
}


def base_shape(shape):
    sh = dict(gen_model.ARCH_SHAPES[shape])
    sh.update(TINY)
    if sh["arch"] == "phi3":
        sh.update(n_head_kv=4)  # Phi-3 has no GQA
    if sh["arch"] == "gemma3":
        sh.update(n_head_kv=1, n_ctx=4096)
    return sh


def rewrite(src, dst, edit):
    r = GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    new_arch = edit.get("rename_arch", arch)
    w = GGUFWriter(dst, new_arch)
    sets = dict(edit.get("set", {}))
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k == "general.architecture":
            continue
        sub = f.types[1] if f.types[0] == GGUFValueType.ARRAY else None
        v = sets.pop(k, f.contents())
        if k.startswith(arch + "."):
            k = new_arch + k[len(arch):]
        w.add_key_value(k, v, f.types[0], sub)
    for k, v in sets.items():  # keys the file did not have
        w.add_uint32(k, v)
    drop, repl = set(edit.get("drop", [])), edit.get("replace", {})
    for t in r.tensors:
        if t.name in drop:
            continue
        if t.name in repl:
            w.add_tensor(t.name, repl[t.name])
        elif t.tensor_type in (T.F32, T.F16):
            w.add_tensor(t.name, np.asarray(t.data).reshape([int(x) for x in reversed(t.shape)]))
        else:
            w.add_tensor(t.name, np.asarray(t.data), raw_dtype=t.tensor_type)
    for n in repl:
        if n not in {t.name for t in r.tensors}:
            w.add_tensor(n, repl[n])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?")
    ap.add_argument("--case", choices=sorted(CASES))
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    if args.list:
        for k, (shape, _, want) in CASES.items():
            print(k, shape, " ".join(want))
        return 0
    if not args.out or not args.case:
        ap.error("give OUT and --case")
    shape, edit, want = CASES[args.case]
    with tempfile.TemporaryDirectory() as d:
        good = os.path.join(d, "good.gguf")
        gen_model.write_arch_gguf(good, shape, "Q8_0", base_shape(shape))
        rewrite(good, args.out, edit)
    print(f"{args.out}: {shape} narrowed, {args.case}: the refusal must name {', '.join(want)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
