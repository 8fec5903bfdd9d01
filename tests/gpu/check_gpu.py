#!/usr/bin/env python3
"""check_gpu.py — `make check-gpu`: the CUDA backend on a real GPU.

    python3 tests/gpu/check_gpu.py [--kgen build/kgen] [--model M.gguf ...] [-n 32]

Without a usable GPU (no driver, no device) it says so and counts every
check as skipped (exit 0). With one, for each model (default: the real
SmolLM2 Q4_1; scripts/gpu_run.sh adds the random-weight ones of every
quant type, bench/gen_model.py):
  - e2e: the model compiled for the CPU and for the GPU (this GPU's arch);
    over tests/ref/prompts.txt (chat prompts as plain text when the model
    has no chat template), greedy tokens identical, or the first divergence
    reported with the CPU's top-2 logit gap there (a near-tie, gap < 1.0,
    passes: the float sums run in another order); the logits of the common
    steps within check_e2e.py's per-step bounds (abs ABS_TOL, rel REL_TOL);
  - reference: the GPU's dumps against tests/ref/model_ref.py (a float32
    forward from the GGUF, no kgen code) through check_e2e.py --from-dump,
    with the tolerances the CPU backend's e2e test uses;
  - memcheck: compute-sanitizer --tool memcheck clean on one prefill and
    one decode step (skipped, saying so, when compute-sanitizer is absent);
  - timing lines of both runs, for the record.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "ref"))
from check_e2e import ABS_TOL, REL_TOL, read_dump, read_prompts  # noqa: E402

import numpy as np  # noqa: E402


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kgen", default=os.path.join(ROOT, "build", "kgen"))
    ap.add_argument("--model", action="append", help="repeatable (default: the real SmolLM2 Q4_1)")
    ap.add_argument("--prompts", default=os.path.join(ROOT, "tests", "ref", "prompts.txt"))
    ap.add_argument("-n", type=int, default=32)
    a = ap.parse_args()
    models = a.model or [os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")]
    prompts = read_prompts(a.prompts)
    n_checks = len(models) * (len(prompts) + 1) + 1
    missing = [m for m in models if not os.path.exists(m)]
    if missing:
        print(f"check-gpu: 0 passed, 0 failed, {n_checks} skipped\nskip: {', '.join(missing)} not found (make models)")
        return 0
    work = tempfile.mkdtemp(prefix="kgen-gpu-")
    try:
        passed = failed = skipped = 0
        worst = 0.0
        for mi, model in enumerate(models):
            r = check_model(a, model, prompts, work, mi)
            if r is None:
                print(f"check-gpu: 0 passed, 0 failed, {n_checks} skipped")
                return 0
            passed, failed, worst = passed + r[0], failed + r[1], max(worst, r[2])
            gpu_so = r[3]
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


def check_model(a, model, prompts, work, mi):
    """(passed, failed, worst logit difference, the GPU .so) for one model; None without a usable GPU."""
    name = os.path.basename(model)
    info = json.loads(run([a.kgen, "inspect", model, "--json"]).stdout or "{}")
    has_chat = bool(info.get("tokenizer", {}).get("chat_template"))
    cpu_so, gpu_so = os.path.join(work, f"m{mi}-cpu.so"), os.path.join(work, f"m{mi}-gpu.so")
    for so, extra in ((cpu_so, []), (gpu_so, ["--target", "cuda"])):
        r = run([a.kgen, "compile", model, "-o", so] + extra)
        if r.returncode:
            print(f"FAIL {name}: kgen compile {' '.join(extra) or '(cpu)'} failed:\n{r.stderr}")
            return 0, 1, 0.0, gpu_so
        for line in r.stderr.splitlines():
            if "CUDA kernels" in line:
                print(f"{name}: {line}")
    probe = run([a.kgen, "run", gpu_so, "-p", "hi", "-n", "1"])
    if probe.returncode and ("CUDA driver cannot be loaded" in probe.stderr or "cuInit" in probe.stderr
                             or "finds no GPU" in probe.stderr):
        print(f"skip: no usable GPU: {probe.stderr.strip()}")
        return None
    if probe.returncode:
        print(f"FAIL {name}: the CUDA model fails to run:\n{probe.stderr}")
        return 0, 1, 0.0, gpu_so
    passed = failed = 0
    worst = 0.0
    gpu_dumps = []
    for k, (chat, text) in enumerate(prompts):
        dumps = []
        for so in (cpu_so, gpu_so):
            d = os.path.join(work, f"p{k}-{os.path.basename(so)}.kglg")
            r = run([a.kgen, "run", so, "-p", text, "-n", str(a.n), "--temp", "0", "--ignore-eos", "--dump-logits", d]
                    + (["--chat"] if chat and has_chat else []))
            if r.returncode:
                print(f"FAIL {name} prompt {k}: {os.path.basename(so)} exited {r.returncode}: {r.stderr.strip()}")
                break
            dumps.append(read_dump(d))
        if len(dumps) < 2:
            failed += 1
            continue
        (pc, gc, lc), (pg, gg, lg) = dumps
        if pc != pg:
            print(f"FAIL {name} prompt {k}: prompt ids differ")
            failed += 1
            continue
        same = next((i for i in range(min(len(gc), len(gg))) if gc[i] != gg[i]), None)
        upto = same + 1 if same is not None else len(gc)  # the diverging step's logits came from the same tokens
        diff = float(np.max(np.abs(lc[:upto] - lg[:upto])))
        rel = float(np.max(np.abs(lc[:upto] - lg[:upto]).max(1) / np.maximum(np.abs(lc[:upto]).max(1), 1e-6)))
        worst = max(worst, diff)
        close = diff <= ABS_TOL and rel <= REL_TOL
        if same is None:
            ok, what = close, f"{len(gc)} tokens identical"
        else:
            top = np.sort(lc[same])[-2:]
            gap = float(top[1] - top[0])
            ok = close and gap < 1.0
            what = (f"first divergence at step {same} (cpu {gc[same]}, gpu {gg[same]}), CPU top-2 gap {gap:.3f}"
                    + (" (near-tie)" if gap < 1.0 else ""))
        print(f"{'ok  ' if ok else 'FAIL'} {name} prompt {k}: {what}; logits max |cpu - gpu| {diff:.3f} "
              f"(tolerance {ABS_TOL}), max rel {rel:.3f} (tolerance {REL_TOL})")
        passed += ok
        failed += not ok
        gpu_dumps.append(os.path.join(work, f"p{k}-{os.path.basename(gpu_so)}.kglg"))
    if gpu_dumps:
        r = run([sys.executable, os.path.join(ROOT, "tests", "ref", "check_e2e.py"), "--model", model, "--from-dump"]
                + gpu_dumps)
        ok = r.returncode == 0
        print(f"{'ok  ' if ok else 'FAIL'} {name}: the GPU's logits against tests/ref/model_ref.py "
              f"(check_e2e.py --from-dump, {len(gpu_dumps)} prompts)" + ("" if ok else ":\n" + (r.stdout + r.stderr)[-3000:]))
        passed += ok
        failed += not ok
    return passed, failed, worst, gpu_so


if __name__ == "__main__":
    sys.exit(main())
