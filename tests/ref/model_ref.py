#!/usr/bin/env python3
"""model_ref.py MODEL.gguf --tokens 1,2,3 [--out logits.npy] [--generate N]
— an independent forward pass of the architectures kgen compiles (llama with
Llama 3's rope_freqs, qwen2, qwen3, gemma3, phi3), for kgen's tests.

Written from the architectures' definitions as llama.cpp runs them (its
src/models/*.cpp, formerly llama-model.cpp's llm_build_llama, llm_build_qwen2,
llm_build_qwen3, llm_build_gemma3_iswa, llm_build_phi3; the Hugging Face
modeling_llama.py, modeling_qwen2.py, modeling_qwen3.py, modeling_gemma3.py,
modeling_phi3.py say the same), in numpy, sharing no code with kgen: the GGUF
file is read and dequantized by the `gguf` package from PyPI (llama.cpp's own
Python reader and numpy dequantizers). Hyperparameters come from the file's
ARCH.* keys, as llama.cpp's llama-model.cpp (load_hparams) reads them.

  x = token_embd[tokens]            gemma3: x *= sqrt(n_embd)  (llm_build_gemma3_iswa:
                                    ggml_scale(inpL, sqrtf(n_embd)))
  per layer l:
    h  = rmsnorm(x) * attn_norm     (eps: ARCH.attention.layer_norm_rms_epsilon)
    q, k, v = Wq h, Wk h, Wv h [+ bq, bk, bv]     per head of head_dim =
                                    ARCH.attention.key_length (default n_embd/n_head)
        phi3: one fused Wqkv (blk.L.attn_qkv.weight), rows Q, then K, then V
        qwen2: biases blk.L.attn_{q,k,v}.bias (any arch's are added if present)
    qwen3, gemma3: q, k = rmsnorm(q) * attn_q_norm, rmsnorm(k) * attn_k_norm,
                   per head over head_dim (QK-norm), before RoPE
    q, k = rope(q, base_l), rope(k, base_l)
        llama: "normal" mode, adjacent pairs (x[2i], x[2i+1]) (GGUF's converter
               permuted Q/K rows for it); Llama 3.1/3.2: theta_i =
               pos * base^(-2i/n_rot) / rope_freqs[i] (tensor rope_freqs.weight)
        qwen2, qwen3, gemma3, phi3: NEOX mode, rotate-half pairs (x[i], x[i+n_rot/2])
        gemma3: base 10000 on the sliding-window layers (llama.cpp's
                rope_freq_base_train_swa), ARCH.rope.freq_base on the global ones
    a  = softmax(scale * q k^T + mask) v   scale 1/sqrt(head_dim) (gemma3 27B:
                                    1/sqrt(n_embd/n_head), llama.cpp's f_attention_scale)
        mask: causal; gemma3's sliding layers (l % 6 != 5: llama.cpp's
        set_swa_pattern(6)) also hide keys at positions j <= p - window
        (window = gemma3.attention.sliding_window; llama.cpp's
        LLAMA_SWA_TYPE_STANDARD: masked when p - j >= window); phi3's
        sliding_window key is ignored, as llama.cpp ignores it. GQA: query
        head h reads KV head h // (n_head / n_head_kv).
    o  = Wo a [+ bo]                gemma3: o = rmsnorm(o) * post_attention_norm
    x += o
    h  = rmsnorm(x) * ffn_norm
    f  = Wdown (act(Wgate h) * (Wup h))   act: SiLU (SwiGLU), gemma3: GELU with
                                    the tanh approximation (GeGLU, ggml_gelu)
        phi3: one fused Wup (blk.L.ffn_up.weight) of 2*n_ff rows: gate = the
              first n_ff rows, up = the next n_ff (ggml_swiglu's halves)
    gemma3: f = rmsnorm(f) * post_ffw_norm
    x += f
  logits = Woutput (rmsnorm(x) * output_norm)   (Woutput = token_embd if tied)
  if the file sets ARCH.final_logit_softcapping = c: logits = c * tanh(logits / c)

Norm weights are used as stored (Gemma's converter has already added 1).

Shapes: the gguf reader lists a tensor's ne as ggml does ([K, N] for a weight
applied to K-vectors), and its numpy data is [N, K] (reversed); dequantize()
gives the same [N, K], so y = W @ x.

Numerics: weights dequantized once to float32 and kept in memory; products in
float32 (BLAS sgemm); norms, activations, softmax and rope angles in float64.
forward() is a full causal forward over the sequence (what the tests compare
with); only generate() keeps K and V between steps.

Checked against llama.cpp (llama-cpp-python 0.3.36, logits of every
position): SmolLM2-135M (llama), 11 sequences of 64..189 tokens, weights
written as F32 with an F32 KV cache (so that llama.cpp does not round
activations to int8): logits agree to 1.5e-4 (5e-6 of the largest logit),
argmax everywhere equal. Gemma 3 270M (gemma3) dequantized to F32, 4
prompts + 16 greedy tokens: 0.0095 (3.7e-4 of the largest logit), greedy
tokens identical; random models of every architecture: about 1e-6 (gemma3
2e-4: ggml's f16 GELU table). tests/ref/check_llama_cpp.py measures it.

Prints the logits of every position (one line each: position, argmax, a few
values) or saves them as a float32 [n_tokens, n_vocab] .npy with --out.
--generate N greedily appends N tokens and prints their ids. Exit status 3 if
numpy or gguf is missing, 2 on bad usage, 1 on a model it cannot run (an
architecture or rope scaling other than supported, or metadata that
contradicts the tensors: the message names the key or the tensor).
"""
import argparse
import math
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


# What differs between the architectures (the table of /work/plan15.md, from
# llama.cpp's builders): rope pairing, QK-norm, post-norms, activation,
# embedding scale, sliding-window pattern (every layer l with l % swa_period
# != swa_period - 1 is a sliding one; 0: none), fused tensors.
ARCHS = {
    "llama":  dict(rope="normal", qk_norm=False, post_norm=False, act="silu", embd_scale=False, swa_period=0,
                   fused=False),
    "qwen2":  dict(rope="neox", qk_norm=False, post_norm=False, act="silu", embd_scale=False, swa_period=0,
                   fused=False),
    "qwen3":  dict(rope="neox", qk_norm=True, post_norm=False, act="silu", embd_scale=False, swa_period=0,
                   fused=False),
    "gemma3": dict(rope="neox", qk_norm=True, post_norm=True, act="gelu_tanh", embd_scale=True, swa_period=6,
                   fused=False),
    "phi3":   dict(rope="neox", qk_norm=False, post_norm=False, act="silu", embd_scale=False, swa_period=0,
                   fused=True),
}
GEMMA3_SWA_ROPE_BASE = 10000.0  # llama.cpp: hparams.rope_freq_base_train_swa for gemma3


class ModelRef:
    """A loaded model: hyperparameters and float32 weights ([N, K] each)."""

    def __init__(self, path):
        self.path = path
        r = GGUFReader(path)
        arch = _field(r, "general.architecture")
        if arch not in ARCHS:
            raise Unsupported(f"{path}: architecture '{arch}' is not supported (supported: {', '.join(ARCHS)})")
        self.arch = arch
        self.spec = ARCHS[arch]
        a = arch + "."
        self._reader = r

        def g(k, d=None):
            return _field(r, a + k, d)

        def need(k):
            v = g(k)
            if v is None:
                raise Unsupported(f"{path}: no key {a}{k}")
            return v
        self.n_layer = int(need("block_count"))
        self.n_embd = int(need("embedding_length"))
        self.n_ff = int(need("feed_forward_length"))
        self.n_head = int(need("attention.head_count"))
        self.n_head_kv = int(g("attention.head_count_kv", self.n_head))
        self.n_ctx_train = int(g("context_length", 0) or 0)
        if self.n_head <= 0 or self.n_head_kv <= 0:
            raise Unsupported(f"{path}: {a}attention.head_count {self.n_head}, head_count_kv {self.n_head_kv}")
        kl = g("attention.key_length")
        if kl is None and self.n_embd % self.n_head:
            raise Unsupported(f"{path}: {a}attention.head_count {self.n_head} does not divide "
                              f"{a}embedding_length {self.n_embd} (and no {a}attention.key_length)")
        self.head_dim = int(kl if kl is not None else self.n_embd // self.n_head)
        if int(g("attention.value_length", self.head_dim)) != self.head_dim:
            raise Unsupported(f"{path}: {a}attention.key_length != {a}attention.value_length is not supported")
        if g("expert_count", 0):
            raise Unsupported(f"{path}: mixture-of-experts models are not supported")
        if self.n_head % self.n_head_kv:
            raise Unsupported(f"{path}: {a}attention.head_count {self.n_head} is not a multiple of "
                              f"{a}attention.head_count_kv {self.n_head_kv}")
        self.eps = float(need("attention.layer_norm_rms_epsilon"))
        self.rope_base = float(g("rope.freq_base", 10000.0))
        self.n_rot = int(g("rope.dimension_count", self.head_dim))
        if self.n_rot > self.head_dim or self.n_rot % 2:
            raise Unsupported(f"{path}: {a}rope.dimension_count {self.n_rot} (head_dim {self.head_dim})")
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
        # sliding window (gemma3 only: llama.cpp ignores phi3's, qwen2's is off)
        self.window = 0
        if self.spec["swa_period"]:
            self.window = int(need("attention.sliding_window"))
            if self.window <= 0:
                raise Unsupported(f"{path}: {a}attention.sliding_window {self.window}")
        # attention scale (llama.cpp's f_attention_scale for gemma3: the 27B
        # model, 62 layers, scales by n_embd/n_head instead of head_dim)
        if arch == "gemma3" and self.n_layer == 62:
            self.attn_scale = 1.0 / math.sqrt(self.n_embd // self.n_head)
        else:
            self.attn_scale = 1.0 / math.sqrt(self.head_dim)
        cap = g("final_logit_softcapping", None)
        self.softcap = float(cap) if cap else 0.0

        self.tensors = {t.name: t for t in r.tensors}
        # shapes as [N, K] (the reader lists ggml's ne, [K, N]); the weights
        # are dequantized on first use (w), so that a run whose every result
        # is in the memo (refmemo.py) never dequantizes
        def shape(n):
            return tuple(int(x) for x in reversed(self.tensors[n].shape)) if n in self.tensors else None
        for n in ("token_embd.weight", "output_norm.weight"):
            if n not in self.tensors:
                raise Unsupported(f"{path}: no tensor {n}")
        self.n_vocab = shape("token_embd.weight")[0]
        self.tied = "output.weight" not in self.tensors
        E, D = self.n_embd, self.head_dim
        qd, kd = self.n_head * D, self.n_head_kv * D

        def expect(name, shp, optional=False):
            got = shape(name)
            if got is None and optional:
                return False
            # a 1-D tensor [n] reads as (n,)
            if got != shp:
                raise Unsupported(f"{path}: tensor {name} is {got if got else 'missing'} as [N, K], expected {shp}")
            return True
        expect("token_embd.weight", (self.n_vocab, E))
        expect("output_norm.weight", (E,))
        if not self.tied:
            expect("output.weight", (self.n_vocab, E))
        if "rope_freqs.weight" in self.tensors:
            expect("rope_freqs.weight", (self.n_rot // 2,))
        for l in range(self.n_layer):
            p = f"blk.{l}."
            want = [("attn_norm.weight", (E,)), ("attn_output.weight", (E, qd)), ("ffn_norm.weight", (E,)),
                    ("ffn_down.weight", (E, self.n_ff))]
            if self.spec["fused"]:
                want += [("attn_qkv.weight", (qd + 2 * kd, E)), ("ffn_up.weight", (2 * self.n_ff, E))]
            else:
                want += [("attn_q.weight", (qd, E)), ("attn_k.weight", (kd, E)), ("attn_v.weight", (kd, E)),
                         ("ffn_gate.weight", (self.n_ff, E)), ("ffn_up.weight", (self.n_ff, E))]
            if self.spec["qk_norm"]:
                want += [("attn_q_norm.weight", (D,)), ("attn_k_norm.weight", (D,))]
            if self.spec["post_norm"]:
                want += [("post_attention_norm.weight", (E,)), ("post_ffw_norm.weight", (E,))]
            for n, shp in want:
                expect(p + n, shp)
            for n, shp in (("attn_q.bias", (qd,)), ("attn_k.bias", (kd,)), ("attn_v.bias", (kd,)),
                           ("attn_qkv.bias", (qd + 2 * kd,)), ("attn_output.bias", (E,))):
                expect(p + n, shp, optional=True)
        self._w = None
        self.reset_knobs()

    @property
    def w(self):
        """name -> float32 weights [N, K] (1-D for norms, biases), dequantized on first use."""
        if self._w is None:
            self._w = {}
            for name, t in self.tensors.items():
                a = np.ascontiguousarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
                if len(t.shape) == 1:
                    a = a.reshape(-1)
                self._w[name] = a
        return self._w

    @property
    def tok_embd(self):
        return self.w["token_embd.weight"]

    @property
    def out_w(self):
        return self.tok_embd if self.tied else self.w["output.weight"]

    def layer_is_swa(self, l):
        per = self.spec["swa_period"]
        return bool(per) and l % per != per - 1

    def layer_rope(self, l):
        """(freq_base, freq_scale) of layer l (gemma3: llama.cpp's *_train_swa on the sliding layers)."""
        if self.layer_is_swa(l) and "swa-rope-base" not in self.off:
            return GEMMA3_SWA_ROPE_BASE, 1.0
        return self.rope_base_used, self.freq_scale

    KNOBS = ("act_q8", "kv_f16", "skip_layers", "rope_mode", "rope_base_used", "kv_map", "causal", "norm", "off")

    def _memo(self, what, args, compute):
        """compute() through refmemo, keyed by this file, the model and the knobs."""
        knobs = tuple((k, sorted(v) if isinstance(v, set) else v) for k, v in
                      ((k, getattr(self, k)) for k in self.KNOBS))
        parts = (file_digest(__file__), file_digest(self.path), knobs, what, args)
        return memo(parts, compute)

    # Features a perturbation may leave out (a wrong model: the checks must
    # then fail): the names in `off`.
    FEATURES = ("embd-scale", "qk-norm", "post-norm", "bias", "rope-freqs", "window", "swa-rope-base",
                "gelu-tanh", "softcap")

    def reset_knobs(self):
        """Knobs for simulating kgen's arithmetic and for deliberately wrong
        variants (tests/ref/check_e2e.py --self-test / --perturb). Defaults:
        the architecture as specified, in float32."""
        self.act_q8 = False      # quantize each product's input to int8 blocks of 32 (as llama.cpp's q8_0/q8_1)
        self.kv_f16 = False      # round q, K, V and the attention weights to float16 (as a f16 KV cache)
        self.skip_layers = set()
        self.rope_mode = self.spec["rope"]  # "normal" (adjacent pairs), "neox" (pairs (i, i + n_rot/2)) or "none"
        self.rope_base_used = self.rope_base
        self.kv_map = "grouped"    # query head h uses KV head h // (n_head / n_head_kv); "modulo": h % n_head_kv
        self.causal = True
        self.norm = "rms"          # or "layer" (mean-centred)
        self.off = set()           # FEATURES left out ("gelu-tanh": the erf GELU instead)

    # ── pieces ──────────────────────────────────────────────────────────
    def rmsnorm(self, x, w):
        """Over the last axis; w broadcasts (a [K] gamma)."""
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

    def rope(self, x, pos, base, scale):
        """x: [T, H, D]; pos: [T]. Rotates the first n_rot dims of each head."""
        if self.rope_mode == "none":
            return x
        n_rot = self.n_rot
        i = np.arange(n_rot // 2, dtype=np.float64)
        inv = base ** (-2.0 * i / n_rot)
        if "rope_freqs.weight" in self.tensors and "rope-freqs" not in self.off:
            inv = inv / self.w["rope_freqs.weight"].astype(np.float64)
        theta = (pos.astype(np.float64) * scale)[:, None] * inv[None, :]  # [T, n_rot/2]
        c = np.cos(theta)[:, None, :]
        s = np.sin(theta)[:, None, :]
        y = x.astype(np.float64)
        if self.rope_mode == "normal":
            i0, i1 = slice(0, n_rot, 2), slice(1, n_rot, 2)
        else:  # "neox"
            i0, i1 = slice(0, n_rot // 2), slice(n_rot // 2, n_rot)
        x0, x1 = y[..., i0].copy(), y[..., i1].copy()
        y[..., i0] = x0 * c - x1 * s
        y[..., i1] = x0 * s + x1 * c
        return y.astype(np.float32)

    def attention(self, q, k, v, qpos, window=0):
        """q: [T, H, D] at positions qpos; k, v: [S, Hkv, D] at positions
        0..S-1 -> [T, H*D]; causal: a query sees keys at positions <= its own;
        window > 0: and > its own - window."""
        T, H, D = q.shape
        S = k.shape[0]
        grp = H // self.n_head_kv
        kv = np.arange(H) // grp if self.kv_map == "grouped" else np.arange(H) % self.n_head_kv
        if self.kv_f16:
            q, k, v = (a.astype(np.float16).astype(np.float32) for a in (q, k, v))
        kk = k[:, kv, :].transpose(1, 2, 0)  # [H, D, S]
        vv = v[:, kv, :].transpose(1, 0, 2)  # [H, S, D]
        s = np.matmul(q.transpose(1, 0, 2), kk).astype(np.float64) * self.attn_scale  # [H, T, S]
        j = np.arange(S)[None, :]
        if self.causal:
            s[:, j > qpos[:, None]] = -np.inf
        if window:
            s[:, j <= qpos[:, None] - window] = -np.inf
        s -= s.max(axis=-1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=-1, keepdims=True)
        p = p.astype(np.float16 if self.kv_f16 else np.float32).astype(np.float32)
        o = np.matmul(p, vv)  # [H, T, D]
        return o.transpose(1, 0, 2).reshape(T, H * D)

    def act(self, g):
        g = g.astype(np.float64)
        if self.spec["act"] == "silu":
            return g / (1.0 + np.exp(-g))
        if "gelu-tanh" in self.off:  # the erf GELU (a perturbation; Abramowitz-Stegun 7.1.26, |error| < 1.5e-7)
            z = np.abs(g) / math.sqrt(2.0)
            t = 1.0 / (1.0 + 0.3275911 * z)
            y = 1.0 - t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))) \
                * np.exp(-z * z)
            return 0.5 * g * (1.0 + np.sign(g) * y)
        return 0.5 * g * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (g + 0.044715 * g ** 3)))

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

    def _bias(self, name):
        if "bias" in self.off:
            return None
        return self.w.get(name)

    def _forward(self, tokens, first=0, cache=None):
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.ndim != 1 or len(tokens) == 0:
            raise ValueError("need a non-empty 1-D token list")
        if tokens.min() < 0 or tokens.max() >= self.n_vocab:
            raise ValueError(f"token ids must be in [0, {self.n_vocab})")
        sp = self.spec
        T, E, D, H, HKV = len(tokens), self.n_embd, self.head_dim, self.n_head, self.n_head_kv
        qd, kd = H * D, HKV * D
        p0 = cache["pos"] if cache is not None else 0
        pos = np.arange(p0, p0 + T)
        x = self.tok_embd[tokens].copy()
        if sp["embd_scale"] and "embd-scale" not in self.off:
            x *= np.float32(math.sqrt(E))
        for l in range(self.n_layer):
            if l in self.skip_layers:
                continue
            p = f"blk.{l}."
            W = lambda n: self.w[p + n + ".weight"]
            h = self.rmsnorm(x, W("attn_norm"))
            if sp["fused"]:
                qkv = self.mm(h, W("attn_qkv"))
                b = self._bias(p + "attn_qkv.bias")
                if b is not None:
                    qkv = qkv + b
                q, k, v = qkv[:, :qd], qkv[:, qd:qd + kd], qkv[:, qd + kd:]
            else:
                q, k, v = self.mm(h, W("attn_q")), self.mm(h, W("attn_k")), self.mm(h, W("attn_v"))
                bq, bk, bv = (self._bias(p + f"attn_{n}.bias") for n in "qkv")
                q = q + bq if bq is not None else q
                k = k + bk if bk is not None else k
                v = v + bv if bv is not None else v
            q, k, v = q.reshape(T, H, D), k.reshape(T, HKV, D), v.reshape(T, HKV, D)
            if sp["qk_norm"] and "qk-norm" not in self.off:
                q = self.rmsnorm(q, W("attn_q_norm"))
                k = self.rmsnorm(k, W("attn_k_norm"))
            base, scale = self.layer_rope(l)
            q, k = self.rope(q, pos, base, scale), self.rope(k, pos, base, scale)
            if cache is not None:
                kv = cache["kv"][l]
                k = kv[0] = np.concatenate([kv[0], k])
                v = kv[1] = np.concatenate([kv[1], v])
            window = self.window if self.layer_is_swa(l) and "window" not in self.off else 0
            o = self.mm(self.attention(q, k, v, pos, window), W("attn_output"))
            bo = self._bias(p + "attn_output.bias")
            if bo is not None:
                o = o + bo
            if sp["post_norm"] and "post-norm" not in self.off:
                o = self.rmsnorm(o, W("post_attention_norm"))
            x = x + o
            h = self.rmsnorm(x, W("ffn_norm"))
            if sp["fused"]:
                gu = self.mm(h, W("ffn_up"))
                g, u = gu[:, :self.n_ff], gu[:, self.n_ff:]
            else:
                g, u = self.mm(h, W("ffn_gate")), self.mm(h, W("ffn_up"))
            f = self.mm(self.act(g).astype(np.float32) * u, W("ffn_down"))
            if sp["post_norm"] and "post-norm" not in self.off:
                f = self.rmsnorm(f, W("post_ffw_norm"))
            x = x + f
        if cache is not None:
            cache["pos"] += T
        h = self.rmsnorm(x[first:], self.w["output_norm.weight"])
        logits = self.mm(h, self.out_w)
        if self.softcap and "softcap" not in self.off:
            c = self.softcap
            logits = (c * np.tanh(logits.astype(np.float64) / c)).astype(np.float32)
        return logits

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


LlamaRef = ModelRef  # the name before it read more than llama (bench/peer_torch.py)


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
        m = ModelRef(args.model)
    except Unsupported as e:
        print(f"model_ref: {e}", file=sys.stderr)
        return 1
    t1 = time.time()
    try:
        logits = m.forward(tokens)
    except ValueError as e:
        print(f"model_ref: {e}", file=sys.stderr)
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
