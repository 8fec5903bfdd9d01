#!/usr/bin/env python3
"""peer_torch.py — PyTorch (eager and torch.compile) prefill and decode speed
on a LLaMA GGUF: kgen's GPU peer in bench/bench_peer.py.

    python3 bench/peer_torch.py MODEL.gguf [--mode eager,compile] [--pp 64] [--tg 128]
                                [-r 5] [--device cuda] [--dtype bf16] [--json OUT]
    python3 bench/peer_torch.py MODEL.gguf --serve ...    one sample per line read
    python3 bench/peer_torch.py --copy-bw [--device cuda] device copy bandwidth
    python3 bench/peer_torch.py --check MODEL.gguf [--device cpu]

The model: tests/ref/model_ref.py reads the GGUF and dequantizes every
weight (the `gguf` package); here they become tensors of --dtype (bf16 by
default: PyTorch has no kernels for GGUF's block-quantized formats, so the
peer streams 16-bit weights; its bytes per token are in the JSON). The
forward is written as gpt-fast writes it: per layer a static K/V cache
[1, n_head_kv, n_ctx, head_dim]; a decode step writes its K/V with
index_copy_ and attends over the whole cache under a mask, so every shape
is fixed and torch.compile(mode="reduce-overhead") captures the step once
as a CUDA graph; prefill is one causal scaled_dot_product_attention over
the prompt. GQA through SDPA's enable_gqa (torch >= 2.5), else
repeat_interleave.

Tests, as kgen bench and llama-bench define them (no tokenizer, no sampler):
  ppN  one forward of N random ids at positions 0..N-1; the logits of the
       last one copied to the host.
  tgN  N steps of one random id each at positions 0..N-1; each step's
       logits copied to the host (kgm_decode returns them the same way).
Timed by the wall clock around synchronized work. Modes: eager, and compile
(prefill: torch.compile default mode; decode: "reduce-overhead" on CUDA, the
default mode elsewhere); compile happens in the warm-up and is recorded.

--serve loads the model once, warms up every mode, prints "ready", then for
each line "MODE" on stdin runs one pp and one tg sample and prints one JSON
line: bench_peer.py interleaves these with kgen's samples without reloading.

--check runs the torch model in float32 (prefill of a token sequence, then
decode steps) and compares its logits with model_ref.py's forward over the
same tokens: exit 0 when they agree (max abs diff < 1e-2 of the largest
logit), 1 otherwise. It checks this peer computes the model, not just
something of the same cost.
"""
import argparse
import json
import math
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "ref"))

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:
    sys.exit(f"peer_torch: {e} (PyTorch and numpy are needed)")

DTYPES = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def load_ref(path):
    try:
        from model_ref import ModelRef as LlamaRef, Unsupported
    except SystemExit:
        sys.exit("peer_torch: the `gguf` package is needed to read GGUF files (pip install gguf==0.19.0, "
                 "or put its wheel on PYTHONPATH)")
    try:
        r = LlamaRef(path)
    except (Unsupported, OSError, ValueError, KeyError) as e:
        sys.exit(f"peer_torch: {path}: {e}")
    if r.arch != "llama" or "rope_freqs.weight" in r.tensors or any(n.endswith(".bias") for n in r.tensors):
        sys.exit(f"peer_torch: {path}: only the plain llama architecture is implemented here (this is {r.arch})")
    return r


class Llama(torch.nn.Module):
    """The llama forward of tests/ref/model_ref.py, on torch tensors."""

    def __init__(self, ref, n_ctx, dtype, dev):
        super().__init__()
        self.n_layer, self.n_head, self.n_kv, self.hd = ref.n_layer, ref.n_head, ref.n_head_kv, ref.head_dim
        self.n_rot, self.eps, self.n_vocab, self.n_ctx = ref.n_rot, ref.eps, ref.n_vocab, n_ctx
        self.gqa = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 5)
        # Every tensor is a buffer: torch.compile's CUDA graphs then read them in
        # place (static addresses) instead of copying graph inputs each replay.
        t = lambda n, a: self.register_buffer(n, torch.from_numpy(np.array(a, copy=True)).to(dev, dtype))
        t("tok", ref.tok_embd)
        t("out_norm", ref.w["output_norm.weight"])
        if not ref.tied:
            t("out", ref.out_w)
        for l in range(self.n_layer):
            w = lambda n: ref.w[f"blk.{l}.{n}.weight"]
            t(f"attn_norm{l}", w("attn_norm"))
            t(f"ffn_norm{l}", w("ffn_norm"))
            t(f"qkv{l}", np.concatenate([w("attn_q"), w("attn_k"), w("attn_v")]))
            t(f"o{l}", w("attn_output"))
            t(f"gate_up{l}", np.concatenate([w("ffn_gate"), w("ffn_up")]))
            t(f"down{l}", w("ffn_down"))
        self.weight_bytes = sum(b.numel() * b.element_size() for n, b in self.named_buffers() if n != "tok")
        self.row_bytes = self.tok.shape[1] * self.tok.element_size()
        if ref.tied:
            self.out = self.tok
            self.weight_bytes += self.tok.numel() * self.tok.element_size()
        shape = (1, self.n_kv, n_ctx, self.hd)
        for l in range(self.n_layer):
            self.register_buffer(f"k{l}", torch.zeros(shape, dtype=dtype, device=dev))
            self.register_buffer(f"v{l}", torch.zeros(shape, dtype=dtype, device=dev))
        i = np.arange(self.n_rot // 2, dtype=np.float64)
        theta = (np.arange(n_ctx, dtype=np.float64) * ref.freq_scale)[:, None] * (ref.rope_base ** (-2.0 * i / self.n_rot))
        self.register_buffer("cos", torch.from_numpy(np.cos(theta)).to(dev, torch.float32))
        self.register_buffer("sin", torch.from_numpy(np.sin(theta)).to(dev, torch.float32))

    def norm(self, x, w):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * w

    def rope(self, x, pos):
        """x [1, T, H, D]; adjacent pairs of the first n_rot dims rotated."""
        c, s = self.cos[pos][None, :, None, :], self.sin[pos][None, :, None, :]
        r = x[..., :self.n_rot].float().unflatten(-1, (-1, 2))
        x0, x1 = r[..., 0], r[..., 1]
        y = torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), -1).flatten(-2).to(x.dtype)
        return torch.cat((y, x[..., self.n_rot:]), -1) if self.n_rot < self.hd else y

    def attend(self, q, k, v, mask, causal):
        if self.gqa:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, enable_gqa=True)
        g = self.n_head // self.n_kv
        return F.scaled_dot_product_attention(q, k.repeat_interleave(g, 1), v.repeat_interleave(g, 1),
                                              attn_mask=mask, is_causal=causal)

    def forward(self, ids, pos, decode):
        """ids, pos: [T] (positions 0..T-1 when not decode). Logits of the last token, float32."""
        T = ids.shape[0]
        x = self.tok[ids][None]
        mask = (torch.arange(self.n_ctx, device=ids.device) <= pos[-1])[None, None, None, :] if decode else None
        qd, kd = self.n_head * self.hd, self.n_kv * self.hd
        for l in range(self.n_layer):
            L = lambda n: getattr(self, f"{n}{l}")
            qkv = self.norm(x, L("attn_norm")) @ L("qkv").T
            q = self.rope(qkv[..., :qd].view(1, T, self.n_head, self.hd), pos).transpose(1, 2)
            k = self.rope(qkv[..., qd:qd + kd].view(1, T, self.n_kv, self.hd), pos).transpose(1, 2)
            v = qkv[..., qd + kd:].view(1, T, self.n_kv, self.hd).transpose(1, 2)
            kc, vc = getattr(self, f"k{l}"), getattr(self, f"v{l}")
            kc.index_copy_(2, pos, k)
            vc.index_copy_(2, pos, v)
            a = self.attend(q, kc, vc, mask, False) if decode else self.attend(q, k, v, None, True)
            x = x + a.transpose(1, 2).reshape(1, T, qd) @ L("o").T
            gu = self.norm(x, L("ffn_norm")) @ L("gate_up").T
            g, u = gu.chunk(2, -1)
            x = x + (F.silu(g) * u) @ L("down").T
        return (self.norm(x[:, -1], self.out_norm) @ self.out.T).float()[0]


class Peer:
    def __init__(self, ref, n_ctx, dtype, dev, modes):
        self.dev = dev
        self.m = Llama(ref, n_ctx, dtype, dev)
        self.fns, self.compile_s = {}, {}
        pre = lambda ids, pos: self.m(ids, pos, False)
        dec = lambda ids, pos: self.m(ids, pos, True)
        for mode in modes:
            if mode == "eager":
                self.fns[mode] = (pre, dec)
            elif mode == "compile":
                self.fns[mode] = (torch.compile(pre, dynamic=False, fullgraph=True),
                                  torch.compile(dec, dynamic=False, fullgraph=True,
                                                mode="reduce-overhead" if dev.type == "cuda" else None))
            else:
                sys.exit(f"peer_torch: unknown mode '{mode}' (eager, compile)")

    def call(self, mode, decode, ids, pos):
        if mode == "compile" and decode and self.dev.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()
        return self.fns[mode][1 if decode else 0](ids, pos)

    @torch.inference_mode()
    def sample(self, mode, pp, tg, seed=0):
        g = torch.Generator().manual_seed(seed)
        res = {}
        if pp:
            ids = torch.randint(0, self.m.n_vocab, (pp,), generator=g).to(self.dev)
            pos = torch.arange(pp, device=self.dev)
            sync(self.dev)
            t0 = time.perf_counter()
            out = self.call(mode, False, ids, pos).to("cpu")
            res["pp"] = pp / (time.perf_counter() - t0)
            res["finite"] = bool(torch.isfinite(out).all())
        if tg:
            ids = torch.randint(0, self.m.n_vocab, (tg,), generator=g).to(self.dev)
            pos = torch.arange(tg, device=self.dev)
            sync(self.dev)
            t0 = time.perf_counter()
            for i in range(tg):
                out = self.call(mode, True, ids[i:i + 1], pos[i:i + 1]).to("cpu")
            res["tg"] = tg / (time.perf_counter() - t0)
            res["finite"] = res.get("finite", True) and bool(torch.isfinite(out).all())
        return res

    def warm(self, mode, pp, tg):
        t0 = time.perf_counter()
        self.sample(mode, pp, tg)
        self.sample(mode, min(pp, 8), min(tg, 8))  # reduce-overhead records its graph on a later call
        self.compile_s[mode] = round(time.perf_counter() - t0, 2)


def copy_bw(dev, nbytes=1 << 30, reps=20):
    """Device-to-device copy: GB/s counting the bytes read and written (as STREAM counts)."""
    a = torch.empty(nbytes, dtype=torch.uint8, device=dev)
    b = torch.empty_like(a)
    b.copy_(a)
    sync(dev)
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        b.copy_(a)
        sync(dev)
        best = min(best, time.perf_counter() - t0)
    return 2 * nbytes / best / 1e9


def check(a, dev):
    ref = load_ref(a.model)
    rng = np.random.default_rng(1)
    n_pre, n_dec = 7, 5
    toks = [int(x) for x in rng.integers(0, ref.n_vocab, n_pre + n_dec)]
    want = ref.forward(toks)  # [T, n_vocab]: the full causal forward
    m = Llama(ref, n_pre + n_dec, torch.float32, dev)
    got = []
    with torch.inference_mode():
        got.append(m(torch.tensor(toks[:n_pre], device=dev), torch.arange(n_pre, device=dev), False).cpu().numpy())
        for i in range(n_pre, n_pre + n_dec):
            got.append(m(torch.tensor([toks[i]], device=dev), torch.tensor([i], device=dev), True).cpu().numpy())
    want = want[n_pre - 1:]
    err = float(np.abs(np.array(got) - want).max())
    scale = float(np.abs(want).max())
    same = int((np.array(got).argmax(1) == want.argmax(1)).sum())
    ok = err < 1e-2 * scale and same == len(got)
    print(f"peer_torch --check {os.path.basename(a.model)}: {len(got)} positions (prefill {n_pre}, then {n_dec} "
          f"decode steps): max |torch - model_ref| = {err:.3g} (largest logit {scale:.3g}), argmax equal at "
          f"{same}/{len(got)}: {'ok' if ok else 'MISMATCH'}")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="?")
    ap.add_argument("--mode", default="eager,compile")
    ap.add_argument("--pp", type=int, default=64)
    ap.add_argument("--tg", type=int, default=128)
    ap.add_argument("-r", "--reps", type=int, default=5)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    ap.add_argument("--json")
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--copy-bw", action="store_true")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    try:
        dev = torch.device(a.device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            sys.exit("peer_torch: PyTorch sees no CUDA device")
    except RuntimeError as e:
        sys.exit(f"peer_torch: --device {a.device}: {e}")
    if a.copy_bw:
        print(json.dumps({"copy_gbs": copy_bw(dev), "device": torch.cuda.get_device_name(dev) if dev.type == "cuda"
                          else "cpu", "torch": torch.__version__}))
        return 0
    if not a.model:
        sys.exit("peer_torch: a MODEL.gguf is needed (or --copy-bw)")
    if a.check:
        return check(a, dev)
    if a.pp < 0 or a.tg < 0 or a.pp + a.tg == 0 or a.reps < 1:
        sys.exit("peer_torch: --pp and --tg must be >= 0 (not both 0), -r >= 1")
    modes = a.mode.split(",")
    t0 = time.perf_counter()
    ref = load_ref(a.model)
    p = Peer(ref, max(a.pp, a.tg), DTYPES[a.dtype], dev, modes)
    del ref
    info = {"torch": torch.__version__, "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
            "dtype": a.dtype, "load_s": round(time.perf_counter() - t0, 2), "weight_bytes_per_token":
            p.m.weight_bytes + p.m.row_bytes}
    for mode in modes:
        p.warm(mode, a.pp, a.tg)
    info["warmup_s"] = p.compile_s
    if a.serve:
        print(json.dumps({"ready": True, **info}), flush=True)
        for i, line in enumerate(sys.stdin):
            mode = line.strip()
            if mode not in p.fns:
                print(json.dumps({"error": f"unknown mode '{mode}'"}), flush=True)
                continue
            print(json.dumps({"mode": mode, **p.sample(mode, a.pp, a.tg, seed=i + 1)}), flush=True)
        return 0
    runs = {m: [p.sample(m, a.pp, a.tg, seed=i + 1) for i in range(a.reps)] for m in modes}
    for m, rs in runs.items():
        for t in ("pp", "tg"):
            v = [r[t] for r in rs if t in r]
            if v:
                print(f"{os.path.basename(a.model)} {m} {t}: {np.median(v):.1f} tok/s (min {min(v):.1f}, max {max(v):.1f})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({**info, "model": a.model, "pp": a.pp, "tg": a.tg, "runs": runs}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
