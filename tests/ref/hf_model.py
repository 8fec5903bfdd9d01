#!/usr/bin/env python3
"""hf_model.py — random-weight Hugging Face decoder directories (LLaMA, Qwen2)
and an independent numpy forward pass over them, for kgen's tests of
Hugging Face models.

    hf_model.py write DIR --arch llama|qwen2 [--dtype f32|f16|bf16] [--shards N]
                          [--seed S] [--tie | --no-tie] [--vocab-from GGUF]
    hf_model.py ref DIR IDS_CSV OUT [-n N]
    hf_model.py check DIR DUMP... [--perturb KIND[,KIND]]
    hf_model.py convert SRC DST --dtype f32|f16|bf16 [--shards N]
    hf_model.py self-test DIR

`write` makes DIR with
  config.json      architectures [LlamaForCausalLM] / [Qwen2ForCausalLM],
                   model_type, hidden_size 256, intermediate_size 640,
                   num_attention_heads 4, num_key_value_heads 2, head_dim 64,
                   num_hidden_layers 2, rms_norm_eps (llama 1e-5, qwen2 1e-6),
                   rope_theta (llama 10000, qwen2 1000000), rope_scaling null,
                   max_position_embeddings 2048, vocab_size 49152,
                   hidden_act silu, tie_word_embeddings (default: llama true,
                   qwen2 false, so both layouts are exercised), torch_dtype
                   (float32 / float16 / bfloat16), bos_token_id 1,
                   eos_token_id 2, attention_bias (llama false; qwen2 has
                   q/k/v biases and no such key)
  model.safetensors, or with --shards N > 1 model-0000k-of-0000N.safetensors
                   and model.safetensors.index.json ({"metadata":
                   {"total_size"}, "weight_map"}), tensors in Hugging Face's
                   names and [out, in] layout:
                   model.embed_tokens.weight [V, E];
                   model.layers.L.self_attn.{q,k,v,o}_proj.weight
                   (+ {q,k,v}_proj.bias for qwen2);
                   model.layers.L.mlp.{gate,up,down}_proj.weight;
                   model.layers.L.{input,post_attention}_layernorm.weight;
                   model.norm.weight; lm_head.weight unless tied.
                   F32 and F16 files are written by the `safetensors` package
                   (numpy API); BF16 (which numpy lacks) by write_safetensors()
                   here, same layout (8-byte little-endian header length, JSON
                   header with "__metadata__": {"format": "pt"}, data in
                   header order), rounding float32 to nearest-even.
  tokenizer.json   SmolLM2's byte-level BPE, built with `tokenizers` from the
                   vocabulary and merges of models/SmolLM2-135M-Instruct.Q4_1.gguf
                   (--vocab-from): the pre-tokenizer llama.cpp calls "smollm"
                   (every digit alone, then GPT-2's byte-level regex split), a
                   ByteLevel decoder, the control tokens (type 3) as special
                   added tokens. The real vocabulary (49152) keeps the widths
                   true (the embedding and output products are the model's
                   largest) and lets `kgen run DIR -p TEXT` tokenize.
  tokenizer_config.json  bos/eos/unk/pad tokens, add_bos_token false, the
                   GGUF's chat template, model_max_length.
Weights: normal, seed --seed (default 0): embedding and lm_head std
4/sqrt(E) (logits of standard deviation about 4: greedy choices are not
near-ties), q_proj and k_proj 2/sqrt(E) (sharp attention, so that a wrong
RoPE pairing or GQA map changes the logits a lot), other products
1/sqrt(in), biases 0.5, norm weights 1 + U(-0.1, 0.1). The same arguments
give the same bytes.

`convert` copies a Hugging Face directory SRC (every file, subdirectories
such as 1_Pooling/ included) to DST with its weights rewritten as --dtype
(floating tensors only; integer ones such as BERT's position_ids keep their
type) in --shards files, and config.json's torch_dtype set to match: the
F16/BF16 and sharded variants of all-MiniLM-L6-v2 for the encoder tests.

`ref` runs the reference over DIR (weights read by bert_ref.py's own
safetensors reader, F32/F16/BF16, shards through the index) on the prompt
ids IDS_CSV ("1,2,3"), greedily generates N tokens (-n, default 8), prints
"generated ID,ID,..." and writes OUT in the format of kgen's --dump-logits
(tests/ref/check_e2e.py, read_dump/write_dump): "KGLG", int32 n_vocab,
n_prompt, n_gen, the prompt ids, the generated ids, float32 logits
[n_gen][n_vocab] (logits[i]: the distribution gen_ids[i] was chosen from,
at sequence position n_prompt - 1 + i; logits[0] is the last prompt
position's).

`check` compares kgen's dumps (kgen run DIR -p ... -n N --temp 0
--ignore-eos --dump-logits F) with this reference through check_e2e.py's
compare() and tolerances (logits at every generated step, on kgen's own
tokens; greedy choice equal or a near-tie). --perturb compares with a wrong reference instead (adjacent-rope: RoPE on
adjacent pairs; kv-modulo: query head h on KV head h % n_kv; no-bias: the
q/k/v biases left out), which a correct kgen dump must fail. `self-test` checks that the
checker fails wrong models: the reference with adjacent-pair RoPE (GGUF's
"normal" mode applied to Hugging Face's unpermuted weights: the mistake the
C side's conversion must avoid), with GQA heads mapped h % n_kv, or without
the q/k/v biases, must fail; f16-rounded activations must pass.

The forward pass (Hugging Face's modeling_llama.py / modeling_qwen2.py, in
float64 with the weights as stored):
  x = embed_tokens[ids]
  per layer:  h = rmsnorm(x) * input_layernorm      (x / sqrt(mean(x^2) + eps))
              q, k, v = h Wq^T (+ bq), h Wk^T (+ bk), h Wv^T (+ bv)
              q, k = rope(q), rope(k): rotate-half (x[i], x[i + d/2]) pairs,
                     angle pos * theta^(-2i/d), i < d/2, on the weights as
                     stored (no permutation)
              a = softmax(q k^T / sqrt(d) + causal) v;  query head h reads KV
                  head h // (n_head / n_kv)  (repeat_kv)
              x += a Wo^T
              h = rmsnorm(x) * post_attention_layernorm
              x += (silu(h Wgate^T) * (h Wup^T)) Wdown^T
  logits = (rmsnorm(x) * norm) lm_head^T       (lm_head = embed_tokens if tied)

Exit status: 0 ok, 1 a check failed or a directory it cannot read (the
message names the file and key), 2 bad usage, 3 a Python package missing
(numpy, tokenizers; write: gguf, safetensors; check, self-test: gguf) or,
for write, the vocabulary GGUF (run `make models`).

Timings (this 2-core machine, shared): write 3-16 s (most of it reading
the GGUF's 49152 tokens and merges), ref -n 8 on a 10-token prompt 2-3 s,
self-test -n 8 4-5 s.
"""
import argparse
import json
import math
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.dont_write_bytecode = True
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

try:
    import numpy as np
except ImportError:
    print("hf_model: the Python package 'numpy' is needed (tests/ref/requirements.txt)", file=sys.stderr)
    sys.exit(3)
sys.path.insert(0, HERE)
from bert_ref import BadModel, read_hf_weights  # noqa: E402  (exits 3 without tokenizers)

SHAPE = dict(hidden=256, ff=640, heads=4, kv_heads=2, head_dim=64, layers=2, vocab=49152, ctx=2048)
ARCH = {
    "llama": dict(cls="LlamaForCausalLM", eps=1e-5, theta=10000.0, bias=False, tie=True),
    "qwen2": dict(cls="Qwen2ForCausalLM", eps=1e-6, theta=1000000.0, bias=True, tie=False),
}


# ── writing ─────────────────────────────────────────────────────────────
def bf16_bits(a):
    """float32 -> bfloat16 bit patterns (uint16), round to nearest even."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


_ST_INT = {np.dtype("int64"): "I64", np.dtype("int32"): "I32", np.dtype("int8"): "I8", np.dtype("uint8"): "U8"}


def write_safetensors(path, tensors, dtype):
    """tensors: name -> array; floating ones written as dtype ("F32", "F16",
    "BF16"), integer ones as they are (I64, I32, I8, U8)."""
    if dtype in ("F32", "F16"):
        from safetensors.numpy import save_file
        npdt = np.float32 if dtype == "F32" else np.float16
        save_file({k: np.ascontiguousarray(v, dtype=npdt if v.dtype.kind == "f" else v.dtype)
                   for k, v in tensors.items()}, path, metadata={"format": "pt"})
        return
    hdr, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for k, v in tensors.items():
        if v.dtype.kind == "f":
            b, dt = bf16_bits(v).tobytes(), "BF16"
        else:
            b, dt = np.ascontiguousarray(v, dtype=v.dtype.newbyteorder("<")).tobytes(), _ST_INT[v.dtype]
        hdr[k] = {"dtype": dt, "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # the data section 8-aligned, as the package does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def write_weights(d, t, dtype, shards):
    """t (name -> array) into d as model.safetensors, or with shards > 1 as
    model-0000k-of-0000N.safetensors and model.safetensors.index.json; the
    model*.safetensors / *.index.json files already there are removed first.
    Returns None, or why not."""
    names = list(t)
    if shards > len(names):
        return f"--shards {shards}: only {len(names)} tensors"
    for old in os.listdir(d):  # a rewrite must not leave another layout's files behind
        if old.startswith("model") and (old.endswith(".safetensors") or old.endswith(".index.json")):
            os.remove(os.path.join(d, old))
    if shards <= 1:
        write_safetensors(os.path.join(d, "model.safetensors"), t, dtype)
        return None
    fsize = {"F32": 4, "F16": 2, "BF16": 2}[dtype]
    nbytes = {k: t[k].size * (fsize if t[k].dtype.kind == "f" else t[k].dtype.itemsize) for k in names}
    total = sum(nbytes.values())
    parts, cur, acc = [[] for _ in range(shards)], 0, 0
    for j, k in enumerate(names):
        # in order; the next shard once this one has its share of the bytes,
        # or when the tensors left are just enough to give each shard one
        left = len(names) - j
        if cur < shards - 1 and parts[cur] and (acc >= total * (cur + 1) / shards or left == shards - 1 - cur):
            cur += 1
        parts[cur].append(k)
        acc += nbytes[k]
    wm = {}
    for i, ks in enumerate(parts):
        fn = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        write_safetensors(os.path.join(d, fn), {k: t[k] for k in ks}, dtype)
        wm.update({k: fn for k in ks})
    with open(os.path.join(d, "model.safetensors.index.json"), "w", encoding="utf-8") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": wm}, f, indent=2)
    return None


def gguf_vocab(path):
    from gguf import GGUFReader, GGUFValueType
    r = GGUFReader(path)

    def field(k):
        f = r.fields[k]
        if f.types[0] == GGUFValueType.ARRAY:
            if f.types[1] == GGUFValueType.STRING:
                return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
            return [f.parts[i].tolist()[0] for i in f.data]
        if f.types[0] == GGUFValueType.STRING:
            return bytes(f.parts[f.data[0]]).decode("utf-8")
        return f.parts[f.data[0]].tolist()[0]
    if field("tokenizer.ggml.model") != "gpt2" or field("tokenizer.ggml.pre") != "smollm":
        raise BadModel(f"{path}: not a gpt2/smollm vocabulary")
    return (field("tokenizer.ggml.tokens"), field("tokenizer.ggml.token_type"), field("tokenizer.ggml.merges"),
            field("tokenizer.chat_template"))


def write_tokenizer(d, gguf_path):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    tokens, types, merges, template = gguf_vocab(gguf_path)
    if len(tokens) != SHAPE["vocab"]:
        raise BadModel(f"{gguf_path}: {len(tokens)} tokens, expected {SHAPE['vocab']}")
    tk = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)},
                              merges=[tuple(m.split(" ", 1)) for m in merges]))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3])
    tk.save(os.path.join(d, "tokenizer.json"))
    cfg = {"tokenizer_class": "GPT2Tokenizer", "bos_token": tokens[1], "eos_token": tokens[2],
           "unk_token": tokens[0], "pad_token": tokens[2], "add_bos_token": False, "add_prefix_space": False,
           "model_max_length": SHAPE["ctx"], "chat_template": template}
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)


def make_weights(arch, seed, tie):
    rng = np.random.default_rng(seed)
    E, F, H, HKV, D, V = (SHAPE[k] for k in ("hidden", "ff", "heads", "kv_heads", "head_dim", "vocab"))
    t = {}

    def mat(name, rows, cols, std):
        t[name] = (rng.standard_normal((rows, cols)) * std).astype(np.float32)

    def norm(name, n):
        t[name] = (1.0 + 0.2 * (rng.random(n) - 0.5)).astype(np.float32)
    mat("model.embed_tokens.weight", V, E, 4.0 / math.sqrt(E))
    for l in range(SHAPE["layers"]):
        p = f"model.layers.{l}."
        norm(p + "input_layernorm.weight", E)
        mat(p + "self_attn.q_proj.weight", H * D, E, 2.0 / math.sqrt(E))
        mat(p + "self_attn.k_proj.weight", HKV * D, E, 2.0 / math.sqrt(E))
        mat(p + "self_attn.v_proj.weight", HKV * D, E, 1.0 / math.sqrt(E))
        if ARCH[arch]["bias"]:
            for n, rows in (("q", H * D), ("k", HKV * D), ("v", HKV * D)):
                t[p + f"self_attn.{n}_proj.bias"] = (rng.standard_normal(rows) * 0.5).astype(np.float32)
        mat(p + "self_attn.o_proj.weight", E, H * D, 1.0 / math.sqrt(H * D))
        norm(p + "post_attention_layernorm.weight", E)
        mat(p + "mlp.gate_proj.weight", F, E, 1.0 / math.sqrt(E))
        mat(p + "mlp.up_proj.weight", F, E, 1.0 / math.sqrt(E))
        mat(p + "mlp.down_proj.weight", E, F, 1.0 / math.sqrt(F))
    norm("model.norm.weight", E)
    if not tie:
        mat("lm_head.weight", V, E, 4.0 / math.sqrt(E))
    return t


def cmd_write(args):
    a = ARCH[args.arch]
    tie = a["tie"] if args.tie is None else args.tie
    dtype = {"f32": "F32", "f16": "F16", "bf16": "BF16"}[args.dtype]
    os.makedirs(args.dir, exist_ok=True)
    cfg = {"architectures": [a["cls"]], "model_type": args.arch, "hidden_size": SHAPE["hidden"],
           "intermediate_size": SHAPE["ff"], "num_attention_heads": SHAPE["heads"],
           "num_key_value_heads": SHAPE["kv_heads"], "head_dim": SHAPE["head_dim"],
           "num_hidden_layers": SHAPE["layers"], "rms_norm_eps": a["eps"], "rope_theta": a["theta"],
           "rope_scaling": None, "max_position_embeddings": SHAPE["ctx"], "vocab_size": SHAPE["vocab"],
           "hidden_act": "silu", "tie_word_embeddings": tie,
           "torch_dtype": {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}[args.dtype],
           "bos_token_id": 1, "eos_token_id": 2, "initializer_range": 0.02, "use_cache": True}
    if args.arch == "llama":
        cfg.update(attention_bias=False, mlp_bias=False, pretraining_tp=1)
    else:
        cfg.update(use_sliding_window=False, sliding_window=SHAPE["ctx"], max_window_layers=SHAPE["layers"])
    with open(os.path.join(args.dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2)
    try:
        write_tokenizer(args.dir, args.vocab_from)
    except (OSError, KeyError, BadModel) as e:
        print(f"hf_model: the tokenizer: {e}", file=sys.stderr)
        return 1
    t = make_weights(args.arch, args.seed, tie)
    why = write_weights(args.dir, t, dtype, args.shards)
    if why:
        print(f"hf_model: {why}", file=sys.stderr)
        return 2
    names = list(t)
    print(f"hf_model: wrote {args.dir}: {args.arch} {args.dtype}, {len(names)} tensors in "
          f"{max(args.shards, 1)} file(s), tie_word_embeddings {str(tie).lower()}, seed {args.seed}")
    return 0


def cmd_convert(args):
    """SRC (any Hugging Face directory: all-MiniLM-L6-v2) copied to DST with
    its weights rewritten as --dtype, in --shards files."""
    import shutil
    if os.path.abspath(args.src) == os.path.abspath(args.dst):
        print("hf_model: convert: SRC and DST are the same directory", file=sys.stderr)
        return 2
    t = read_hf_weights(args.src)  # float32 for every float dtype, integers as stored
    for root, _, files in os.walk(args.src):
        rel = os.path.relpath(root, args.src)
        os.makedirs(os.path.join(args.dst, rel), exist_ok=True)
        for fn in files:
            if rel == "." and fn.startswith("model") and (fn.endswith(".safetensors") or fn.endswith(".index.json")):
                continue
            shutil.copyfile(os.path.join(root, fn), os.path.join(args.dst, rel, fn))
    dtype = {"f32": "F32", "f16": "F16", "bf16": "BF16"}[args.dtype]
    why = write_weights(args.dst, t, dtype, args.shards)
    if why:
        print(f"hf_model: {why}", file=sys.stderr)
        return 2
    cp = os.path.join(args.dst, "config.json")
    if os.path.exists(cp):  # say the new dtype, as a converted checkpoint would
        with open(cp, encoding="utf-8") as f:
            c = json.load(f)
        c["torch_dtype"] = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}[args.dtype]
        with open(cp, "w", encoding="utf-8") as f:
            json.dump(c, f, indent=2)
    print(f"hf_model: wrote {args.dst}: {len(t)} tensors of {args.src} as {args.dtype} in {max(args.shards, 1)} file(s)")
    return 0


# ── the reference ───────────────────────────────────────────────────────
class HFRef:
    def __init__(self, d):
        self.path = d
        cp = os.path.join(d, "config.json")
        try:
            with open(cp, encoding="utf-8") as f:
                c = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise BadModel(f"{cp}: {e}")
        arch = c.get("model_type")
        if arch not in ARCH:
            raise BadModel(f"{cp}: model_type {arch!r} (llama, qwen2)")
        if c.get("rope_scaling"):
            raise BadModel(f"{cp}: rope_scaling is not supported here")
        if c.get("hidden_act", "silu") != "silu":
            raise BadModel(f"{cp}: hidden_act {c['hidden_act']!r}")

        def need(k):
            if k not in c:
                raise BadModel(f"{cp}: no key {k}")
            return c[k]
        self.arch = arch
        self.E, self.n_layer = int(need("hidden_size")), int(need("num_hidden_layers"))
        self.H = int(need("num_attention_heads"))
        self.HKV = int(c.get("num_key_value_heads", self.H))
        self.D = int(c.get("head_dim") or self.E // self.H)
        self.eps, self.theta = float(need("rms_norm_eps")), float(c.get("rope_theta", 10000.0))
        self.n_vocab = int(need("vocab_size"))
        self.w = {k: v.astype(np.float64) for k, v in read_hf_weights(d).items()}
        self.tied = bool(c.get("tie_word_embeddings", False)) or "lm_head.weight" not in self.w
        if "lm_head.weight" not in self.w and not c.get("tie_word_embeddings", False):
            raise BadModel(f"{d}: no tensor lm_head.weight and tie_word_embeddings is not true")
        if self.H % self.HKV:
            raise BadModel(f"{cp}: num_attention_heads {self.H} not a multiple of num_key_value_heads {self.HKV}")
        E, D, H, HKV = self.E, self.D, self.H, self.HKV
        want = {"model.embed_tokens.weight": (self.n_vocab, E), "model.norm.weight": (E,)}
        for l in range(self.n_layer):
            p = f"model.layers.{l}."
            want.update({p + "self_attn.q_proj.weight": (H * D, E), p + "self_attn.k_proj.weight": (HKV * D, E),
                         p + "self_attn.v_proj.weight": (HKV * D, E), p + "self_attn.o_proj.weight": (E, H * D),
                         p + "mlp.gate_proj.weight": None, p + "mlp.up_proj.weight": None,
                         p + "mlp.down_proj.weight": None, p + "input_layernorm.weight": (E,),
                         p + "post_attention_layernorm.weight": (E,)})
        for n, shp in want.items():
            if n not in self.w:
                raise BadModel(f"{d}: no tensor {n}")
            if shp is not None and self.w[n].shape != shp:
                raise BadModel(f"{d}: tensor {n} is {self.w[n].shape}, config.json gives {shp}")
        self.reset_knobs()

    def reset_knobs(self):
        self.rope_pairs = "half"   # "adjacent": (x[2i], x[2i+1]), a wrong model for self-test
        self.kv_map = "grouped"    # "modulo": h % n_kv, a wrong model
        self.biases = True
        self.act_f16 = False       # round every product's input to float16 (kgen-like noise)

    def rms(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def mm(self, x, name):
        if self.act_f16:
            x = x.astype(np.float16).astype(np.float64)
        y = x @ self.w[name].T
        b = name[:-len(".weight")] + ".bias"
        if self.biases and b in self.w:
            y = y + self.w[b]
        return y

    def rope(self, x, pos):
        """x [T, heads, D]."""
        D = self.D
        inv = self.theta ** (-np.arange(0, D, 2, dtype=np.float64) / D)  # [D/2]
        ang = pos[:, None].astype(np.float64) * inv[None, :]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        if self.rope_pairs == "half":
            x1, x2 = x[..., :D // 2], x[..., D // 2:]
            return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)
        y = x.copy()
        x1, x2 = x[..., 0::2], x[..., 1::2]
        y[..., 0::2], y[..., 1::2] = x1 * c - x2 * s, x2 * c + x1 * s
        return y

    def forward(self, tokens, first=0):
        """Logits [len(tokens) - first, n_vocab] (float32), one causal forward."""
        ids = np.asarray(tokens, dtype=np.int64)
        if ids.ndim != 1 or len(ids) == 0 or ids.min() < 0 or ids.max() >= self.n_vocab:
            raise ValueError(f"token ids must be a non-empty list in [0, {self.n_vocab})")
        T, H, HKV, D = len(ids), self.H, self.HKV, self.D
        pos = np.arange(T)
        x = self.w["model.embed_tokens.weight"][ids]
        kv = np.arange(H) // (H // HKV) if self.kv_map == "grouped" else np.arange(H) % HKV
        causal = np.triu(np.full((T, T), -np.inf), 1)
        for l in range(self.n_layer):
            p = f"model.layers.{l}."
            h = self.rms(x, self.w[p + "input_layernorm.weight"])
            q = self.rope(self.mm(h, p + "self_attn.q_proj.weight").reshape(T, H, D), pos)
            k = self.rope(self.mm(h, p + "self_attn.k_proj.weight").reshape(T, HKV, D), pos)
            v = self.mm(h, p + "self_attn.v_proj.weight").reshape(T, HKV, D)
            s = np.einsum("thd,shd->hts", q, k[:, kv]) / math.sqrt(D) + causal
            s -= s.max(axis=-1, keepdims=True)
            pr = np.exp(s)
            pr /= pr.sum(axis=-1, keepdims=True)
            a = np.einsum("hts,shd->thd", pr, v[:, kv]).reshape(T, H * D)
            x = x + self.mm(a, p + "self_attn.o_proj.weight")
            h = self.rms(x, self.w[p + "post_attention_layernorm.weight"])
            g = self.mm(h, p + "mlp.gate_proj.weight")
            x = x + self.mm(g / (1.0 + np.exp(-g)) * self.mm(h, p + "mlp.up_proj.weight"), p + "mlp.down_proj.weight")
        h = self.rms(x[first:], self.w["model.norm.weight"])
        out = self.w["model.embed_tokens.weight" if self.tied else "lm_head.weight"]
        return (h @ out.T).astype(np.float32)

    def generate(self, tokens, n):
        """Greedy: (n ids, logits [n, n_vocab] each was chosen from); a full
        forward per step (the model is small)."""
        seq, ids, rows = list(tokens), [], []
        for _ in range(n):
            row = self.forward(seq, first=len(seq) - 1)[-1]
            ids.append(int(np.argmax(row)))
            rows.append(row)
            seq.append(ids[-1])
        return ids, np.array(rows, dtype=np.float32).reshape(n, self.n_vocab)


def _e2e():
    try:
        import check_e2e
    except SystemExit:  # check_e2e exits 77 without numpy/gguf
        print("hf_model: check needs tests/ref/check_e2e.py's packages (numpy, gguf)", file=sys.stderr)
        sys.exit(3)
    return check_e2e


def cmd_ref(args):
    m = HFRef(args.dir)
    try:
        tokens = [int(t) for t in args.ids.split(",") if t.strip()]
    except ValueError:
        print("hf_model: IDS_CSV takes comma-separated integers", file=sys.stderr)
        return 2
    ids, logits = m.generate(tokens, args.n)
    _e2e().write_dump(args.out, m.n_vocab, tokens, ids, logits)
    top = np.argsort(-logits[0])[:5]
    print("last prompt position: top " + " ".join(f"{int(i)}:{logits[0, i]:.4f}" for i in top))
    print("generated " + ",".join(map(str, ids)))
    return 0


PERTURB = {"adjacent-rope": ("rope_pairs", "adjacent"), "kv-modulo": ("kv_map", "modulo"),
           "no-bias": ("biases", False)}


def cmd_check(args, m=None):
    e2e = _e2e()
    m = m or HFRef(args.dir)
    for k in filter(None, args.perturb.split(",")):
        setattr(m, *PERTURB[k])
    print(e2e.HEADER)
    failed = 0
    for path in args.dumps:
        try:
            p, g, lg = e2e.read_dump(path, m.n_vocab)
        except (OSError, e2e.DumpError) as e:
            print(f"{os.path.basename(path)[:38]:<38} {e}")
            failed += 1
            continue
        r = e2e.compare(m, p, g, lg)
        print(e2e.row(os.path.basename(path), r))
        for e in r["errors"]:
            print(f"    {e}")
        failed += bool(r["errors"])
    print(f"{len(args.dumps) - failed}/{len(args.dumps)} dumps pass")
    return 1 if failed else 0


SELF_TEST_PROMPT = [1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198,
                    504, 2365, 6354, 16438, 27003, 690, 260, 23790, 2767, 30, 4027, 1980]


def cmd_self_test(args):
    import tempfile
    e2e = _e2e()
    m = HFRef(args.dir)
    cases = [("f16 activations", dict(act_f16=True), True),
             ("adjacent-pair rope", dict(rope_pairs="adjacent"), False),
             ("GQA heads h % n_kv", dict(kv_map="modulo"), False)]
    if any(k.endswith(".bias") for k in m.w):
        cases.append(("no q/k/v biases", dict(biases=False), False))
    bad = []
    print(e2e.HEADER)
    with tempfile.TemporaryDirectory(prefix="hf-model-self-") as work:
        for name, knobs, should_pass in cases:
            for k, v in knobs.items():
                setattr(m, k, v)
            ids, logits = m.generate(SELF_TEST_PROMPT, args.n)
            m.reset_knobs()
            path = os.path.join(work, "dump.kglg")
            e2e.write_dump(path, m.n_vocab, SELF_TEST_PROMPT, ids, logits)
            r = e2e.compare(m, *e2e.read_dump(path, m.n_vocab))
            print(e2e.row(f"{name} ({'must pass' if should_pass else 'must fail'})", r))
            if should_pass == bool(r["errors"]):
                bad.append(f"{name}: " + ("; ".join(r["errors"]) if r["errors"] else "a wrong model passed"))
    for b in bad:
        print(f"self-test: {b}")
    print("self-test:", "FAIL" if bad else "ok")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description="random Hugging Face decoders and their numpy reference")
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("dir")
    w.add_argument("--arch", choices=sorted(ARCH), required=True)
    w.add_argument("--dtype", choices=("f32", "f16", "bf16"), default="f32")
    w.add_argument("--shards", type=int, default=1)
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--tie", dest="tie", action="store_true", default=None)
    w.add_argument("--no-tie", dest="tie", action="store_false")
    w.add_argument("--vocab-from", default=os.path.join(os.environ.get("KGEN_MODELS", os.path.join(ROOT, "models")),
                                                        "SmolLM2-135M-Instruct.Q4_1.gguf"))
    r = sub.add_parser("ref")
    r.add_argument("dir")
    r.add_argument("ids")
    r.add_argument("out")
    r.add_argument("-n", type=int, default=8)
    c = sub.add_parser("check")
    c.add_argument("dir")
    c.add_argument("dumps", nargs="+")
    c.add_argument("--perturb", default="", help="compare with a wrong reference (must fail): "
                   + ", ".join(PERTURB) + " (comma-separated)")
    v = sub.add_parser("convert")
    v.add_argument("src")
    v.add_argument("dst")
    v.add_argument("--dtype", choices=("f32", "f16", "bf16"), required=True)
    v.add_argument("--shards", type=int, default=1)
    s = sub.add_parser("self-test")
    s.add_argument("dir")
    s.add_argument("-n", type=int, default=4)
    args = ap.parse_args()
    if args.cmd in ("write", "convert") and not 1 <= args.shards <= 99:
        ap.error("--shards must be in [1, 99]")
    if args.cmd == "check" and any(k not in PERTURB for k in filter(None, args.perturb.split(","))):
        ap.error("--perturb takes " + ", ".join(PERTURB))
    if args.cmd == "write" and not os.path.exists(args.vocab_from):
        print(f"hf_model: skipped: {args.vocab_from} not found: run 'make models'", file=sys.stderr)
        return 3
    try:
        if args.cmd == "write":
            try:
                import gguf  # noqa: F401
                import safetensors  # noqa: F401
            except ImportError:
                print("hf_model: write needs the Python packages 'gguf' and 'safetensors'", file=sys.stderr)
                return 3
            return cmd_write(args)
        if args.cmd == "convert":
            try:
                import safetensors  # noqa: F401
            except ImportError:
                print("hf_model: convert needs the Python package 'safetensors'", file=sys.stderr)
                return 3
            return cmd_convert(args)
        if args.cmd == "ref":
            return cmd_ref(args)
        if args.cmd == "check":
            return cmd_check(args)
        return cmd_self_test(args)
    except (BadModel, ValueError) as e:
        print(f"hf_model: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
