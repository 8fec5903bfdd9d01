#!/usr/bin/env python3
"""gen_model.py — random-weight llama-architecture GGUFs for benchmarks.

    python3 bench/gen_model.py --shape tinyllama --type Q4_0 [--out-dir models/random]
    python3 bench/gen_model.py --all          # every shape x every type
    python3 bench/gen_model.py --list         # the names it would write
    python3 bench/gen_model.py --shape gemma3-270m --type Q4_K_M --out-dir DIR

Shapes (real models' hyperparameters, random weights):

    shape      layers  embd  heads  kv  ff    vocab  output
    smollm2    30      576   9      3   1536  49152  tied to token_embd
    tinyllama  22      2048  32     4   5632  32000  separate output.weight
    llama7b    32      4096  32     32  11008 32000  separate output.weight
                                                  (LLaMA-2-7B; GPU benchmarks
                                                  only, not part of --all)

Architecture shapes (issue 15: the true widths of each architecture's small
model; the depth and the vocabulary reduced, so that the numpy reference and
make check stay cheap; not part of --all):

    shape            arch    layers      embd  heads x dim  kv  ff    vocab   output
    qwen2-0.5b       qwen2   2 of 24     896   14 x 64      2   4864  8192    tied; q/k/v biases
    qwen3-0.6b       qwen3   2 of 28     1024  16 x 128     8   3072  8192    tied; QK-norm
    qwen3-0.6b-full  qwen3   28 of 28    1024  16 x 128     8   3072  151936  tied (make bench-peer)
    llama3.2-1b      llama   2 of 16     2048  32 x 64      8   8192  8192    tied; rope_freqs
    llama3.2-1b-r64  the same, rope_freqs computed for an original context of 64 (not 8192), so
                     that the factors act within a test's 100 positions
    gemma3-270m      gemma3  6 of 18     640   4 x 256      1   2048  8192    tied; window 16 (real: 512)
    phi3-mini        phi3    2 of 32     3072  32 x 96      32  8192  8192    separate; fused qkv, gate/up

  (real vocabularies: 151936, 151936, 128256, 262144, 32064). Metadata and
  tensor names are what llama.cpp's convert_hf_to_gguf.py writes for each
  (Qwen2Model, Qwen3Model, LlamaModel with Llama 3's rope_freqs from the
  published rope_scaling {factor 32, low 1, high 4, original 8192},
  Gemma3Model, Phi3MiniModel). Gemma 3 and Phi-3 carry a small
  SentencePiece-style vocabulary (tokenizer.ggml.model "llama": control
  tokens, the 256 byte tokens <0xNN>, the space marker U+2581 and scored
  pieces); the others the BPE one below, with their files' pre-tokenizer
  names ("qwen2", "llama-bpe"). A layer of the file is typed as llama.cpp's
  quantizer types that layer of the real model (the file's layers stand
  for the real layers listed in ARCH_SHAPES). Weights are random blocks
  (tests/ref/mix_model.py's random_tensor: any bytes with finite f16 scales
  are valid blocks), scaled so that each product keeps its input's scale.
  Types for these shapes: Q8_0, Q4_0, F16 (everything that type), Q4_K
  (products Q4_K, token_embd Q8_0 / Q6_K output where the row is not whole
  256-blocks) and Q4_K_M (llama.cpp's Q4_K_M rules, fallbacks included: a
  mix of Q4_K, Q5_K, Q6_K, Q5_0 and Q8_0).

Types: Q4_0, Q4_1, Q8_0, F16 for every 2-D weight, token_embd and output
included; norms are F32 and all ones. Weights are N(0, 1) * 0.02, drawn per
tensor from a generator seeded by (SEED, tensor name), so every type of a
shape quantizes the same float weights, and the file is the same on every run
(same numpy and gguf versions). With RMS-normalized inputs each product's
outputs have a standard deviation of about 0.02 * sqrt(K) <= 1.5, so
activations stay finite through all layers.

Metadata: arch "llama" with the llama.* keys llama.cpp reads (context 2048,
rope base 10000, rope dimension = head size, RMS eps 1e-5), and a small but
valid GPT-2 BPE tokenizer of exactly vocab-size tokens: 3 control tokens
(<|endoftext|> = unknown, <|im_start|> = BOS, <|im_end|> = EOS and padding),
the 256 byte tokens in GPT-2's byte-to-unicode form, 6 merged tokens with
their merges, then filler tokens "fill<N>".

Output: OUT_DIR/SHAPE-TYPE.gguf, written to a temporary file and renamed into
place; OUT_DIR/manifest.txt records "FILE SHA256 BYTES gen=V seed=S" for each
file generated. A file that is present, recorded and matches its SHA-256 is
kept; otherwise it is generated again. Progress and timings on stderr.
Runs under any python3 with numpy and gguf; without gguf it re-runs itself
under bench/.venv/bin/python (made by bench/setup_peer.sh) when that exists.
"""
import argparse
import hashlib
import os
import sys
import tempfile
import time

GEN_VERSION = 1          # bump when the output of a given (shape, type) changes
SEED = 20250101
SCALE = 0.02

JOBS = 1
SHAPES = {
    "smollm2":   dict(n_layer=30, n_embd=576,  n_head=9,  n_head_kv=3, n_ff=1536, n_vocab=49152, tied=True),
    "tinyllama": dict(n_layer=22, n_embd=2048, n_head=32, n_head_kv=4, n_ff=5632, n_vocab=32000, tied=False),
    "llama7b":   dict(n_layer=32, n_embd=4096, n_head=32, n_head_kv=32, n_ff=11008, n_vocab=32000, tied=False,
                      not_in_all=True),
}

TYPES = ("Q4_0", "Q4_1", "Q8_0", "F16")
ARCH_TYPES = ("Q8_0", "Q4_0", "F16", "Q4_K", "Q4_K_M")

# The architectures' shapes: real widths; `layers`: the real layers the
# file's layers stand for (their quantization types follow them).
ARCH_SHAPES = {
    "qwen2-0.5b": dict(arch="qwen2", n_layer_real=24, layers=(0, 12), n_embd=896, n_head=14, n_head_kv=2,
                       head_dim=64, n_ff=4864, n_vocab=8192, tied=True, rope_base=1e6, eps=1e-6, n_ctx=32768,
                       bias=True, tok="bpe", pre="qwen2"),
    "qwen3-0.6b": dict(arch="qwen3", n_layer_real=28, layers=(0, 13), n_embd=1024, n_head=16, n_head_kv=8,
                       head_dim=128, n_ff=3072, n_vocab=8192, tied=True, rope_base=1e6, eps=1e-6, n_ctx=40960,
                       qk_norm=True, key_length=True, tok="bpe", pre="qwen2"),
    "qwen3-0.6b-full": dict(arch="qwen3", n_layer_real=28, layers=tuple(range(28)), n_embd=1024, n_head=16,
                            n_head_kv=8, head_dim=128, n_ff=3072, n_vocab=151936, tied=True, rope_base=1e6,
                            eps=1e-6, n_ctx=40960, qk_norm=True, key_length=True, tok="bpe", pre="qwen2"),
    "llama3.2-1b": dict(arch="llama", n_layer_real=16, layers=(0, 7), n_embd=2048, n_head=32, n_head_kv=8,
                        head_dim=64, n_ff=8192, n_vocab=8192, tied=True, rope_base=500000.0, eps=1e-5,
                        n_ctx=131072, key_length=True, tok="bpe", pre="llama-bpe",
                        rope_scaling=dict(factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                          original_max_position_embeddings=8192)),
    # the same with the factors computed for an original context of 64
    # positions, so that they act within the tests' 100 (with the real 8192
    # they change only wavelengths above 2048 positions: invisible there)
    "llama3.2-1b-r64": dict(arch="llama", n_layer_real=16, layers=(0, 7), n_embd=2048, n_head=32, n_head_kv=8,
                            head_dim=64, n_ff=8192, n_vocab=8192, tied=True, rope_base=500000.0, eps=1e-5,
                            n_ctx=131072, key_length=True, tok="bpe", pre="llama-bpe",
                            rope_scaling=dict(factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                              original_max_position_embeddings=64)),
    "gemma3-270m": dict(arch="gemma3", n_layer_real=18, layers=tuple(range(6)), n_embd=640, n_head=4,
                        n_head_kv=1, head_dim=256, n_ff=2048, n_vocab=8192, tied=True, rope_base=1e6, eps=1e-6,
                        n_ctx=32768, qk_norm=True, post_norm=True, key_length=True, window=16, tok="spm-gemma"),
    "phi3-mini": dict(arch="phi3", n_layer_real=32, layers=(0, 16), n_embd=3072, n_head=32, n_head_kv=32,
                      head_dim=96, n_ff=8192, n_vocab=8192, tied=False, rope_base=10000.0, eps=1e-5, n_ctx=4096,
                      fused=True, window=2047, tok="spm-phi3"),
}
for _k, _v in ARCH_SHAPES.items():
    SHAPES[_k] = dict(_v, not_in_all=True)


def say(msg):
    print(f"gen_model: {msg}", file=sys.stderr, flush=True)


try:
    import numpy as np
    import gguf
    from gguf.quants import quantize
except ImportError as e:  # fall back to the benchmark venv, which pins gguf
    venv_py = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".venv", "bin", "python")
    if os.path.exists(venv_py) and os.path.realpath(sys.executable) != os.path.realpath(venv_py) \
            and not os.environ.get("KGEN_GEN_MODEL_REEXEC"):
        os.environ["KGEN_GEN_MODEL_REEXEC"] = "1"
        os.execv(venv_py, [venv_py, os.path.abspath(__file__)] + sys.argv[1:])
    print(f"gen_model: needs numpy and the PyPI package gguf ({e}); "
          "pip install gguf, or run sh bench/setup_peer.sh and use bench/.venv/bin/python", file=sys.stderr)
    sys.exit(3)

GGMLT = gguf.GGMLQuantizationType
FILE_TYPE = {  # general.file_type (llama_ftype)
    "Q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
    "Q4_1": gguf.LlamaFileType.MOSTLY_Q4_1,
    "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    "F16":  gguf.LlamaFileType.MOSTLY_F16,
}


# ── tokenizer ───────────────────────────────────────────────────────────────

def byte_to_unicode():
    """GPT-2's reversible map from the 256 byte values to printable characters."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    out, extra = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return out


def tokenizer(n_vocab):
    """(tokens, types, merges): a minimal valid GPT-2 BPE vocabulary of n_vocab tokens."""
    control = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    b2u = byte_to_unicode()
    byte_tokens = [b2u[b] for b in range(256)]
    merges = ["Ġ t", "Ġ a", "i n", "h e", "t h", "Ġt he"]
    merged = [m.replace(" ", "") for m in merges]
    tokens = control + byte_tokens + merged
    types = [gguf.TokenType.CONTROL] * len(control) + [gguf.TokenType.NORMAL] * (len(tokens) - len(control))
    n_fill = n_vocab - len(tokens)
    assert n_fill >= 0
    tokens += [f"fill{i}" for i in range(n_fill)]
    types += [gguf.TokenType.NORMAL] * n_fill
    assert len(set(tokens)) == n_vocab
    return tokens, [int(t) for t in types], merges


# ── tensors ─────────────────────────────────────────────────────────────────

def plan(shape, wtype):
    """[(name, numpy shape (rows, cols) or (n,), type name)] in file order."""
    s = SHAPES[shape]
    e, ff, hd = s["n_embd"], s["n_ff"], s["n_embd"] // s["n_head"]
    kv = s["n_head_kv"] * hd
    t = [("token_embd.weight", (s["n_vocab"], e), wtype)]
    for i in range(s["n_layer"]):
        b = f"blk.{i}."
        t += [(b + "attn_norm.weight", (e,), "F32"),
              (b + "attn_q.weight", (e, e), wtype),
              (b + "attn_k.weight", (kv, e), wtype),
              (b + "attn_v.weight", (kv, e), wtype),
              (b + "attn_output.weight", (e, e), wtype),
              (b + "ffn_norm.weight", (e,), "F32"),
              (b + "ffn_gate.weight", (ff, e), wtype),
              (b + "ffn_up.weight", (ff, e), wtype),
              (b + "ffn_down.weight", (e, ff), wtype)]
    t.append(("output_norm.weight", (e,), "F32"))
    if not s["tied"]:
        t.append(("output.weight", (s["n_vocab"], e), wtype))
    return t


def tensor_data(name, shape, ttype):
    """The tensor's bytes as the numpy array GGUFWriter writes."""
    if ttype == "F32":  # norms
        return np.ones(shape, dtype=np.float32)
    seed = int.from_bytes(hashlib.sha256(f"{SEED}:{name}".encode()).digest()[:8], "little")
    w = np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)
    w *= np.float32(SCALE)
    if ttype == "F16":
        return w.astype(np.float16)
    return quantize(w, GGMLT[ttype])


def nbytes(shape, ttype):
    block, size = gguf.GGML_QUANT_SIZES[GGMLT[ttype]]
    n = 1
    for d in shape:
        n *= d
    assert n % block == 0
    return n // block * size


# ── writing ─────────────────────────────────────────────────────────────────

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def write_gguf(path, shape, wtype):
    s = SHAPES[shape]
    w = gguf.GGUFWriter(path, "llama")
    w.add_type("model")
    w.add_name(f"kgen random {shape} {wtype}")
    w.add_description(f"random weights (seed {SEED}, N(0,1)*{SCALE}, norms 1) generated by kgen bench/gen_model.py v{GEN_VERSION}")
    w.add_vocab_size(s["n_vocab"])
    w.add_context_length(2048)
    w.add_embedding_length(s["n_embd"])
    w.add_feed_forward_length(s["n_ff"])
    w.add_block_count(s["n_layer"])
    w.add_head_count(s["n_head"])
    w.add_head_count_kv(s["n_head_kv"])
    w.add_rope_dimension_count(s["n_embd"] // s["n_head"])
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(FILE_TYPE[wtype])
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    tokens, types, merges = tokenizer(s["n_vocab"])
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_pad_token_id(2)
    w.add_add_bos_token(False)

    tensors = plan(shape, wtype)
    for name, shp, ttype in tensors:
        if ttype in ("F32", "F16"):
            w.add_tensor_info(name, shp, np.dtype(np.float32 if ttype == "F32" else np.float16), nbytes(shp, ttype))
        else:
            byte_shape = gguf.quant_shape_to_byte_shape(shp, GGMLT[ttype])
            w.add_tensor_info(name, byte_shape, np.dtype(np.uint8), nbytes(shp, ttype), raw_dtype=GGMLT[ttype])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    # Tensors are drawn and quantized by a pool of processes (each from its own
    # seed, so the file does not depend on the count), written in order.
    import multiprocessing
    with multiprocessing.Pool(JOBS) as pool:
        for (name, shp, ttype), data in zip(tensors, pool.imap(_tensor_data, tensors)):
            assert data.nbytes == nbytes(shp, ttype), name
            w.write_tensor_data(data)
    w.close()


# ── architecture shapes (issue 15) ─────────────────────────────────────────

def _mix_model():
    """tests/ref/mix_model.py (its random blocks and quantizer rules' helpers)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "ref"))
    sys.dont_write_bytecode = True
    import mix_model
    return mix_model


def llama3_rope_freqs(sh):
    """rope_freqs.weight as convert_hf_to_gguf.py's LlamaModel.generate_extra_tensors
    computes it from a "llama3" rope_scaling."""
    import math
    rs, base, dim = sh["rope_scaling"], sh["rope_base"], sh["head_dim"]
    factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old = rs["original_max_position_embeddings"]
    low_wl, high_wl = old / low, old / high
    freqs = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    out = []
    for f in freqs:
        wl = 2 * math.pi / f
        if wl < high_wl:
            out.append(1.0)
        elif wl > low_wl:
            out.append(factor)
        else:
            smooth = (old / wl - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def arch_types(sh, wtype):
    """{weight tensor name: GGML type name} for an architecture shape.
    Q4_K_M: llama.cpp's llama_tensor_get_type_impl for LLAMA_FTYPE_MOSTLY_Q4_K_M
    (src/llama-quant.cpp, as tests/ref/mix_model.py's mix_types cites rule by
    rule): default Q4_K; the output matrix (token_embd when tied) Q6_K;
    attn_v and ffn_down Q6_K on the use_more_bits layers; attn_qkv Q5_K;
    then tensor_type_fallback on rows that are not whole 256-blocks."""
    mm = _mix_model()
    T = gguf.GGMLQuantizationType
    E, F, L = sh["n_embd"], sh["n_ff"], sh["n_layer_real"]
    qd = sh["n_head"] * sh["head_dim"]
    cols = {"attn_output": qd, "ffn_down": F}
    names = ["attn_output", "ffn_down"] + (["attn_qkv", "ffn_up"] if sh.get("fused") else
                                            ["attn_q", "attn_k", "attn_v", "ffn_gate", "ffn_up"])
    out = {}
    if wtype in ("Q8_0", "Q4_0", "F16"):
        t = T[wtype]
        out["token_embd.weight"] = t
        if not sh["tied"]:
            out["output.weight"] = t
        for l in range(len(sh["layers"])):
            for n in names:
                out[f"blk.{l}.{n}.weight"] = t
        return {k: v.name for k, v in out.items()}
    q4k = T.Q4_K
    out_t = mm.fallback(T.Q6_K, E)
    if sh["tied"]:
        out["token_embd.weight"] = out_t
    else:
        out["output.weight"] = out_t
        out["token_embd.weight"] = mm.fallback(q4k, E)
    for l, i in enumerate(sh["layers"]):
        for n in names:
            t = q4k
            if wtype == "Q4_K_M":
                if n in ("attn_v", "ffn_down") and mm.use_more_bits(i, L):
                    t = T.Q6_K
                elif n == "attn_qkv":
                    t = T.Q5_K
            out[f"blk.{l}.{n}.weight"] = mm.fallback(t, cols.get(n, E))
    return {k: v.name for k, v in out.items()}


SPM_WORDS = ("the of and to in is was for on as with by that at from his it an are were which this be or has had "
             "not but first one their its new after who they have her she two been other when there all during "
             "into school time may years more most only over city some world would where later up such used many "
             "can state about national out known university united then made heat theory rest tree sea here ring "
             "there once upon village old man water sun light house day night small long little great").split()
SPM_PIECES = ("th he in er an re on at en nd ti es or te of ed is it al ar st to nt ng se ha as ou io le ve co me "
              "de hi ri ro ic ne ea ra ce li ch ll be ma si om ur").split()


def spm_vocab(n_vocab, flavour):
    """(tokens, scores, types, ids) of a small SentencePiece-style vocabulary
    (tokenizer.ggml.model "llama"), laid out as the real files lay theirs out:
    Gemma 3: <pad> <eos> <bos> <unk> ... <start_of_turn> <end_of_turn>
    (control, score -1000 as in the real file), byte tokens <0x00>..<0xFF>
    (score 0), then scored pieces; Phi-3 (Llama 2's layout): <unk> <s> </s>,
    the byte tokens, pieces, and Phi-3's added tokens at the end
    (<|endoftext|>, <|assistant|>, <|end|>, <|user|>, control)."""
    TT = gguf.TokenType
    toks, scores, types = [], [], []

    def add(t, s, ty):
        toks.append(t), scores.append(float(s)), types.append(int(ty))
    if flavour == "spm-gemma":
        for t in ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>"):
            add(t, -1000, TT.CONTROL)
        add("<start_of_turn>", -1000, TT.CONTROL)
        add("<end_of_turn>", -1000, TT.CONTROL)
        ids = dict(pad=0, eos=1, bos=2, unk=3)
    else:
        add("<unk>", 0, TT.UNKNOWN)
        add("<s>", 0, TT.CONTROL)
        add("</s>", 0, TT.CONTROL)
        ids = dict(unk=0, bos=1)
    for b in range(256):
        add(f"<0x{b:02X}>", 0, TT.BYTE)
    pieces = ["\u2581"] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + \
        [chr(c) for c in range(ord("A"), ord("Z") + 1)] + list("0123456789.,;:!?'\"()-") + \
        ["\u2581" + w for w in SPM_WORDS] + SPM_PIECES + ["\u2581" + c for c in "abcdefghijklmnopqrstuvwxyz"] + \
        ["\u2581\u2581", "\u2581\u2581\u2581\u2581"]
    seen = set()
    rank = 0
    for p in pieces:
        if p in seen:
            continue
        seen.add(p)
        add(p, -rank, TT.NORMAL)
        rank += 1
    tail = ["<|endoftext|>", "<|assistant|>", "<|end|>", "<|user|>"] if flavour == "spm-phi3" else []
    n_fill = n_vocab - len(toks) - len(tail)
    assert n_fill >= 0
    for i in range(n_fill):
        add(f"<unused{i}>", 0, TT.UNUSED)
    for t in tail:
        add(t, 0, TT.CONTROL)
    if flavour == "spm-phi3":
        ids.update(eos=toks.index("<|endoftext|>"), pad=toks.index("<|endoftext|>"))
    assert len(toks) == n_vocab and len(set(toks)) == n_vocab
    return toks, scores, types, ids


def write_arch_gguf(path, shape, wtype, sh=None):
    """One architecture shape (ARCH_SHAPES, or the dict sh of the same keys)
    in wtype, as llama.cpp's converter writes that architecture."""
    mm = _mix_model()
    sh = sh or SHAPES[shape]
    arch = sh["arch"]
    E, F, H, HKV, D = sh["n_embd"], sh["n_ff"], sh["n_head"], sh["n_head_kv"], sh["head_dim"]
    qd, kd, V, NL = H * D, HKV * D, sh["n_vocab"], len(sh["layers"])
    types = arch_types(sh, wtype)
    w = gguf.GGUFWriter(path, arch)
    w.add_type("model")
    w.add_name(f"kgen random {shape} {wtype}")
    w.add_description(f"random weights (seed {SEED}, random blocks) generated by kgen bench/gen_model.py "
                      f"v{GEN_VERSION}: the widths of the real model, {NL} of its {sh['n_layer_real']} layers, "
                      f"a {V}-token vocabulary")
    w.add_context_length(sh["n_ctx"])
    w.add_embedding_length(E)
    w.add_block_count(NL)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(HKV)
    w.add_layer_norm_rms_eps(sh["eps"])
    if arch == "phi3":  # Phi3MiniModel.set_gguf_parameters
        w.add_rope_dimension_count(D)
        w.add_rope_freq_base(sh["rope_base"])
        w.add_uint32(f"{arch}.rope.scaling.original_context_length", sh["n_ctx"])
        w.add_sliding_window(sh["window"])
    else:
        w.add_rope_freq_base(sh["rope_base"])
    if arch == "llama":  # LlamaModel: rope dimension = head size; vocab size
        w.add_vocab_size(V)
        w.add_rope_dimension_count(D)
    if sh.get("key_length"):  # head_dim in config.json
        w.add_key_length(D)
        w.add_value_length(D)
    if arch == "gemma3":
        w.add_sliding_window(sh["window"])
    w.add_file_type({"Q8_0": 7, "Q4_0": 2, "F16": 1, "Q4_K": 15, "Q4_K_M": 15}[wtype])
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    if sh["tok"] == "bpe":
        tokens, ttypes, merges = tokenizer(V)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(sh["pre"])
        w.add_token_list(tokens)
        w.add_token_types(ttypes)
        w.add_token_merges(merges)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_pad_token_id(2)
        w.add_add_bos_token(arch == "llama")
    else:
        tokens, scores, ttypes, ids = spm_vocab(V, sh["tok"])
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_scores(scores)
        w.add_token_types(ttypes)
        w.add_bos_token_id(ids["bos"])
        w.add_eos_token_id(ids["eos"])
        w.add_unk_token_id(ids["unk"])
        w.add_pad_token_id(ids["pad"])
        w.add_add_bos_token(True)
        w.add_add_eos_token(False)
        if arch == "gemma3":
            w.add_add_space_prefix(False)

    def rng_for(name):
        return np.random.default_rng(int.from_bytes(hashlib.sha256(f"{SEED}:{shape}:{wtype}:{name}".encode())
                                                    .digest()[:8], "little"))

    def weight(name, rows, cols, std):
        t = GGMLT[types[name]]
        data = mm.random_tensor(t, rows, cols, std, rng_for(name))
        if t in (GGMLT.F32, GGMLT.F16):
            w.add_tensor(name, data)
        else:
            w.add_tensor(name, data, raw_dtype=t)

    def vec(name, n, mean=1.0, spread=0.2):
        r = rng_for(name)
        w.add_tensor(name, (mean + spread * (r.random(n) - 0.5)).astype(np.float32))

    # token_embd: rows of RMS 4 / sqrt(n_embd), so that tied logits have a
    # standard deviation of about 4 (gemma3: x = row * sqrt(n_embd) has RMS 4)
    emb_std = 4.0 / np.sqrt(E)
    weight("token_embd.weight", V, E, emb_std)
    if arch == "llama" and sh.get("rope_scaling"):
        w.add_tensor("rope_freqs.weight", llama3_rope_freqs(sh))
    for l in range(NL):
        p = f"blk.{l}."
        vec(p + "attn_norm.weight", E)
        if sh.get("fused"):
            weight(p + "attn_qkv.weight", qd + 2 * kd, E, 1 / np.sqrt(E))
        else:
            # QK-norm: Q and K 3x larger than their inputs (as trained models'
            # are), so that leaving the norm out shows
            gq = 3.0 if sh.get("qk_norm") else 1.0
            weight(p + "attn_q.weight", qd, E, gq / np.sqrt(E))
            weight(p + "attn_k.weight", kd, E, gq / np.sqrt(E))
            weight(p + "attn_v.weight", kd, E, 1 / np.sqrt(E))
        if sh.get("bias"):  # Qwen2: biases on Q, K and V (K's large, as the real model's)
            vec(p + "attn_q.bias", qd, 0.0, 1.0)
            vec(p + "attn_k.bias", kd, 0.0, 4.0)
            vec(p + "attn_v.bias", kd, 0.0, 0.5)
        if sh.get("qk_norm"):
            vec(p + "attn_q_norm.weight", D)
            vec(p + "attn_k_norm.weight", D)
        weight(p + "attn_output.weight", E, qd, 1 / np.sqrt(qd))
        if sh.get("post_norm"):  # gains about 3: each layer's output outweighs the embedding (RMS 4)
            vec(p + "post_attention_norm.weight", E, 3.0, 2.0)
        vec(p + "ffn_norm.weight", E)
        if sh.get("fused"):
            weight(p + "ffn_up.weight", 2 * F, E, 1 / np.sqrt(E))
        else:
            weight(p + "ffn_gate.weight", F, E, 1 / np.sqrt(E))
            weight(p + "ffn_up.weight", F, E, 1 / np.sqrt(E))
        weight(p + "ffn_down.weight", E, F, 1 / np.sqrt(F))
        if sh.get("post_norm"):
            vec(p + "post_ffw_norm.weight", E, 3.0, 2.0)
    vec("output_norm.weight", E)
    if not sh["tied"]:
        weight("output.weight", V, E, 4.0 / np.sqrt(E))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _tensor_data(t):
    return tensor_data(*t)


def read_manifest(path):
    entries = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 3 and not line.startswith("#"):
                    entries[fields[0]] = fields[1:]
    return entries


def record(out_dir, fname, digest, size):
    """Add or replace FILE's line in the manifest, atomically, under a lock."""
    import fcntl
    manifest = os.path.join(out_dir, "manifest.txt")
    with open(os.path.join(out_dir, ".manifest.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        entries = read_manifest(manifest)
        entries[fname] = [digest, str(size), f"gen={GEN_VERSION}", f"seed={SEED}"]
        fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".manifest-")
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("# random-weight models generated by bench/gen_model.py: FILE SHA256 BYTES GENERATOR SEED\n")
            for k in sorted(entries):
                f.write(" ".join([k] + entries[k]) + "\n")
        os.replace(tmp, manifest)


def generate(shape, wtype, out_dir, force=False):
    fname = f"{shape}-{wtype}.gguf"
    path = os.path.join(out_dir, fname)
    want = read_manifest(os.path.join(out_dir, "manifest.txt")).get(fname)
    if os.path.exists(path) and not force:
        if want and want[2:4] == [f"gen={GEN_VERSION}", f"seed={SEED}"] and sha256(path) == want[0]:
            say(f"{fname}: present, SHA-256 verified")
            return path
        say(f"{fname}: " + ("not in the manifest" if not want else "SHA-256 or generator mismatch") + ": generating again")
    t0 = time.monotonic()
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{fname}.", suffix=".tmp")
    os.close(fd)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it 0600
        (write_arch_gguf if "arch" in SHAPES[shape] else write_gguf)(tmp, shape, wtype)
        digest, size = sha256(tmp), os.path.getsize(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    record(out_dir, fname, digest, size)
    say(f"{fname}: generated, {size / 1e6:.1f} MB in {time.monotonic() - t0:.1f} s")
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", action="append", choices=sorted(SHAPES), help="repeatable")
    ap.add_argument("--type", action="append", choices=sorted(set(TYPES + ARCH_TYPES)), help="repeatable")
    ap.add_argument("--all", action="store_true", help="every shape (but llama7b) and type")
    ap.add_argument("--out-dir", default="models/random")
    ap.add_argument("--force", action="store_true", help="generate even when present and valid")
    ap.add_argument("--list", action="store_true", help="print the file names and exit")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="processes (default: all CPUs)")
    a = ap.parse_args()
    global JOBS
    JOBS = max(1, a.jobs)
    shapes = sorted(k for k, v in SHAPES.items() if not v.get("not_in_all")) if a.all or not a.shape else a.shape
    types = list(TYPES) if a.all or not a.type else a.type
    if not a.all and not (a.shape and a.type) and not a.list:
        ap.error("give --shape and --type, or --all")
    if a.list:
        for s in shapes:
            for t in types:
                print(os.path.join(a.out_dir, f"{s}-{t}.gguf"))
        return
    os.makedirs(a.out_dir, exist_ok=True)
    for s in shapes:
        for t in types:
            if t not in (ARCH_TYPES if "arch" in SHAPES[s] else TYPES):
                ap.error(f"shape {s} takes the types {', '.join(ARCH_TYPES if 'arch' in SHAPES[s] else TYPES)}")
            generate(s, t, a.out_dir, a.force)


if __name__ == "__main__":
    main()
