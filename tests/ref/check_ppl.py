#!/usr/bin/env python3
"""check_ppl.py MODEL TOKENS RESULT --ctx N --chunks C [--base BASE] — checks
`kgen perplexity --json` (RESULT) against llama.cpp's perplexity procedure
computed here with the numpy reference forward (model_ref.py, which shares
no code with kgen) on the same tokens (TOKENS: kgen's --dump-tokens, int32).

The procedure, written from llama.cpp's tools/perplexity (perplexity()):
the tokens (BOS first where the model adds one) cut into chunks of ctx, the
rest dropped; each chunk's first token replaced by BOS where the model adds
one; the logits at positions first = ctx/2 .. ctx-2 of each chunk score the
next token, -log softmax; ppl = exp(mean). Whether the model adds BOS is
read from the tokens: the first is the GGUF's bos_token_id (prose text has
no control tokens). With --base: per scored position KL(p_base || p_model),
top-1 agreement (argmax equal) and the base's perplexity.

The reference runs as kgen does on quantized weights (8-bit activations,
f16 KV cache: model_ref's act_q8 and kv_f16), so what is left is rounding
(summation order, ties of the 8-bit rounding): tolerances from measurement
with margin (the tiny test models, ctx 64, 3 chunks: ppl 660.16 against
658.67, 0.23%, the base's 0.05%; KL 1.41452 against 1.41459).
Exit 0 when every figure agrees; 1 otherwise; 77 without numpy/gguf.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
try:
    import numpy as np
    from model_ref import ModelRef, _field
    from ppl_chunks import arg_parser, chunks, log_softmax
except ImportError as e:
    print(f"check_ppl: {e}", file=sys.stderr)
    sys.exit(77)

PPL_REL, KL_ABS, TOP1_ABS = 1e-2, 2e-3, 0.02


def model(path):
    m = ModelRef(path)
    m.act_q8 = m.kv_f16 = True
    return m


def main():
    ap = arg_parser(__doc__.splitlines()[0])
    ap.add_argument("--base")
    a = ap.parse_args()
    toks = np.fromfile(a.tokens, dtype=np.int32).astype(np.int64)
    with open(a.result) as f:
        got = json.load(f)
    m = model(a.model)
    b = model(a.base) if a.base else None
    bos_id = _field(m._reader, "tokenizer.ggml.bos_token_id")
    bos = int(bos_id) if bos_id is not None and len(toks) and toks[0] == int(bos_id) else None
    nll, kls, top1, base_nll, n_chunks = [], [], [], [], 0
    for chunk, pos, target in chunks(toks, a.ctx, a.chunks, bos):
        n_chunks += 1
        lp = log_softmax(m.forward(chunk))
        nll += list(-lp[pos, target])
        if b:
            lq = log_softmax(b.forward(chunk))
            kl = (np.exp(lq) * (lq - lp)).sum(axis=-1)[pos]
            kls += list(np.maximum(kl, 0))
            top1 += list(lp.argmax(-1)[pos] == lq.argmax(-1)[pos])
            base_nll += list(-lq[pos, target])
    want = {"ppl": float(np.exp(np.mean(nll))), "tokens": len(nll), "chunks": n_chunks}
    if b:
        want.update(kl=float(np.mean(kls)), top1=float(np.mean(top1)), base_ppl=float(np.exp(np.mean(base_nll))))
    bad = []
    for k in ("tokens", "chunks"):
        if got.get(k) != want[k]:
            bad.append(f"{k}: kgen {got.get(k)}, reference {want[k]}")
    for k in ("ppl", "base_ppl"):
        if k in want and not abs(got.get(k, -1) - want[k]) <= PPL_REL * want[k]:
            bad.append(f"{k}: kgen {got.get(k)}, reference {want[k]:.6f} (relative tolerance {PPL_REL})")
    for k, tol in (("kl", KL_ABS), ("top1", TOP1_ABS)):
        if k in want and not abs(got.get(k, -1) - want[k]) <= tol:
            bad.append(f"{k}: kgen {got.get(k)}, reference {want[k]:.6f} (tolerance {tol})")
    if b and "kl" not in got:
        bad.append("kgen's result has no kl")
    summary = ", ".join(f"{k} {got.get(k)} / {v:.6g}" for k, v in want.items())
    print(f"kgen / reference: {summary}")
    for line in bad:
        print(f"MISMATCH {line}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
