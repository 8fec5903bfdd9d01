#!/usr/bin/env python3
"""tok_llama_cpp.py GGUF OUT [PEER_JSON] — llama.cpp's own tokenizations of
the tokenizer tests' strings (tok_corpus.py), for tests/test_tokenizer.c's
slow_tokenizer_matches_llama_cpp (make check-slow).

llama.cpp is llama-cpp-python's (bench/.venv, built by bench/setup_peer.sh):
the GGUF's vocabulary loaded alone (vocab_only), no BOS, special-token text
parsed (flags 2) or not (flags 0), with the GGUF's own pre-tokenizer and with
gpt2 ("gpt-2" to llama.cpp) and llama-bpe: for those, a copy of the GGUF's
metadata (no tensors) with tokenizer.ggml.pre changed, in a temporary
directory. Writes OUT in tok_ref.py's format:

    S idx hex | X idx hex      a test string, valid UTF-8 or not
    R pre flags idx ids        llama.cpp's token ids (pre: the GGUF's
                               tokenizer.ggml.pre, gpt2, llama-bpe)
    F idx                      a string llama.cpp cannot tokenize: it holds a
                               4-byte form past U+10FFFF, on which llama.cpp
                               throws out of llama_tokenize (llama_utf8.py)

That llama.cpp does end the process there is checked on each such form
alone, in a child process; the script fails if one does not. PEER_JSON
(bench/.venv/peer.json, written by setup_peer.sh) names the llama.cpp build
in the summary printed; as an argument it also keys the test's reference
cache (tests/refcache.c) to that build.
Exit status 3 if llama_cpp or gguf is missing.
"""
import json
import os
import subprocess
import sys
import tempfile

from llama_utf8 import llama_cpp_read
from tok_corpus import corpus

try:
    import gguf
    import llama_cpp
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


def with_pre(src, pre, dst):
    """Writes dst: src's metadata with tokenizer.ggml.pre = pre, no tensors."""
    r = gguf.GGUFReader(src)
    f = r.fields["general.architecture"]
    w = gguf.GGUFWriter(dst, bytes(f.parts[f.data[0]]).decode())
    for f in r.fields.values():
        if f.name == "general.architecture" or f.name.startswith("GGUF."):
            continue  # written by GGUFWriter
        t = f.types[0]
        w.add_key_value(f.name, pre if f.name == "tokenizer.ggml.pre" else f.contents(), t,
                        sub_type=f.types[-1] if t == gguf.GGUFValueType.ARRAY else None)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()


def past_max(b):
    at = []
    llama_cpp_read(b, at)
    return bool(at)


def main():
    if len(sys.argv) not in (3, 4):
        print("usage: tok_llama_cpp.py GGUF OUT [PEER_JSON]", file=sys.stderr)
        sys.exit(2)
    build = f"llama-cpp-python {llama_cpp.__version__}"
    if len(sys.argv) == 4:
        with open(sys.argv[3]) as f:
            build = f"llama.cpp {json.load(f).get('llama_cpp_commit', '?')} ({build})"
    model = sys.argv[1]
    f = gguf.GGUFReader(model).fields.get("tokenizer.ggml.pre")
    own = bytes(f.parts[f.data[0]]).decode() if f else "default"
    for form in PAST_MAX_FORMS:
        r = subprocess.run([sys.executable, "-c", CHILD, model, form.hex()], capture_output=True, text=True)
        if r.returncode == 0:
            print(f"tok_llama_cpp.py: llama.cpp tokenized {form!r} (expected it to fail): {r.stdout.strip()}",
                  file=sys.stderr)
            sys.exit(1)
    valid, invalid = corpus()
    strings = [s.encode("utf-8") for s in valid] + invalid
    lines = [f"{'S' if i < len(valid) else 'X'} {i} {b.hex() or '-'}" for i, b in enumerate(strings)]
    failed = {i for i, b in enumerate(strings) if past_max(b)}
    lines += [f"F {i}" for i in sorted(failed)]
    with tempfile.TemporaryDirectory() as tmp:
        for pre, name in ((own, own), ("gpt-2", "gpt2"), ("llama-bpe", "llama-bpe")):
            path = model
            if pre != own:
                path = os.path.join(tmp, f"{name}.gguf")
                with_pre(model, pre, path)
            m = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
            for flags in (0, 2):
                for i, b in enumerate(strings):
                    if i not in failed:
                        ids = m.tokenize(b, add_bos=False, special=flags == 2)
                        lines.append(f"R {name} {flags} {i} {','.join(map(str, ids)) or '-'}")
            del m
    with open(sys.argv[2], "w") as out:
        out.write("\n".join(lines) + "\n")
    print(f"{build}: {len(valid)} valid strings, {len(invalid)} invalid ({len(failed)} that llama.cpp cannot take)")


if __name__ == "__main__":
    main()
