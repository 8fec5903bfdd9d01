#!/usr/bin/env python3
"""bert_ref.py MODEL SENTENCES OUT [--max-len L] [--batch B] [--pad-to-max] [--in-order]
               [--tokenizer tokenizer.json] [--no-normalize]
— an independent numpy forward pass of a BERT sentence encoder
(sentence-transformers: all-MiniLM-L6-v2 and its kind), for kgen's tests.

MODEL is either
  - a Hugging Face directory: config.json (BertModel), model.safetensors or
    model.safetensors.index.json with its shards, tokenizer.json (or
    vocab.txt), and sentence-transformers' modules.json,
    sentence_bert_config.json and the Pooling module's config.json; or
  - a GGUF file in llama.cpp's `bert` architecture (tests/ref/bert_gguf.py
    writes one from a Hugging Face directory; its docstring lists the
    conventions).

It shares no code with kgen. Safetensors files are read here (the 8-byte
little-endian header length, the JSON header, each tensor's data_offsets),
F32, F16 and BF16 (BF16: the 16 bits are the high half of a float32); GGUF
with the PyPI `gguf` package (llama.cpp's own reader); text is tokenized by
Hugging Face's `tokenizers`.

Tokens (as sentence-transformers' Transformer.tokenize with the fast
tokenizer): if sentence_bert_config.json says do_lower_case, the text is
lowercased first; then tokenizer.json's pipeline (BertNormalizer,
BertPreTokenizer, WordPiece, the [CLS] A [SEP] template), with its own
padding and truncation settings replaced: truncation to L tokens in all,
[CLS] and [SEP] included (the words past L - 2 are dropped, [SEP] kept).
  L = --max-len, else sentence_bert_config.json's max_seq_length, else
      config.json's max_position_embeddings (GGUF: bert.context_length, which
      for MiniLM is 512, not sentence-transformers' 256: pass --max-len 256
      to compare with the Hugging Face directory or with kgen --max-len 256).
From a GGUF, without --tokenizer, the WordPiece vocabulary is rebuilt from
tokenizer.ggml.tokens by undoing llama.cpp's "phantom space" rewrite
(convert_hf_to_gguf.py, BertModel.set_vocab: a CONTROL token is kept as is,
a word-initial token gets a leading U+2581, a "##" continuation loses its
"##"), and run with BertNormalizer(lowercase=True, strip accents,
clean text, CJK split) — the GGUF has no key for casing, and llama.cpp's
WPM tokenizer always lowercases — BertPreTokenizer, WordPiece (unknown:
tokenizer.ggml.unknown_token_id, words over 100 characters -> unknown),
[CLS] = tokenizer.ggml.cls_token_id (else bos: gguf 0.19's SpecialVocab
writes no cls key), [SEP] = seperator (else eos), and the CONTROL tokens'
texts matched in the input as those tokens (as tokenizer.json's special
added tokens are: "[CLS]" typed in a sentence is id 101).

The forward pass (Hugging Face's modeling_bert.py BertModel, eval mode), all
in float64 (weights widened from what the file stores):
  x = word_embeddings[ids] + position_embeddings[0..n-1] + token_type_embeddings[0]
  x = LayerNorm(x)                                (eps: config layer_norm_eps;
                                                   GGUF: bert.attention.layer_norm_epsilon)
  per layer:
    q, k, v = x Wq^T + bq, x Wk^T + bk, x Wv^T + bv     (heads of hidden/heads)
    a = softmax(q k^T / sqrt(head_dim) + mask) v  bidirectional; mask -inf on
                                                  the padding keys of the batch
    x = LayerNorm(x + a Wo^T + bo)                 (attention.output)
    h = GELU(x Wi^T + bi)                          exact erf GELU for hidden_act
                                                   "gelu" (GGUF: always);
                                                   "gelu_new"/"gelu_pytorch_tanh":
                                                   the tanh form
    x = LayerNorm(x + h Wo2^T + bo2)               (output)
  pooling (the Pooling module's config.json, over the sentence's real
  tokens, [CLS] and [SEP] included): mean (pooling_mode_mean_tokens), cls,
  max, mean_sqrt_len (sum / sqrt(n)), lasttoken; GGUF: bert.pooling_type
  (1 mean, 2 cls, 3 last). Then, if modules.json lists
  sentence_transformers.models.Normalize, e / |e| (GGUF, which has no key
  for it: always, as llama.cpp's embedding example does by default with
  --embd-normalize 2; --no-normalize: never).
Sentences are run B at a time (--batch, default 32), longest first (as
sentence-transformers' encode orders them; --in-order: in input order),
each batch padded with id 0 to its longest sentence (--pad-to-max: to L),
so the padding mask is exercised. The per-token work (every product,
LayerNorm, GELU) runs on the real tokens only; attention runs on the padded
batch under the mask. The answer does not depend on B, the order or the
padding: --batch 1 and --batch 32 give the same bits on tests/ref/sentences.txt,
--batch 7 --in-order --pad-to-max the same printed digits. GELU's erf: a table of
math.erf every 1/4096 on [0, 6] and its Taylor series to the 3rd derivative
around the nearest table point (|x - x0| <= 1/8192: the remainder is below
3e-17); erf(x) = sign(x) for |x| > 6 (erfc(6) = 2.2e-17). Measured against
math.erf on 300,000 points in [-8, 8]: at most 2 ulp.

OUT (text, UTF-8): a first line
    # bert_ref n=N dim=D max_len=L pooling=P normalize=0|1 model=NAME
then one line per sentence, in input order: its token ids ("101,7592,102",
[CLS] and [SEP] included, after truncation), a tab, and the D embedding
values as %.9g separated by single spaces.

SENTENCES: UTF-8 text, one sentence per line ("\\n"; a final newline does
not make an empty sentence; a "\\r" before it is kept as text).

Exit status: 0 done, 1 a model it cannot read (the message names the file
and key or tensor), 2 bad usage, 3 a Python package (numpy, tokenizers;
gguf for a GGUF model) is missing.
"""
import argparse
import json
import math
import os
import struct
import sys
import time

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # see check_e2e.py: one BLAS thread is faster here

sys.dont_write_bytecode = True

try:
    import numpy as np
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
except ImportError:
    print("bert_ref: the Python packages 'numpy' and 'tokenizers' are needed (tests/ref/requirements.txt)",
          file=sys.stderr)
    sys.exit(3)


class BadModel(Exception):
    pass


# ── exact GELU ───────────────────────────────────────────────────────────
_ERF_STEP = 4096
_ERF_MAX = 6.0
_ERF_X0 = np.arange(int(_ERF_MAX * _ERF_STEP) + 1, dtype=np.float64) / _ERF_STEP
# Taylor coefficients of erf at each table point x0: erf(x0); erf'(x0) =
# 2/sqrt(pi) exp(-x0^2); erf''(x0)/2 = -x0 erf'(x0); erf'''(x0)/6 = (4 x0^2 - 2)/6 erf'(x0)
_ERF_C0 = np.array([math.erf(v) for v in _ERF_X0])
_ERF_C1 = 2.0 / math.sqrt(math.pi) * np.exp(-_ERF_X0 * _ERF_X0)
_ERF_C2 = -_ERF_X0 * _ERF_C1
_ERF_C3 = (4.0 * _ERF_X0 * _ERF_X0 - 2.0) / 6.0 * _ERF_C1


def erf(x):
    """erf of a float64 array to about 1 ulp (see the module docstring);
    |x| >= 6 reads the last table point, erf(6), which is 1.0 in float64."""
    x = np.asarray(x, dtype=np.float64)
    a = np.minimum(np.abs(x), _ERF_MAX)
    i = np.rint(a * _ERF_STEP).astype(np.int64)
    d = a - i * (1.0 / _ERF_STEP)
    y = _ERF_C3[i]
    y *= d
    y += _ERF_C2[i]
    y *= d
    y += _ERF_C1[i]
    y *= d
    y += _ERF_C0[i]
    return np.copysign(y, x)


def gelu_erf(x):
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


# ── safetensors, read here ───────────────────────────────────────────────
_ST_DTYPES = {"F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2), "F64": ("<f8", 8),
              "I64": ("<i8", 8), "I32": ("<i4", 4), "I16": ("<i2", 2), "I8": ("i1", 1), "U8": ("u1", 1)}


def read_safetensors(path):
    """name -> numpy array (float32 for F16/BF16/F32; integers as stored), checked."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise BadModel(f"{path}: shorter than the 8-byte header length")
    (n,) = struct.unpack_from("<Q", data, 0)
    if n > 100_000_000 or 8 + n > len(data):
        raise BadModel(f"{path}: header length {n} past the end of the file ({len(data)} bytes)")
    try:
        hdr = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadModel(f"{path}: the header is not JSON: {e}")
    base = 8 + n
    out = {}
    for name, t in hdr.items():
        if name == "__metadata__":
            continue
        dt = t.get("dtype")
        if dt not in _ST_DTYPES:
            raise BadModel(f"{path}: tensor {name}: dtype {dt!r} not read here")
        npdt, size = _ST_DTYPES[dt]
        shape = [int(s) for s in t["shape"]]
        b, e = (int(v) for v in t["data_offsets"])
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if not (0 <= b <= e and base + e <= len(data) and e - b == count * size):
            raise BadModel(f"{path}: tensor {name}: data_offsets [{b}, {e}] do not fit shape {shape} "
                           f"{dt} in a {len(data) - base}-byte data section")
        a = np.frombuffer(data, dtype=npdt, count=count, offset=base + b).reshape(shape)
        if dt == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        elif dt == "F16":
            a = a.astype(np.float32)
        out[name] = a
    return out


def read_hf_weights(d):
    single = os.path.join(d, "model.safetensors")
    index = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(single):
        return read_safetensors(single)
    if os.path.exists(index):
        with open(index, encoding="utf-8") as f:
            wm = json.load(f).get("weight_map")
        if not isinstance(wm, dict):
            raise BadModel(f"{index}: no weight_map")
        out = {}
        for shard in sorted(set(wm.values())):
            part = read_safetensors(os.path.join(d, shard))
            for k, v in part.items():
                if wm.get(k) != shard:
                    raise BadModel(f"{index}: tensor {k} is in {shard}, the weight_map says {wm.get(k)}")
                out[k] = v
        missing = sorted(set(wm) - set(out))
        if missing:
            raise BadModel(f"{index}: tensor {missing[0]} is in no shard")
        return out
    raise BadModel(f"{d}: no model.safetensors nor model.safetensors.index.json")


# ── tokenizers ───────────────────────────────────────────────────────────
def wordpiece_tokenizer(vocab, unk, cls, sep, lowercase, specials):
    """A BERT WordPiece pipeline over vocab (token -> id) built with `tokenizers`;
    the texts of specials ([CLS], [PAD], ...) are matched in the input as
    those tokens, as tokenizer.json's special added tokens are."""
    tk = Tokenizer(models.WordPiece(vocab=vocab, unk_token=unk, max_input_chars_per_word=100))
    tk.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                               lowercase=lowercase)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.post_processor = processors.TemplateProcessing(single=f"{cls} $A {sep}", special_tokens=[
        (cls, vocab[cls]), (sep, vocab[sep])])
    tk.decoder = decoders.WordPiece()
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return tk


def hf_tokenizer(d):
    tj = os.path.join(d, "tokenizer.json")
    if os.path.exists(tj):
        return Tokenizer.from_file(tj)
    vt = os.path.join(d, "vocab.txt")
    if not os.path.exists(vt):
        raise BadModel(f"{d}: no tokenizer.json nor vocab.txt")
    with open(vt, encoding="utf-8") as f:
        vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
    cfg = {}
    tc = os.path.join(d, "tokenizer_config.json")
    if os.path.exists(tc):
        with open(tc, encoding="utf-8") as f:
            cfg = json.load(f)
    names = {k: cfg.get(k + "_token", dflt) for k, dflt in (("unk", "[UNK]"), ("cls", "[CLS]"), ("sep", "[SEP]"),
                                                           ("pad", "[PAD]"), ("mask", "[MASK]"))}
    for k, v in names.items():
        if v not in vocab and k in ("unk", "cls", "sep"):
            raise BadModel(f"{vt}: no {k} token {v!r}")
    return wordpiece_tokenizer(vocab, names["unk"], names["cls"], names["sep"], bool(cfg.get("do_lower_case", True)),
                               [v for v in names.values() if v in vocab])


# ── the model ────────────────────────────────────────────────────────────
# GGUF tensor names (llama.cpp's bert) -> Hugging Face names, {l}: the layer
GGUF_NAMES = {
    "token_embd.weight": "embeddings.word_embeddings.weight",
    "position_embd.weight": "embeddings.position_embeddings.weight",
    "token_types.weight": "embeddings.token_type_embeddings.weight",
    "token_embd_norm.weight": "embeddings.LayerNorm.weight",
    "token_embd_norm.bias": "embeddings.LayerNorm.bias",
}
GGUF_LAYER_NAMES = {
    "attn_q": "attention.self.query", "attn_k": "attention.self.key", "attn_v": "attention.self.value",
    "attn_output": "attention.output.dense", "attn_output_norm": "attention.output.LayerNorm",
    "ffn_up": "intermediate.dense", "ffn_down": "output.dense", "layer_output_norm": "output.LayerNorm",
}
POOLING_GGUF = {1: "mean", 2: "cls", 3: "lasttoken"}


class BertRef:
    """A loaded encoder: hyperparameters, float64 weights (Hugging Face names), tokenizer."""

    def __init__(self, path, tokenizer=None, max_len=None, normalize=None):
        self.path = path
        self.lower_input = False
        if os.path.isdir(path):
            self._load_hf(path)
        else:
            self._load_gguf(path)
        if tokenizer:
            self.tok = Tokenizer.from_file(tokenizer)
        if normalize is not None:
            self.normalize = normalize
        self.max_len = int(max_len) if max_len else self.max_len
        if not 2 <= self.max_len <= self.max_pos:
            raise BadModel(f"{path}: max length {self.max_len} outside [2, {self.max_pos}] "
                           f"(position embeddings)")
        self.tok.no_padding()
        self.tok.enable_truncation(max_length=self.max_len)
        self._check()

    # Hugging Face directory
    def _load_hf(self, d):
        cp = os.path.join(d, "config.json")
        try:
            with open(cp, encoding="utf-8") as f:
                c = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise BadModel(f"{cp}: {e}")

        def need(k):
            if k not in c:
                raise BadModel(f"{cp}: no key {k}")
            return c[k]
        if c.get("model_type", "bert") != "bert":
            raise BadModel(f"{cp}: model_type {c.get('model_type')!r} is not bert")
        if c.get("position_embedding_type", "absolute") != "absolute":
            raise BadModel(f"{cp}: position_embedding_type {c['position_embedding_type']!r} is not absolute")
        self.n_layer, self.d = int(need("num_hidden_layers")), int(need("hidden_size"))
        self.n_head, self.n_ff = int(need("num_attention_heads")), int(need("intermediate_size"))
        self.eps = float(c.get("layer_norm_eps", 1e-12))
        self.max_pos = int(need("max_position_embeddings"))
        act = c.get("hidden_act", "gelu")
        if act not in ("gelu", "gelu_new", "gelu_pytorch_tanh"):
            raise BadModel(f"{cp}: hidden_act {act!r} is not a GELU")
        self.act = gelu_erf if act == "gelu" else gelu_tanh
        w = read_hf_weights(d)
        self.w = {}
        for k, v in w.items():
            if k.startswith("bert."):
                k = k[5:]
            k = k.replace(".gamma", ".weight").replace(".beta", ".bias")
            if v.dtype.kind == "f":
                self.w[k] = v.astype(np.float64)
        self.tok = hf_tokenizer(d)
        # sentence-transformers
        self.pooling, self.normalize = "cls", False
        self.max_len = self.max_pos
        mp = os.path.join(d, "modules.json")
        if os.path.exists(mp):
            with open(mp, encoding="utf-8") as f:
                mods = json.load(f)
            for m in mods:
                t = m.get("type", "")
                if t == "sentence_transformers.models.Pooling":
                    self.pooling = self._pooling_mode(os.path.join(d, m.get("path", ""), "config.json"))
                elif t == "sentence_transformers.models.Normalize":
                    self.normalize = True
        sp = os.path.join(d, "sentence_bert_config.json")
        if os.path.exists(sp):
            with open(sp, encoding="utf-8") as f:
                s = json.load(f)
            if s.get("max_seq_length"):
                self.max_len = int(s["max_seq_length"])
            self.lower_input = bool(s.get("do_lower_case", False))

    @staticmethod
    def _pooling_mode(p):
        with open(p, encoding="utf-8") as f:
            pc = json.load(f)
        modes = [m for m in ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "lasttoken")
                 if pc.get("pooling_mode_" + m)]
        if len(modes) != 1:
            raise BadModel(f"{p}: {len(modes)} pooling modes set (one is supported)")
        return {"cls_token": "cls", "mean_tokens": "mean", "max_tokens": "max",
                "mean_sqrt_len_tokens": "mean_sqrt_len", "lasttoken": "lasttoken"}[modes[0]]

    # GGUF (llama.cpp's bert)
    def _load_gguf(self, path):
        try:
            from gguf import GGUFReader, GGUFValueType
            from gguf.quants import dequantize
        except ImportError:
            print("bert_ref: the Python package 'gguf' is needed for a GGUF model", file=sys.stderr)
            sys.exit(3)
        try:
            r = GGUFReader(path)
        except Exception as e:  # the reader raises ValueError, IndexError, ... on a bad file
            raise BadModel(f"{path}: not a readable GGUF: {e}")

        def field(k, dflt=None):
            f = r.fields.get(k)
            if f is None:
                return dflt
            if f.types[0] == GGUFValueType.ARRAY:
                if f.types[1] == GGUFValueType.STRING:
                    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
                return [f.parts[i].tolist()[0] for i in f.data]
            if f.types[0] == GGUFValueType.STRING:
                return bytes(f.parts[f.data[0]]).decode("utf-8")
            return f.parts[f.data[0]].tolist()[0]

        def need(k):
            v = field(k)
            if v is None:
                raise BadModel(f"{path}: no key {k}")
            return v
        arch = field("general.architecture")
        if arch != "bert":
            raise BadModel(f"{path}: general.architecture {arch!r} is not bert")
        self.n_layer, self.d = int(need("bert.block_count")), int(need("bert.embedding_length"))
        self.n_head, self.n_ff = int(need("bert.attention.head_count")), int(need("bert.feed_forward_length"))
        self.eps = float(need("bert.attention.layer_norm_epsilon"))
        self.max_pos = int(need("bert.context_length"))
        if field("bert.attention.causal", False):
            raise BadModel(f"{path}: bert.attention.causal is true (an encoder is bidirectional)")
        pt = int(field("bert.pooling_type", 1))
        if pt not in POOLING_GGUF:
            raise BadModel(f"{path}: bert.pooling_type {pt} (1 mean, 2 cls, 3 last are supported)")
        self.pooling, self.normalize, self.max_len = POOLING_GGUF[pt], True, self.max_pos
        self.act = gelu_erf
        self.w = {}
        for t in r.tensors:
            name = t.name
            if name.startswith("blk."):
                _, l, rest = name.split(".", 2)
                base, suf = rest.rsplit(".", 1)
                if base not in GGUF_LAYER_NAMES:
                    raise BadModel(f"{path}: tensor {name} is not a bert tensor")
                hf = f"encoder.layer.{l}.{GGUF_LAYER_NAMES[base]}.{suf}"
            elif name in GGUF_NAMES:
                hf = GGUF_NAMES[name]
            else:
                raise BadModel(f"{path}: tensor {name} is not a bert tensor")
            a = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float64)
            shape = tuple(int(x) for x in reversed(t.shape))  # ggml's ne, reversed: [N, K]
            self.w[hf] = a.reshape(shape) if len(shape) > 1 else a.reshape(-1)
        # the tokenizer: llama.cpp's phantom-space vocabulary back to WordPiece's
        if need("tokenizer.ggml.model") != "bert":
            raise BadModel(f"{path}: tokenizer.ggml.model {field('tokenizer.ggml.model')!r} is not bert")
        toks, types = need("tokenizer.ggml.tokens"), need("tokenizer.ggml.token_type")
        if len(toks) != len(types):
            raise BadModel(f"{path}: tokenizer.ggml.token_type has {len(types)} entries for {len(toks)} tokens")
        vocab = {}
        for i, (t, ty) in enumerate(zip(toks, types)):
            if ty == 3:        # CONTROL: as is
                wp = t
            elif t.startswith("\u2581"):
                wp = t[1:]
            else:
                wp = "##" + t
            vocab.setdefault(wp, i)
        ids = {}
        for k, alt in (("unknown", None), ("cls", "bos"), ("seperator", "eos")):
            v = field(f"tokenizer.ggml.{k}_token_id", field(f"tokenizer.ggml.{alt}_token_id") if alt else None)
            if v is None or not 0 <= int(v) < len(toks):
                raise BadModel(f"{path}: no valid tokenizer.ggml.{k}_token_id")
            ids[k] = int(v)
        inv = {i: t for t, i in vocab.items()}
        self.tok = wordpiece_tokenizer(vocab, inv[ids["unknown"]], inv[ids["cls"]], inv[ids["seperator"]], True,
                                       [t for t, ty in zip(toks, types) if ty == 3])

    def _check(self):
        E, F = self.d, self.n_ff
        if self.n_head <= 0 or E % self.n_head:
            raise BadModel(f"{self.path}: {self.n_head} heads do not divide hidden size {E}")
        want = {"embeddings.word_embeddings.weight": None, "embeddings.position_embeddings.weight": (self.max_pos, E),
                "embeddings.token_type_embeddings.weight": None,
                "embeddings.LayerNorm.weight": (E,), "embeddings.LayerNorm.bias": (E,)}
        for l in range(self.n_layer):
            p = f"encoder.layer.{l}."
            for n, shp in (("attention.self.query", (E, E)), ("attention.self.key", (E, E)),
                           ("attention.self.value", (E, E)), ("attention.output.dense", (E, E)),
                           ("intermediate.dense", (F, E)), ("output.dense", (E, F))):
                want[p + n + ".weight"], want[p + n + ".bias"] = shp, shp[:1]
            for n in ("attention.output.LayerNorm", "output.LayerNorm"):
                want[p + n + ".weight"] = want[p + n + ".bias"] = (E,)
        for n, shp in want.items():
            if n not in self.w:
                raise BadModel(f"{self.path}: no tensor {n}")
            if shp is not None and self.w[n].shape != shp:
                raise BadModel(f"{self.path}: tensor {n} is {self.w[n].shape}, expected {shp}")
        we = self.w["embeddings.word_embeddings.weight"]
        if we.ndim != 2 or we.shape[1] != E:
            raise BadModel(f"{self.path}: word embeddings {we.shape}, expected [vocab, {E}]")
        self.n_vocab = we.shape[0]

    # ── running ─────────────────────────────────────────────────────────
    def tokenize(self, texts):
        if self.lower_input:
            texts = [t.lower() for t in texts]
        ids = [e.ids for e in self.tok.encode_batch(list(texts))]
        for s in ids:
            if s and max(s) >= self.n_vocab:
                raise BadModel(f"{self.path}: the tokenizer gave id {max(s)} >= vocabulary {self.n_vocab}")
        return ids

    @staticmethod
    def layernorm(x, g, b, eps):
        mu = x.mean(axis=-1, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * g + b

    def encode(self, batch, pad_to=None):
        """batch: lists of ids -> [B, D] sentence embeddings (float64)."""
        w, E, H = self.w, self.d, self.n_head
        Dh = E // H
        B = len(batch)
        L = pad_to or max(len(s) for s in batch)
        ids = np.zeros((B, L), dtype=np.int64)
        valid = np.zeros((B, L), dtype=bool)
        for i, s in enumerate(batch):
            ids[i, :len(s)] = s
            valid[i, :len(s)] = True
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:L][None] \
            + w["embeddings.token_type_embeddings.weight"][0]
        x = self.layernorm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        mask = np.where(valid, 0.0, -np.inf)[:, None, None, :]  # [B, 1, 1, L]: on the keys
        scale = 1.0 / math.sqrt(Dh)
        xv = x[valid]  # [tokens, E]: the per-token work runs on the real tokens only
        for l in range(self.n_layer):
            p = f"encoder.layer.{l}."
            lin = lambda h, n: h @ w[p + n + ".weight"].T + w[p + n + ".bias"]
            heads = []
            for n in ("query", "key", "value"):
                t = np.zeros((B, L, E))  # padded rows: 0 (masked as keys; as queries, never read)
                t[valid] = lin(xv, "attention.self." + n)
                heads.append(t.reshape(B, L, H, Dh).transpose(0, 2, 1, 3))
            q, k, v = heads
            s = q @ k.transpose(0, 1, 3, 2) * scale + mask  # [B, H, L, L]
            s -= s.max(axis=-1, keepdims=True)
            pr = np.exp(s)
            pr /= pr.sum(axis=-1, keepdims=True)
            av = (pr @ v).transpose(0, 2, 1, 3)[valid].reshape(-1, E)
            xv = self.layernorm(xv + lin(av, "attention.output.dense"), w[p + "attention.output.LayerNorm.weight"],
                                w[p + "attention.output.LayerNorm.bias"], self.eps)
            h = self.act(lin(xv, "intermediate.dense"))
            xv = self.layernorm(xv + lin(h, "output.dense"), w[p + "output.LayerNorm.weight"],
                                w[p + "output.LayerNorm.bias"], self.eps)
        x = np.zeros((B, L, E))
        x[valid] = xv
        n = valid.sum(axis=1)[:, None]
        vm = valid[:, :, None]
        if self.pooling == "mean":
            e = (x * vm).sum(axis=1) / n
        elif self.pooling == "mean_sqrt_len":
            e = (x * vm).sum(axis=1) / np.sqrt(n)
        elif self.pooling == "max":
            e = np.where(vm, x, -np.inf).max(axis=1)
        elif self.pooling == "cls":
            e = x[:, 0]
        else:  # lasttoken
            e = x[np.arange(B), n[:, 0] - 1]
        if self.normalize:
            e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        return e

    def embed(self, texts, batch=32, pad_to_max=False, in_order=False):
        """-> (token ids per text, [N, D] embeddings). Batches of `batch`
        sentences, longest first (as sentence-transformers' encode groups
        them), or in input order with in_order."""
        ids = self.tokenize(texts)
        out = np.zeros((len(ids), self.d))
        order = list(range(len(ids))) if in_order else sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        for i in range(0, len(ids), batch):
            sel = order[i:i + batch]
            out[sel] = self.encode([ids[j] for j in sel], self.max_len if pad_to_max else None)
        return ids, out


def read_sentences(path):
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def write_out(path, m, ids, emb):
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"# bert_ref n={len(ids)} dim={m.d} max_len={m.max_len} pooling={m.pooling} "
                f"normalize={int(m.normalize)} model={os.path.basename(os.path.normpath(m.path))}\n")
        for s, e in zip(ids, emb):
            f.write(",".join(map(str, s)) + "\t" + " ".join("%.9g" % v for v in e) + "\n")


def read_out(path):
    """OUT as written by write_out -> (header dict, list of id lists, [N, D] float64)."""
    with open(path, encoding="utf-8") as f:
        first = f.readline()
        if not first.startswith("# bert_ref "):
            raise ValueError(f"{path}: not a bert_ref.py output (no '# bert_ref' first line)")
        hdr = dict(kv.split("=", 1) for kv in first[len("# bert_ref "):].split())
        ids, emb = [], []
        for ln, line in enumerate(f, 2):
            a, sep, b = line.rstrip("\n").partition("\t")
            if not sep:
                raise ValueError(f"{path}:{ln}: no tab between the ids and the embedding")
            ids.append([int(t) for t in a.split(",")] if a else [])
            emb.append([float(t) for t in b.split()])
    if len(ids) != int(hdr.get("n", -1)) or any(len(e) != int(hdr["dim"]) for e in emb):
        raise ValueError(f"{path}: {len(ids)} lines, the header says n={hdr.get('n')} dim={hdr.get('dim')}")
    return hdr, ids, np.array(emb, dtype=np.float64).reshape(len(ids), int(hdr["dim"]))


def main():
    ap = argparse.ArgumentParser(description="independent numpy BERT sentence-embedding reference")
    ap.add_argument("model", help="a Hugging Face directory or a llama.cpp bert GGUF")
    ap.add_argument("sentences", help="UTF-8 text, one sentence per line")
    ap.add_argument("out")
    ap.add_argument("--max-len", type=int, help="tokens per sentence, [CLS] and [SEP] included")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--pad-to-max", action="store_true", help="pad every batch to --max-len")
    ap.add_argument("--in-order", action="store_true", help="batch in input order (default: longest first)")
    ap.add_argument("--tokenizer", help="a tokenizer.json to use instead of the model's own")
    ap.add_argument("--no-normalize", action="store_true", help="never L2-normalize")
    args = ap.parse_args()
    if args.batch < 1:
        ap.error("--batch must be >= 1")
    t0 = time.time()
    try:
        m = BertRef(args.model, args.tokenizer, args.max_len, False if args.no_normalize else None)
        t1 = time.time()
        texts = read_sentences(args.sentences)
        ids, emb = m.embed(texts, args.batch, args.pad_to_max, args.in_order)
    except (BadModel, OSError) as e:
        print(f"bert_ref: {e}", file=sys.stderr)
        return 1
    write_out(args.out, m, ids, emb)
    nt = sum(len(s) for s in ids)
    print(f"bert_ref: {len(texts)} sentences, {nt} tokens (longest {max(map(len, ids), default=0)}, "
          f"max_len {m.max_len}), dim {m.d}, pooling {m.pooling}, normalize {int(m.normalize)}; "
          f"load {t1 - t0:.1f} s, forward {time.time() - t1:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
