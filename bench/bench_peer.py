#!/usr/bin/env python3
"""bench_peer.py — kgen against llama.cpp and the memory-bandwidth limit, on
the same GGUF files, in one run (`make bench-peer`).

    python3 bench/bench_peer.py [--rounds 5] [--threads 1,2] [--pp 64] [--tg 128]
                                [--json OUT.json] [--plots DIR] [MODEL.gguf ...]

Protocol, per model and thread count:
  - warm-up: one kgen bench sample (which also compiles the model into the
    cache) and one llama.cpp sample, not recorded;
  - `rounds` rounds, each one kgen sample (`kgen bench -r 1`: pp and tg,
    after its own warm-up) then one llama.cpp sample (bench/peer_llama.py
    -r 1 in bench/.venv): A B A B ..., so both see the same machine state;
    each round first waits (up to --quiet-wait s) for other processes to use
    < 0.3 cores, and their use during every sample is recorded;
  - the limit: a STREAM-style triad at the same thread count
    (`build/bench-kernels --triad N`), measured before the first and after
    the last round of each configuration; decode can go no faster than
    triad / (weight bytes read per token).
Weight bytes per token: every tensor except the token embedding, of which a
token reads one row, unless the model ties it to the output matrix (then it
is read whole). From `kgen inspect --json`.

Reports medians with min-max, the kgen / llama.cpp ratio of the medians, and
for decode the fraction of the limit each reaches: a markdown table on
stdout, every sample and the machine in the JSON, and PNG plots (gnuplot).
Without a model list: the real SmolLM2 Q4_1 and the random-weight SmolLM2-
and TinyLlama-shaped models in Q4_0, Q4_1, Q8_0 and F16 (bench/gen_model.py).
Needs build/kgen and build/bench-kernels (make), bench/.venv
(sh bench/setup_peer.sh) and gnuplot for the plots.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODELS = ["models/SmolLM2-135M-Instruct.Q4_1.gguf"] + [
    f"models/random/{shape}-{t}.gguf" for shape in ("smollm2", "tinyllama") for t in ("Q4_0", "Q4_1", "Q8_0", "F16")]


def busy_s():
    """Seconds of CPU time the whole machine has spent busy (/proc/stat)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None


class Others:
    """CPU used by processes other than this one and its children, in cores,
    over the interval since construction."""

    def __init__(self):
        t = os.times()
        self.t0, self.b0, self.own0 = time.monotonic(), busy_s(), t.user + t.system + t.children_user + t.children_system

    def cores(self):
        t = os.times()
        b, wall = busy_s(), time.monotonic() - self.t0
        if b is None or self.b0 is None or wall <= 0:
            return None
        own = t.user + t.system + t.children_user + t.children_system - self.own0
        return max(0.0, (b - self.b0 - own) / wall)


def wait_quiet(max_wait, below=0.3, window=2.0):
    """Wait (up to max_wait s) until other processes use < below cores over a
    window, so a round is not measured beside a build; returns seconds waited."""
    t0 = time.monotonic()
    while max_wait > 0:
        m = Others()
        time.sleep(window)
        used, waited = m.cores(), time.monotonic() - t0
        if used is None or used < below or waited >= max_wait:
            break
        print(f"  (others use {used:.2f} cores: waiting for a quieter machine, {waited:.0f}/{max_wait:.0f} s)",
              file=sys.stderr, flush=True)
    return time.monotonic() - t0


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def kgen_sample(a, model, threads):
    d = json.loads(run([a.kgen, "bench", model, "--pp", str(a.pp), "--tg", str(a.tg), "-r", "1", "-t", str(threads),
                        "--json"]))
    return {"pp": d["pp"][0]["tps"], "tg": d["tg"][0]["tps"], "compile_s": d.get("compile_s"), "open_s": d.get("open_s"),
            "peak_rss_mb": d.get("peak_rss_mb")}


def peer_sample(a, model, threads):
    with tempfile.TemporaryDirectory() as td:
        out = os.path.join(td, "p.json")
        run([a.python, os.path.join(ROOT, "bench", "peer_llama.py"), model, "-t", str(threads), "-p", str(a.pp), "-n",
             str(a.tg), "-r", "1", "--json", out])
        d = json.load(open(out))
    res = {}
    for t in d["runs"][0]["tests"]:
        res["pp" if t["test"].startswith("pp") else "tg"] = t["tps_mean"]
    return res, d.get("peer")


def triad(a, threads):
    return json.loads(run([a.bench_kernels, "--triad", str(threads)]))["triad_gbs"]


def bytes_per_token(a, model):
    d = json.loads(run([a.kgen, "inspect", model, "--json"]))
    names = {t["name"] for t in d["tensors"]}
    tied = "output.weight" not in names
    return sum(t["bytes"] for t in d["tensors"] if tied or t["name"] != "token_embd.weight")


def med(v):
    return statistics.median(v)


def plots(rows, outdir):
    gp = shutil.which("gnuplot")
    if not gp:
        print("bench_peer: gnuplot not found: no plots (apt-get install gnuplot-nox)", file=sys.stderr)
        return []
    made = []
    for test in ("tg", "pp"):
        for th in sorted({r["threads"] for r in rows}):
            sel = [r for r in rows if r["test"] == test and r["threads"] == th]
            if not sel:
                continue
            dat = os.path.join(outdir, f"peer-{test}-t{th}.dat")
            with open(dat, "w") as f:
                f.write("label kgen llama_cpp limit\n")
                for r in sel:
                    f.write(f"\"{r['label']}\" {r['kgen_med']:.3f} {r['peer_med']:.3f} "
                            f"{r['limit_tps'] if test == 'tg' else 0:.3f}\n")
            png = os.path.join(outdir, f"peer-{test}-t{th}.png")
            what = "decode (tg%d)" % rows[0]["tg"] if test == "tg" else "prefill (pp%d)" % rows[0]["pp"]
            limit = ", '' using 4 title 'bandwidth limit' lc rgb '#999999'" if test == "tg" else ""
            script = f"""set terminal pngcairo size 1100,560 font ',10' noenhanced
set output '{png}'
set title 'kgen vs llama.cpp: {what}, {th} thread{'s' if th > 1 else ''} (tokens/s, log scale)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set grid ytics
set key top right
set xtics rotate by -30 scale 0
set ylabel 'tokens/s'
plot '{dat}' using 2:xtic(1) title 'kgen' lc rgb '#1f77b4', '' using 3 title 'llama.cpp' lc rgb '#ff7f0e'{limit}
"""
            subprocess.run([gp], input=script, text=True, check=True)
            os.unlink(dat)
            made.append(png)
    return made


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--pp", type=int, default=64)
    ap.add_argument("--tg", type=int, default=128)
    ap.add_argument("--kgen", default=os.path.join(ROOT, "build", "kgen"))
    ap.add_argument("--bench-kernels", default=os.path.join(ROOT, "build", "bench-kernels"))
    ap.add_argument("--python", default=os.path.join(ROOT, "bench", ".venv", "bin", "python"))
    ap.add_argument("--json")
    ap.add_argument("--plots", help="directory for the PNG plots")
    ap.add_argument("--quiet-wait", type=float, default=300, metavar="S",
                    help="before each round, wait up to S s for other processes to use < 0.3 cores (0: never wait)")
    a = ap.parse_args()
    if a.rounds < 1:
        sys.exit("bench_peer: --rounds must be >= 1")
    if not os.path.exists(a.python):
        sys.exit("bench_peer: bench/.venv is missing: run sh bench/setup_peer.sh")
    print("bench_peer: the machine should be otherwise idle; each round first waits (up to --quiet-wait s) "
          "for other processes to go quiet, and their CPU use during every sample is in the JSON", file=sys.stderr)
    models = a.models or [os.path.join(ROOT, m) for m in DEFAULT_MODELS]
    missing = [m for m in models if not os.path.exists(m)]
    if missing:
        sys.exit("bench_peer: missing: " + ", ".join(missing) + " (make models; python3 bench/gen_model.py --all)")
    rows, record, peer_info = [], [], None
    for model in models:
        bpt = bytes_per_token(a, model)
        label = os.path.basename(model).replace(".gguf", "").replace("-Instruct", "")
        for th in [int(x) for x in a.threads.split(",")]:
            kgen_sample(a, model, th)  # compile, warm up
            peer_sample(a, model, th)
            tri = [triad(a, th)]
            ks, ps = [], []
            for r in range(a.rounds):
                waited = wait_quiet(a.quiet_wait)
                m = Others()
                ks.append(kgen_sample(a, model, th))
                ks[-1]["others_cores"] = m.cores()
                m = Others()
                p, peer_info = peer_sample(a, model, th)
                p["others_cores"] = m.cores()
                p["waited_s"] = ks[-1]["waited_s"] = round(waited, 1)
                ps.append(p)
                print(f"  {label} t{th} round {r + 1}/{a.rounds}: kgen pp {ks[-1]['pp']:.1f} tg {ks[-1]['tg']:.1f} | "
                      f"llama.cpp pp {p['pp']:.1f} tg {p['tg']:.1f}", file=sys.stderr)
            tri.append(triad(a, th))
            limit = med(tri) * 1e9 / bpt
            for test in ("pp", "tg"):
                kv, pv = [s[test] for s in ks], [s[test] for s in ps]
                rows.append({"label": label, "model": model, "threads": th, "test": test, "pp": a.pp, "tg": a.tg,
                             "kgen_med": med(kv), "kgen_min": min(kv), "kgen_max": max(kv), "peer_med": med(pv),
                             "peer_min": min(pv), "peer_max": max(pv), "limit_tps": limit})
            record.append({"model": model, "threads": th, "bytes_per_token": bpt, "triad_gbs": tri,
                           "limit_tps": limit, "kgen": ks, "llama_cpp": ps})
    print(f"\n| model | threads | test | kgen tok/s median (min-max) | llama.cpp tok/s median (min-max) | kgen / llama.cpp "
          f"| kgen % of limit | llama.cpp % of limit |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        n = r["pp"] if r["test"] == "pp" else r["tg"]
        lim = (f"{100 * r['kgen_med'] / r['limit_tps']:.0f}% | {100 * r['peer_med'] / r['limit_tps']:.0f}%"
               if r["test"] == "tg" else "- | -")
        print(f"| {r['label']} | {r['threads']} | {r['test']}{n} | {r['kgen_med']:.1f} ({r['kgen_min']:.1f}-{r['kgen_max']:.1f}) "
              f"| {r['peer_med']:.1f} ({r['peer_min']:.1f}-{r['peer_max']:.1f}) | {r['kgen_med'] / r['peer_med']:.2f}x | {lim} |")
    made = plots(rows, a.plots) if a.plots else []
    if a.json:
        cpu = ""
        try:
            cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
            flags = next(l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags"))
        except (OSError, StopIteration):
            flags = []
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        with open(a.json, "w") as f:
            json.dump({"tool": "bench/bench_peer.py", "date": datetime.datetime.now().isoformat(timespec="seconds"),
                       "host": {"node": platform.node(), "cpu": cpu, "cores": os.cpu_count(),
                                "flags": [x for x in flags if x.startswith(("avx", "fma", "f16c", "sse4"))]},
                       "kgen": {"commit": commit, "version": run([a.kgen, "version"]).strip()},
                       "peer": peer_info, "rounds": a.rounds, "pp": a.pp, "tg": a.tg, "table": rows,
                       "samples": record, "plots": made}, f, indent=1)


if __name__ == "__main__":
    main()
