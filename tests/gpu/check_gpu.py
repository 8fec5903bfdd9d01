#!/usr/bin/env python3
"""check_gpu.py — `make check-gpu`: the CUDA backend on a real GPU.

    python3 tests/gpu/check_gpu.py [--kgen build/kgen] [--model models/SmolLM2-...gguf] [-n 32]

Without a usable GPU (no driver, no device) it says so and counts every
check as skipped (exit 0). With one:
  - e2e: SmolLM2 compiled for the CPU and for the GPU (this GPU's arch);
    over tests/ref/prompts.txt, greedy tokens identical, or the first
    divergence reported with the CPU's top-2 logit gap there (a near-tie,
    gap < 1.0, passes: int8 activations differ in rounding order);
    logits of the common steps compared (max abs difference reported);
  - memcheck: compute-sanitizer --tool memcheck clean on one prefill and
    one decode step (skipped, saying so, when compute-sanitizer is absent);
  - timing lines of both runs, for the record.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "ref"))
from check_e2e import read_dump, read_prompts  # noqa: E402

import numpy as np  # noqa: E402


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kgen", default=os.path.join(ROOT, "build", "kgen"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--prompts", default=os.path.join(ROOT, "tests", "ref", "prompts.txt"))
    ap.add_argument("-n", type=int, default=32)
    a = ap.parse_args()
    prompts = read_prompts(a.prompts)
    n_checks = len(prompts) + 1
    if not os.path.exists(a.model):
        print(f"check-gpu: 0 passed, 0 failed, {n_checks} skipped\nskip: {a.model} not found (make models)")
        return 0
    work = tempfile.mkdtemp(prefix="kgen-gpu-")
    try:
        cpu_so, gpu_so = os.path.join(work, "cpu.so"), os.path.join(work, "gpu.so")
        for so, extra in ((cpu_so, []), (gpu_so, ["--target", "cuda"])):
            r = run([a.kgen, "compile", a.model, "-o", so] + extra)
            if r.returncode:
                print(f"check-gpu: kgen compile {' '.join(extra) or '(cpu)'} failed:\n{r.stderr}")
                return 1
            for line in r.stderr.splitlines():
                if "CUDA kernels" in line:
                    print(line)
        probe = run([a.kgen, "run", gpu_so, "-p", "hi", "-n", "1"])
        if probe.returncode and ("CUDA driver cannot be loaded" in probe.stderr or "cuInit" in probe.stderr
                                 or "finds no GPU" in probe.stderr):
            print(f"check-gpu: 0 passed, 0 failed, {n_checks} skipped\nskip: no usable GPU: {probe.stderr.strip()}")
            return 0
        if probe.returncode:
            print(f"check-gpu: the CUDA model fails to run:\n{probe.stderr}")
            return 1
        passed = failed = skipped = 0
        worst = 0.0
        for k, (chat, text) in enumerate(prompts):
            dumps = []
            for so in (cpu_so, gpu_so):
                d = os.path.join(work, f"p{k}-{os.path.basename(so)}.kglg")
                r = run([a.kgen, "run", so, "-p", text, "-n", str(a.n), "--temp", "0", "--ignore-eos", "--dump-logits", d]
                        + (["--chat"] if chat else []))
                if r.returncode:
                    print(f"FAIL prompt {k}: {os.path.basename(so)} exited {r.returncode}: {r.stderr.strip()}")
                    break
                dumps.append(read_dump(d))
            if len(dumps) < 2:
                failed += 1
                continue
            (pc, gc, lc), (pg, gg, lg) = dumps
            if pc != pg:
                print(f"FAIL prompt {k}: prompt ids differ")
                failed += 1
                continue
            same = next((i for i in range(min(len(gc), len(gg))) if gc[i] != gg[i]), None)
            upto = same if same is not None else len(gc)
            diff = float(np.max(np.abs(lc[:upto] - lg[:upto]))) if upto else 0.0
            worst = max(worst, diff)
            if same is None:
                print(f"ok   prompt {k}: {len(gc)} tokens identical; logits max |cpu - gpu| {diff:.3f}")
                passed += 1
            else:
                top = np.sort(lc[same])[-2:]
                gap = float(top[1] - top[0])
                ok = gap < 1.0
                print(f"{'ok  ' if ok else 'FAIL'} prompt {k}: first divergence at step {same} (cpu {gc[same]}, "
                      f"gpu {gg[same]}), CPU top-2 gap {gap:.3f}{' (near-tie)' if ok else ''}; "
                      f"logits before it max |cpu - gpu| {diff:.3f}")
                passed += ok
                failed += not ok
        san = shutil.which("compute-sanitizer") or "/usr/local/cuda/bin/compute-sanitizer"
        if os.access(san, os.X_OK):
            r = run([san, "--tool", "memcheck", "--error-exitcode", "3", a.kgen, "run", gpu_so, "-p",
                     "The capital of France is", "-n", "2"])
            ok = r.returncode == 0 and "ERROR SUMMARY: 0 errors" in (r.stdout + r.stderr)
            print(f"{'ok  ' if ok else 'FAIL'} compute-sanitizer memcheck (one prefill, one decode step)"
                  + ("" if ok else ":\n" + (r.stdout + r.stderr)[-4000:]))
            passed += ok
            failed += not ok
        else:
            print("skip compute-sanitizer memcheck: compute-sanitizer not found")
            skipped += 1
        print(f"check-gpu: {passed} passed, {failed} failed, {skipped} skipped; worst logit difference {worst:.3f}")
        return 1 if failed else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
