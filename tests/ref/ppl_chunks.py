"""ppl_chunks.py — llama.cpp's perplexity procedure (tools/perplexity,
perplexity()), shared by check_ppl.py (the numpy reference forward) and
check_ppl_llama_cpp.py (llama.cpp's logits): the tokens cut into chunks of
ctx, the rest dropped; each chunk's first token replaced by BOS where the
model adds one; the logits at positions ctx/2 .. ctx-2 score the next
token."""
import argparse

import numpy as np


def chunks(toks, ctx, n_chunks, bos):
    """(chunk tokens, scored positions, their next tokens) per chunk; bos:
    the id that replaces each chunk's first token, or None"""
    first = ctx // 2
    for c in range(min(n_chunks, len(toks) // ctx)):
        ch = toks[c * ctx:(c + 1) * ctx].copy()
        if bos is not None:
            ch[0] = bos
        yield ch, np.arange(first, ctx - 1), ch[first + 1:]


def log_softmax(x):
    x = np.asarray(x, dtype=np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))


def arg_parser(description):
    """the checkers' common arguments: MODEL, kgen's token dump, kgen's
    --json result, and the --ctx and --chunks kgen ran with"""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("model")
    ap.add_argument("tokens")
    ap.add_argument("result")
    ap.add_argument("--ctx", type=int, required=True)
    ap.add_argument("--chunks", type=int, required=True)
    return ap
