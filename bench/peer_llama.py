#!/usr/bin/env python3
"""peer_llama.py — llama.cpp's prefill and decode speed, measured as llama-bench does.

    bench/.venv/bin/python bench/peer_llama.py MODEL.gguf [MODEL.gguf...] \\
        [--threads 2[,1...]] [--pp 64] [--tg 128] [-r 5] [--json OUT]
    bench/.venv/bin/python bench/peer_llama.py --check MODEL.gguf...

Runs in bench/.venv (made by bench/setup_peer.sh), through llama-cpp-python's
low-level API, so what is timed is llama_decode alone:

  ppN  a fresh context (KV cache cleared), one llama_decode of N random token
       ids at positions 0..N-1 (logits for the last one only); N tokens per
       sample.
  tgN  a fresh context, a short prompt (--tg-prompt tokens, default 1, not
       timed), then N llama_decode calls of one random token each (logits
       for it), positions after the prompt; N tokens per sample.

Times come from llama.cpp's own counters (llama_perf_context: t_p_eval_ms
for pp, t_eval_ms for tg; reset before each sample, with llama_synchronize
after every decode so each one is accounted), so building batches in Python
is not counted; there is no tokenization and no sampling. Each test has one
unrecorded warm-up sample first. Tokens/s is reported as the mean and sample
standard deviation over the -r samples, as llama-bench does; every sample
is in the JSON, with the wall-clock time of the same calls as a cross-check;
the JSON is rewritten after every test ("complete": false until the end).
Flash attention is off unless --flash-attn says otherwise (llama-bench's
default is auto, which enables it on the CPU). Context: n_ctx = pp + tg +
tg-prompt; n_batch = max(pp, 512); n_ubatch = min(n_batch, 512).

Each run checks that the logits it produced are finite and fails otherwise;
--check only loads each model, decodes a few tokens and prints the logits'
range.

Two more modes, for bench/bench_peer.py's quantizer comparison:

    peer_llama.py --quantize SRC.gguf OUT.gguf FTYPE [-t N]
        llama.cpp's own quantizer (llama_model_quantize, allow_requantize on,
        no imatrix): FTYPE is a llama_ftype name without LLAMA_FTYPE_MOSTLY_
        (Q4_K_M, Q5_K_M, Q3_K_M, Q2_K, IQ4_XS, Q5_0, Q5_1, IQ4_NL, ...).
    peer_llama.py --compare MODEL.gguf DUMP... --json OUT [-t N]
        for each of kgen's logits dumps (kgen run --dump-logits; format in
        tests/ref/check_e2e.py): llama.cpp's logits on kgen's own sequence
        (prompt + generated tokens but the last, one decode, teacher forced)
        against kgen's at every generated step, and llama.cpp's own greedy
        continuation of the same prompt ids, token by token, against kgen's. The JSON also records the package version and the vendored llama.cpp
commit (from bench/.venv/peer.json).

Load: llama.cpp's threads wait for each other at every op, so one preempted
thread stalls the rest; on a busy machine 2-thread figures collapse. For each
test the JSON records the load average and the CPU time other processes used
during it (in cores: /proc/stat's busy time less this process's own).
--quiet-wait S waits up to S seconds before each test for others to use less
than --quiet-below cores; --max-others C repeats (up to --retries times) a
test during which others used more than C cores, keeping the discarded
attempts in the JSON.
"""
import argparse
import ctypes
import datetime
import json
import math
import os
import platform
import random
import statistics
import sys
import time

try:
    import numpy as np
    import llama_cpp as L
except ImportError as e:
    sys.exit(f"peer_llama: {e}; run it with bench/.venv/bin/python after sh bench/setup_peer.sh")

VERBOSE = False
_last_level = 0


@L.llama_log_callback
def _log(level, text, user_data):
    # ggml levels: 1 debug, 2 info, 3 warn, 4 error, 5 continuation
    global _last_level
    if level != 5:
        _last_level = level
    if VERBOSE or _last_level in (3, 4):
        sys.stderr.write(text.decode("utf-8", errors="replace"))


def die(msg):
    sys.exit(f"peer_llama: {msg}")


def peer_info():
    info = {"package": "llama-cpp-python", "version": L.__version__, "llama_cpp_commit": "unknown"}
    path = os.path.join(sys.prefix, "peer.json")
    if os.path.exists(path):
        with open(path) as f:
            j = json.load(f)
        for k in ("llama_cpp_commit", "cmake_args", "sdist_sha256", "compiler", "build_seconds"):
            info[k] = j.get(k)
        if j.get("version") != L.__version__:
            info["warning"] = f"peer.json is for {j.get('version')}, the package is {L.__version__}"
    info["system_info"] = L.llama_print_system_info().decode(errors="replace").strip()
    return info


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class Runner:
    """One model and one context, for one thread count."""

    def __init__(self, path, threads, n_ctx, n_batch, flash_attn):
        mp = L.llama_model_default_params()
        mp.n_gpu_layers = 0
        self.model = L.llama_model_load_from_file(path.encode(), mp)
        if not self.model:
            die(f"{path}: llama.cpp could not load the model (run with --verbose for its log)")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        cp = L.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = n_batch
        cp.n_ubatch = min(n_batch, 512)
        cp.n_seq_max = 1
        cp.n_threads = threads
        cp.n_threads_batch = threads
        cp.flash_attn_type = flash_attn
        cp.no_perf = False          # the perf counters are what is read
        self.ctx = L.llama_init_from_model(self.model, cp)
        if not self.ctx:
            die(f"{path}: llama.cpp could not create a context")
        self.mem = L.llama_get_memory(self.ctx)
        self.batch = L.llama_batch_init(n_batch, 0, 1)
        buf = ctypes.create_string_buffer(256)
        L.llama_model_desc(self.model, buf, 256)
        self.desc = buf.value.decode(errors="replace")
        self.size = L.llama_model_size(self.model)
        self.n_params = L.llama_model_n_params(self.model)
        self.n_ctx = L.llama_n_ctx(self.ctx)
        self.n_batch = L.llama_n_batch(self.ctx)
        self.n_ubatch = L.llama_n_ubatch(self.ctx)

    def close(self):
        L.llama_batch_free(self.batch)
        L.llama_free(self.ctx)
        L.llama_model_free(self.model)

    def decode(self, tokens, pos0, logits_last_only=True):
        """One llama_decode of tokens at positions pos0...; returns wall seconds."""
        b = self.batch
        n = len(tokens)
        b.n_tokens = n
        for i, t in enumerate(tokens):
            b.token[i] = t
            b.pos[i] = pos0 + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            b.logits[i] = 1 if (i == n - 1 or not logits_last_only) else 0
        t0 = time.perf_counter()
        rc = L.llama_decode(self.ctx, b)
        L.llama_synchronize(self.ctx)
        t1 = time.perf_counter()
        if rc != 0:
            die(f"llama_decode returned {rc}")
        return t1 - t0

    def last_logits(self):
        p = L.llama_get_logits_ith(self.ctx, -1)
        return np.ctypeslib.as_array(p, shape=(self.n_vocab,)).copy()

    def fresh(self):
        L.llama_memory_clear(self.mem, True)

    def pp(self, n, rng):
        """Prefill n tokens; (perf ms, wall ms)."""
        self.fresh()
        toks = [rng.randrange(self.n_vocab) for _ in range(n)]
        L.llama_perf_context_reset(self.ctx)
        wall = self.decode(toks, 0)
        perf = L.llama_perf_context(self.ctx)
        # (llama_perf_context reports counts of 0 as 1: check the times for the other kind)
        if perf.n_p_eval != n or perf.t_eval_ms != 0:
            die(f"pp{n}: llama.cpp counted {perf.n_p_eval} prompt tokens and {perf.t_eval_ms} ms of generation")
        return perf.t_p_eval_ms, wall * 1e3

    def tg(self, n, n_prompt, rng):
        """Decode n tokens one at a time after an n_prompt-token prompt; (perf ms, wall ms)."""
        self.fresh()
        if n_prompt:
            self.decode([rng.randrange(self.n_vocab) for _ in range(n_prompt)], 0)
        L.llama_perf_context_reset(self.ctx)
        wall = 0.0
        for i in range(n):
            wall += self.decode([rng.randrange(self.n_vocab)], n_prompt + i)
        perf = L.llama_perf_context(self.ctx)
        if perf.n_eval != n or perf.t_p_eval_ms != 0:
            die(f"tg{n}: llama.cpp counted {perf.n_eval} generated tokens and {perf.t_p_eval_ms} ms of prompt")
        return perf.t_eval_ms, wall * 1e3


def check_finite(r, what):
    lg = r.last_logits()
    if not np.all(np.isfinite(lg)):
        die(f"{what}: {np.count_nonzero(~np.isfinite(lg))} of {lg.size} logits are not finite")
    return lg


def stats(tps):
    return statistics.fmean(tps), (statistics.stdev(tps) if len(tps) > 1 else 0.0)


class CpuMeter:
    """CPU time used by other processes (in cores) over an interval: all of the
    machine's busy time from /proc/stat less this process's own."""

    HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    @staticmethod
    def _busy():
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:9]]
            return (sum(v) - v[3] - v[4]) / CpuMeter.HZ   # less idle and iowait
        except (OSError, ValueError):
            return None

    def __init__(self):
        t = os.times()
        self.t0, self.busy0, self.own0 = time.monotonic(), self._busy(), t.user + t.system

    def others(self):
        t = os.times()
        busy, wall = self._busy(), time.monotonic() - self.t0
        if busy is None or self.busy0 is None or wall <= 0:
            return None
        return max(0.0, (busy - self.busy0 - (t.user + t.system - self.own0)) / wall)


def wait_quiet(max_wait, threshold, window=3.0):
    """Wait up to max_wait seconds for other processes to use < threshold cores
    over a window; returns (seconds waited, their last use)."""
    t0 = time.monotonic()
    while True:
        m = CpuMeter()
        time.sleep(window)
        used = m.others()
        waited = time.monotonic() - t0
        if used is None or used < threshold or waited >= max_wait:
            return waited, used
        print(f"  (others use {used:.2f} cores: waiting for a quieter machine, {waited:.0f}/{max_wait:.0f} s)",
              file=sys.stderr, flush=True)


def run_test(r, name, n, fn, a):
    """Warm-up, then a.repetitions samples; repeated (up to a.retries times)
    while other processes used more than a.max_others cores during it."""
    discarded = []
    for attempt in range(a.retries + 1):
        waited, quiet = wait_quiet(a.quiet_wait, a.quiet_below) if a.quiet_wait > 0 else (0.0, None)
        fn()  # warm-up, not recorded
        check_finite(r, f"{name} warm-up")
        load = os.getloadavg()
        meter = CpuMeter()
        perf_ms, wall_ms = [], []
        for _ in range(a.repetitions):
            p, w = fn()
            perf_ms.append(p)
            wall_ms.append(w)
        others = meter.others()
        check_finite(r, name)
        tps = [n * 1e3 / ms for ms in perf_ms]
        mean, sd = stats(tps)
        wmean, wsd = stats([n * 1e3 / ms for ms in wall_ms])
        res = {
            "test": name, "n_tokens": n, "repetitions": a.repetitions,
            "tps_mean": mean, "tps_sd": sd,
            "samples_ms": perf_ms, "samples_tps": tps,
            "wall_samples_ms": wall_ms, "wall_tps_mean": wmean, "wall_tps_sd": wsd,
            "loadavg_before": list(load), "loadavg_after": list(os.getloadavg()),
            "others_cpu_cores": others, "waited_for_quiet_s": waited, "others_cpu_cores_before": quiet,
            "attempt": attempt + 1, "logits_finite": True,
        }
        if a.max_others is None or others is None or others <= a.max_others or attempt == a.retries:
            if discarded:
                res["discarded_attempts"] = discarded
            return res
        print(f"  ({name}: others used {others:.2f} cores during it, > {a.max_others}: "
              f"{mean:.2f} t/s discarded, repeating)", file=sys.stderr, flush=True)
        discarded.append({k: res[k] for k in ("tps_mean", "tps_sd", "samples_tps", "loadavg_before", "others_cpu_cores")})


def save(path, out):
    """Write the results so far (atomically): a run cut short keeps what it measured."""
    if not path:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def check_model(path):
    r = Runner(path, threads=os.cpu_count() or 1, n_ctx=64, n_batch=64,
               flash_attn=L.LLAMA_FLASH_ATTN_TYPE_DISABLED if hasattr(L, "LLAMA_FLASH_ATTN_TYPE_DISABLED") else 0)
    rng = random.Random(1)
    r.decode([rng.randrange(r.n_vocab) for _ in range(8)], 0)
    lg = check_finite(r, f"{path}: prompt")
    r.decode([int(np.argmax(lg))], 8)
    lg2 = check_finite(r, f"{path}: decode")
    print(f"{os.path.basename(path)}: {r.desc}, {r.n_params / 1e6:.1f} M params, {r.size / 2**20:.1f} MiB, "
          f"vocab {r.n_vocab}: logits finite; after 8 tokens min {lg.min():.3f} max {lg.max():.3f} "
          f"mean {lg.mean():.4f} sd {lg.std():.3f}; after 9: argmax {int(np.argmax(lg2))}")
    r.close()


# ── the quantizer comparison ─────────────────────────────────────────────
def quantize(src, dst, ftype, threads):
    name = "LLAMA_FTYPE_MOSTLY_" + ftype.upper()
    if not hasattr(L, name):
        die(f"--quantize: unknown file type {ftype} (no llama_cpp.{name})")
    p = L.llama_model_quantize_default_params()
    p.ftype = getattr(L, name)
    p.allow_requantize = True
    p.nthread = threads
    t0 = time.monotonic()
    rc = L.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p))
    if rc != 0:
        die(f"llama_model_quantize({src} -> {dst}, {ftype}) returned {rc}")
    print(f"{dst}: {ftype} from {os.path.basename(src)} in {time.monotonic() - t0:.1f} s")


def read_dump(path):
    """kgen's --dump-logits file: (prompt ids, generated ids, logits [n_gen, n_vocab])."""
    b = open(path, "rb").read()
    if b[:4] != b"KGLG":
        die(f"{path}: not a kgen logits dump")
    n_vocab, n_prompt, n_gen = np.frombuffer(b, "<i4", 3, 4)
    ids = np.frombuffer(b, "<i4", n_prompt + n_gen, 16)
    lg = np.frombuffer(b, "<f4", n_gen * n_vocab, 16 + 4 * (n_prompt + n_gen)).reshape(n_gen, n_vocab)
    return [int(i) for i in ids[:n_prompt]], [int(i) for i in ids[n_prompt:]], lg


def compare(path, dumps, threads, out_json):
    """llama.cpp against kgen's dumps on the same model file (see the module doc)."""
    res = {"model": os.path.abspath(path), "peer": peer_info(), "threads": threads, "dumps": []}
    for d in dumps:
        prompt, gen, kl = read_dump(d)
        n_p, n_g = len(prompt), len(gen)
        r = Runner(path, threads, n_p + n_g + 8, max(512, n_p + n_g), 0)
        if r.n_vocab != kl.shape[1]:
            die(f"{d}: {kl.shape[1]} logits a step, the model has {r.n_vocab} tokens")
        # teacher forced: llama.cpp's logits where kgen chose gen[i] (position n_p - 1 + i)
        r.decode(prompt + gen[:-1], 0, logits_last_only=False)
        ll = np.stack([np.ctypeslib.as_array(L.llama_get_logits_ith(r.ctx, n_p - 1 + i), shape=(r.n_vocab,)).copy()
                       for i in range(n_g)])
        if not np.all(np.isfinite(ll)):
            die(f"{d}: llama.cpp's logits are not finite")
        diff = np.abs(ll.astype(np.float64) - kl)
        # llama.cpp's own greedy continuation of the same prompt ids
        r.fresh()
        r.decode(prompt, 0)
        own = []
        for i in range(n_g):
            own.append(int(np.argmax(r.last_logits())))
            if i + 1 < n_g:
                r.decode([own[-1]], n_p + i)
        r.close()
        div = next((i for i in range(n_g) if own[i] != gen[i]), None)
        gap = None
        if div is not None:  # llama.cpp's margin for its choice over kgen's, on the shared prefix
            gap = float(ll[div, own[div]] - ll[div, gen[div]])
        res["dumps"].append({
            "dump": os.path.basename(d), "n_prompt": n_p, "n_gen": n_g, "prompt_ids": prompt, "kgen_ids": gen,
            "llama_cpp_ids": own, "first_divergence": div, "llama_cpp_gap_at_divergence": gap,
            "max_abs": float(diff.max()), "mean_abs": float(diff.mean()),
            "step_max_abs": [float(x) for x in diff.max(axis=1)],
            "max_abs_logit": float(np.abs(ll).max()),
            "teacher_forced_argmax_agree": int(np.sum(np.argmax(ll, axis=1) == np.asarray(gen))),
        })
    save(out_json, res)


def main():
    global VERBOSE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("models", nargs="*", metavar="MODEL.gguf")
    ap.add_argument("--quantize", nargs=3, metavar=("SRC", "OUT", "FTYPE"), help="quantize with llama.cpp and exit")
    ap.add_argument("--compare", nargs="+", metavar=("MODEL", "DUMP"), help="llama.cpp against kgen's logits dumps")
    ap.add_argument("-t", "--threads", default="2", help="thread counts, comma-separated (default 2)")
    ap.add_argument("-p", "--pp", type=int, default=64, help="prefill tokens (0: no pp test)")
    ap.add_argument("-n", "--tg", type=int, default=128, help="generated tokens (0: no tg test)")
    ap.add_argument("--tg-prompt", type=int, default=1, help="prompt tokens before the tg test (default 1)")
    ap.add_argument("-r", "--repetitions", type=int, default=5)
    ap.add_argument("--flash-attn", choices=("off", "on", "auto"), default="off")
    ap.add_argument("--seed", type=int, default=1234, help="for the random token ids")
    ap.add_argument("--quiet-wait", type=float, default=0, metavar="S",
                    help="before each test, wait up to S seconds for other processes to use < --quiet-below cores")
    ap.add_argument("--quiet-below", type=float, default=0.3, metavar="CORES")
    ap.add_argument("--max-others", type=float, default=None, metavar="CORES",
                    help="repeat a test when other processes used more than CORES during it")
    ap.add_argument("--retries", type=int, default=3, help="for --max-others (default 3)")
    ap.add_argument("--json", metavar="OUT", help="write every sample here (atomically)")
    ap.add_argument("--check", action="store_true", help="only load, decode and check the logits")
    ap.add_argument("--verbose", action="store_true", help="show llama.cpp's log")
    a = ap.parse_args()
    VERBOSE = a.verbose
    L.llama_log_set(_log, ctypes.c_void_p(0))
    L.llama_backend_init()
    if a.quantize:
        quantize(*a.quantize, threads=int(a.threads.split(",")[0]))
        return
    if a.compare:
        if len(a.compare) < 2 or not a.json:
            die("--compare MODEL DUMP... needs at least one dump and --json OUT")
        compare(a.compare[0], a.compare[1:], int(a.threads.split(",")[0]), a.json)
        return
    if not a.models:
        die("no model given")
    for m in a.models:
        if not os.path.isfile(m):
            die(f"{m}: no such file")
    if a.check:
        for m in a.models:
            check_model(m)
        return
    try:
        threads = [int(x) for x in a.threads.split(",")]
    except ValueError:
        die(f"--threads {a.threads}: expected numbers separated by commas")
    if a.repetitions < 1 or a.pp < 0 or a.tg < 0 or a.tg_prompt < 0 or min(threads) < 1 or not (a.pp or a.tg):
        die("bad --pp/--tg/--tg-prompt/-r/--threads")
    fa = {"off": 0, "on": 1, "auto": -1}[a.flash_attn]
    n_ctx = a.pp + a.tg_prompt + a.tg
    n_batch = max(a.pp, a.tg_prompt, 512)

    peer = peer_info()
    out = {
        "tool": "bench/peer_llama.py",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": {"cpu": cpu_name(), "n_cpu": os.cpu_count(), "machine": platform.machine()},
        "peer": peer,
        "params": {"pp": a.pp, "tg": a.tg, "tg_prompt": a.tg_prompt, "repetitions": a.repetitions,
                   "flash_attn": a.flash_attn, "seed": a.seed, "timing": "llama_perf_context",
                   "quiet_wait_s": a.quiet_wait, "quiet_below_cores": a.quiet_below,
                   "max_others_cores": a.max_others, "retries": a.retries},
        "runs": [],
        "complete": False,
    }
    print(f"llama.cpp {peer['llama_cpp_commit']} (llama-cpp-python {peer['version']}), {cpu_name()}, "
          f"flash attention {a.flash_attn}")
    print(f"| {'model':<34} | {'size MiB':>8} | {'params M':>8} | {'th':>2} | {'test':>6} | {'t/s':>17} | {'load':>5} | {'others':>6} |")
    print(f"| {'-' * 34} | {'-' * 8} | {'-' * 8} | {'-' * 2} | {'-' * 6} | {'-' * 17} | {'-' * 5} | {'-' * 6} |")
    for m in a.models:
        for th in threads:
            r = Runner(m, th, n_ctx, n_batch, fa)
            rng = random.Random(a.seed)
            run = {"model": os.path.abspath(m), "model_file": os.path.basename(m), "file_bytes": os.path.getsize(m),
                   "desc": r.desc, "model_size": r.size, "n_params": r.n_params, "n_vocab": r.n_vocab,
                   "threads": th, "n_ctx": r.n_ctx, "n_batch": r.n_batch, "n_ubatch": r.n_ubatch, "tests": []}
            tests = []
            if a.pp:
                tests.append((f"pp{a.pp}", a.pp, lambda: r.pp(a.pp, rng)))
            if a.tg:
                tests.append((f"tg{a.tg}", a.tg, lambda: r.tg(a.tg, a.tg_prompt, rng)))
            out["runs"].append(run)
            for name, n, fn in tests:
                res = run_test(r, name, n, fn, a)
                run["tests"].append(res)
                save(a.json, out)
                print(f"| {os.path.basename(m):<34} | {r.size / 2**20:8.1f} | {r.n_params / 1e6:8.1f} | {th:2d} | "
                      f"{name:>6} | {res['tps_mean']:8.2f} ± {res['tps_sd']:6.2f} | {res['loadavg_before'][0]:5.2f} | "
                      f"{res['others_cpu_cores'] if res['others_cpu_cores'] is not None else float('nan'):6.2f} |",
                      flush=True)
            r.close()
    out["complete"] = True
    save(a.json, out)
    L.llama_backend_free()


if __name__ == "__main__":
    main()
