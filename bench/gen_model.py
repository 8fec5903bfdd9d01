#!/usr/bin/env python3
"""gen_model.py — random-weight llama-architecture GGUFs for benchmarks.

    python3 bench/gen_model.py --shape tinyllama --type Q4_0 [--out-dir models/random]
    python3 bench/gen_model.py --all          # every shape x every type
    python3 bench/gen_model.py --list         # the names it would write

Shapes (real models' hyperparameters, random weights):

    shape      layers  embd  heads  kv  ff    vocab  output
    smollm2    30      576   9      3   1536  49152  tied to token_embd
    tinyllama  22      2048  32     4   5632  32000  separate output.weight
    llama7b    32      4096  32     32  11008 32000  separate output.weight
                                                  (LLaMA-2-7B; GPU benchmarks
                                                  only, not part of --all)

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
    sys.exit(f"gen_model: needs numpy and the PyPI package gguf ({e}); "
             "pip install gguf, or run sh bench/setup_peer.sh and use bench/.venv/bin/python")

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
        write_gguf(tmp, shape, wtype)
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
    ap.add_argument("--type", action="append", choices=TYPES, help="repeatable")
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
            generate(s, t, a.out_dir, a.force)


if __name__ == "__main__":
    main()
