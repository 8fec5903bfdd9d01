#!/usr/bin/env python3
"""tok_llama_cpp.py GGUF OUT — llama.cpp's own tokenizations of the tokenizer
tests' strings (tok_corpus.py), for tests/test_tokenizer.c's
tokenizer_matches_llama_cpp.

llama.cpp is llama-cpp-python's (bench/.venv, built by bench/setup_peer.sh):
the GGUF's vocabulary loaded alone (vocab_only), its own pre-tokenizer, no
BOS, special-token text parsed (flags 2) or not (flags 0). Writes OUT in
tok_ref.py's format:

    S idx hex | X idx hex      a test string, valid UTF-8 or not
    R pre flags idx ids        llama.cpp's token ids (pre: the GGUF's
                               tokenizer.ggml.pre)
    F idx                      a string llama.cpp cannot tokenize: it holds a
                               4-byte form past U+10FFFF, on which llama.cpp
                               throws out of llama_tokenize (llama_utf8.py)

That llama.cpp does end the process there is checked on each such form
alone, in a child process; the script fails if one does not.
Exit status 3 if llama_cpp or gguf is missing.
"""
import subprocess
import sys

from llama_utf8 import llama_cpp_read
from tok_corpus import corpus

try:
    import llama_cpp
    from gguf import GGUFReader
except ImportError as e:
    print(f"missing Python package: {e} (run sh bench/setup_peer.sh)", file=sys.stderr)
    sys.exit(3)

PAST_MAX_FORMS = [b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xf7\xbf\xbf\xbf"]

CHILD = """
import sys, llama_cpp
m = llama_cpp.Llama(model_path=sys.argv[1], vocab_only=True, verbose=False)
m.tokenize(bytes.fromhex(sys.argv[2]), add_bos=False, special=False)
print("returned")
"""


def past_max(b):
    at = []
    llama_cpp_read(b, at)
    return bool(at)


def main():
    if len(sys.argv) != 3:
        print("usage: tok_llama_cpp.py GGUF OUT", file=sys.stderr)
        sys.exit(2)
    gguf = sys.argv[1]
    f = GGUFReader(gguf).fields.get("tokenizer.ggml.pre")
    pre = bytes(f.parts[f.data[0]]).decode() if f else "default"
    for form in PAST_MAX_FORMS:
        r = subprocess.run([sys.executable, "-c", CHILD, gguf, form.hex()], capture_output=True, text=True)
        if r.returncode == 0:
            print(f"tok_llama_cpp.py: llama.cpp tokenized {form!r} (expected it to fail): {r.stdout.strip()}",
                  file=sys.stderr)
            sys.exit(1)
    m = llama_cpp.Llama(model_path=gguf, vocab_only=True, verbose=False)
    valid, invalid = corpus()
    strings = [s.encode("utf-8") for s in valid] + invalid
    lines = [f"{'S' if i < len(valid) else 'X'} {i} {b.hex() or '-'}" for i, b in enumerate(strings)]
    failed = {i for i, b in enumerate(strings) if past_max(b)}
    lines += [f"F {i}" for i in sorted(failed)]
    for flags in (0, 2):
        for i, b in enumerate(strings):
            if i not in failed:
                ids = m.tokenize(b, add_bos=False, special=flags == 2)
                lines.append(f"R {pre} {flags} {i} {','.join(map(str, ids)) or '-'}")
    with open(sys.argv[2], "w") as out:
        out.write("\n".join(lines) + "\n")
    print(f"{len(valid)} valid strings, {len(invalid)} invalid ({len(failed)} that llama.cpp cannot take)")


if __name__ == "__main__":
    main()
