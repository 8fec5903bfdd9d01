#!/usr/bin/env python3
"""tok_ref.py GGUF OUT — reference tokenizations for tests/test_tokenizer.c.

An implementation independent of kgen: Hugging Face's `tokenizers` (PyPI),
built from the GGUF's vocabulary and merges as read by llama.cpp's Python
reader (PyPI `gguf`), and Jinja2 for the chat template. Writes OUT, one
record per line, every string as hex of its UTF-8 bytes ("-" when empty):

    S idx hex                  a test string
    R pre flags idx ids        its token ids ("1,2,3"; "-" when none) with the
                               pre-tokenizer `pre` (smollm, gpt2, llama-bpe);
                               flags 2 = special-token text is the token
    J 0                        jinja2 is not installed (no T/H records)
    T name hex                 a chat template (name: smollm2 = the GGUF's, llama3)
    H name add n hexrole hexcontent ... hexexpected
                               messages formatted by Jinja with the template

The strings are generated deterministically (fixed lists, then random ones
from a fixed seed). Reference pipelines:
    smollm     Sequence([Digits(individual_digits=True),
                         ByteLevel(add_prefix_space=False, use_regex=True)])
    gpt2       ByteLevel(add_prefix_space=False, use_regex=True)
    llama-bpe  Sequence([Split(Regex(LLAMA3), "isolated"), ByteLevel(use_regex=False)]),
               BPE(ignore_merges=True)
BPE model from the GGUF's tokens and merges, ByteLevel decoder, control
(type 3) and user-defined (type 4) tokens as added tokens; without flag 2,
tokenizer.encode_special_tokens = True (their text is ordinary text).
Exit status 3 if a package is missing.
"""
import random
import sys
import unicodedata

try:
    from gguf import GGUFReader
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
except ImportError as e:
    print(f"missing Python package: {e} (pip install gguf tokenizers)", file=sys.stderr)
    sys.exit(3)

LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
          r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# Meta's Llama 3 Instruct chat template (BOS comes from the tokenizer, so
# bos_token is rendered as "").
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")


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
            pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty == 3 and t])
    tok.add_tokens([AddedToken(t, special=False, normalized=False)
                    for t, ty in zip(tokens, types) if ty == 4 and t])
    return tok


# ─────────────────────────── test strings ───────────────────────────

FIXED = [
    "", " ", "  ", "\n", "\t", "\r\n", "a", "Hello, world!", "Hello world", " Hello world", "Hello  world",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure you're right; they've said we'll go, he'd say it's fine. I'M YOU'RE THEY'VE WE'LL HE'D IT'S",
    "don't 's 't 're 've 'm 'll 'd 'x ''s '' ' s",
    "3.14159 2024-01-01 1,000,000 +49 (0)30 123456789 0x1F 1e-9 -42",
    "Room 101, 22nd floor: 7 items at $19.99 each = $139.93",
    "café naïve résumé Ångström Øresund straße œuvre Çà ñandú",
    "cafe\u0301 nai\u0308ve e\u0301te\u0301",  # decomposed accents
    "Привет, мир! Καλημέρα κόσμε. שלום עולם. مرحبا بالعالم. नमस्ते दुनिया",
    "你好，世界！这是一个测试。日本語のテキストです。한국어 텍스트입니다.",
    "emoji: 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇫🇷🇩🇪 ❤️ ✨🚀",
    "math: ∑ x² ≤ ∞, ∫ f(x) dx, α+β=γ, ½ ¾ ² ³ Ⅻ ٣ ४ ๕ ①",
    "tabs\tand\t\ttabs", "lines\nand\n\nlines\n\n\n", "trailing spaces   ", "   leading spaces",
    "mixed \t \n \r\n  \n\t end", "\n\n\n", " \n \n ", "a\u00a0b\u2003c\u3000d\u0085e\u2028f\u1680g",
    "int main(void) {\n    printf(\"%d\\n\", 42);\n    return 0;\n}\n",
    "def f(x):\n\tif x > 0:\n\t\treturn [i**2 for i in range(x)]  # comment\n",
    "<div class=\"a\">&amp; &lt;tag&gt;</div> https://example.com/path?q=1&r=2#frag",
    "SELECT * FROM t WHERE a >= 10 AND b <> 'x';",
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|><|im_end|><|endoftext|>", "<|im_end|><|im_end|>", "<|im_", "<|im_start|", "x<|im_end|>y",
    "<|endoftext|>The end.<|endoftext|>", "<repo_name>kgen<file_sep>main.c<filename>", "<|im_start|>system",
    "<|start_header_id|>user<|end_header_id|>", "<|eot_id|>",
    "!!!???...,,,;;;:::", "---===___+++***", "(((())))[[[]]]{{{}}}", "@#$%^&*~`|\\/",
    "a1b2c3 1a2b3c 12ab 34 56", " 1 22 333 4444 55555 666666",
    "UPPER lower MiXeD CamelCase snake_case kebab-case",
    "'s'S'T're'RE'Ve'LL'D'M", "I'LL 'Ll 'lL",
    "ſ 'ſ 'ﬅ", "\u0130 \u0131 \u03a3\u03c2 \u1e9e", "zero\u200bwidth\u200cjoin\u200dner\ufeff",
    "control\x01\x02\x1b[0m\x7f", "\x1c\x1d\x1e\x1f", "\x0b\x0c",
]
FIXED += [chr(b) for b in range(1, 128)]  # every ASCII character alone
FIXED += [chr(c) for c in range(0x80, 0x100)]
FIXED += ["a" * 3000, "=" * 2000, "中" * 1500, "ab " * 1000, " " * 1500 + "x", "\n" * 1200, "9" * 1200,
          "word" * 400 + "!" + "zz" * 600]

POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "0123456789",
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    " " * 6 + "\t\n\r\x0b\x0c\u0085\u00a0\u1680\u2000\u2009\u200a\u2028\u2029\u202f\u205f\u3000",
    "àáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿĀāĂăĄąĆćČčĎďĐđĒēĘęĚěĞğĪīİıŁłŃńŇňŌōŐőŒœŘřŚśŞşŠšŢţŤťŪūŮůŰűŸŹźŻżŽž",
    "αβγδεζηθικλμνξοπρστυφχψωΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩабвгдежзийклмнопрстуфхцчшщъыьэюяАБВГД",
    "你好世界中文测试的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可你年生自会那后能对着事其里所去行过家十用发天如然作方成者多日都三小军二无同么经法当起与好看学进种将还分此心前面又定见只主没公从",
    "あいうえおかきくけこアイウエオカキクケコ한국어텍스트입니다ㄱㄴㄷ",
    "٠١٢٣٤٥٦٧٨٩०१२३४५६७८९½¾²³¹ⅠⅡⅢⅫ①②③",
    "\u0300\u0301\u0302\u0308\u0327\u0338\u20dd\u200d\ufe0f",
    "😀😃😄😁😆😅🤣😂🙂🙃😉😊😇🥰😍🤩😘👍👎👏🙏💪🔥✨🎉🚀🌍🇫🇷🇯🇵🏳️‍🌈",
    "שלוםעולםمرحبابالعالمनमस्तेদুনিয়াสวัสดีชาวโลกქართული",
    ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "n't", "'"],
    ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_", "|>", "<", "<file_sep>", "<jupyter_code>"],
    [" the", " of", " and", " to", " in", " is", "ing", "tion", " for", " that", "ed", " with", "er"],
]


def assigned(cp):
    c = chr(cp)
    return unicodedata.category(c) not in ("Cn", "Cs", "Co")


def random_strings(rng, n):
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 40)):
            r = rng.random()
            if r < 0.08:  # any assigned code point of the BMP or the supplementary planes
                while True:
                    cp = rng.randint(0x80, 0x2FFFF) if rng.random() < 0.9 else rng.randint(0x30000, 0x10FFFF)
                    if assigned(cp):
                        break
                parts.append(chr(cp))
            else:
                pool = POOLS[rng.randrange(len(POOLS))]
                k = rng.choice([1, 1, 1, 2, 3, 5, 8])
                parts.append("".join(rng.choice(pool) for _ in range(k)))
        out.append("".join(parts))
    return out


def main():
    if len(sys.argv) != 3:
        print("usage: tok_ref.py GGUF OUT", file=sys.stderr)
        sys.exit(2)
    tokens, types, merges, tmpl = read_gguf(sys.argv[1])
    rng = random.Random(20240611)
    strings = FIXED + random_strings(rng, 1200)

    hx = lambda s: s.encode("utf-8").hex() or "-"
    lines = [f"S {i} {hx(s)}" for i, s in enumerate(strings)]
    for pre in ("smollm", "gpt2", "llama-bpe"):
        tok = build(tokens, types, merges, pre)
        for flags in (0, 2):
            tok.encode_special_tokens = flags == 0
            encs = tok.encode_batch(strings, add_special_tokens=False)
            for i, e in enumerate(encs):
                lines.append(f"R {pre} {flags} {i} {','.join(map(str, e.ids)) or '-'}")
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
        for name, text in (("smollm2", tmpl), ("llama3", LLAMA3_TEMPLATE)):
            lines.append(f"T {name} {hx(text)}")
            t = env.from_string(text)
            for conv in convs:
                for add in (0, 1):
                    msgs = [{"role": r, "content": c} for r, c in conv]
                    want = t.render(messages=msgs, add_generation_prompt=bool(add), bos_token="", eos_token="")
                    fields = " ".join(f"{hx(r)} {hx(c)}" for r, c in conv)
                    lines.append(f"H {name} {add} {len(conv)} {fields + ' ' if fields else ''}{hx(want)}")
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{len(strings)} strings")


if __name__ == "__main__":
    main()
