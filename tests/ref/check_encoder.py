#!/usr/bin/env python3
"""check_encoder.py --kgen BIN --model DIR [--as f32|f16|bf16|gguf-f32|gguf-f16]
                   [--sentences F] [--max-len L] [--batch B] [--min-cos C] [-t N]
— kgen's sentence embeddings against the independent numpy BERT
(tests/ref/bert_ref.py), compared by tests/ref/check_embed.py.

--as rewrites the model first, into a temporary directory: its weights as
F16 or BF16 safetensors (tests/ref/hf_model.py convert; the same Hugging
Face directory otherwise), or a GGUF in llama.cpp's `bert` layout
(tests/ref/bert_gguf.py); the reference then reads the rewritten model, so
both sides see the same weights and one bound (cosine >= 0.9999995 per
sentence, --min-cos) holds for all. kgen
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
    out = os.path.join(tmp, "model-" + how)
    r = subprocess.run([sys.executable, os.path.join(HERE, "hf_model.py"), "convert", model, out, "--dtype", how],
                       capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"hf_model.py convert failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return out


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
    ap.add_argument("--as", dest="how", default="f32", choices=["f32", "f16", "bf16", "gguf-f32", "gguf-f16", "gguf-q8_0"])
    ap.add_argument("--sentences", default=os.path.join(HERE, "sentences.txt"))
    ap.add_argument("--max-len", type=int, default=0)
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--min-cos", type=float, default=None)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--compare", action="store_true",
                    help="also check `kgen embed MODEL --compare ORIGINAL`: its cosines against those of the two "
                         "models' embeddings computed here")
    a = ap.parse_args()
    # the reference reads the same (rewritten) weights, so every form is held
    # to the same bound: tighter than the 0.9999 / 0.999, which miss a
    # tanh GELU (1 - cos 2.7e-6) or a wrong LayerNorm eps (1.2e-6)
    min_cos = a.min_cos if a.min_cos is not None else 0.9999995
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
        if c.returncode or not a.compare:
            return c.returncode
        return check_compare(cmd, model, a.model, got)


def check_compare(cmd, model, base, got):
    """kgen embed MODEL --compare BASE: each text's cosine within 2e-9 of the
    one computed here from the two models' own `kgen embed` embeddings, and
    its mean and minimum those of the list"""
    import json
    import numpy as np
    runs = {}
    for what, c in (("base", [cmd[0], "embed", base] + cmd[3:]), ("compare", cmd + ["--compare", base])):
        r = subprocess.run(c, capture_output=True, text=True, timeout=900)
        if r.returncode:
            print(f"FAIL: {' '.join(c)} exited {r.returncode}:\n{r.stderr[-3000:]}")
            return 1
        runs[what] = json.loads(r.stdout)
    with open(got) as f:
        x = np.array(json.load(f)["embeddings"], dtype=np.float64)
    y = np.array(runs["base"]["embeddings"], dtype=np.float64)
    cos = (x * y).sum(1) / np.sqrt((x * x).sum(1) * (y * y).sum(1))
    cmp = runs["compare"]
    got_cos = np.array(cmp["cosine"], dtype=np.float64)
    bad = []
    if got_cos.shape != cos.shape:
        bad.append(f"{len(got_cos)} cosines for {len(cos)} texts")
    elif np.abs(got_cos - cos).max() > 2e-9:  # printed with 9 significant digits
        i = int(np.abs(got_cos - cos).argmax())
        bad.append(f"text {i + 1}: cosine {got_cos[i]!r}, computed here {cos[i]!r}")
    if abs(cmp["cosine_mean"] - got_cos.mean()) > 2e-9 or abs(cmp["cosine_min"] - got_cos.min()) > 2e-9 or \
            abs(got_cos[cmp["cosine_min_text"] - 1] - got_cos.min()) > 2e-9:
        bad.append(f"mean/min {cmp['cosine_mean']}/{cmp['cosine_min']} (text {cmp['cosine_min_text']}) are not "
                   f"the list's {got_cos.mean()}/{got_cos.min()}")
    for b in bad:
        print(f"FAIL --compare: {b}")
    print(f"--compare against {os.path.basename(base)}: cosine mean {cmp['cosine_mean']:.9f}, min "
          f"{cmp['cosine_min']:.9f} over {len(got_cos)} texts (kgen's own embeddings: max difference "
          f"{np.abs(got_cos - cos).max() if got_cos.shape == cos.shape else float('nan'):.1e})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
