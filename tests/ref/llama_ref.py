#!/usr/bin/env python3
"""llama_ref.py MODEL.gguf --tokens 1,2,3 [--out logits.npy] [--generate N]
— an independent forward pass of the "llama" architecture, for kgen's tests.

Written from the architecture's definition (as llama.cpp runs it), in numpy,
sharing no code with kgen: the GGUF file is read and dequantized by the `gguf`
package from PyPI (llama.cpp's own Python reader and numpy dequantizers).

  x = token_embd[tokens]
  per layer:
    h  = rmsnorm(x) * attn_norm
    q, k, v = Wq h, Wk h, Wv h                       (per head)
    q, k = rope(q), rope(k)      "normal" mode: rotate adjacent pairs
                                 (x[2i], x[2i+1]) by pos * fs * base^(-2i/n_rot)
    a  = softmax(q k^T / sqrt(head_dim), causal) v   (GQA: n_head/n_head_kv
                                                      query heads per KV head)
    x += Wo a
    h  = rmsnorm(x) * ffn_norm
    x += Wdown (silu(Wgate h) * (Wup h))
  logits = Woutput (rmsnorm(x) * output_norm)   (Woutput = token_embd if tied)

Shapes: the gguf reader lists a tensor's ne as ggml does ([K, N] for a weight
applied to K-vectors), and its numpy data is [N, K] (reversed); dequantize()
gives the same [N, K], so y = W @ x. Q and K rows are already permuted by
GGUF's converter for the adjacent-pair rotation.

Numerics: weights dequantized once to float32 and kept in memory (~0.55 GB
for SmolLM2-135M); products in float32 (BLAS sgemm); norms, SiLU, softmax and
rope angles in float64. forward() is a full causal forward over the sequence
(what the tests compare with); only generate() keeps K and V between steps.

Checked against llama.cpp (llama-cpp-python 0.3.36, logits of every
position, 11 sequences of 64..189 tokens of SmolLM2-135M): with the same
weights written as F32 and an F32 KV cache, so that llama.cpp does not round
activations to int8, the logits agree to 1.5e-4 (5e-6 of the largest logit),
argmax everywhere equal.

Prints the logits of every position (one line each: position, argmax, a few
values) or saves them as a float32 [n_tokens, n_vocab] .npy with --out.
--generate N greedily appends N tokens and prints their ids. Exit status 3 if numpy or gguf is missing, 2 on bad usage, 1 on a
model it cannot run (an architecture or rope scaling other than supported).
"""
import argparse
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree (refmemo is imported)

try:
    import numpy as np
    from gguf import GGUFReader, GGUFValueType
    from gguf.quants import dequantize
    from refmemo import file_digest, memo
except ImportError:
    print("the Python packages 'numpy' and 'gguf' are needed (pip install gguf)", file=sys.stderr)
    sys.exit(3)


class Unsupported(Exception):
    pass


def _field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    t = f.types[0]
    if t == GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode("utf-8")
    if t == GGUFValueType.ARRAY:
        return [f.parts[i].tolist()[0] if len(f.parts[i]) == 1 else bytes(f.parts[i]) for i in f.data]
    return f.parts[f.data[0]].tolist()[0]


class LlamaRef:
    """A loaded model: hyperparameters and float32 weights ([N, K] each)."""

    def __init__(self, path):
        self.path = path
        r = GGUFReader(path)
        arch = _field(r, "general.architecture")
        if arch != "llama":
            raise Unsupported(f"{path}: architecture '{arch}' is not supported (only 'llama')")
        a = "llama."
        g = lambda k, d=None: _field(r, a + k, d)
        self.n_layer = int(g("block_count"))
        self.n_embd = int(g("embedding_length"))
        self.n_ff = int(g("feed_forward_length"))
        self.n_head = int(g("attention.head_count"))
        self.n_head_kv = int(g("attention.head_count_kv", self.n_head))
        self.head_dim = int(g("attention.key_length", self.n_embd // self.n_head))
        if int(g("attention.value_length", self.head_dim)) != self.head_dim:
            raise Unsupported(f"{path}: key_length != value_length is not supported")
        if g("expert_count", 0):
            raise Unsupported(f"{path}: mixture-of-experts llama models are not supported")
        if self.n_head % self.n_head_kv:
            raise Unsupported(f"{path}: n_head {self.n_head} is not a multiple of n_head_kv {self.n_head_kv}")
        self.eps = float(g("attention.layer_norm_rms_epsilon"))
        self.rope_base = float(g("rope.freq_base", 10000.0))
        self.n_rot = int(g("rope.dimension_count", self.head_dim))
        stype = g("rope.scaling.type", None)
        factor = float(g("rope.scaling.factor", 0.0) or 0.0)
        if stype is None:
            lin = float(g("rope.scale_linear", 0.0) or 0.0)  # older files
            stype, factor = ("linear", lin) if lin else ("none", 0.0)
        if stype == "none":
            self.freq_scale = 1.0
        elif stype == "linear":
            self.freq_scale = 1.0 / factor if factor > 0 else 1.0
        else:
            raise Unsupported(f"{path}: rope scaling type '{stype}' is not supported (only 'linear' and none)")
        if "rope_freqs.weight" in {t.name for t in r.tensors}:
            raise Unsupported(f"{path}: per-dimension rope frequency factors (rope_freqs.weight) are not supported")

        self.tensors = {t.name: t for t in r.tensors}
        # shapes as [N, K] (the reader lists ggml's ne, [K, N]); the weights
        # are dequantized on first use (_weights), so that a run whose every
        # result is in the memo (refmemo.py) never dequantizes
        shape = lambda n: tuple(int(x) for x in reversed(self.tensors[n].shape))
        for n in ("token_embd.weight", "output_norm.weight"):
            if n not in self.tensors:
                raise Unsupported(f"{path}: no tensor {n}")
        self.n_vocab = shape("token_embd.weight")[0]
        self.tied = "output.weight" not in self.tensors
        if shape("token_embd.weight") != (self.n_vocab, self.n_embd):
            raise Unsupported(f"{path}: token_embd.weight is {shape('token_embd.weight')} as [N, K]")
        for l in range(self.n_layer):
            p = f"blk.{l}."
            qd, kd = self.n_head * self.head_dim, self.n_head_kv * self.head_dim
            for n, shp in (("attn_q", (qd, self.n_embd)), ("attn_k", (kd, self.n_embd)),
                           ("attn_v", (kd, self.n_embd)), ("attn_output", (self.n_embd, qd)),
                           ("ffn_gate", (self.n_ff, self.n_embd)), ("ffn_up", (self.n_ff, self.n_embd)),
                           ("ffn_down", (self.n_embd, self.n_ff))):
                name = p + n + ".weight"
                got = shape(name) if name in self.tensors else None
                if got != shp:
                    raise Unsupported(f"{path}: {name} is {got} as [N, K], expected {shp}")
        self._w = None
        self.reset_knobs()

    @property
    def w(self):
        """name -> float32 weights [N, K], dequantized on first use."""
        if self._w is None:
            self._w = {name: np.ascontiguousarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
                       for name, t in self.tensors.items()}
        return self._w

    @property
    def tok_embd(self):
        return self.w["token_embd.weight"]

    @property
    def out_w(self):
        return self.tok_embd if self.tied else self.w["output.weight"]

    KNOBS = ("act_q8", "kv_f16", "skip_layers", "rope_mode", "rope_base_used", "kv_map", "causal", "norm")

    def _memo(self, what, args, compute):
        """compute() through refmemo, keyed by this file, the model and the knobs."""
        knobs = tuple((k, sorted(v) if isinstance(v, set) else v) for k, v in
                      ((k, getattr(self, k)) for k in self.KNOBS))
        parts = (file_digest(__file__), file_digest(self.path), knobs, what, args)
        return memo(parts, compute)

    def reset_knobs(self):
        """Knobs for simulating kgen's arithmetic and for deliberately wrong
        variants (tests/ref/check_e2e.py --self-test / --perturb). Defaults:
        the architecture as specified, in float32."""
        self.act_q8 = False      # quantize each product's input to int8 blocks of 32 (as llama.cpp's q8_0/q8_1)
        self.kv_f16 = False      # round q, K, V and the attention weights to float16 (as a f16 KV cache)
        self.skip_layers = set()
        self.rope_mode = "normal"  # or "neox" (pairs (i, i + n_rot/2)) or "none"
        self.rope_base_used = self.rope_base
        self.kv_map = "grouped"    # query head h uses KV head h // (n_head / n_head_kv); "modulo": h % n_head_kv
        self.causal = True
        self.norm = "rms"          # or "layer" (mean-centred)

    # ── pieces ──────────────────────────────────────────────────────────
    def rmsnorm(self, x, w):
        x64 = x.astype(np.float64)
        if self.norm == "layer":
            x64 = x64 - x64.mean(axis=-1, keepdims=True)
        ms = np.mean(x64 * x64, axis=-1, keepdims=True)
        return (x64 / np.sqrt(ms + self.eps)).astype(np.float32) * w

    @staticmethod
    def q8(x):
        """Round x [.., K] to int8 per block of 32 along K, scale amax/127."""
        sh = x.shape
        b = x.reshape(-1, 32).astype(np.float32)
        d = np.abs(b).max(axis=1, keepdims=True) / np.float32(127)
        q = np.round(np.divide(b, d, out=np.zeros_like(b), where=d > 0))
        return (q * d).astype(np.float32).reshape(sh)

    def mm(self, x, w):
        """x [T, K] times a weight w [N, K] -> [T, N]."""
        if self.act_q8 and x.shape[-1] % 32 == 0:
            x = self.q8(x)
        return x @ w.T

    def rope(self, x, pos):
        """x: [T, H, D]; pos: [T]. Rotates the first n_rot dims of each head."""
        if self.rope_mode == "none":
            return x
        n_rot = self.n_rot
        i = np.arange(n_rot // 2, dtype=np.float64)
        inv = self.rope_base_used ** (-2.0 * i / n_rot)
        theta = (pos.astype(np.float64) * self.freq_scale)[:, None] * inv[None, :]  # [T, n_rot/2]
        c = np.cos(theta)[:, None, :]
        s = np.sin(theta)[:, None, :]
        y = x.astype(np.float64)
        if self.rope_mode == "normal":
            i0, i1 = slice(0, n_rot, 2), slice(1, n_rot, 2)
        else:  # "neox": pairs (i, i + n_rot/2), wrong for llama: a perturbation
            i0, i1 = slice(0, n_rot // 2), slice(n_rot // 2, n_rot)
        x0, x1 = y[..., i0].copy(), y[..., i1].copy()
        y[..., i0] = x0 * c - x1 * s
        y[..., i1] = x0 * s + x1 * c
        return y.astype(np.float32)

    def attention(self, q, k, v, qpos):
        """q: [T, H, D] at positions qpos; k, v: [S, Hkv, D] at positions
        0..S-1 -> [T, H*D]; causal: a query sees keys at positions <= its own."""
        T, H, D = q.shape
        S = k.shape[0]
        grp = H // self.n_head_kv
        kv = np.arange(H) // grp if self.kv_map == "grouped" else np.arange(H) % self.n_head_kv
        if self.kv_f16:
            q, k, v = (a.astype(np.float16).astype(np.float32) for a in (q, k, v))
        kk = k[:, kv, :].transpose(1, 2, 0)  # [H, D, S]
        vv = v[:, kv, :].transpose(1, 0, 2)  # [H, S, D]
        s = np.matmul(q.transpose(1, 0, 2), kk).astype(np.float64) / np.sqrt(D)  # [H, T, S]
        if self.causal:
            s[:, np.arange(S)[None, :] > qpos[:, None]] = -np.inf
        s -= s.max(axis=-1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=-1, keepdims=True)
        p = p.astype(np.float16 if self.kv_f16 else np.float32).astype(np.float32)
        o = np.matmul(p, vv)  # [H, T, D]
        return o.transpose(1, 0, 2).reshape(T, H * D)

    # ── the forward pass ────────────────────────────────────────────────
    def forward(self, tokens, first=0, cache=None):
        """Logits [len(tokens) - first, n_vocab] (float32) of tokens[first:].

        Without cache: a full causal forward over tokens (positions 0..),
        through the memo. With cache (a dict from new_cache(), used by
        generate() only): tokens continue the cached sequence and their K, V
        are appended."""
        if cache is None:
            args = ([int(t) for t in tokens], int(first))
            return self._memo("forward", args, lambda: {"logits": self._forward(tokens, first)})["logits"]
        return self._forward(tokens, first, cache)

    def _forward(self, tokens, first=0, cache=None):
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.ndim != 1 or len(tokens) == 0:
            raise ValueError("need a non-empty 1-D token list")
        if tokens.min() < 0 or tokens.max() >= self.n_vocab:
            raise ValueError(f"token ids must be in [0, {self.n_vocab})")
        T = len(tokens)
        p0 = cache["pos"] if cache is not None else 0
        pos = np.arange(p0, p0 + T)
        x = self.tok_embd[tokens].copy()
        for l in range(self.n_layer):
            if l in self.skip_layers:
                continue
            p = f"blk.{l}."
            W = lambda n: self.w[p + n + ".weight"]
            h = self.rmsnorm(x, W("attn_norm"))
            q = self.mm(h, W("attn_q")).reshape(T, self.n_head, self.head_dim)
            k = self.mm(h, W("attn_k")).reshape(T, self.n_head_kv, self.head_dim)
            v = self.mm(h, W("attn_v")).reshape(T, self.n_head_kv, self.head_dim)
            q, k = self.rope(q, pos), self.rope(k, pos)
            if cache is not None:
                kv = cache["kv"][l]
                k = kv[0] = np.concatenate([kv[0], k])
                v = kv[1] = np.concatenate([kv[1], v])
            x = x + self.mm(self.attention(q, k, v, pos), W("attn_output"))
            h = self.rmsnorm(x, W("ffn_norm"))
            g = self.mm(h, W("ffn_gate")).astype(np.float64)
            act = (g / (1.0 + np.exp(-g))).astype(np.float32) * self.mm(h, W("ffn_up"))
            x = x + self.mm(act, W("ffn_down"))
        if cache is not None:
            cache["pos"] += T
        h = self.rmsnorm(x[first:], self.w["output_norm.weight"])
        return self.mm(h, self.out_w)

    def new_cache(self):
        e = np.zeros((0, self.n_head_kv, self.head_dim), np.float32)
        return {"pos": 0, "kv": [[e, e] for _ in range(self.n_layer)]}

    def generate(self, tokens, n):
        """Greedy: (the n generated ids, logits [n, n_vocab] each was chosen
        from), through the memo."""
        def compute():
            ids, rows = self._generate(tokens, n)
            return {"ids": np.asarray(ids, dtype=np.int64), "logits": rows}
        r = self._memo("generate", ([int(t) for t in tokens], int(n)), compute)
        return [int(i) for i in r["ids"]], r["logits"]

    def _generate(self, tokens, n):
        cache = self.new_cache()
        row = self.forward(tokens, first=len(tokens) - 1, cache=cache)[-1]
        ids, rows = [], []
        for i in range(n):
            ids.append(int(np.argmax(row)))
            rows.append(row)
            if i + 1 < n:
                row = self.forward([ids[-1]], cache=cache)[-1]
        return ids, np.array(rows, dtype=np.float32).reshape(n, self.n_vocab)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--tokens", required=True, help="comma-separated token ids")
    ap.add_argument("--out", help="save the logits [n_tokens, n_vocab] as float32 .npy")
    ap.add_argument("--generate", type=int, default=0, metavar="N", help="greedily generate N tokens")
    args = ap.parse_args()
    try:
        tokens = [int(t) for t in args.tokens.split(",") if t.strip()]
    except ValueError:
        ap.error("--tokens takes comma-separated integers")
    t0 = time.time()
    try:
        m = LlamaRef(args.model)
    except Unsupported as e:
        print(f"llama_ref: {e}", file=sys.stderr)
        return 1
    t1 = time.time()
    try:
        logits = m.forward(tokens)
    except ValueError as e:
        print(f"llama_ref: {e}", file=sys.stderr)
        return 2
    t2 = time.time()
    print(f"# load {t1 - t0:.2f} s, forward over {len(tokens)} tokens {t2 - t1:.2f} s", file=sys.stderr)
    if args.out:
        np.save(args.out, logits.astype(np.float32))
    else:
        np.set_printoptions(precision=4, suppress=True, linewidth=200)
        for i, row in enumerate(logits):
            print(f"{i} argmax {int(np.argmax(row))} max {row.max():.4f} first {row[:4]}")
    if args.generate:
        print("generated", ",".join(map(str, m.generate(tokens, args.generate)[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
