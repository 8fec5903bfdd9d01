#!/usr/bin/env python3
"""vs_llama.py — kgen against llama.cpp on the same GGUF files, interleaved.

    python3 bench/vs_llama.py [--rounds 5] [--threads 2] [--pp 64] [--tg 128]
                              [--json bench/results/vs-llama.json] MODEL.gguf...

For each model and thread count, `rounds` times: one `kgen bench` sample
(pp and tg, -r 1 after its warm-up) then one llama.cpp sample
(bench/peer_llama.py in bench/.venv, -r 1 after its warm-up), so both see
the same machine state (A B A B ...). Reports the median and min-max of the
rounds' tokens/s and the kgen / llama.cpp ratio of the medians, as a
markdown table on stdout and every sample in the JSON. Needs build/kgen
(make) and bench/.venv (sh bench/setup_peer.sh).
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def kgen_sample(kgen, model, threads, pp, tg):
    out = subprocess.run([kgen, "bench", model, "--pp", str(pp), "--tg", str(tg), "-r", "1", "-t", str(threads), "--json"],
                         check=True, capture_output=True, text=True).stdout
    d = json.loads(out)
    return {"pp": d["pp"][0]["tps"] if d["pp"] else None, "tg": d["tg"][0]["tps"] if d["tg"] else None,
            "compile_s": d.get("compile_s"), "open_s": d.get("open_s"), "peak_rss_mb": d.get("peak_rss_mb")}


def peer_sample(py, model, threads, pp, tg):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run([py, os.path.join(ROOT, "bench", "peer_llama.py"), model, "-t", str(threads), "-p", str(pp), "-n",
                        str(tg), "-r", "1", "--json", f.name], check=True, capture_output=True, text=True)
        d = json.load(open(f.name))
    res = {"pp": None, "tg": None}
    for t in d["runs"][0]["tests"]:
        res["pp" if t["test"].startswith("pp") else "tg"] = t["tps_mean"]
    res["peer"] = d.get("peer")
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", default="2")
    ap.add_argument("--pp", type=int, default=64)
    ap.add_argument("--tg", type=int, default=128)
    ap.add_argument("--kgen", default=os.path.join(ROOT, "build", "kgen"))
    ap.add_argument("--python", default=os.path.join(ROOT, "bench", ".venv", "bin", "python"))
    ap.add_argument("--json")
    a = ap.parse_args()
    if not os.path.exists(a.python):
        sys.exit("vs_llama: bench/.venv is missing: run sh bench/setup_peer.sh")
    rows, record = [], []
    for model in a.models:
        for th in [int(x) for x in a.threads.split(",")]:
            kgen_sample(a.kgen, model, th, 8, 8)  # compile into the cache, warm up
            ks, ps = [], []
            peer_info = None
            for r in range(a.rounds):
                ks.append(kgen_sample(a.kgen, model, th, a.pp, a.tg))
                p = peer_sample(a.python, model, th, a.pp, a.tg)
                peer_info = p.pop("peer", None)
                ps.append(p)
                print(f"  {os.path.basename(model)} t{th} round {r + 1}: kgen pp {ks[-1]['pp']:.1f} tg {ks[-1]['tg']:.1f}"
                      f" | llama.cpp pp {p['pp']:.1f} tg {p['tg']:.1f}", file=sys.stderr)
            for test in ("pp", "tg"):
                kv = [s[test] for s in ks]
                pv = [s[test] for s in ps]
                rows.append((os.path.basename(model), th, f"{test}{a.pp if test == 'pp' else a.tg}", kv, pv))
            record.append({"model": model, "threads": th, "kgen": ks, "llama_cpp": ps, "peer": peer_info})
    print(f"| model | threads | test | kgen tok/s median (min-max) | llama.cpp tok/s median (min-max) | kgen / llama.cpp |")
    print("|---|---:|---|---:|---:|---:|")
    for m, th, test, kv, pv in rows:
        km, pm = statistics.median(kv), statistics.median(pv)
        print(f"| {m} | {th} | {test} | {km:.1f} ({min(kv):.1f}-{max(kv):.1f}) | {pm:.1f} ({min(pv):.1f}-{max(pv):.1f}) |"
              f" {km / pm:.2f}x |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"tool": "bench/vs_llama.py", "date": datetime.datetime.now().isoformat(timespec="seconds"),
                       "host": platform.node(), "cpu": platform.processor(), "rounds": a.rounds, "pp": a.pp, "tg": a.tg,
                       "results": record}, f, indent=1)


if __name__ == "__main__":
    main()
