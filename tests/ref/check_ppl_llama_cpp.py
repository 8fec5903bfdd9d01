#!/usr/bin/env python3
"""check_ppl_llama_cpp.py MODEL TOKENS RESULT --ctx N --chunks C — `kgen
perplexity --json` (RESULT) against llama.cpp itself (llama-cpp-python,
bench/.venv) on the same tokens (TOKENS: kgen's --dump-tokens): each chunk
evaluated in one batch with every position's logits, its first token BOS
where the model adds one (the tokens start with BOS then), the second half
scored as llama.cpp's perplexity tool scores it. Different kernels on the
same quantized weights: the perplexities within 1% (measured on
models/texts/eval.txt, 8 chunks of 512: SmolLM2-135M Q4_1 15.026 against
15.061, Gemma 3 270M Q4_K_M 14.489 against 14.555 over 6 chunks).
Exit 0 when they agree, 1 otherwise, 77 without llama_cpp or numpy.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    import numpy as np
    import llama_cpp
    from ppl_chunks import arg_parser, chunks, log_softmax
except ImportError as e:
    print(f"check_ppl_llama_cpp: {e}", file=sys.stderr)
    sys.exit(77)

PPL_REL = 1e-2


def main():
    ap = arg_parser(__doc__.splitlines()[0])
    a = ap.parse_args()
    toks = np.fromfile(a.tokens, dtype=np.int32)
    with open(a.result) as f:
        got = json.load(f)
    llm = llama_cpp.Llama(model_path=a.model, n_ctx=a.ctx, n_batch=a.ctx, logits_all=True, verbose=False,
                          n_threads=2)
    bos = llm.token_bos()
    add_bos = len(toks) > 0 and toks[0] == bos
    nll = []
    for chunk, pos, target in chunks(toks, a.ctx, a.chunks, bos if add_bos else None):
        llm.reset()
        llm.eval(chunk.tolist())
        lp = log_softmax(np.array(llm.scores[:a.ctx]))
        nll += list(-lp[pos, target])
    ppl = float(np.exp(np.mean(nll)))
    print(f"perplexity: kgen {got['ppl']:.4f}, llama.cpp {ppl:.4f} over {len(nll)} tokens "
          f"({(got['ppl'] / ppl - 1) * 100:+.2f}%; BOS replaced: {bool(add_bos)})")
    ok = got["tokens"] == len(nll) and abs(got["ppl"] - ppl) <= PPL_REL * ppl
    if not ok:
        print(f"MISMATCH: kgen {got}, llama.cpp ppl {ppl} over {len(nll)} tokens (relative tolerance {PPL_REL})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
