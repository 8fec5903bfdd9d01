#!/usr/bin/env python3
"""tok_corpus.py — the strings the tokenizer tests compare kgen on, shared by
tok_ref.py (Hugging Face `tokenizers`) and tok_llama_cpp.py (llama.cpp).
Standard library only; deterministic (fixed lists, then random strings from
fixed seeds).

corpus() returns (valid, invalid):
  valid    str: FIXED (whitespace, digits, code, scripts, emoji, special-token
           text, every character below U+0100, 1,000-byte words), then 1,200
           random mixes of POOLS and assigned code points;
  invalid  bytes that are not UTF-8: INVALID (one kind of fault per string,
           alone and among valid text), then 400 random mixes of valid
           fragments and BAD sequences.
"""
import random
import unicodedata

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


# ───────────────────────── invalid UTF-8 ─────────────────────────
# Kinds of fault: a continuation byte with no lead; a lead byte cut short (by
# another byte or by the end); overlong forms (C0 80 is U+0000 written in 2
# bytes, E0 81 81 and C1 81 are 'A', F0 80 80 80 is U+0000 in 4 bytes);
# surrogates (ED A0 80 .. ED BF BF); values past U+10FFFF (F4 90 80 80 ..
# F7 BF BF BF); bytes no UTF-8 has (F8..FF, and C0, C1, F5.. as leads).
BAD = [
    b"\x80", b"\xbf", b"\x80\x80", b"\xbf\xbf\xbf\xbf",                      # lone continuation bytes
    b"\xc3", b"\xe2", b"\xe2\x82", b"\xf0", b"\xf0\x9f", b"\xf0\x9f\x98",     # cut short
    b"\xc0\x80", b"\xc0\xaf", b"\xc1\xbf", b"\xc1\x81", b"\xc0\xa0", b"\xc0\xb1",  # overlong: NUL '/' DEL 'A' ' ' '1'
    b"\xc0\x8a", b"\xc1\xb3", b"\xe0\x80\x80", b"\xe0\x81\x81", b"\xe0\x9f\xbf",  # overlong: '\n' 's' NUL 'A' U+07FF
    b"\xf0\x80\x80\x80", b"\xf0\x8f\xbf\xbf", b"\xf0\x80\x81\x81",            # overlong 4 bytes: NUL U+FFFF A
    b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xed\xa0\xbd\xed\xb8\x80",            # surrogates (and a CESU-8 pair)
    b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xf7\xbf\xbf\xbf",            # past U+10FFFF
    b"\xf8\x88\x80\x80\x80", b"\xfc\x84\x80\x80\x80\x80", b"\xfe", b"\xff", b"\xfe\xff",  # 5-, 6-byte forms, FE FF
    b"\xc3\x28", b"\xe2\x28\xa1", b"\xe2\x82\x28", b"\xf0\x28\x8c\xbc", b"\xf0\x90\x28\xbc",  # a bad byte inside
]

CONTEXT = [  # a fault X among valid text: each BAD in each of these
    b"X", b"aXb", b"a X b", b"X ", b" X", b"XX", b"123X456", b"X1", b"1 X 2", b"'X", b"X's", b"caf\xc3\xa9X",
    b"\xe2\x82\xacX\xe2\x82\xac", b"\nX\n", b"\tX  ", b"Hello, X world!", b"<|im_end|>X<|im_end|>",
    b"X<|im_start|>", b"<|endoftext|>X", b"\xe4\xbd\xa0X\xe5\xa5\xbd", b"\xf0\x9f\x98\x80X",
]

INVALID_FIXED = [
    bytes([b]) for b in range(0x80, 0x100)  # every byte that is not ASCII, alone
] + [
    b"a" + bytes([b]) + b"b" for b in range(0x80, 0x100)
] + [
    # an overlong form spelling special-token text or its last character is
    # not that text: special tokens are matched on the bytes as given
    b"<|im_end|\xc0\xbe", b"\xc0\xbc|im_end|>", b"<|im_end|>\xc0\xbe", b"<|im_end\xc1\xbc>",
    b"\xe2<|im_end|>\x82", b"\xc3<|im_start|>\xa9", b"<|im_start|>user\n\xff\xfe<|im_end|>\n",
    # overlong spaces, digits, newlines and apostrophes take part in pre-tokenization
    b"a\xc0\xa0\xc0\xa0b", b"x\xc0\xa0\xc0\xa0", b"1\xc0\xb12\xc0\xb2", b"'\xc1\xb3 'v\xc1\xa5 '\xc1\xac\xc1\xac",
    b"\xc0\xa7s \xc0\xa7\xc1\xb3", b"a\xc0\x8a\xc0\x8ab", b"\r\xc0\x8a\xc0\x8d\n", b"\xc0\xa0\xc0\xa0\xc0\xa0",
    b"\xe0\x80\xa0\xc0\xa0x", b"\xc2\xa0\xc0\xa0\xe3\x80\x80",
    # long runs
    b"\xff" * 300, b"\x80" * 300, b"\xc0\x80" * 200, b"\xed\xa0\x80" * 100, b"a\xe2\x82" * 150,
    b"\xe2\x82" * 200 + b"\xac",
]


def invalid_fixed():
    out = list(INVALID_FIXED)
    for bad in BAD:
        out += [c.replace(b"X", bad) for c in CONTEXT]
    return out


def random_invalid(rng, n):
    frags = [s.encode("utf-8") for s in ("the", " the", "ing", " ", "  ", "\n", "\r\n", "\t", "'s", "'LL", "123",
                                         "4", "<|im_end|>", "<|im", "\u00a0", "\u3000", "\U0001F600", "\u0301",
                                         ".", "!?", "caf\u00e9", "\u4f60\u597d", "\u041f\u0440")]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 30)):
            r = rng.random()
            if r < 0.3:
                parts.append(rng.choice(BAD))
            elif r < 0.45:
                parts.append(bytes([rng.randint(0x80, 0xFF)]))
            else:
                parts.append(rng.choice(frags))
        s = b"".join(parts)
        if rng.random() < 0.2:  # cut short anywhere, mid-sequence too
            s = s[:rng.randint(0, len(s))]
        out.append(s)
    return out


def is_utf8(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def corpus():
    valid = FIXED + random_strings(random.Random(20240611), 1200)
    invalid = [s for s in invalid_fixed() + random_invalid(random.Random(20261206), 400) if not is_utf8(s)]
    return valid, invalid
