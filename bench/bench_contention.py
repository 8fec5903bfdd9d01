#!/usr/bin/env python3
"""bench_contention.py — multi-thread decode with one busy process beside it:
kgen against llama.cpp, in one run (`make bench-contention`).

    python3 bench/bench_contention.py [--rounds 5] [--threads 2] [--tg 64] [-r 5]
                                      [--busy python|yes] [--json OUT.json] [MODEL.gguf]

The question (issue 17, item 5): when another process keeps one core busy,
how much of its quiet decode speed does each engine keep? Threads that wait
for each other at every op (both engines do) suffer when one of them is
preempted: a waiter that spins holds the core the late thread needs.

Protocol, for one model (default: the real SmolLM2-135M Q4_1) and one thread
count (default 2, the cores of the project's machines):
  - kgen runs the model compiled once into build/contention/ (`kgen compile`,
    then `kgen bench MODEL.so --pp 0 --tg N -r R -t T --json`: decode from
    an empty KV cache, after its own warm-up); llama.cpp runs
    bench/peer_llama.py (bench/.venv: sh bench/setup_peer.sh) with the same
    -n N -r R -t T, as bench/bench_peer.py does (its helpers, imported);
  - one warm-up sample of each, not recorded;
  - `rounds` rounds; each first waits (up to --quiet-wait s) for other
    processes to use < 0.3 cores, then takes one sample of each engine
    quiet, then starts the busy process (`python3 -c 'while True: pass'`, or
    `yes > /dev/null` with --busy yes), waits --settle s, takes one sample
    of each engine loaded, and stops it. The engines' order alternates
    from round to round (A B, B A), so neither always runs first;
  - every sample records the CPU that other processes used during it (in
    cores: /proc/stat's busy time less this script's and its reaped
    children's; a loaded sample's includes the busy process, ~1 core).
Reports, per engine: the median tokens/s quiet and loaded (min-max over the
rounds), and loaded / quiet: the ratio of the medians, and the median and
range of the per-round ratios (each round's loaded sample over its quiet
one). A markdown table on stdout; every sample, the machine and the
settings in the JSON (default bench/results/contention.json).

On a machine shared with other work the figures are noisy (the "others"
columns say how noisy): run it on an otherwise idle machine for figures to
publish.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_peer as BP  # noqa: E402  (its sampling and load-measuring helpers)

ROOT = BP.ROOT
BUSY = {"python": [sys.executable, "-c", "while True: pass"], "yes": ["yes"]}


def kgen_sample(a, so):
    """kgen's decode tokens/s: one `kgen bench -r 1` sample (after its own warm-up), from the compiled model."""
    d = json.loads(BP.run([a.kgen, "bench", so, "--pp", "0", "--tg", str(a.tg), "-r", "1", "-t", str(a.threads),
                           "--json"]))
    return d["tg"][0]["tps"]


def peer_sample(a, model):
    """llama.cpp's decode tokens/s: one bench/peer_llama.py -r 1 sample (bench_peer.peer_sample, prefill off)."""
    res, info = BP.peer_sample(SimpleNamespace(python=a.python, pp=0, tg=a.tg), model, a.threads)
    return res["tg"], info


def compile_once(a, model):
    """The model compiled by kgen into build/contention/ (again when the GGUF or kgen is newer)."""
    out_dir = os.path.join(ROOT, "build", "contention")
    os.makedirs(out_dir, exist_ok=True)
    so = os.path.join(out_dir, os.path.splitext(os.path.basename(model))[0] + ".so")
    if not os.path.exists(so) or os.path.getmtime(so) < max(os.path.getmtime(model), os.path.getmtime(a.kgen)):
        BP.run([a.kgen, "compile", model, "-o", so])
    return so


class Busy:
    """One busy process for the length of a `with` block (started, then given --settle s to get going)."""

    def __init__(self, kind, settle):
        self.cmd, self.settle, self.p = BUSY[kind], settle, None

    def __enter__(self):
        self.p = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        time.sleep(self.settle)
        return self

    def __exit__(self, *exc):
        self.p.kill()
        self.p.wait()


def measured(fn):
    """fn()'s result, and the cores other processes used while it ran."""
    m = BP.Others()
    v = fn()
    return v, m.cores()


def summary(samples):
    """Per engine: medians, ranges and ratios over the rounds."""
    out = {}
    for eng, rounds in samples.items():
        q = [r["quiet"] for r in rounds]
        ld = [r["loaded"] for r in rounds]
        ratios = [r["loaded"] / r["quiet"] for r in rounds if r["quiet"] > 0]
        out[eng] = {"quiet_med": statistics.median(q), "quiet_min": min(q), "quiet_max": max(q),
                    "loaded_med": statistics.median(ld), "loaded_min": min(ld), "loaded_max": max(ld),
                    "ratio_of_medians": statistics.median(ld) / statistics.median(q),
                    "ratio_med": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
                    "others_quiet_med": med_or_none([r["others_quiet"] for r in rounds]),
                    "others_loaded_med": med_or_none([r["others_loaded"] for r in rounds])}
    return out


def med_or_none(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def table(s, a):
    busy = "python3 -c 'while True: pass'" if a.busy == "python" else "yes > /dev/null"
    print(f"\n{a.label}, decode tg{a.tg}, {a.threads} threads, {a.rounds} rounds, quiet and beside one busy process "
          f"({busy}); CPU: {cpu_name()}, {os.cpu_count()} logical CPUs\n")
    print("| engine | quiet t/s (min-max) | loaded t/s (min-max) | loaded / quiet | per-round ratio (min-max) | "
          "others, cores (quiet / loaded) |")
    print("|---|---:|---:|---:|---:|---:|")
    for eng, r in s.items():
        oq, ol = r["others_quiet_med"], r["others_loaded_med"]
        print(f"| {eng} | {r['quiet_med']:.1f} ({r['quiet_min']:.1f}-{r['quiet_max']:.1f}) | "
              f"{r['loaded_med']:.1f} ({r['loaded_min']:.1f}-{r['loaded_max']:.1f}) | {r['ratio_of_medians']:.2f} | "
              f"{r['ratio_med']:.2f} ({r['ratio_min']:.2f}-{r['ratio_max']:.2f}) | "
              f"{'-' if oq is None else f'{oq:.2f}'} / {'-' if ol is None else f'{ol:.2f}'} |")


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("model", nargs="?", default=os.path.join(ROOT, BP.SMOL), metavar="MODEL.gguf")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tg", type=int, default=64, help="decode steps per sample (default 64)")
    ap.add_argument("--busy", choices=sorted(BUSY), default="python", help="the busy process (default python)")
    ap.add_argument("--settle", type=float, default=0.5, metavar="S",
                    help="seconds between starting the busy process and the first loaded sample (default 0.5)")
    ap.add_argument("--quiet-wait", type=float, default=30, metavar="S",
                    help="before each round, wait up to S s for other processes to use < 0.3 cores (default 30)")
    ap.add_argument("--kgen", default=os.path.join(ROOT, "build", "kgen"))
    ap.add_argument("--python", default=os.path.join(ROOT, "bench", ".venv", "bin", "python"),
                    help="the Python of bench/.venv (llama.cpp)")
    ap.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "contention.json"))
    a = ap.parse_args()
    if a.rounds < 1 or a.threads < 1 or a.tg < 1:
        sys.exit("bench_contention: --rounds, --threads and --tg must be at least 1")
    for path, what in ((a.kgen, "make"), (a.python, "sh bench/setup_peer.sh"), (a.model, "make models")):
        if not os.path.exists(path):
            sys.exit(f"bench_contention: {path} is missing ({what})")
    a.label = BP.label_of(a.model)
    so = compile_once(a, a.model)
    engines = {"kgen": lambda: kgen_sample(a, so), "llama.cpp": lambda: peer_sample(a, a.model)[0]}
    _, peer = peer_sample(a, a.model)  # warm-up (and the peer's build info)
    kgen_sample(a, so)
    samples = {e: [] for e in engines}
    for r in range(a.rounds):
        waited = BP.wait_quiet(a.quiet_wait)
        order = list(engines) if r % 2 == 0 else list(reversed(engines))
        got = {e: {"round": r + 1, "waited_s": round(waited, 1)} for e in engines}
        for e in order:
            got[e]["quiet"], got[e]["others_quiet"] = measured(engines[e])
        with Busy(a.busy, a.settle):
            for e in order:
                got[e]["loaded"], got[e]["others_loaded"] = measured(engines[e])
        for e in engines:
            samples[e].append(got[e])
        print(f"  round {r + 1}/{a.rounds}: " + " | ".join(
            f"{e} {got[e]['quiet']:.1f} -> {got[e]['loaded']:.1f} t/s" for e in engines), file=sys.stderr, flush=True)
    s = summary(samples)
    table(s, a)
    out = {"tool": "bench/bench_contention.py",
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "host": {"cpu": cpu_name(), "n_cpu": os.cpu_count(), "machine": platform.machine(),
                    "loadavg_end": list(os.getloadavg())},
           "params": {"model": a.model, "threads": a.threads, "tg": a.tg, "rounds": a.rounds, "busy": BUSY[a.busy],
                      "settle_s": a.settle, "quiet_wait_s": a.quiet_wait, "kgen_model": so},
           "peer": peer, "summary": s, "samples": samples}
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    tmp = a.json + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    os.replace(tmp, a.json)
    print(f"\nJSON: {a.json}")


if __name__ == "__main__":
    main()
