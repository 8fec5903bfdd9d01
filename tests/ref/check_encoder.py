#!/usr/bin/env python3
"""check_encoder.py --kgen BIN --model DIR [--as f32|f16|bf16|gguf-f32|gguf-f16]
                   [--sentences F] [--max-len L] [--batch B] [--min-cos C] [-t N]
— kgen's sentence embeddings against the independent numpy BERT
(tests/ref/bert_ref.py), compared by tests/ref/check_embed.py.

--as rewrites the model first, into a temporary directory: its weights as
F16 or BF16 safetensors (the same Hugging Face directory otherwise), or a
GGUF in llama.cpp's `bert` layout (tests/ref/bert_gguf.py); the reference
then reads the rewritten model, so both sides see the same weights. kgen
runs `kgen embed MODEL --file SENTENCES --json` (compiled through the cache
under KGEN_CACHE_DIR, with --batch and --max-len).

The reference's output is memoized (refmemo.py) by the content of
tests/ref/, the model's files and the arguments, so make check's second
build only reruns kgen. Exit status: 0 pass, 1 fail, 77 a Python package
is missing.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SKIP = 77

try:
    import numpy as np
    import safetensors  # noqa: F401  (bert_ref.py's needs, checked before the work)
    import tokenizers  # noqa: F401
except ImportError as e:
    print(f"skipped: {e} (make check installs the references in build/venv)")
    sys.exit(SKIP)

import refmemo  # noqa: E402


def dir_digest(path):
    """the files of a model (a directory, two levels down, or one file) by name and content"""
    if os.path.isfile(path):
        return [refmemo.file_digest(path)]
    out = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(root, f)
            out.append((os.path.relpath(p, path), refmemo.file_digest(p)))
    return out


def rewrite(model, how, tmp):
    """the model as `how` asks, written under tmp: its path"""
    if how == "f32":
        return model
    if how.startswith("gguf-"):
        out = os.path.join(tmp, "model.gguf")
        r = subprocess.run([sys.executable, os.path.join(HERE, "bert_gguf.py"), model, out, "--type", how[5:]],
                           capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"bert_gguf.py failed ({r.returncode}):\n{r.stderr[-2000:]}")
        return out
    import shutil
    from safetensors.numpy import load_file, save_file
    out = os.path.join(tmp, "model-" + how)
    shutil.copytree(model, out, ignore=shutil.ignore_patterns("model.safetensors"))
    tensors = load_file(os.path.join(model, "model.safetensors"))
    conv = {}
    for k, v in tensors.items():
        if v.dtype != np.float32:
            conv[k] = v
        elif how == "f16":
            conv[k] = v.astype(np.float16)
        else:  # bf16, round to nearest even, stored as the upper 16 bits
            u = v.view(np.uint32).astype(np.uint64)
            u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
            conv[k] = u
    if how == "bf16":  # the numpy API has no bfloat16: write the header by hand
        write_bf16(os.path.join(out, "model.safetensors"), conv, tensors)
    else:
        save_file(conv, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    return out


def write_bf16(path, conv, orig):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for k in sorted(conv):
        v = conv[k]
        dtype = "BF16" if orig[k].dtype == np.float32 else {np.dtype("int64"): "I64"}.get(v.dtype, "F32")
        b = np.ascontiguousarray(v).tobytes()
        header[k] = {"dtype": dtype, "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h)
        for b in blobs:
            f.write(b)


def reference(model, sentences, max_len, out):
    def compute():
        r = subprocess.run([sys.executable, os.path.join(HERE, "bert_ref.py"), model, sentences, out]
                           + (["--max-len", str(max_len)] if max_len else []), capture_output=True, text=True)
        if r.returncode == 3:
            print(f"skipped: bert_ref.py: {r.stdout.strip()} {r.stderr.strip()}")
            sys.exit(SKIP)
        if r.returncode:
            sys.exit(f"bert_ref.py failed ({r.returncode}):\n{r.stderr[-3000:]}")
        with open(out, "rb") as f:
            return {"out": np.frombuffer(f.read(), dtype=np.uint8)}
    parts = ("bert_ref", dir_digest(HERE), dir_digest(model), refmemo.file_digest(sentences), max_len)
    data = refmemo.memo(parts, compute)["out"]
    with open(out, "wb") as f:
        f.write(data.tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kgen", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--as", dest="how", default="f32", choices=["f32", "f16", "bf16", "gguf-f32", "gguf-f16"])
    ap.add_argument("--sentences", default=os.path.join(HERE, "sentences.txt"))
    ap.add_argument("--max-len", type=int, default=0)
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--min-cos", type=float, default=None)
    ap.add_argument("-t", "--threads", type=int, default=2)
    a = ap.parse_args()
    min_cos = a.min_cos if a.min_cos is not None else (0.9999 if a.how.endswith("f32") else 0.999)
    with tempfile.TemporaryDirectory(prefix="kgen-enc-") as tmp:
        model = rewrite(a.model, a.how, tmp)
        ref = os.path.join(tmp, "ref.txt")
        reference(model, a.sentences, a.max_len, ref)
        cmd = [a.kgen, "embed", model, "--file", a.sentences, "--json", "-t", str(a.threads)]
        if a.max_len:
            cmd += ["--max-len", str(a.max_len)]
        if a.batch:
            cmd += ["--batch", str(a.batch)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if r.returncode:
            print(f"FAIL: {' '.join(cmd)} exited {r.returncode}:\n{r.stderr[-3000:]}")
            return 1
        got = os.path.join(tmp, "kgen.json")
        with open(got, "w") as f:
            f.write(r.stdout)
        timing = [l for l in r.stderr.splitlines() if l.startswith("kgen: embedded")]
        c = subprocess.run([sys.executable, os.path.join(HERE, "check_embed.py"), ref, got, "--min-cos", str(min_cos),
                            "--sentences", a.sentences], capture_output=True, text=True)
        sys.stdout.write(c.stdout)
        sys.stderr.write(c.stderr)
        if timing:
            print(timing[-1])
        return c.returncode


if __name__ == "__main__":
    sys.exit(main())
