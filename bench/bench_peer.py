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
    triad / (weight bytes read per token), with the best triad of the whole
    run at that thread count (neighbours on a shared machine only lower it);
    for prefill of float weights (F32, F16, BF16 in every layer), the FP32
    FMA peak (`build/bench-kernels --fma-peak N`, measured the same way) over
    the layers' FLOPs per prompt token.
Weight bytes per token: every tensor except the token embedding, of which a
token reads one row, unless the model ties it to the output matrix (then it
is read whole). From `kgen inspect --json`.

Reports medians with min-max, the kgen / llama.cpp ratio of the medians, and
for decode (float prefill: of the FMA peak) the fraction of the limit each
reaches: a markdown table on
stdout, every sample and the machine in the JSON, and PNG plots (gnuplot).

GPU (--gpu auto: when the CUDA driver reports a device; --gpu only: alone):
the same protocol per model with `kgen bench --target cuda` against PyTorch
eager and torch.compile (bench/peer_torch.py --serve under --torch-python,
loaded and warmed once, then one sample per round: kgen, eager, compile,
interleaved); the limit is the device-to-device copy bandwidth (measured by
PyTorch before and after the rounds) / weight bytes per token. Its table,
samples and plots (gpu-{pp,tg}.png) go beside the CPU ones; without a GPU, or
without PyTorch for it, it says so and skips. --from-json F reprints an
earlier run's tables and draws its plots (e.g. a GPU run made where there is
no gnuplot: scripts/gpu_run.sh).
Without a model list: the real SmolLM2 Q4_1 and the random-weight SmolLM2-
and TinyLlama-shaped models in Q4_0, Q4_1, Q8_0 and F16 (bench/gen_model.py),
then the mixed-type files llama.cpp's own quantizer makes (bench/peer_llama.py
--quantize, cached in build/quant/ with a stamp naming the source, the file
type and the llama.cpp build): the real SmolLM2 requantized as Q4_K_M and
Q5_K_M, and the TinyLlama-shaped F16 file quantized as Q4_K_M and IQ4_XS.
--only PAT[,PAT..] keeps the models whose label contains a PAT (case-
insensitive); "mixes" stands for those four mixed-type rows (make
bench-peer-mixes: them and the quantizer comparison):
    bench_peer.py --only mixes --rounds 3 [--quant off]

Quantizer comparison (--quant auto: after the speed rows, unless a model
list or an --only without "mixes" is given; only: alone; off): the real SmolLM2 requantized by
llama.cpp into each of --quant-types (default Q4_K_M Q5_K_M Q3_K_M Q2_K
IQ4_XS Q5_0 Q5_1 IQ4_NL; the Q4_1 original as the baseline row); on each
file kgen generates greedily (kgen run --temp 0 --dump-logits, 2 threads,
-n --quant-n tokens) for the first --quant-prompts prompts of
tests/ref/prompts.txt, and bench/peer_llama.py --compare runs llama.cpp on
the same file: its logits on kgen's sequence (teacher forced; max and mean
|difference| over every step and token; at how many steps its argmax is
kgen's token) and its own greedy continuation (whether the token sequences,
hence the texts, are the same, and where they first part). A table, and
every figure in the JSON under "quant_compare".

Needs build/kgen and build/bench-kernels (make), bench/.venv
(sh bench/setup_peer.sh) and gnuplot for the plots.
"""
import argparse
import ctypes
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOL = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_F16 = "models/random/tinyllama-F16.gguf"
QUANT_DIR = "build/quant"
BASE_MODELS = [SMOL] + [
    f"models/random/{shape}-{t}.gguf" for shape in ("smollm2", "tinyllama") for t in ("Q4_0", "Q4_1", "Q8_0", "F16")]
GEMMA = "models/gemma-3-270m-q4_k_m.gguf"
# architectures beyond llama: speed rows and greedy agreement (--only archs)
ARCH_MODELS = [GEMMA, "models/random/qwen3-0.6b-full-Q4_K_M.gguf"]
BASE_MODELS += ARCH_MODELS
# (source, llama.cpp file type): made by llama.cpp's quantizer (derived(), ensure_quantized())
MIX_MODELS = [(SMOL, "Q4_K_M"), (SMOL, "Q5_K_M"), (TINY_F16, "Q4_K_M"), (TINY_F16, "IQ4_XS")]
QUANT_TYPES = ("Q4_K_M", "Q5_K_M", "Q3_K_M", "Q2_K", "IQ4_XS", "Q5_0", "Q5_1", "IQ4_NL")


def derived(src, ftype):
    """build/quant/NAME.FTYPE.gguf: src quantized (or requantized) by llama.cpp as ftype."""
    stem = os.path.basename(src)[:-len(".gguf")]
    for suffix in (".Q4_1", "-F16"):  # the source's own type leaves the name
        if stem.endswith(suffix):
            stem = stem[:-len(suffix)]
    return os.path.join(ROOT, QUANT_DIR, f"{stem}.{ftype}.gguf")


def ensure_quantized(a, src, ftype):
    """derived(src, ftype), made by llama.cpp's quantizer unless a stamp says the file there was made
    from this source (size, mtime), as this type, by this llama.cpp build."""
    out = derived(src, ftype)
    src = src if os.path.isabs(src) else os.path.join(ROOT, src)
    if not os.path.exists(src):
        sys.exit(f"bench_peer: {src} is missing (make models; bench/.venv/bin/python bench/gen_model.py --all)")
    st = os.stat(src)
    peer = {}
    pj = os.path.join(os.path.dirname(os.path.dirname(a.python)), "peer.json")
    if os.path.exists(pj):
        peer = json.load(open(pj))
    stamp = {"source": os.path.realpath(src), "source_bytes": st.st_size, "source_mtime_ns": st.st_mtime_ns,
             "ftype": ftype, "llama_cpp_commit": peer.get("llama_cpp_commit"), "peer_version": peer.get("version")}
    if os.path.exists(out) and os.path.exists(out + ".stamp"):
        try:
            if json.load(open(out + ".stamp")) == stamp:
                return out
        except ValueError:
            pass
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = out + f".tmp{os.getpid()}"
    print(f"bench_peer: quantizing {os.path.basename(src)} as {ftype} with llama.cpp -> {os.path.relpath(out, ROOT)}",
          file=sys.stderr, flush=True)
    try:
        run([a.python, os.path.join(ROOT, "bench", "peer_llama.py"), "--quantize", src, tmp, ftype, "-t",
             str(os.cpu_count() or 1)])
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    with open(out + ".stamp", "w") as f:
        json.dump(stamp, f)
    return out


def label_of(model):
    return os.path.basename(model).replace(".gguf", "").replace("-Instruct", "")


def select(models, only):
    """The models whose label contains one of the comma-separated patterns ("mixes": the MIX_MODELS)."""
    if not only:
        return models
    pats = [p.strip().lower() for p in only.split(",") if p.strip()]
    mixes = {derived(s, t) for s, t in MIX_MODELS}
    archs = {os.path.join(ROOT, m) for m in ARCH_MODELS}
    return [m for m in models if any((p == "mixes" and m in mixes) or (p == "archs" and m in archs)
                                     or p in label_of(m).lower() for p in pats)]


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


def kgen_sample(a, model, threads, target=None):
    d = json.loads(run([a.kgen, "bench", model, "--pp", str(a.pp), "--tg", str(a.tg), "-r", "1", "-t", str(threads),
                        "--json"] + (["--target", target] if target else [])))
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


def float_layer_flops(a, model):
    """FLOPs per prompt token of the layers' products (2 per weight of blk.* matrices) when every
    one of them is a float type (F32, F16, BF16), else None: the prefill row's compute limit is the
    FP32 FMA peak over this (the output product runs for the last token only)."""
    d = json.loads(run([a.kgen, "inspect", model, "--json"]))
    mats = [t for t in d["tensors"] if t["name"].startswith("blk.") and len(t["shape"]) == 2]
    if not mats or any(t["type"] not in ("F32", "F16", "BF16") for t in mats):
        return None
    return sum(2 * t["shape"][0] * t["shape"][1] for t in mats)


def fma_peak(a, threads):
    return json.loads(run([a.bench_kernels, "--fma-peak", str(threads)]))["gflops"]


def med(v):
    return statistics.median(v)


def plots(rows, outdir, engines, prefix, title):
    """One PNG per test and thread count: tokens/s of each engine (rows[i][key + '_med']) and, for
    decode, the bandwidth limit. engines: [(key, legend, colour)]."""
    gp = shutil.which("gnuplot")
    if not gp:
        print("bench_peer: gnuplot not found: no plots (apt-get install gnuplot-nox)", file=sys.stderr)
        return []
    made = []
    os.makedirs(outdir, exist_ok=True)
    for test in ("tg", "pp"):
        for th in sorted({r["threads"] for r in rows}):
            sel = [r for r in rows if r["test"] == test and r["threads"] == th]
            if not sel:
                continue
            stem = f"{prefix}-{test}" + (f"-t{th}" if th else "")
            dat = os.path.join(outdir, stem + ".dat")
            with open(dat, "w") as f:
                for r in sel:
                    f.write(f"\"{r['label']}\" " + " ".join(f"{r[k + '_med']:.3f}" for k, _, _ in engines)
                            + f" {r['limit_tps'] if test == 'tg' else 0:.3f}\n")
            png = os.path.join(outdir, stem + ".png")
            what = "decode (tg%d)" % rows[0]["tg"] if test == "tg" else "prefill (pp%d)" % rows[0]["pp"]
            cols = [f"'{dat}' using {i + 2}{':xtic(1)' if i == 0 else ''} title '{t}' lc rgb '{c}'"
                    for i, (_, t, c) in enumerate(engines)]
            if test == "tg":
                cols.append(f"'{dat}' using {len(engines) + 2} title 'bandwidth limit' lc rgb '#999999'")
            who = f", {th} thread{'s' if th > 1 else ''}" if th else ""
            script = f"""set terminal pngcairo size 1100,560 font ',10' noenhanced
set output '{png}'
set title '{title}: {what}{who} (tokens/s, log scale)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set grid ytics
set key top right
set xtics rotate by -30 scale 0
set ylabel 'tokens/s'
plot {', '.join(cols)}
"""
            subprocess.run([gp], input=script, text=True, check=True)
            os.unlink(dat)
            made.append(png)
    return made


def gpu_name():
    """The first CUDA device's name, through the driver (libcuda.so.1), or None."""
    try:
        cu = ctypes.CDLL("libcuda.so.1")
        n, dev, name = ctypes.c_int(0), ctypes.c_int(0), ctypes.create_string_buffer(256)
        if cu.cuInit(0) or cu.cuDeviceGetCount(ctypes.byref(n)) or n.value < 1 or cu.cuDeviceGet(ctypes.byref(dev), 0):
            return None
        return name.value.decode() if not cu.cuDeviceGetName(name, 256, dev) else "CUDA device 0"
    except (OSError, AttributeError):
        return None


class TorchPeer:
    """bench/peer_torch.py --serve for one model: loaded and warmed once, one sample per request."""

    def __init__(self, a, model):
        self.p = subprocess.Popen([a.torch_python, os.path.join(ROOT, "bench", "peer_torch.py"), model, "--serve",
                                   "--pp", str(a.pp), "--tg", str(a.tg), "--device", a.torch_device],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = self.read()

    def read(self):
        line = self.p.stdout.readline()
        if not line:
            self.p.wait()
            raise RuntimeError(f"bench/peer_torch.py stopped (exit {self.p.returncode}); its messages are above")
        return json.loads(line)

    def sample(self, mode):
        self.p.stdin.write(mode + "\n")
        self.p.stdin.flush()
        d = self.read()
        if "error" in d or not d.get("finite", True):
            raise RuntimeError(f"bench/peer_torch.py: {d.get('error') or 'non-finite logits'}")
        return d

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def copy_bw(a):
    return json.loads(run([a.torch_python, os.path.join(ROOT, "bench", "peer_torch.py"), "--copy-bw", "--device",
                           a.torch_device]))


def gpu_compare(a, models):
    """kgen's CUDA backend against PyTorch eager and torch.compile, with the device copy bandwidth as
    the limit: the CPU protocol (warm-up, interleaved rounds) on the GPU. Returns (rows, record, info)."""
    name = gpu_name()
    if not name:
        print("bench_peer: no GPU (no CUDA driver, or it reports no device): the GPU comparison is skipped",
              file=sys.stderr)
        return [], [], {"skipped": "no GPU"}
    try:
        bw0 = copy_bw(a)
    except (subprocess.CalledProcessError, OSError, ValueError) as e:
        msg = (e.stderr or "").strip() if isinstance(e, subprocess.CalledProcessError) else str(e)
        print(f"bench_peer: GPU {name}, but {a.torch_python} cannot run PyTorch on it ({msg}): the GPU comparison "
              f"is skipped (--torch-python PY names a Python with PyTorch and gguf)", file=sys.stderr)
        return [], [], {"skipped": f"no PyTorch with CUDA in {a.torch_python}", "gpu": name}
    rows, record, info = [], [], {"gpu": name, "torch": bw0.get("torch")}
    print(f"bench_peer: GPU {name}: kgen --target cuda against PyTorch {bw0.get('torch')} eager and torch.compile",
          file=sys.stderr)
    for model in models:
        bpt = bytes_per_token(a, model)
        label = os.path.basename(model).replace(".gguf", "").replace("-Instruct", "")
        kgen_sample(a, model, 1, a.gpu_target)  # compile, warm up
        peer = TorchPeer(a, model)
        bw = [copy_bw(a)["copy_gbs"]]
        ks, es, cs = [], [], []
        try:
            for r in range(a.rounds):
                ks.append(kgen_sample(a, model, 1, a.gpu_target))
                es.append(peer.sample("eager"))
                cs.append(peer.sample("compile"))
                print(f"  {label} GPU round {r + 1}/{a.rounds}: kgen pp {ks[-1]['pp']:.0f} tg {ks[-1]['tg']:.0f} | "
                      f"eager pp {es[-1]['pp']:.0f} tg {es[-1]['tg']:.0f} | compile pp {cs[-1]['pp']:.0f} "
                      f"tg {cs[-1]['tg']:.0f}", file=sys.stderr)
        finally:
            peer.close()
        bw.append(copy_bw(a)["copy_gbs"])
        limit = med(bw) * 1e9 / bpt
        for test in ("pp", "tg"):
            row = {"label": label, "model": model, "threads": 0, "test": test, "pp": a.pp, "tg": a.tg,
                   "limit_tps": limit}
            for key, ss in (("kgen", ks), ("eager", es), ("compile", cs)):
                v = [x[test] for x in ss]
                row.update({key + "_med": med(v), key + "_min": min(v), key + "_max": max(v)})
            rows.append(row)
        record.append({"model": model, "bytes_per_token": bpt, "copy_gbs": bw, "limit_tps": limit,
                       "torch_info": peer.info, "kgen": ks, "torch_eager": es, "torch_compile": cs})
    return rows, record, info


def table(rows, engines):
    """Markdown: per row each engine's median (min-max), kgen's ratio to each peer, and for decode
    each engine's fraction of the limit."""
    names = [t for _, t, _ in engines]
    print("\n| model | threads | test | " + " | ".join(f"{t} tok/s median (min-max)" for t in names) + " | "
          + " | ".join(f"kgen / {t}" for t in names[1:]) + " | " + " | ".join(f"{t} % of limit" for t in names) + " |")
    print("|---|---:|---|" + "---:|" * (3 * len(names) - 1))
    for r in rows:
        n = r["pp"] if r["test"] == "pp" else r["tg"]
        cells = [f"{r[k + '_med']:.1f} ({r[k + '_min']:.1f}-{r[k + '_max']:.1f})" for k, _, _ in engines]
        cells += [f"{r['kgen_med'] / r[k + '_med']:.2f}x" for k, _, _ in engines[1:]]
        cells += [f"{100 * r[k + '_med'] / r['limit_tps']:.0f}%" if r["test"] == "tg"
                  else f"{100 * r[k + '_med'] / r['pp_limit_tps']:.0f}% of FMA peak" if r.get("pp_limit_tps")
                  else "-" for k, _, _ in engines]
        print(f"| {r['label']} | {r['threads'] or 'GPU'} | {r['test']}{n} | " + " | ".join(cells) + " |")


CPU_ENGINES = [("kgen", "kgen", "#1f77b4"), ("peer", "llama.cpp", "#ff7f0e")]
GPU_ENGINES = [("kgen", "kgen", "#1f77b4"), ("eager", "PyTorch eager", "#2ca02c"),
               ("compile", "torch.compile", "#d62728")]


def cpu_compare(a, models):
    """kgen against llama.cpp at each thread count, the triad as the limit. Returns (rows, record, peer info)."""
    print("bench_peer: the machine should be otherwise idle; each round first waits (up to --quiet-wait s) "
          "for other processes to go quiet, and their CPU use during every sample is in the JSON", file=sys.stderr)
    rows, record, peer_info = [], [], None
    for model in models:
        bpt = bytes_per_token(a, model)
        fpt = float_layer_flops(a, model)
        label = label_of(model)
        for th in [int(x) for x in a.threads.split(",")]:
            kgen_sample(a, model, th)  # compile, warm up
            peer_sample(a, model, th)
            tri = [triad(a, th)]
            fma = [fma_peak(a, th)] if fpt else []
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
            if fpt:
                fma.append(fma_peak(a, th))
            limit = med(tri) * 1e9 / bpt
            for test in ("pp", "tg"):
                kv, pv = [s[test] for s in ks], [s[test] for s in ps]
                rows.append({"label": label, "model": model, "threads": th, "test": test, "pp": a.pp, "tg": a.tg,
                             "kgen_med": med(kv), "kgen_min": min(kv), "kgen_max": max(kv), "peer_med": med(pv),
                             "peer_min": min(pv), "peer_max": max(pv), "limit_tps": limit})
            record.append({"model": model, "threads": th, "bytes_per_token": bpt, "triad_gbs": tri,
                           "limit_tps": limit, "kgen": ks, "llama_cpp": ps})
            if fpt:
                record[-1].update({"flops_per_prompt_token": fpt, "fma_gflops": fma})
    best_triad_limits(rows, record)
    return rows, record, peer_info


def best_triad_limits(rows, record):
    """The limit of every row: the best triad of the whole run at its thread count / its bytes per token.
    Neighbours on a shared machine only ever lower a triad, so one configuration's own triads (kept in
    the record) can fall below what its samples then reach; the run's best is the bandwidth there is."""
    best = {}
    for s in record:
        best[s["threads"]] = max(best.get(s["threads"], 0.0), *s["triad_gbs"])
    for s in record:
        s["limit_tps"] = best[s["threads"]] * 1e9 / s["bytes_per_token"]
        s["limit_triad_gbs"] = best[s["threads"]]
    lim = {(s["model"], s["threads"]): s["limit_tps"] for s in record}
    for r in rows:
        r["limit_tps"] = lim[(r["model"], r["threads"])]
    # prefill of float weights: the run's best FP32 FMA peak at the thread count over the FLOPs per token
    peak = {}
    for s in record:
        if s.get("fma_gflops"):
            peak[s["threads"]] = max(peak.get(s["threads"], 0.0), *s["fma_gflops"])
    pl = {(s["model"], s["threads"]): peak[s["threads"]] * 1e9 / s["flops_per_prompt_token"]
          for s in record if s.get("fma_gflops")}
    for r in rows:
        if r["test"] == "pp" and (r["model"], r["threads"]) in pl:
            r["pp_limit_tps"] = pl[(r["model"], r["threads"])]


# ── the quantizer comparison ─────────────────────────────────────────────
def read_prompts(path, n):
    """The first n prompts of tests/ref/prompts.txt as (chat, text)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            kind, _, text = line.partition(": ")
            text = re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "\\": "\\"}.get(m.group(1), "\\" + m.group(1)), text)
            out.append((kind == "chat", text))
    return out[:n]


def file_types(a, model):
    """{type: number of weight tensors} (norms left out)."""
    d = json.loads(run([a.kgen, "inspect", model, "--json"]))
    counts = {}
    for t in d["tensors"]:
        if not t["name"].endswith("norm.weight"):
            counts[t["type"]] = counts.get(t["type"], 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def agreement(a, files, prompts, n, what):
    """kgen against llama.cpp on the same files: [(label, path)] x prompts, n greedy tokens each.
    Rows of greedy-text agreement and logit differences, and llama.cpp's detail per file."""
    rows, detail = [], []
    print(f"bench_peer: {what}: {len(files)} files x {len(prompts)} prompts x {n} tokens", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="kgen-agree-") as td:
        for ft, path in files:
            row = {"ftype": ft, "file": os.path.relpath(path, ROOT), "types": file_types(a, path)}
            dumps, err, texts = [], None, []
            t0 = time.monotonic()
            for k, (chat, text) in enumerate(prompts):
                dump = os.path.join(td, f"{ft.split()[0]}-{k}.kglg")
                p = subprocess.run([a.kgen, "run", path, "-p", text, "-n", str(n), "--temp", "0",
                                    "--ignore-eos", "-t", "2", "--dump-logits", dump] + (["--chat"] if chat else []),
                                   capture_output=True, text=True, stdin=subprocess.DEVNULL)
                if p.returncode != 0:
                    lines = p.stderr.strip().splitlines()
                    err = lines[-1] if lines else f"exit status {p.returncode}"
                    break
                dumps.append(dump)
                texts.append(p.stdout)
            row["kgen_s"] = round(time.monotonic() - t0, 1)
            if err:
                row["kgen_error"] = err
                rows.append(row)
                print(f"  {ft}: kgen: {err}", file=sys.stderr, flush=True)
                continue
            out = os.path.join(td, "compare.json")
            run([a.python, os.path.join(ROOT, "bench", "peer_llama.py"), "--compare", path] + dumps +
                ["--json", out, "-t", "2"])
            c = json.load(open(out))
            for d, t in zip(c["dumps"], texts):
                d["kgen_text"] = t
            ds = c["dumps"]
            row.update(n=len(ds), same=sum(d["first_divergence"] is None for d in ds),
                       first_divergence=[d["first_divergence"] for d in ds],
                       gaps=[d["llama_cpp_gap_at_divergence"] for d in ds],
                       steps=sum(d["n_gen"] for d in ds), tf_agree=sum(d["teacher_forced_argmax_agree"] for d in ds),
                       max_abs=max(d["max_abs"] for d in ds),
                       mean_abs=statistics.fmean(d["mean_abs"] for d in ds),
                       max_logit=max(d["max_abs_logit"] for d in ds))
            rows.append(row)
            detail.append({"ftype": ft, **c})
            print(f"  {ft}: greedy same {row['same']}/{row['n']}, max |diff| {row['max_abs']:.3f}, "
                  f"mean {row['mean_abs']:.4f}", file=sys.stderr, flush=True)
    return {"prompts": [{"chat": c, "text": t} for c, t in prompts], "n": n, "threads": 2, "rows": rows,
            "detail": detail}


def quant_compare(a):
    """kgen against llama.cpp on the real SmolLM2 requantized by llama.cpp into each of --quant-types."""
    prompts = read_prompts(os.path.join(ROOT, "tests", "ref", "prompts.txt"), a.quant_prompts)
    types = [t.strip().upper() for t in a.quant_types.split(",") if t.strip()]
    files = [("Q4_1 (original)", os.path.join(ROOT, SMOL))] + [(t, ensure_quantized(a, SMOL, t)) for t in types]
    return agreement(a, files, prompts, a.quant_n, "quantizer comparison")


def arch_compare(a):
    """kgen against llama.cpp on the architectures beyond llama (ARCH_MODELS), raw prompts (no chat template)."""
    prompts = [(False, t) for _, t in read_prompts(os.path.join(ROOT, "tests", "ref", "prompts.txt"), a.quant_prompts)]
    files = [(label_of(m), os.path.join(ROOT, m)) for m in ARCH_MODELS if os.path.exists(os.path.join(ROOT, m))]
    return agreement(a, files, prompts, a.quant_n, "architectures")


def quant_table(q, what="the real SmolLM2 requantized by llama.cpp"):
    print(f"\nkgen against llama.cpp on the same files: {what}; "
          f"{len(q['prompts'])} prompts x {q['n']} greedy tokens, {q['threads']} threads")
    print("(first divergence: the step where llama.cpp's own greedy text first differs, and in brackets its "
          "logit margin there for its token over kgen's; the Q4_1 original is the baseline)")
    print("\n| file type | weight tensors by type | greedy text = llama.cpp's | first divergence (step, margin) "
          "| llama.cpp's argmax = kgen's token (teacher forced) | max abs logit diff | mean abs logit diff |")
    print("|---|---|---:|---|---:|---:|---:|")
    for r in q["rows"]:
        ty = ", ".join(f"{k} {v}" for k, v in r["types"].items())
        if "kgen_error" in r:
            print(f"| {r['ftype']} | {ty} | kgen failed: {r['kgen_error'][:100]} | | | | |")
            continue
        div = ", ".join("-" if d is None else f"{d} ({g:.2f})" for d, g in zip(r["first_divergence"], r["gaps"]))
        print(f"| {r['ftype']} | {ty} | {r['same']}/{r['n']} | {div} | {r['tf_agree']}/{r['steps']} "
              f"| {r['max_abs']:.3f} | {r['mean_abs']:.4f} |")


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
    ap.add_argument("--gpu", choices=("auto", "only", "off"), default="auto",
                    help="auto: after the CPU comparison, the GPU one when there is a GPU; only: the GPU one alone")
    ap.add_argument("--torch-python", default=os.environ.get("TORCH_PYTHON", "python3"),
                    help="a Python with PyTorch (CUDA) and gguf, for the GPU peers (default $TORCH_PYTHON or python3)")
    ap.add_argument("--gpu-target", default="cuda", help="kgen's --target for the GPU comparison")
    ap.add_argument("--torch-device", default="cuda", help="PyTorch's device for the GPU comparison")
    ap.add_argument("--from-json", metavar="F", help="no run: the tables (and --plots, and --json rewritten with "
                    "the limits recomputed) of an earlier run's JSON")
    ap.add_argument("--gpu-probe", action="store_true", help="no run: exit 0 when the CUDA driver reports a GPU")
    ap.add_argument("--only", metavar="PATS", help="comma-separated: the models whose label contains one "
                    "(case-insensitive); 'mixes': the mixed-type files of llama.cpp's quantizer; 'archs': the "
                    "architectures beyond llama (Gemma 3 270M, a Qwen3-0.6B-shaped Q4_K_M), with greedy agreement")
    ap.add_argument("--quant", choices=("auto", "only", "off"), default="auto",
                    help="the quantizer comparison: auto (after the speed rows, unless a model list or an --only "
                    "without 'mixes' is given), only (alone), off")
    ap.add_argument("--quant-types", default=",".join(QUANT_TYPES))
    ap.add_argument("--quant-prompts", type=int, default=4, help="the first N prompts of tests/ref/prompts.txt")
    ap.add_argument("--quant-n", type=int, default=32, help="greedy tokens per prompt")
    a = ap.parse_args()
    if a.gpu_probe:
        name = gpu_name()
        print(f"bench_peer: GPU: {name}" if name else "bench_peer: no GPU (no CUDA driver, or it reports no device)",
              file=sys.stderr)
        sys.exit(0 if name else 1)
    if a.from_json:
        with open(a.from_json) as f:
            d = json.load(f)
        rows, g = d.get("table", []), d.get("gpu", {})
        best_triad_limits(rows, d.get("samples", []))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(d, f, indent=1)
        if rows:
            table(rows, CPU_ENGINES)
        if g.get("table"):
            table(g["table"], GPU_ENGINES)
        if d.get("quant_compare", {}).get("rows"):
            quant_table(d["quant_compare"])
        if d.get("arch_compare", {}).get("rows"):
            quant_table(d["arch_compare"], "architectures beyond llama, raw prompts")
        if a.plots:
            made = plots(rows, a.plots, CPU_ENGINES, "peer", "kgen vs llama.cpp") if rows else []
            if g.get("table"):
                made += plots(g["table"], a.plots, GPU_ENGINES, "gpu", f"kgen vs PyTorch on {g.get('gpu')}")
            print("\n".join(made))
        return
    if a.rounds < 1:
        sys.exit("bench_peer: --rounds must be >= 1")
    if a.gpu != "only" and not os.path.exists(a.python):
        sys.exit("bench_peer: bench/.venv is missing: run sh bench/setup_peer.sh")
    models = []
    if a.quant != "only":
        models = select(a.models or [os.path.join(ROOT, m) for m in BASE_MODELS] + [derived(s, t) for s, t in MIX_MODELS],
                        a.only)
        if not models:
            sys.exit(f"bench_peer: --only {a.only} selects no model")
        mixes = {derived(s, t): (s, t) for s, t in MIX_MODELS}
        models = [ensure_quantized(a, *mixes[m]) if m in mixes and not a.models else m for m in models]
        missing = [m for m in models if not os.path.exists(m)]
        if missing:
            sys.exit("bench_peer: missing: " + ", ".join(missing) + " (make models; python3 bench/gen_model.py --all)")
    rows, record, peer_info = cpu_compare(a, models) if a.gpu != "only" and models else ([], [], None)
    grows, grecord, ginfo = gpu_compare(a, models) if a.gpu != "off" and models else ([], [], {"skipped": "--gpu off"})
    qc = {}
    only = [x.strip().lower() for x in (a.only or "").split(",")]
    if a.quant == "only" or (a.quant == "auto" and not a.models and (not a.only or "mixes" in only)
                             and a.gpu != "only"):
        qc = quant_compare(a)
    ac = arch_compare(a) if a.gpu != "only" and a.quant != "only" and any(
        os.path.join(ROOT, m) in models for m in ARCH_MODELS) else {}
    if rows:
        table(rows, CPU_ENGINES)
    if grows:
        table(grows, GPU_ENGINES)
    if qc:
        quant_table(qc)
    if ac:
        quant_table(ac, "architectures beyond llama, raw prompts")
    made = []
    if a.plots:
        made += plots(rows, a.plots, CPU_ENGINES, "peer", "kgen vs llama.cpp") if rows else []
        made += plots(grows, a.plots, GPU_ENGINES, "gpu", f"kgen vs PyTorch on {ginfo.get('gpu')}") if grows else []
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
                       "samples": record, "gpu": {**ginfo, "table": grows, "samples": grecord}, "plots": made,
                       "quant_compare": qc, "arch_compare": ac},
                      f, indent=1)


if __name__ == "__main__":
    main()
