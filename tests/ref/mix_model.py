#!/usr/bin/env python3
"""mix_model.py OUT.gguf --shape S --mix M [--seed N] [--vocab N] [--layers I,J..]
— a llama model of a real model's widths, random weights, and the per-tensor
type mix llama.cpp's quantizer gives that model, for kgen's tests
(tests/test_mixes.c).

Shapes (published configs; the model keeps the widths, not the depth):
  smollm2    SmolLM2-135M: 576 wide, 9 heads, 3 KV heads, ff 1536, 30 layers,
             tied output, rope base 100000. 576 is not a multiple of 256, so
             every K-quant on a 576-wide row falls back.
  tinyllama  TinyLlama-1.1B: 2048 wide, 32 heads, 4 KV heads, ff 5632 (22 x 256),
             22 layers, separate output.weight, rope base 10000.
The file has a few layers (--layers, default: smollm2 0,9,14,29; tinyllama
0,11), each typed as llama.cpp types that layer of the real model, so the
layer-dependent choices (use_more_bits, "first layers", "first two attn_v")
come out both ways. The vocabulary is smaller than the real one (--vocab,
default 4096): a valid byte-level BPE (tokenizer.ggml.model "gpt2", pre
"smollm"; the tokens of tests/tiny_llama.c: 3 control tokens, the 256 GPT-2
byte symbols, 41 merged letter pairs, then unused tokens up to the size).

Mixes (--mix): q4_k_m, q5_k_m, q3_k_m, iq4_xs, q2_k, the llama.cpp file types
of those names, or pure:TYPE (every product weight TYPE, no fallback). The
rules are llama.cpp's llama_tensor_get_type_impl and tensor_type_fallback
(src/llama-quant.cpp, llama.cpp 0c1e57098 as vendored by llama-cpp-python
0.3.36), restricted to a dense llama (no experts, not Falcon, no imatrix,
not 70B) and written out in mix_types() below, which cites each rule.

Weights: random blocks. Any bytes are a valid block once its f16 scale
fields are finite, so each block is random bytes with its f16 fields set:
the scale d to u * c (u uniform in [0.5, 1.5] per block), a minimum (dmin,
or Q4_1/Q5_1's additive m) to u * c * r, with r chosen so that the
dequantized weights average 0 (measured on a sample with the `gguf`
package's dequantizer), and c so that their standard deviation is
gain / sqrt(row length): each product keeps its input's scale, and the
logits have a standard deviation of about 4. Q8_0's int8 values avoid -128,
which llama.cpp's quantizer never writes. Norm weights are F32 near 1.

Prints one line per tensor ("name TYPE rows x cols") and a summary.
Deterministic: the same arguments give the same bytes.

    mix_model.py --check-against REAL.gguf --shape S --mix M
compares the rules with a file llama.cpp's quantizer made (every layer of
the real model; no file is written): one line per tensor whose type differs,
exit status 1 if any does. Checked (llama.cpp 0c1e57098): SmolLM2-135M
requantized and the TinyLlama-shaped F16 file of bench/gen_model.py
quantized into all five mixes, 211 and 156 weight tensors each: no
difference (the slow test slow_mix_rules_match_llama_cpp repeats the SmolLM2
half).
"""
import argparse
import sys

sys.dont_write_bytecode = True

try:
    import numpy as np
    from gguf import GGMLQuantizationType as T
    from gguf import GGUFWriter, TokenType
    from gguf.constants import GGML_QUANT_SIZES
    from gguf.quants import dequantize
except ImportError:
    print("the Python packages 'numpy' and 'gguf' are needed (pip install gguf)", file=sys.stderr)
    sys.exit(3)

SHAPES = {
    "smollm2": dict(n_embd=576, n_head=9, n_head_kv=3, n_ff=1536, n_layer_real=30, tied=True,
                    rope_base=100000.0, n_ctx=8192, layers=(0, 9, 14, 29)),
    "tinyllama": dict(n_embd=2048, n_head=32, n_head_kv=4, n_ff=5632, n_layer_real=22, tied=False,
                      rope_base=10000.0, n_ctx=2048, layers=(0, 11)),
}

MIXES = ("q4_k_m", "q5_k_m", "q3_k_m", "iq4_xs", "q2_k")


# ── the quantizer's type choice (llama-quant.cpp) ────────────────────────
def use_more_bits(i, n):
    # llama_tensor_get_type_impl: use_more_bits
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def fallback(t, ncols):
    """tensor_type_fallback: a type whose block does not divide the row."""
    blck = GGML_QUANT_SIZES[t][0]
    if ncols % blck == 0:
        return t
    r = {T.IQ4_XS: T.IQ4_NL, T.Q2_K: T.Q4_0, T.Q3_K: T.Q4_0, T.Q4_K: T.Q5_0,
         T.Q5_K: T.Q5_1, T.Q6_K: T.Q8_0}[t]
    return r if ncols % GGML_QUANT_SIZES[r][0] == 0 else T.F16


def mix_types(mix, sh, layer_ids):
    """{tensor name: type} for the file's tensors. Layer l of the file is
    typed as layer layer_ids[l] of the real n_layer_real-layer model."""
    E, F, L = sh["n_embd"], sh["n_ff"], sh["n_layer_real"]
    n_gqa = sh["n_head"] // sh["n_head_kv"]
    if mix.startswith("pure:"):
        t = T[mix[5:].upper()]
        out = {"token_embd.weight": t}
        if not sh["tied"]:
            out["output.weight"] = t
        for l in range(len(layer_ids)):
            for n in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"):
                out[f"blk.{l}.{n}.weight"] = t
        return out
    # llama_ftype_get_default_type
    default = {"q4_k_m": T.Q4_K, "q5_k_m": T.Q5_K, "q3_k_m": T.Q3_K, "iq4_xs": T.IQ4_XS, "q2_k": T.Q2_K}[mix]
    out = {}
    # the output matrix, and token_embd when tied ("for arches that share the
    # same tensor between the token embeddings and the output"): Q8_0 when the
    # row is not a multiple of the default type's block, else Q6_K
    out_t = T.Q8_0 if E % GGML_QUANT_SIZES[default][0] else T.Q6_K
    if sh["tied"]:
        out["token_embd.weight"] = out_t
    else:
        out["output.weight"] = out_t
        out["token_embd.weight"] = fallback(default, E)  # TOKEN_EMBD: the default for these file types
    for l, i in enumerate(layer_ids):
        p = f"blk.{l}."
        t = {n: default for n in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")}
        # attn_v (i_attention_wv counts the real model's layers)
        if mix == "q2_k":
            t["attn_v"] = T.Q4_K if n_gqa >= 4 else T.Q3_K
        elif mix == "q3_k_m":
            t["attn_v"] = T.Q5_K if i < 2 else T.Q4_K
        elif mix == "iq4_xs" and n_gqa >= 4:
            t["attn_v"] = T.Q5_K
        elif mix in ("q4_k_m", "q5_k_m") and use_more_bits(i, L):
            t["attn_v"] = T.Q6_K
        # ffn_down
        if mix == "q2_k":
            t["ffn_down"] = T.Q3_K
        elif mix == "q3_k_m":
            t["ffn_down"] = T.Q5_K if i < L // 16 else T.Q4_K  # not Falcon: Q4_K
        elif mix == "q4_k_m" and use_more_bits(i, L):
            t["ffn_down"] = T.Q6_K
        elif mix == "iq4_xs" and i < L // 8:  # no imatrix
            t["ffn_down"] = T.Q5_K
        elif mix == "q5_k_m" and use_more_bits(i, L):
            t["ffn_down"] = T.Q6_K
        # attn_output
        if mix == "q2_k":
            t["attn_output"] = T.Q3_K
        elif mix == "q3_k_m":
            t["attn_output"] = T.Q4_K
        ncols = {"ffn_down": F}
        for n, ty in t.items():
            out[p + n + ".weight"] = fallback(ty, ncols.get(n, E))
    return out


# ── random blocks ────────────────────────────────────────────────────────
# f16 fields: (offset of the scale d, offset of the minimum or None); every
# type's dequantized value is linear in d and in the minimum separately.
F16_FIELDS = {
    T.Q4_0: (0, None), T.Q4_1: (0, 2), T.Q5_0: (0, None), T.Q5_1: (0, 2), T.Q8_0: (0, None),
    T.Q2_K: (80, 82), T.Q3_K: (108, None), T.Q4_K: (0, 2), T.Q5_K: (0, 2), T.Q6_K: (208, None),
    T.IQ4_NL: (0, None), T.IQ4_XS: (0, None),
}


def set_f16(blocks, off, vals):
    blocks[:, off:off + 2] = np.asarray(vals, dtype="<f2").view(np.uint8).reshape(-1, 2)


def random_tensor(t, rows, cols, std, rng):
    """[rows, bytes per row] uint8 (or float rows for F32/F16) with weights of
    mean ~0 and standard deviation ~std."""
    if t in (T.F32, T.F16):
        return (rng.standard_normal((rows, cols)) * std).astype(np.float32 if t == T.F32 else np.float16)
    blck, size = GGML_QUANT_SIZES[t]
    nb = rows * cols // blck
    b = rng.integers(0, 256, size=(nb, size), dtype=np.uint8)
    if t == T.Q8_0:
        q = b[:, 2:]
        q[q == 0x80] = 0x81
    u = rng.uniform(0.5, 1.5, nb)
    d_off, m_off = F16_FIELDS[t]
    ns = min(nb, 2048)
    s = b[:ns].copy()

    def sample(d, m):
        set_f16(s, d_off, d[:ns])
        if m_off is not None:
            set_f16(s, m_off, m[:ns])
        return dequantize(s.reshape(1, -1), t).astype(np.float64)  # one row: one vectorized call

    r = 0.0
    if m_off is not None:  # the minimum that cancels the mean
        a = sample(u, 0 * u).mean()
        c = sample(0 * u, u).mean()
        r = -a / c
    w = sample(u, r * u)
    c = std / w.std()
    set_f16(b, d_off, u * c)
    if m_off is not None:
        set_f16(b, m_off, u * c * r)
    return b.reshape(rows, cols // blck * size)


# ── the tokenizer (as tests/tiny_llama.c) ────────────────────────────────
PAIRS = ("th he in er an re on at en nd ti es or te of ed is it al ar st to nt ng se ha as ou io le ve co me "
         "de hi ri ro ic ne ea ra").split()
SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a tiny test model.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def byte_symbols():
    """GPT-2's byte-to-unicode table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    m = dict(zip(bs, cs))
    return [chr(m[b]) for b in range(256)]


def tokenizer(n_vocab):
    toks = list(SPECIAL) + byte_symbols() + PAIRS
    types = [TokenType.CONTROL] * 3 + [TokenType.NORMAL] * (256 + len(PAIRS))
    if n_vocab < len(toks):
        raise SystemExit(f"mix_model: --vocab must be at least {len(toks)}")
    for i in range(n_vocab - len(toks)):
        toks.append(f"<unused{i}>")
        types.append(TokenType.UNUSED)
    return toks, types, [f"{p[0]} {p[1]}" for p in PAIRS]


def check_against(path, mix, sh):
    """The rules against a file llama.cpp's quantizer made from the real model."""
    from gguf import GGUFReader
    r = GGUFReader(path)
    n_layer = max(int(t.name.split(".")[1]) for t in r.tensors if t.name.startswith("blk.")) + 1
    if n_layer != sh["n_layer_real"]:
        print(f"mix_model: {path} has {n_layer} layers, the shape {sh['n_layer_real']}")
        return 1
    want = mix_types(mix, sh, list(range(n_layer)))
    n = bad = 0
    for t in r.tensors:
        if t.name.endswith("norm.weight"):
            continue
        n += 1
        w = want.get(t.name)
        if w is None or w.name != t.tensor_type.name:
            bad += 1
            print(f"{t.name}: llama.cpp {t.tensor_type.name}, the rules {w.name if w is not None else 'nothing'}")
    print(f"{path}: {mix}: {n} weight tensors, {bad} differ from the rules")
    return 1 if bad or n != len(want) else 0


# ── the file ─────────────────────────────────────────────────────────────
def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?")
    ap.add_argument("--check-against", metavar="REAL.gguf", help="compare the rules with a quantized real file")
    ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
    ap.add_argument("--mix", required=True, help=", ".join(MIXES) + ", or pure:TYPE")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--layers", help="comma-separated layer indices of the real model (default: per shape)")
    args = ap.parse_args()
    if args.mix not in MIXES and not args.mix.startswith("pure:"):
        ap.error(f"unknown mix '{args.mix}'")
    sh = SHAPES[args.shape]
    if args.check_against:
        return check_against(args.check_against, args.mix, sh)
    if not args.out:
        ap.error("no output file")
    layer_ids = [int(x) for x in args.layers.split(",")] if args.layers else list(sh["layers"])
    E, F, H, HKV = sh["n_embd"], sh["n_ff"], sh["n_head"], sh["n_head_kv"]
    D = E // H
    types = mix_types(args.mix, sh, layer_ids)
    rng = np.random.default_rng(args.seed)

    w = GGUFWriter(args.out, "llama")
    w.add_name(f"{args.shape}-{args.mix}-random")
    w.add_block_count(len(layer_ids))
    w.add_context_length(sh["n_ctx"])
    w.add_embedding_length(E)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(HKV)
    w.add_rope_freq_base(sh["rope_base"])
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(D)
    toks, ttypes, merges = tokenizer(args.vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(toks)
    w.add_token_types(ttypes)
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_pad_token_id(0)
    w.add_chat_template(CHAT_TEMPLATE)

    lines = []

    def add(name, rows, cols, std=None, norm=False):
        if norm:
            data = (1.0 + 0.2 * (rng.random(cols) - 0.5)).astype(np.float32)
            w.add_tensor(name, data)
            lines.append(f"{name} F32 {cols}")
            return
        t = types[name]
        data = random_tensor(t, rows, cols, std, rng)
        if t in (T.F32, T.F16):
            w.add_tensor(name, data)
        else:
            w.add_tensor(name, data, raw_dtype=t)  # bytes [rows, row size]: the writer derives the shape
        lines.append(f"{name} {t.name} {rows} x {cols}")

    V = args.vocab
    add("token_embd.weight", V, E, 4.0 / np.sqrt(E))
    for l in range(len(layer_ids)):
        p = f"blk.{l}."
        add(p + "attn_norm.weight", 1, E, norm=True)
        add(p + "attn_q.weight", H * D, E, 1 / np.sqrt(E))
        add(p + "attn_k.weight", HKV * D, E, 1 / np.sqrt(E))
        add(p + "attn_v.weight", HKV * D, E, 1 / np.sqrt(E))
        add(p + "attn_output.weight", E, H * D, 1 / np.sqrt(H * D))
        add(p + "ffn_norm.weight", 1, E, norm=True)
        add(p + "ffn_gate.weight", F, E, 1 / np.sqrt(E))
        add(p + "ffn_up.weight", F, E, 1 / np.sqrt(E))
        add(p + "ffn_down.weight", E, F, 1 / np.sqrt(F))
    add("output_norm.weight", 1, E, norm=True)
    if not sh["tied"]:
        add("output.weight", V, E, 4.0 / np.sqrt(E))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    for s in lines:
        print(s)
    used = sorted({t.name for t in types.values()})
    print(f"mix {args.mix} on {args.shape} (layers {','.join(map(str, layer_ids))} of {sh['n_layer_real']}): "
          f"{' '.join(used)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
