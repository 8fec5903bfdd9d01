#!/usr/bin/env python3
"""quant_quality.py [--kgen BIN] [--chunks N] [--out FILE.json] [--schemes a,b,..] [--keep-embd a,b,..]
— what kgen's own quantization (`--quant`) costs in quality on the real models
(`make bench-quant`):

  SmolLM2-135M (its GGUF is Q4_1): each scheme with --requant, against the
      file as it is: `kgen perplexity MODEL --quant S --requant --kl-base FILE
      --file models/texts/eval.txt`: perplexity, mean KL(base || quantized),
      top-1 agreement. The file's token_embd.weight (also the output: tied)
      is Q8_0 and its other matrices Q4_1: a scheme of Q4_1's type leaves
      those as they are (kgen keeps a tensor already of the scheme's type),
      so w4g32a changes the embedding only; the schemes of --keep-embd run a
      second time with the embedding kept (--quant-tensor
      token_embd.weight=none), which separates the two;
  all-MiniLM-L6-v2 (F32 safetensors): each scheme against the F32 model:
      `kgen embed MODEL --quant S --compare MODEL --file tests/ref/sentences.txt`:
      mean and minimum cosine.

Weight bytes come from each compile's report. Prints a Markdown table (the
README's) and writes the figures as JSON. Perplexity and KL are
deterministic: the machine's load changes only the time taken.
"""
import argparse
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
MINILM = os.path.join(ROOT, "models", "all-MiniLM-L6-v2")
EVAL = os.path.join(ROOT, "models", "texts", "eval.txt")
SENTENCES = os.path.join(ROOT, "tests", "ref", "sentences.txt")


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"quant_quality: {' '.join(cmd)} exited {r.returncode}:\n{r.stderr[-3000:]}")
    return r


def weight_mib(stderr):
    m = re.search(r"weights ([0-9.]+) MiB", stderr)
    return float(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--kgen", default=os.path.join(ROOT, "build", "kgen"))
    ap.add_argument("--chunks", type=int, default=0, help="perplexity chunks (default: the whole text)")
    ap.add_argument("--schemes", default="w8g32,w5g32a,w5g32,w4g32a,w4g32")
    ap.add_argument("--keep-embd", default="w5g32a,w5g32,w4g32")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "quant-quality.json"))
    a = ap.parse_args()
    for p in (SMOL, MINILM, EVAL):
        if not os.path.exists(p):
            sys.exit(f"quant_quality: {p} not found: run 'make models'")
    schemes = a.schemes.split(",")
    chunks = ["--chunks", str(a.chunks)] if a.chunks else []
    res = {"smollm2": {}, "minilm": {}}
    base = json.loads(run([a.kgen, "perplexity", SMOL, "--file", EVAL, "--json"] + chunks).stdout)
    res["smollm2"]["file (Q4_1)"] = base
    keep = [k for k in a.keep_embd.split(",") if k]
    for s, extra in [(s, []) for s in schemes] + [(s, ["--quant-tensor", "token_embd.weight=none"]) for s in keep]:
        r = run([a.kgen, "perplexity", SMOL, "--quant", s, "--requant", "--kl-base", SMOL, "--file", EVAL,
                 "--json", "--no-cache"] + extra + chunks)
        d = json.loads(r.stdout)
        d["weights_mib"] = weight_mib(r.stderr)
        name = s + (" (embedding kept)" if extra else "")
        res["smollm2"][name] = d
        print(f"smollm2 {name}: ppl {d['ppl']:.3f} kl {d['kl']:.4f} top1 {d['top1']:.3f}", file=sys.stderr)
    for s in schemes + ["f16"]:
        r = run([a.kgen, "embed", MINILM, "--quant", s, "--compare", MINILM, "--file", SENTENCES, "--json",
                 "--no-cache"])
        d = json.loads(r.stdout)
        res["minilm"][s] = {"cosine_mean": d["cosine_mean"], "cosine_min": d["cosine_min"],
                            "weights_mib": weight_mib(r.stderr)}
        print(f"minilm {s}: cosine mean {d['cosine_mean']:.6f} min {d['cosine_min']:.6f}", file=sys.stderr)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    b = res["smollm2"]["file (Q4_1)"]
    print(f"| scheme | SmolLM2 ppl (file: {b['ppl']:.2f}) | KL vs file | top-1 | MiniLM cosine mean | min |")
    print("|---|---:|---:|---:|---:|---:|")
    for s in schemes + ["f16"] + [k + " (embedding kept)" for k in keep]:
        sm, mn = res["smollm2"].get(s), res["minilm"].get(s)
        left = f"{sm['ppl']:.2f} | {sm['kl']:.4f} | {100 * sm['top1']:.1f}%" if sm else "- | - | -"
        right = f"{mn['cosine_mean']:.6f} | {mn['cosine_min']:.6f}" if mn else "- | -"
        print(f"| {s} | {left} | {right} |")
    print(f"({b['tokens']} tokens scored in {b['chunks']} chunks of {b['ctx']}; written to {a.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
