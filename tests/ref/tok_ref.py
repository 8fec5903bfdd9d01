#!/usr/bin/env python3
"""tok_ref.py GGUF OUT — reference tokenizations for tests/test_tokenizer.c.

An implementation independent of kgen: Hugging Face's `tokenizers` (PyPI),
built from the GGUF's vocabulary and merges as read by llama.cpp's Python
reader (PyPI `gguf`), and Jinja2 for the chat template. Writes OUT, one
record per line, every string as hex of its bytes ("-" when empty):

    S idx hex                  a test string (valid UTF-8)
    X idx hex hexread          a test string that is not UTF-8, and the text
                               tokenizing it and joining the pieces gives back
                               (llama.cpp's reading of it, in UTF-8; bytes the
                               vocabulary lacks are still to be removed)
    R pre flags idx ids        its token ids ("1,2,3"; "-" when none) with the
                               pre-tokenizer `pre` (smollm, gpt2, llama-bpe, qwen2;
                               tok_spm_ref.py: spm);
                               flags 2 = special-token text is the token
    J 0                        jinja2 is not installed (no T/H records)
    T name hex                 a chat template (name: smollm2 = the GGUF's, llama3,
                               gemma, phi3: those models' own templates)
    H name add n hexrole hexcontent ... hexexpected
                               messages formatted by Jinja with the template

The strings are tok_corpus.py's. Reference pipelines for valid strings:
    smollm     Sequence([Digits(individual_digits=True),
                         ByteLevel(add_prefix_space=False, use_regex=True)])
    gpt2       ByteLevel(add_prefix_space=False, use_regex=True)
    llama-bpe  Sequence([Split(Regex(LLAMA3), "isolated"), ByteLevel(use_regex=False)]),
               BPE(ignore_merges=True)
    qwen2      the same with Regex(QWEN2) (\p{N} for \p{N}{1,3}), BPE()
BPE model from the GGUF's tokens and merges, ByteLevel decoder, control
(type 3) and user-defined (type 4) tokens as added tokens; without flag 2,
tokenizer.encode_special_tokens = True (their text is ordinary text).
Strings that are not UTF-8: llama.cpp's pipeline with these pre-tokenizers
and BPE model as its steps (see "bytes that are not UTF-8" below).
Exit status 3 if a package is missing.
"""
import sys

from llama_utf8 import llama_cpp_read, utf8
from tok_corpus import corpus

try:
    from gguf import GGUFReader
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
except ImportError as e:
    print(f"missing Python package: {e} (pip install gguf tokenizers)", file=sys.stderr)
    sys.exit(3)

LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
          r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# Qwen2's (its tokenizer.json): Llama 3's with single digits
QWEN2 = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")

# Meta's Llama 3 Instruct chat template (BOS comes from the tokenizer, so
# bos_token is rendered as "").
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")


# Gemma 3's chat template (google/gemma-3-270m-it, tokenizer_config.json;
# written out here: the GGUF has none).
GEMMA3_TEMPLATE = (
    "{{ bos_token }}\n{%- if messages[0]['role'] == 'system' -%}\n    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}\n    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}\n    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n{%- else -%}\n    {%- set first_user_prefix = \"\" -%}\n"
    "    {%- set loop_messages = messages -%}\n{%- endif -%}\n{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n    {%- if (message['role'] == 'assistant') -%}\n        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n        {%- set role = message['role'] -%}\n    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n        {%- endfor -%}\n    {%- else -%}\n"
    "        {{ raise_exception(\"Invalid content type\") }}\n    {%- endif -%}\n    {{ '<end_of_turn>\n' }}\n"
    "{%- endfor -%}\n{%- if add_generation_prompt -%}\n    {{'<start_of_turn>model\n'}}\n{%- endif -%}\n")

# Phi-3-mini-4k-instruct's (tokenizer_config.json); eos_token is rendered as "".
PHI3_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + "
    "'<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}")


def field_str(f, i):
    return bytes(f.parts[f.data[i]]).decode("utf-8")


def read_gguf(path):
    r = GGUFReader(path)
    f = r.fields
    tokens = [field_str(f["tokenizer.ggml.tokens"], i) for i in range(len(f["tokenizer.ggml.tokens"].data))]
    tt = f["tokenizer.ggml.token_type"]
    types = [int(tt.parts[i][0]) for i in tt.data]
    mf = f["tokenizer.ggml.merges"]
    merges = []
    for i in range(len(mf.data)):
        m = field_str(mf, i)
        k = m.index(" ", 1)  # as llama.cpp: the first space after the first character
        merges.append((m[:k], m[k + 1:]))
    tmpl = field_str(f["tokenizer.chat_template"], 0) if "tokenizer.chat_template" in f else None
    return tokens, types, merges, tmpl


def build(tokens, types, merges, pre):
    vocab = {}
    for i, t in enumerate(tokens):
        vocab[t] = i  # the last of equal texts wins, as in kgen and llama.cpp
    seen, ms = set(), []
    for a, b in merges:  # kgen ignores merges whose parts or result are not tokens, keeps the first of equals
        if a in vocab and b in vocab and a + b in vocab and (a, b) not in seen:
            seen.add((a, b))
            ms.append((a, b))
    bpe = models.BPE(vocab=vocab, merges=ms, ignore_merges=(pre == "llama-bpe"))
    tok = Tokenizer(bpe)
    if pre == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    elif pre == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2 if pre == "qwen2" else LLAMA3), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty == 3 and t])
    tok.add_tokens([AddedToken(t, special=False, normalized=False)
                    for t, ty in zip(tokens, types) if ty == 4 and t])
    return tok


# ───────────────────── bytes that are not UTF-8 ─────────────────────
# Hugging Face's tokenizers take only Unicode strings, so for those the
# reference runs llama.cpp's pipeline (src/llama-vocab.cpp, src/unicode.cpp)
# itself, with Hugging Face's pre-tokenizer and BPE model as its steps:
#   1. special tokens are matched on the bytes as given (leftmost, then
#      longest); the bytes between them are
#   2. read as code points by llama.cpp's rule (llama_utf8.py),
#   3. pre-tokenized by the same Hugging Face pre-tokenizer (on a str: each
#      surrogate, of class "other" for llama.cpp, stands in as U+E000, also
#      "other", since a Rust string cannot hold a surrogate),
#   4. each word written back as its code points in UTF-8 (a surrogate as its
#      three bytes), mapped through GPT-2's byte-to-unicode table, and BPE'd
#      by the Hugging Face BPE model.
# main() checks this composition against Hugging Face's whole pipeline on
# every valid string first.

def gpt2_byte_chars():
    """GPT-2's byte-to-unicode table: printable bytes are themselves, the other
    68 U+0100.. in byte order."""
    own = set(range(ord("!"), ord("~") + 1)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    out, n = [], 0
    for b in range(256):
        out.append(chr(b) if b in own else chr(256 + n))
        n += b not in own
    return out


BYTE_CHAR = gpt2_byte_chars()


def split_special(b, specials):
    """b as a list of byte strings and token ids: the leftmost special text
    (bytes, id) first, the longest at one position."""
    by_first = {}
    for sp in specials:  # candidates by first byte, the longest first (the first of equal lengths)
        by_first.setdefault(sp[0][0], []).append(sp)
    for v in by_first.values():
        v.sort(key=lambda sp: -len(sp[0]))
    out, seg, i = [], 0, 0
    while i < len(b):
        hit = next((sp for sp in by_first.get(b[i], ()) if b.startswith(sp[0], i)), None)
        if not hit:
            i += 1
            continue
        if seg < i:
            out.append(b[seg:i])
        out.append(hit[1])
        i += len(hit[0])
        seg = i
    if seg < len(b):
        out.append(b[seg:])
    return out


def encode_bytes(tok, specials, b):
    """The token ids of bytes b by llama.cpp's pipeline (above)."""
    ids = []
    for part in split_special(b, specials):
        if isinstance(part, int):
            ids.append(part)
            continue
        cps = llama_cpp_read(part)
        text = "".join(chr(0xE000 if 0xD800 <= c <= 0xDFFF else c) for c in cps)
        for _, (a, e) in tok.pre_tokenizer.pre_tokenize_str(text):
            word = "".join(BYTE_CHAR[x] for x in utf8(cps[a:e]))
            ids += [t.id for t in tok.model.tokenize(word)]
    return ids


def read_text(specials, b):
    """What tokenizing b and joining the pieces gives back, less the bytes the
    vocabulary has no token for: each part between special tokens as read."""
    text = {i: t for t, i in specials}
    return b"".join(text[p] if isinstance(p, int) else utf8(llama_cpp_read(p)) for p in split_special(b, specials))


def main():
    if len(sys.argv) != 3:
        print("usage: tok_ref.py GGUF OUT", file=sys.stderr)
        sys.exit(2)
    tokens, types, merges, tmpl = read_gguf(sys.argv[1])
    valid, invalid = corpus()
    specials = {flags: [(t.encode("utf-8"), i) for i, (t, ty) in enumerate(zip(tokens, types))
                        if t and (ty == 4 or (ty == 3 and flags == 2))] for flags in (0, 2)}

    hx = lambda b: b.hex() or "-"
    lines = [f"S {i} {hx(s.encode('utf-8'))}" for i, s in enumerate(valid)]
    lines += [f"X {len(valid) + i} {hx(b)} {hx(read_text(specials[0], b))}" for i, b in enumerate(invalid)]
    for pre in ("smollm", "gpt2", "llama-bpe", "qwen2"):
        tok = build(tokens, types, merges, pre)
        for flags in (0, 2):
            tok.encode_special_tokens = flags == 0
            encs = [e.ids for e in tok.encode_batch(valid, add_special_tokens=False)]
            for s, ids in zip(valid, encs):  # the composition agrees with HF where HF can judge
                if encode_bytes(tok, specials[flags], s.encode("utf-8")) != ids:
                    print(f"tok_ref.py: llama.cpp's pipeline over HF's steps differs from HF ({pre}, flags {flags}) "
                          f"on {s!r}", file=sys.stderr)
                    sys.exit(1)
            encs += [encode_bytes(tok, specials[flags], b) for b in invalid]
            for i, ids in enumerate(encs):
                lines.append(f"R {pre} {flags} {i} {','.join(map(str, ids)) or '-'}")
    try:
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        ImmutableSandboxedEnvironment = None
    if not ImmutableSandboxedEnvironment:
        lines.append("J 0")  # no jinja2: the chat formats are not compared
    elif tmpl:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)  # as transformers renders them
        convs = [
            [], [("user", "Hello!")], [("system", "Be brief."), ("user", "Hi")],
            [("user", "What is 2+2?"), ("assistant", "4."), ("user", "And 3+3?")],
            [("system", "S"), ("user", "U"), ("assistant", "A"), ("user", "U2"), ("assistant", "A2")],
            [("user", "  spaced\n\ncontent with 'quotes' and \"dq\" and {{ braces }} {% tags %}  ")],
            [("user", "")], [("assistant", "starts with assistant")], [("tool", "{\"r\": 1}")],
            [("user", "héllo 你好 😀\n\tnext line")], [("system", "")],
        ]
        # (the Jinja templates raise on conversations they refuse, such as
        # Gemma's on roles that do not alternate; Phi-3's drops roles other
        # than system, user and assistant: those are not compared)
        for name, text in (("smollm2", tmpl), ("llama3", LLAMA3_TEMPLATE), ("gemma", GEMMA3_TEMPLATE),
                           ("phi3", PHI3_TEMPLATE)):
            lines.append(f"T {name} {hx(text.encode())}")
            t = env.from_string(text)
            for conv in convs:
                if name == "phi3" and any(r not in ("system", "user", "assistant") for r, _ in conv):
                    continue
                for add in (0, 1):
                    msgs = [{"role": r, "content": c} for r, c in conv]
                    try:
                        want = t.render(messages=msgs, add_generation_prompt=bool(add), bos_token="", eos_token="")
                    except Exception:
                        continue
                    fields = " ".join(f"{hx(r.encode())} {hx(c.encode())}" for r, c in conv)
                    lines.append(f"H {name} {add} {len(conv)} {fields + ' ' if fields else ''}{hx(want.encode())}")
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{len(valid)} valid strings, {len(invalid)} invalid")


if __name__ == "__main__":
    main()
