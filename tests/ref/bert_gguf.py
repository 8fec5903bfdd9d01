#!/usr/bin/env python3
"""bert_gguf.py HF_DIR OUT.gguf [--type f32|f16]
— a GGUF in llama.cpp's `bert` architecture written from a Hugging Face BERT
sentence-transformers directory (all-MiniLM-L6-v2), for kgen's tests of BERT
from GGUF (bge and nomic embedding files on the Hub use this layout).

Written with the PyPI `gguf` package (llama.cpp's gguf-py: GGUFWriter, the
tensor-name map, SpecialVocab), following what llama.cpp's converter does
for a BertModel (convert_hf_to_gguf.py: class BertModel, formerly in that
file, now conversion/bert.py; TextModel.set_gguf_parameters,
get_vocab_base, get_vocab_base_pre and prepare_tensors in the same file or
conversion/base.py). Torch and transformers are not used: the weights are
read by bert_ref.py's safetensors reader and the vocabulary by Hugging Face
`tokenizers`, which give what the converter reads through them.

Metadata (key: value, where it comes from):
  general.architecture: "bert"         gguf.MODEL_ARCH_NAMES[MODEL_ARCH.BERT]
  general.name: the directory's name   (informational)
  general.file_type: 0 (ALL_F32) or 1 (MOSTLY_F16)   gguf.LlamaFileType, --outtype
  bert.context_length: config max_position_embeddings     set_gguf_parameters
  bert.embedding_length: hidden_size                       set_gguf_parameters
  bert.feed_forward_length: intermediate_size              set_gguf_parameters
  bert.attention.head_count: num_attention_heads           set_gguf_parameters
  bert.block_count: num_hidden_layers                      set_gguf_parameters
  bert.attention.layer_norm_epsilon: layer_norm_eps (float32)
                                       set_gguf_parameters (find_hparam
                                       ["layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"])
  bert.attention.causal: false         BertModel.set_gguf_parameters
  bert.pooling_type: from modules.json's sentence_transformers.models.Pooling
      module's config.json: pooling_mode_mean_tokens -> 1 (MEAN), else
      pooling_mode_cls_token -> 2 (CLS), else pooling_mode_lasttoken -> 3
      (LAST); any other mode is refused       _try_set_pooling_type
      (no modules.json: the key is left out, as the converter does)
  tokenizer.ggml.model: "bert"         BertModel.set_vocab (llama.cpp's WPM vocabulary)
  tokenizer.ggml.pre: "jina-v2-en"     get_vocab_base_pre: the SHA-256 of
      str(tokenizer.encode(chktxt)) [the converter's check text, [CLS]/[SEP]
      included] is 0876d13b50744004aa9aeae05e7b0647eac9d801b5ba4668afc01e709c15e19f
      for the bert-base-uncased vocabulary MiniLM uses; that hash is listed
      twice, as "bert-bge" (BAAI/bge-small-en-v1.5) and then "jina-v2-en", and
      the function's chain of plain `if`s keeps the last match. This script
      computes the hash and refuses another tokenizer (its pre name would
      have to be looked up).
  tokenizer.ggml.tokens: the vocabulary by id (vocab_size = config vocab_size;
      an id with no token: "[PAD<id>]", type UNUSED), rewritten to llama.cpp's
      "phantom space" form: a CONTROL token as is, a token starting "##"
      without the "##", any other token with U+2581 in front
      ("hello" -> "\u2581hello", "##ing" -> "ing")    BertModel.set_vocab
  tokenizer.ggml.token_type: CONTROL (3) for an added token that is special
      (tokenizer.json's added_tokens, "special": true: [PAD] [UNK] [CLS]
      [SEP] [MASK]), USER_DEFINED (4) for an added token that is not, NORMAL
      (1) otherwise                                     get_vocab_base
  tokenizer.ggml.token_type_count: type_vocab_size (2)  BertModel.set_vocab
  tokenizer.ggml.{bos,eos,unknown,seperator,padding,mask}_token_id and
  tokenizer.ggml.add_bos_token / add_eos_token / add_sep_token:
      gguf.SpecialVocab(dir, n_vocab) itself, as the converter calls it (from
      tokenizer_config.json, special_tokens_map.json and tokenizer.json's
      [CLS] $A [SEP] template): bos 101 = [CLS], eos 102 = [SEP], unknown
      100, seperator 102 (llama.cpp's spelling), padding 0, mask 103;
      add_bos and add_eos true, add_sep false. It also finds cls 101 but
      gguf 0.19 has no key for it ("No handler for special token type cls",
      logged): [CLS] is the bos token.

Tensors: each Hugging Face name, after the converter's renames (a "bert."
prefix dropped, ".gamma" -> ".weight", ".beta" -> ".bias"; skipped:
embeddings.position_ids, pooler.dense.*, cls.*), mapped by
gguf.get_tensor_name_map(MODEL_ARCH.BERT, n_layer) (gguf-py's
tensor_mapping.py):
  embeddings.word_embeddings           token_embd
  embeddings.position_embeddings       position_embd
  embeddings.token_type_embeddings     token_types
  embeddings.LayerNorm                 token_embd_norm (.weight, .bias)
  encoder.layer.N.attention.self.query/key/value   blk.N.attn_q / attn_k / attn_v
  encoder.layer.N.attention.output.dense           blk.N.attn_output
  encoder.layer.N.attention.output.LayerNorm       blk.N.attn_output_norm
  encoder.layer.N.intermediate.dense               blk.N.ffn_up
  encoder.layer.N.output.dense                     blk.N.ffn_down
  encoder.layer.N.output.LayerNorm                 blk.N.layer_output_norm
with the numpy shape kept ([out, in]; GGUF's ne is the reverse, [in, out]).
Types (prepare_tensors): --type f32 everything F32; --type f16 every 2-D
".weight" F16 except position_embd and token_types (always F32), every
1-D tensor (norms, biases) F32.

Exit status 0 written, 1 a directory it cannot convert (the message names
the file and key), 3 a Python package (numpy, gguf, tokenizers) missing.
"""
import argparse
import json
import os
import sys
from hashlib import sha256
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True

try:
    import numpy as np
    import gguf
    from tokenizers import Tokenizer
except ImportError:
    print("bert_gguf: the Python packages 'numpy', 'gguf' and 'tokenizers' are needed "
          "(tests/ref/requirements.txt)", file=sys.stderr)
    sys.exit(3)

sys.path.insert(0, HERE)
from bert_ref import BadModel, read_hf_weights  # noqa: E402

# convert_hf_to_gguf.py get_vocab_base_pre's check text
CHKTXT = ('\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n\U0001f680 (normal) \U0001f636\u200d\U0001f32b\ufe0f '
          '(multiple emojis concatenated) \u2705 \U0001f999\U0001f999 3 33 333 3333 33333 333333 3333333 33333333 '
          '3.3 3..3 3...3 \u1780\u17b6\u1793\u17cb\u178f\u17c2\u1796\u17b7\u179f\u17c1\u179f\u17a2\u17b6\u1785'
          '\U0001f601 ?\u6211\u60f3\u5728apple\u5de5\u4f5c1314151\u5929\uff5e ------======= '
          '\u043d\u0435\u0449\u043e \u043d\u0430 \u0411\u044a\u043b\u0433\u0430\u0440\u0441\u043a\u0438 '
          '\'\'\'\'\'\'```````""""......!!!!!!?????? I\'ve been \'told he\'s there, \'RE you sure? '
          '\'M not sure I\'ll make it, \'D you like some tea? We\'Ve a\'lL')
PRE_BY_HASH = {"0876d13b50744004aa9aeae05e7b0647eac9d801b5ba4668afc01e709c15e19f": "jina-v2-en"}


def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise BadModel(f"{path}: {e}")


def pooling_type(d):
    mp = os.path.join(d, "modules.json")
    if not os.path.exists(mp):
        return None
    for mod in load_json(mp):
        if mod.get("type") == "sentence_transformers.models.Pooling":
            cp = os.path.join(d, mod.get("path", ""), "config.json")
            pc = load_json(cp)
            if pc.get("pooling_mode_mean_tokens"):
                return gguf.PoolingType.MEAN
            if pc.get("pooling_mode_cls_token"):
                return gguf.PoolingType.CLS
            if pc.get("pooling_mode_lasttoken"):
                return gguf.PoolingType.LAST
            raise BadModel(f"{cp}: only MEAN, CLS and LAST pooling convert")
    return None


def vocab(d, n_vocab):
    tj = os.path.join(d, "tokenizer.json")
    if not os.path.exists(tj):
        raise BadModel(f"{d}: no tokenizer.json")
    tk = Tokenizer.from_file(tj)
    tk.no_padding()
    tk.no_truncation()
    h = sha256(str(tk.encode(CHKTXT).ids).encode()).hexdigest()
    if h not in PRE_BY_HASH:
        raise BadModel(f"{tj}: pre-tokenizer hash {h} is not one this script knows")
    added = {t["id"]: t for t in load_json(tj).get("added_tokens", [])}
    inv = {i: t for t, i in tk.get_vocab(with_added_tokens=True).items()}
    if inv and max(inv) >= n_vocab:
        raise BadModel(f"{tj}: token id {max(inv)} >= config.json vocab_size {n_vocab}")
    tokens, types = [], []
    for i in range(n_vocab):
        if i not in inv:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        t = inv[i]
        if i in added:
            ty = gguf.TokenType.CONTROL if added[i].get("special") else gguf.TokenType.USER_DEFINED
        else:
            ty = gguf.TokenType.NORMAL
        if ty != gguf.TokenType.CONTROL:
            t = t[2:] if t.startswith("##") else "\u2581" + t
        tokens.append(t)
        types.append(ty)
    return tokens, types, PRE_BY_HASH[h]


def main():
    ap = argparse.ArgumentParser(description="a llama.cpp bert GGUF from a Hugging Face BERT directory")
    ap.add_argument("hf_dir")
    ap.add_argument("out")
    ap.add_argument("--type", choices=("f32", "f16", "q8_0"), default="f32",
                    help="the matrices' type (q8_0: quantized by the gguf package, llama.cpp's quantizer)")
    args = ap.parse_args()
    d = args.hf_dir
    try:
        c = load_json(os.path.join(d, "config.json"))
        for k in ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads",
                  "max_position_embeddings", "vocab_size"):
            if k not in c:
                raise BadModel(f"{os.path.join(d, 'config.json')}: no key {k}")
        n_layer = int(c["num_hidden_layers"])
        eps = next((c[k] for k in ("layer_norm_eps", "layer_norm_epsilon", "norm_epsilon") if k in c), None)
        pt = pooling_type(d)
        tokens, types, pre = vocab(d, int(c["vocab_size"]))
        weights = read_hf_weights(d)
    except BadModel as e:
        print(f"bert_gguf: {e}", file=sys.stderr)
        return 1
    f16, q8 = args.type == "f16", args.type == "q8_0"
    w = gguf.GGUFWriter(args.out, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
    w.add_name(os.path.basename(os.path.normpath(d)))
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if f16 else gguf.LlamaFileType.MOSTLY_Q8_0 if q8
                    else gguf.LlamaFileType.ALL_F32)
    w.add_block_count(n_layer)
    w.add_context_length(int(c["max_position_embeddings"]))
    w.add_embedding_length(int(c["hidden_size"]))
    w.add_feed_forward_length(int(c["intermediate_size"]))
    w.add_head_count(int(c["num_attention_heads"]))
    if eps is not None:
        w.add_layer_norm_eps(float(eps))
    w.add_causal_attention(False)
    if pt is not None:
        w.add_pooling_type(pt)
    w.add_token_type_count(int(c.get("type_vocab_size", 1)))
    w.add_tokenizer_model("bert")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    gguf.SpecialVocab(Path(d), n_vocab=len(tokens)).add_to_gguf(w)

    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_layer)
    n32 = n16 = 0
    for name in sorted(weights):
        a = weights[name]
        hf = name[5:] if name.startswith("bert.") else name
        if hf.endswith(".gamma"):
            hf = hf[:-6] + ".weight"
        if hf.endswith(".beta"):
            hf = hf[:-5] + ".bias"
        if hf in ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias") or hf.startswith("cls."):
            continue
        new = tmap.get_name(hf, try_suffixes=(".weight", ".bias"))
        if new is None:
            print(f"bert_gguf: {d}: tensor {name} has no llama.cpp bert name", file=sys.stderr)
            return 1
        keep32 = a.ndim <= 1 or new.endswith("_norm.weight") or not new.endswith(".weight") or \
            new.split(".")[0] in ("position_embd", "token_types")
        if f16 and not keep32:
            w.add_tensor(new, np.ascontiguousarray(a, dtype=np.float16))
            n16 += 1
        elif q8 and not keep32:
            q = gguf.quants.quantize(np.ascontiguousarray(a, dtype=np.float32), gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(new, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            n16 += 1
        else:
            w.add_tensor(new, np.ascontiguousarray(a, dtype=np.float32))
            n32 += 1
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"bert_gguf: wrote {args.out}: {n_layer} layers, {len(tokens)} tokens (pre {pre}), "
          f"pooling {pt.name if pt is not None else 'none'}, {n32} F32 + {n16} {args.type.upper()} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
