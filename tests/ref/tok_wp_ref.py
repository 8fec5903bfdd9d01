#!/usr/bin/env python3
"""tok_wp_ref.py MODEL_DIR OUT GGUF CFG1 CFG2 CFG3 CFG4 SMOL_GGUF SMOL_JSON SMOL_STR_JSON SMOL_CFG GPT2_JSON
LLAMA3_JSON QWEN2_JSON
— reference tokenizations for tests/test_tokenizer_wp.c, by Hugging Face's
`tokenizers` (PyPI), independent of kgen.

MODEL_DIR/tokenizer.json is a WordPiece (BERT) tokenizer (all-MiniLM-L6-v2).
Writes:
  CFG1..CFG4  that tokenizer.json with other normalizer flags:
                1  lowercase false, strip_accents null (cased: no stripping)
                2  lowercase false, strip_accents true
                3  lowercase true, strip_accents false
                4  clean_text false, handle_chinese_chars false (lowercase true)
  GGUF        a vocabulary-only GGUF of the same vocabulary in llama.cpp's
              "bert" convention (convert_hf_to_gguf.py, BertModel.set_vocab:
              control tokens as they are, "##x" -> "x", any other x -> "▁x";
              the special ids under tokenizer.ggml.*_token_id;
              bert.context_length 512)
  SMOL_JSON   a byte-level BPE tokenizer.json of SMOL_GGUF's vocabulary and
              merges (SmolLM2's pre-tokenizer: Digits, then ByteLevel), saved
              by `tokenizers` (merges as ["a", "b"] pairs), SMOL_STR_JSON the
              same with merges as "a b" strings, SMOL_CFG its
              tokenizer_config.json (bos/eos tokens, add_bos_token false)
  GPT2_JSON, LLAMA3_JSON, QWEN2_JSON
              the same vocabulary and merges with the other pre-tokenizers
              kgen implements: ByteLevel alone (GPT-2's regex); Split(Llama
              3's regex) then ByteLevel, BPE ignore_merges, and a
              TemplateProcessing post-processor adding <|im_start|> as BOS;
              Split(Qwen2's regex) then ByteLevel
  OUT         one record per line (strings as hex of their bytes, "-" when empty):
    S idx hex            a test string (valid UTF-8)
    X idx hex            a string that is not UTF-8
    R cfg flags idx ids  its ids with config cfg (0: MODEL_DIR's, 1..4 above);
                         flags 1: with [CLS] ... [SEP] (add_special_tokens),
                         2: special-token text is the token (else
                         encode_special_tokens = True)
    D idx hex            config 0, flags 0: the ids decoded by a WordPiece
                         decoder ("##", cleanup off)
    B kind flags idx ids the BPE tokenizer.json's ids (valid strings only; kind 0
                         SMOL_JSON (and SMOL_STR_JSON), 1 GPT2_JSON, 2
                         LLAMA3_JSON, 3 QWEN2_JSON; flags as above)
Strings that are not UTF-8 are read by kgen's rule for WordPiece
(runtime/model/tok_wp.c): each byte that does not start a well-formed UTF-8
sequence is U+FFFD; the text is then Hugging Face's to tokenize.
The strings are tok_corpus.py's, and WP_EXTRA below (accents, CJK, control
characters, words over 100 characters, [CLS]/[MASK] text).
Exit status 3 if a package is missing.
"""
import json
import random
import sys

from tok_corpus import corpus

try:
    from gguf import GGUFReader, GGUFWriter
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors
except ImportError as e:
    print(f"missing Python package: {e} (pip install gguf tokenizers)", file=sys.stderr)
    sys.exit(3)

WP_EXTRA = [
    "[CLS] hello [SEP]", "[MASK]", "a[MASK]b", "[cls] [Cls]", "[UNK][PAD][SEP][CLS]", "[[MASK]]", "[MASK", "MASK]",
    "Hello, World! HELLO world.", "unaffable", "unbelievably ungrammatical", "ÀÉÎÕÜ àéîõü ÇçÑñ",
    "Ångström Øre Ærø ß ẞ ſ ﬁ ﬀ Ǆ ǅ ǆ", "İstanbul ıi IJ", "ΣΑΣ σας ΌΣΟΣ", "Straße STRASSE", "ﬃ ﬄ",
    "한국어 텍스트 가나다 힣", "中文字符测试 日本語 カタカナ ひらがな 𠀀𠀁 \U0002B820\U0002B920 豈更",
    "x" * 99, "y" * 100, "z" * 101, "é" * 100, "é" * 101, "ab" * 60 + " short", "中" * 150,
    "a\u0301" * 60, "e\u0301" * 100,
    "\x00a\x00b", "a\ufffdb", "tab\tnew\nline\rcr\x0bvt\x0cff\x85nel\u2028ls\u2029ps", "a\u200bb\u200dc\ufeffd",
    "\u00a0nbsp\u3000ideo\u2003em", "soft\u00adhyphen", "rtl\u202eoverride\u202c", "\U000E0001tag",
    "priv\ue000ate", "\x01\x02\x03\x1b\x7f", "don't can't won't it's", "e-mail: a.b@c.com; url: http://x.y/z?q=1",
    "3.14 1,000 2024-06-11 #1 $5 50% a+b=c", "«guillemets» „quotes“ ‘single’ — dash – ndash … ellipsis",
    "¿Qué? ¡Sí! ‽ ⁇ ※ § ¶ † ‡ • ‰", "😀 👍🏽 👨‍👩‍👧 🇫🇷", "x\u0308\u0323y", "ǅemal", "\u1e9b\u0323",
]


def wp_read(b):
    """kgen's reading of bytes that may not be UTF-8 (WordPiece): a byte that does not start a
    well-formed sequence is U+FFFD, and the next character starts at the next byte."""
    out, i = [], 0
    while i < len(b):
        c = b[i]
        need = 1 if c < 0x80 else 2 if 0xC2 <= c <= 0xDF else 3 if 0xE0 <= c <= 0xEF else 4 if 0xF0 <= c <= 0xF4 else 0
        seg = b[i:i + need] if need else b""
        try:
            ok = need and len(seg) == need and len(seg.decode("utf-8")) == 1
        except UnicodeDecodeError:
            ok = False
        if ok:
            out.append(seg.decode("utf-8"))
            i += need
        else:
            out.append("\ufffd")
            i += 1
    return "".join(out)


def hexs(b):
    return b.hex() if b else "-"


def ids_str(ids):
    return ",".join(map(str, ids)) if ids else "-"


def field_str(f, i):
    return bytes(f.parts[f.data[i]]).decode("utf-8")


def write_gguf(tok_json, path):
    doc = json.load(open(tok_json, encoding="utf-8"))
    vocab = doc["model"]["vocab"]
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    special = {a["id"] for a in doc["added_tokens"] if a["special"]}
    types = [3 if i in special else 1 for i in range(len(tokens))]

    def phantom(t, ty):
        if ty == 3:
            return t
        return t[2:] if t.startswith("##") else "\u2581" + t
    w = GGUFWriter(path, "bert")
    w.add_tokenizer_model("bert")
    w.add_token_list([phantom(t, ty) for t, ty in zip(tokens, types)])
    w.add_token_types(types)
    w.add_unk_token_id(vocab["[UNK]"])
    w.add_sep_token_id(vocab["[SEP]"])
    w.add_pad_token_id(vocab["[PAD]"])
    w.add_mask_token_id(vocab["[MASK]"])
    w.add_uint32("tokenizer.ggml.cls_token_id", vocab["[CLS]"])
    w.add_uint32("bert.context_length", 512)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
          r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")


def smol_json(gguf_path, out_pairs, out_str, out_cfg, others):
    r = GGUFReader(gguf_path)
    f = r.fields
    tokens = [field_str(f["tokenizer.ggml.tokens"], i) for i in range(len(f["tokenizer.ggml.tokens"].data))]
    tt = f["tokenizer.ggml.token_type"]
    types = [int(tt.parts[i][0]) for i in tt.data]
    mf = f["tokenizer.ggml.merges"]
    vocab = {}
    for i, t in enumerate(tokens):
        vocab[t] = i
    seen, ms = set(), []
    for i in range(len(mf.data)):
        m = field_str(mf, i)
        k = m.index(" ", 1)
        a, b = m[:k], m[k + 1:]
        if a in vocab and b in vocab and a + b in vocab and (a, b) not in seen:
            seen.add((a, b))
            ms.append((a, b))
    def make(pre, ignore_merges=False):
        tok = Tokenizer(models.BPE(vocab=vocab, merges=ms, ignore_merges=ignore_merges))
        tok.pre_tokenizer = pre
        tok.decoder = decoders.ByteLevel()
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                for t, ty in zip(tokens, types) if ty == 3 and t])
        tok.add_tokens([AddedToken(t, special=False, normalized=False)
                        for t, ty in zip(tokens, types) if ty == 4 and t])
        return tok
    tok = make(pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]))
    tok.save(out_pairs)
    gpt2 = make(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
    llama3 = make(pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]), ignore_merges=True)
    llama3.post_processor = processors.TemplateProcessing(single="<|im_start|> $A",
                                                          special_tokens=[("<|im_start|>", vocab["<|im_start|>"])])
    qwen2 = make(pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]))
    for t, path in zip((gpt2, llama3, qwen2), others):
        t.save(path)
    doc = json.load(open(out_pairs, encoding="utf-8"))
    doc["model"]["merges"] = [m if isinstance(m, str) else m[0] + " " + m[1] for m in doc["model"]["merges"]]
    json.dump(doc, open(out_str, "w", encoding="utf-8"), ensure_ascii=False)
    json.dump({"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "add_bos_token": False},
              open(out_cfg, "w", encoding="utf-8"))
    return [tok, gpt2, llama3, qwen2]


def main():
    (model_dir, out_path, gguf_path, c1, c2, c3, c4, smol_gguf, smol_pairs, smol_str, smol_cfg) = sys.argv[1:12]
    others = sys.argv[12:15]
    base = json.load(open(model_dir + "/tokenizer.json", encoding="utf-8"))
    variants = [
        dict(lowercase=False, strip_accents=None),
        dict(lowercase=False, strip_accents=True),
        dict(lowercase=True, strip_accents=False),
        dict(clean_text=False, handle_chinese_chars=False),
    ]
    for path, v in zip((c1, c2, c3, c4), variants):
        doc = json.loads(json.dumps(base))
        doc["normalizer"].update(v)
        json.dump(doc, open(path, "w", encoding="utf-8"), ensure_ascii=False)
    write_gguf(model_dir + "/tokenizer.json", gguf_path)

    valid, invalid = corpus()
    rng = random.Random(16)
    extra = list(WP_EXTRA)
    for _ in range(300):  # words around the 100-character limit, with accents and CJK
        n = rng.choice([98, 99, 100, 101, 102, 150])
        extra.append("".join(rng.choice("abcdeé中Ab1-") for _ in range(n)))
    valid = valid + extra
    texts = [s for s in valid] + [wp_read(b) for b in invalid]
    out = open(out_path, "w", encoding="ascii")
    for i, s in enumerate(valid):
        out.write(f"S {i} {hexs(s.encode('utf-8'))}\n")
    for j, b in enumerate(invalid):
        out.write(f"X {len(valid) + j} {hexs(b)}\n")
    for cfg, path in enumerate((model_dir + "/tokenizer.json", c1, c2, c3, c4)):
        tok = Tokenizer.from_file(path)
        tok.no_padding()
        tok.no_truncation()
        for flags in (0, 1, 2, 3):
            tok.encode_special_tokens = not flags & 2
            encs = tok.encode_batch(texts, add_special_tokens=bool(flags & 1))
            for i, e in enumerate(encs):
                out.write(f"R {cfg} {flags} {i} {ids_str(e.ids)}\n")
            if cfg == 0 and flags == 0:
                tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
                for i, e in enumerate(encs):
                    out.write(f"D {i} {hexs(tok.decode(e.ids, skip_special_tokens=True).encode('utf-8'))}\n")
    for kind, bpe in enumerate(smol_json(smol_gguf, smol_pairs, smol_str, smol_cfg, others)):
        for flags in (0, 1, 2, 3):
            bpe.encode_special_tokens = not flags & 2
            for i, e in enumerate(bpe.encode_batch(valid, add_special_tokens=bool(flags & 1))):
                out.write(f"B {kind} {flags} {i} {ids_str(e.ids)}\n")
    out.close()
    print(f"{len(valid)} strings, {len(invalid)} not UTF-8; 5 WordPiece configurations; SmolLM2's BPE, 4 pre-tokenizers")


if __name__ == "__main__":
    main()
