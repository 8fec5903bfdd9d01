#!/usr/bin/env python3
"""What the ftile knob's bf16 rounding costs in logits: a model compiled
with KGEN_KNOBS=ftile=f32 and with ftile=bf16 (extra knobs: --knobs), each
run greedily over the first P prompts of tests/ref/prompts.txt (raw, no chat
template), and each dump's logits compared with tests/ref/model_ref.py's
float forward over the same tokens (kgen's own, teacher-forced):
KL(reference || kgen) per step, max |dlogit|, top-1 agreement.

    build/venv/bin/python bench/ftile_quality.py MODEL.gguf [-n 32] [-p 6]
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "ref"))
import check_e2e as ce  # noqa: E402
from model_ref import ModelRef  # noqa: E402


def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("-n", type=int, default=32, help="tokens generated per prompt")
    ap.add_argument("-p", type=int, default=6, help="prompts")
    ap.add_argument("-t", type=int, default=2, help="threads")
    ap.add_argument("--knobs", default="", help="knobs added to both runs, e.g. amx=off")
    ap.add_argument("--kgen", default=os.path.join(ROOT, "build", "kgen"))
    a = ap.parse_args()
    prompts = ce.read_prompts(os.path.join(ROOT, "tests", "ref", "prompts.txt"))[: a.p]
    m = ModelRef(a.model)
    with tempfile.TemporaryDirectory(prefix="kgen-ftile-") as tmp:
        for ft in ("f32", "bf16"):
            knobs = f"ftile={ft}" + (f",{a.knobs}" if a.knobs else "")
            kl, worst, agree, steps = [], 0.0, 0, 0
            for i, (_, text) in enumerate(prompts):
                dump = os.path.join(tmp, f"{ft}-{i}.dump")
                r = subprocess.run([a.kgen, "run", a.model, "-p", text, "-n", str(a.n), "--temp", "0", "--ignore-eos",
                                    "-t", str(a.t), "--dump-logits", dump], env=dict(os.environ, KGEN_KNOBS=knobs),
                                   stdin=subprocess.DEVNULL, capture_output=True)
                if r.returncode:
                    sys.exit(f"ftile_quality: kgen run failed ({knobs}): {r.stderr.decode(errors='replace')}")
                pid, gid, got = ce.read_dump(dump)
                ref = m.forward(list(pid) + list(gid[:-1]), first=len(pid) - 1).astype(np.float64)
                g = got.astype(np.float64)
                lr, lg = log_softmax(ref), log_softmax(g)
                kl += list((np.exp(lr) * (lr - lg)).sum(axis=1))
                worst = max(worst, float(np.abs(g - ref).max()))
                agree += int((g.argmax(1) == ref.argmax(1)).sum())
                steps += len(gid)
            print(f"{knobs}: KL(ref || kgen) mean {np.mean(kl):.3g} max {np.max(kl):.3g}, "
                  f"max |dlogit| {worst:.4f}, top-1 agreement {agree}/{steps}", flush=True)


if __name__ == "__main__":
    main()
