#!/usr/bin/env python3
"""py_pkg_check.py — checks the Python package `kgen` (python/kgen) on a
compiled model, for tests/test_python.c. Run with PYTHONPATH=python.

    py_pkg_check.py --kgen BIN --so LIB.so --gguf MODEL.gguf --tmp DIR [--cc CC]
    py_pkg_check.py --kgen BIN --encoder-so LIB.so --encoder-dir HF_DIR --tmp DIR

Decoder (--so): references independent of the package:
  layout    every ctypes struct of kgen/_abi.py (kgm_open_params, kgm_info,
            kgm_message, kgm_sampler_params, the kgm_api table) has the size
            and field offsets a C compiler gives include/kgen_model.h;
  tokenize  ids equal Hugging Face `tokenizers`' for tok_corpus.py's valid
            strings (the tokenizer tok_ref.py rebuilds from the GGUF), with
            and without special-token text read as tokens, BOS as the GGUF's
            add_bos_token says; detokenize gives each string back;
  generate  greedy text equals `kgen run MODEL.so -p TEXT -n 16 --temp 0`'s
            output, raw and with --chat; seeded sampling equals `kgen run`'s
            with the same parameters; --ignore-eos as stop_at_eos=False;
            stream()'s pieces join to generate()'s text, no piece splits a
            character;
  errors    a truncated copy, a file that is not ELF, a closed model, an
            out-of-range token, a prompt longer than the context, an n_ctx
            past the training context, Encoder on a decoder: kgen.Error
            with the reason, no crash.
Stub (--stub-so): the Encoder's calls through an ABI-2 table on
test_python.c's stub model, whose embed calls write values computed from
their input: each value where it belongs, errors, the list output without
numpy.
Encoder (--encoder-so): Encoder.embed equals `kgen embed --json` on the same
sentences (max |diff| <= 1e-5), embed_tokens with Hugging Face `tokenizers`'
ids for them ([CLS] ... [SEP], from the directory's tokenizer.json) equals
embed, every row has norm 1. Exits 77 (skipped, saying why) when the model's
ABI version has no encoder calls.
Prints "N prompts pass; ..." on success; exits 1 with the failures listed.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

try:
    import kgen
    from kgen import _abi
except ImportError as e:
    print(f"cannot import the package kgen (PYTHONPATH=python?): {e}", file=sys.stderr)
    sys.exit(1)

FAILS = []


def fail(msg):
    FAILS.append(msg)
    print("FAIL:", msg, file=sys.stderr)


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, timeout=300, **kw)


# ───────────────────────────── layout ─────────────────────────────
def check_layout(cc, include, tmp):
    """ctypes sizes and offsets against the C compiler's for kgen_model.h."""
    structs = dict(_abi.STRUCTS)
    lines = ["#include <stddef.h>", "#include <stdio.h>", '#include "kgen_model.h"',
             "typedef __typeof__(kgm_api) api_t;", "int main(void) {"]
    want = []
    for cname, ct in structs.items():
        lines.append(f'printf("{cname} %zu\\n", sizeof({cname}));')
        want.append((f"{cname}", C_sizeof(ct)))
        for f in ct._fields_:
            lines.append(f'printf("{cname}.{f[0]} %zu\\n", offsetof({cname}, {f[0]}));')
            want.append((f"{cname}.{f[0]}", getattr(ct, f[0]).offset))
    # the table the header declares `kgm_api` as: version 1's, or (ABI 2 and
    # later) one that appends the encoder calls
    v2 = _abi.kgm_api_v2
    lines.append("#if KGM_ABI_VERSION >= 2")
    for f in v2._fields_:
        lines.append(f'printf("kgm_api.{f[0]} %zu\\n", offsetof(api_t, {f[0]}));')
    lines.append("#else")
    for f in _abi.kgm_api_v1._fields_:
        lines.append(f'printf("kgm_api.{f[0]} %zu\\n", offsetof(api_t, {f[0]}));')
    lines.append("#endif")
    lines.append('printf("kgm_api %zu\\n", sizeof(api_t));')
    lines.append("return 0; }")
    src, exe = os.path.join(tmp, "layout.c"), os.path.join(tmp, "layout")
    with open(src, "w") as f:
        f.write("\n".join(lines) + "\n")
    r = run([cc, "-std=gnu11", "-I", include, src, "-o", exe])
    if r.returncode:
        fail(f"layout: {cc} failed on the layout program:\n{r.stderr.decode(errors='replace')[-2000:]}")
        return 0
    got = dict(l.rsplit(" ", 1) for l in run([exe]).stdout.decode().splitlines())
    n = 0
    for name, off in want:
        n += 1
        if int(got.get(name, -1)) != off:
            fail(f"layout: {name}: ctypes {off}, C {got.get(name)}")
    table = v2 if "kgm_api.embed_dim" in got else _abi.kgm_api_v1
    for f in table._fields_:
        n += 1
        if int(got.get(f"kgm_api.{f[0]}", -1)) != getattr(table, f[0]).offset:
            fail(f"layout: kgm_api.{f[0]}: ctypes {getattr(table, f[0]).offset}, C {got.get('kgm_api.' + f[0])}")
    n += 1
    if int(got["kgm_api"]) != C_sizeof(table):
        fail(f"layout: the kgm_api table: ctypes {C_sizeof(table)} bytes ({table.__name__}), C {got['kgm_api']}")
    return n


def C_sizeof(t):
    import ctypes
    return ctypes.sizeof(t)


# ───────────────────────────── tokenize ─────────────────────────────
def read_vocab(gguf):
    """tok_ref.py's read_gguf with the one GGUFReader (slow on a big file), and
    add_bos_token: (tokens, types, merges, chat template, add_bos)"""
    import tok_ref
    from gguf import GGUFReader
    r = GGUFReader(gguf)
    f = r.fields.get("tokenizer.ggml.add_bos_token")
    add_bos = bool(f.parts[f.data[0]][0]) if f else False
    orig = tok_ref.GGUFReader
    tok_ref.GGUFReader = lambda path: r
    try:
        return tok_ref.read_gguf(gguf) + (add_bos,)
    finally:
        tok_ref.GGUFReader = orig


def check_tokenize(m, vocab):
    from tok_corpus import corpus
    from tok_ref import build
    tokens, types, merges, _, add_bos = vocab
    tok = build(tokens, types, merges, "smollm")
    valid, _ = corpus()
    n = 0
    for special in (False, True):
        tok.encode_special_tokens = not special
        refs = [e.ids for e in tok.encode_batch(valid, add_special_tokens=False)]
        for s, ref in zip(valid, refs):
            n += 1
            got = m.tokenize(s, bos=False, special=special)
            if got != ref:
                fail(f"tokenize({s[:60]!r}, special={special}): {got[:20]} != HF {ref[:20]}")
                continue
            if not special:  # bytes the vocabulary lacks are dropped: compare with HF's decoder
                back, want = m.detokenize(got), tok.decode(ref, skip_special_tokens=False)
                if back != want:
                    fail(f"detokenize(tokenize({s[:60]!r})) gave {back[:60]!r}; HF decodes {want[:60]!r}")
    tok.encode_special_tokens = True
    for s in valid[:50]:
        n += 1
        got = m.tokenize(s, bos=True)
        ref = ([m.info.bos] if add_bos else []) + tok.encode(s, add_special_tokens=False).ids
        if got != ref:
            fail(f"tokenize({s[:60]!r}, bos=True): {got[:10]} != {ref[:10]} (add_bos_token {add_bos})")
    return n


# ───────────────────────────── generate ─────────────────────────────
PROMPTS = ["The capital of France is", "Write a haiku about the sea.", "Translate to French: good morning",
           "你好，请介绍一下你自己。"]


def kgen_run(kgen_bin, so, prompt, *args):
    r = run([kgen_bin, "run", so, "-p", prompt, "-t", "2", *args])
    if r.returncode:
        fail(f"kgen run {prompt!r} {args}: exit {r.returncode}: {r.stderr.decode(errors='replace')[-500:]}")
        return None
    out = r.stdout
    if not out.endswith(b"\n"):
        fail(f"kgen run {prompt!r}: stdout does not end in a newline")
        return None
    return out[:-1].decode("utf-8", "replace")


def check_generate(m, kgen_bin, so, tmpl):
    n = 0
    cases = []
    for p in PROMPTS:
        cases.append((p, dict(max_tokens=16), ["-n", "16", "--temp", "0"]))
        cases.append((p, dict(max_tokens=24, chat=True), ["-n", "24", "--temp", "0", "--chat"]))
    # kgen run's sampling defaults: temp 0.8, top-k 40, top-p 0.95, min-p 0.05
    cases.append((PROMPTS[1], dict(max_tokens=24, temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, seed=42),
                  ["-n", "24"]))
    cases.append((PROMPTS[2], dict(max_tokens=24, temperature=1.1, top_k=0, top_p=0.9, min_p=0.0, seed=7,
                                   repeat_penalty=1.3),
                  ["-n", "24", "--temp", "1.1", "--top-k", "0", "--top-p", "0.9", "--min-p", "0", "--seed", "7",
                   "--repeat-penalty", "1.3"]))
    cases.append(("Hi", dict(max_tokens=40, chat=True, stop_at_eos=False),
                  ["-n", "40", "--temp", "0", "--chat", "--ignore-eos"]))
    for prompt, kw, args in cases:
        n += 1
        want = kgen_run(kgen_bin, so, prompt, *args)
        got = m.generate(prompt, **kw)
        if want is not None and got != want:
            fail(f"generate({prompt!r}, {kw}) = {got!r}; kgen run {' '.join(args)} printed {want!r}")
        if kw.get("chat"):
            continue  # stream() is compared on the other cases
        pieces = list(m.stream(prompt, **kw))
        if "".join(pieces) != got:
            fail(f"stream({prompt!r}, {kw}) joins to {''.join(pieces)!r}, generate gave {got!r}")
        if any("\ufffd" in p for p in pieces) and "\ufffd" not in (want or ""):
            fail(f"stream({prompt!r}) yielded a piece with a split character: {pieces!r}")
    # a prompt whose greedy text has multi-byte characters split across tokens
    pieces = list(m.stream(PROMPTS[3], max_tokens=32))
    n += 1
    if not any(ord(c) > 0x7F for p in pieces for c in p):
        print(f"note: {PROMPTS[3]!r} generated no non-ASCII text: {pieces!r}")
    # the chat text itself: kgm_chat through the package equals the template the
    # GGUF carries, rendered by Jinja2 (as tok_ref.py renders it)
    try:
        from jinja2.sandbox import ImmutableSandboxedEnvironment
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "héllo"}]
        want = env.from_string(tmpl).render(messages=msgs, add_generation_prompt=True, bos_token="", eos_token="")
        n += 1
        got = m.chat(msgs)
        if got != want:
            fail(f"chat({msgs}) = {got!r}; Jinja2 renders {want!r}")
    except ImportError:
        print("note: no jinja2: chat() not compared with the template")
    return n


# ───────────────────────────── errors ─────────────────────────────
def expect_error(label, fn, *want):
    try:
        fn()
    except kgen.Error as e:
        msg = str(e)
        for w in want:
            if w not in msg:
                fail(f"{label}: the message {msg!r} does not say {w!r}")
        return 1
    except Exception as e:  # noqa: BLE001 (any other exception is a failure)
        fail(f"{label}: raised {type(e).__name__}: {e} instead of kgen.Error")
        return 1
    fail(f"{label}: no error")
    return 1


def check_errors(m, so, tmp):
    n = 0
    size = os.path.getsize(so)
    cut = os.path.join(tmp, "cut.so")
    with open(so, "rb") as src, open(cut, "wb") as dst:
        dst.write(src.read(size // 2))
    n += expect_error("a model cut in half", lambda: kgen.Model(cut), cut, "truncated")
    with open(so, "rb") as src, open(cut, "wb") as dst:
        dst.write(src.read(size - 4096))  # only the appended weights cut short
    n += expect_error("a model missing its weights' last page", lambda: kgen.Model(cut), "cut short")
    notelf = os.path.join(tmp, "notelf.so")
    with open(notelf, "wb") as f:
        f.write(b"GGUF" + b"\0" * 200)
    n += expect_error("a file that is not ELF", lambda: kgen.Model(notelf), "not an ELF file")
    n += expect_error("a missing file", lambda: kgen.Model(os.path.join(tmp, "nope.so")), "nope.so")
    n += expect_error("n_ctx past the training context", lambda: kgen.Model(so, n_threads=1, n_ctx=1 << 30))
    n += expect_error("a token id out of range", lambda: m.detokenize([m.info.n_vocab]), "out of range")
    n += expect_error("Encoder on a decoder", lambda: kgen.Encoder(so, n_threads=1), so)
    with kgen.Model(so, n_threads=1, n_ctx=16) as small:
        n += expect_error("a prompt longer than the context", lambda: small.generate("word " * 40), "context")
        n += 1
        if small.info.n_ctx != 16:
            fail(f"Model(n_ctx=16).info.n_ctx = {small.info.n_ctx}")
    closed = kgen.Model(so, n_threads=1)
    closed.close()
    closed.close()  # twice is fine
    n += expect_error("a closed model", lambda: closed.tokenize("x"), "closed")
    return n


# ───────────────────────────── the stub encoder ─────────────────────────────
def check_stub(so):
    """The Encoder's marshalling through an ABI-2 table, on test_python.c's
    stub, whose embed calls write values computed from their input."""
    import numpy as np
    n = 0
    enc = kgen.Encoder(so, n_threads=3)
    for what, got, want in (("dim", enc.dim, 8), ("batch", enc.batch, 4), ("max_len", enc.max_len, 16),
                            ("abi_version", enc.abi_version, 2), ("info.arch", enc.info.arch, "bert"),
                            ("info.n_threads", enc.info.n_threads, 3)):
        n += 1
        if got != want:
            fail(f"stub Encoder.{what} = {got!r}, want {want!r}")
    texts = ["abc", "", "é", "x" * 1000] + [f"text {i}" for i in range(7)]
    got = enc.embed(texts)
    want = np.array([[len(t.encode()), t.encode()[0] if t else 0, i, sum(t.encode()), 3, 0.5, -1, 7]
                     for i, t in enumerate(texts)], dtype=np.float32)
    n += 1
    if not (isinstance(got, np.ndarray) and got.dtype == np.float32 and got.shape == want.shape
            and np.array_equal(got, want)):
        fail(f"stub embed: got {got!r}, want {want!r}")
    ids = [[101, 7, 102], [5], list(range(1, 300)), [2**31 - 1, -(2**31)]]
    got = enc.embed_tokens(ids)
    want = np.array([[len(s), s[0], s[-1], float(np.float32(sum(np.float32(x) for x in s))), i, 0.25, -2, 9]
                     for i, s in enumerate(ids)], dtype=np.float32)
    n += 1
    if not np.array_equal(got[:, [0, 1, 2, 4, 5, 6, 7]], want[:, [0, 1, 2, 4, 5, 6, 7]]) or \
            not np.allclose(got[:, 3], want[:, 3], rtol=1e-6):
        fail(f"stub embed_tokens: got {got!r}, want {want!r}")
    n += 1
    if enc.embed([]).shape != (0, 8) or enc.embed_tokens([]).shape != (0, 8):
        fail("stub: embed([]) / embed_tokens([]) are not (0, 8) arrays")
    n += expect_error("a failing embed", lambda: enc.embed(["ok", "FAIL here"]), "embed", "text 1 asked to fail")
    n += expect_error("a failing embed_tokens", lambda: enc.embed_tokens([[1], []]), "sequence 1 is empty")
    n += expect_error("a failing open", lambda: kgen.Encoder(so, n_threads=99), "refused 99 threads")
    n += expect_error("Model on an encoder", lambda: kgen.Model(so), "Encoder")
    n += expect_error("tokenize's error", lambda: enc.tokenize("x"), "no tokenizer")
    for bad, exc in (("a str", TypeError), (["a\0b"], ValueError)):
        n += 1
        try:
            enc.embed(bad)
            fail(f"stub embed({bad!r}): no error")
        except exc:
            pass
    # without numpy: lists
    saved = sys.modules.get("numpy")
    sys.modules["numpy"] = None  # makes `import numpy` raise ImportError
    try:
        lists = enc.embed(["ab", "c"])
    finally:
        sys.modules["numpy"] = saved
    n += 1
    if lists != [[2, 97, 0, 195, 3, 0.5, -1, 7], [1, 99, 1, 99, 3, 0.5, -1, 7]]:
        fail(f"stub embed without numpy: {lists!r}")
    enc.close()
    n += expect_error("a closed encoder", lambda: enc.embed(["x"]), "closed")
    return n


# ───────────────────────────── encoder ─────────────────────────────
SENTENCES = ["A man is eating food.", "A man is riding a horse.", "The new movie is awesome!",
             "Héllo wörld — naïve café", "数学 is hard", "word " * 300]


def check_encoder(kgen_bin, so, hf_dir, tmp):
    import numpy as np
    note = kgen.check_file(so)
    if note["abi_version"] < 2:
        print(f"skipped: {so} has ABI version {note['abi_version']}: no encoder calls (kgm_embed needs 2)")
        sys.exit(77)
    enc = kgen.Encoder(so, n_threads=2)
    n = 0
    got = enc.embed(SENTENCES)
    if got.shape != (len(SENTENCES), enc.dim) or got.dtype != np.float32:
        fail(f"embed: shape {got.shape} {got.dtype}, want ({len(SENTENCES)}, {enc.dim}) float32")
        return 1
    args = [kgen_bin, "embed", so]
    for s in SENTENCES:
        args += ["-p", s]
    args.append("--json")
    r = run(args)
    n += 1
    if r.returncode:
        fail(f"kgen embed --json: exit {r.returncode}: {r.stderr.decode(errors='replace')[-500:]}")
    else:
        j = json.loads(r.stdout)
        ref = np.asarray(j["embeddings"], dtype=np.float32)
        if j.get("dim") != enc.dim or ref.shape != got.shape:
            fail(f"kgen embed --json: dim {j.get('dim')}, shape {ref.shape}; Encoder: {enc.dim}, {got.shape}")
        elif np.abs(ref - got).max() > 1e-5:
            fail(f"Encoder.embed differs from kgen embed by {np.abs(ref - got).max():.3g}")
    norms = np.linalg.norm(got, axis=1)
    n += 1
    if np.abs(norms - 1).max() > 1e-4:
        fail(f"embed: row norms {norms}")
    from tokenizers import Tokenizer
    tk = Tokenizer.from_file(os.path.join(hf_dir, "tokenizer.json"))
    tk.no_padding()
    tk.enable_truncation(enc.max_len)
    ids = [e.ids for e in tk.encode_batch(SENTENCES)]
    byid = enc.embed_tokens(ids)
    n += 1
    if np.abs(byid - got).max() > 1e-5:
        fail(f"embed_tokens(HF ids) differs from embed(texts) by {np.abs(byid - got).max():.3g}")
    many = SENTENCES * (enc.batch // len(SENTENCES) + 2)  # more than one compiled batch
    n += 1
    big = enc.embed(many)
    if np.abs(big[:len(SENTENCES)] - got).max() > 1e-5 or np.abs(big[-len(SENTENCES):] - got).max() > 1e-5:
        fail(f"embed of {len(many)} texts (batch {enc.batch}) differs from embed of {len(SENTENCES)}")
    n += 1
    if enc.embed([]).shape != (0, enc.dim):
        fail("embed([]) is not an empty (0, dim) array")
    n += expect_error("Model on an encoder", lambda: kgen.Model(so, n_threads=1), "Encoder")
    try:
        enc.embed(["a\0b"])
        fail("embed of a text with NUL: no error")
    except ValueError:
        pass
    n += 1
    enc.close()
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kgen", required=True)
    ap.add_argument("--so")
    ap.add_argument("--gguf")
    ap.add_argument("--encoder-so")
    ap.add_argument("--encoder-dir")
    ap.add_argument("--stub-so")
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    ap.add_argument("--include", default=os.path.join(HERE, "..", "..", "include"))
    a = ap.parse_args()
    pkg = os.path.dirname(os.path.abspath(kgen.__file__))
    if os.path.abspath(os.path.join(HERE, "..", "..", "python", "kgen")) != pkg:
        print(f"note: testing the package at {pkg}, not the checkout's python/kgen")
    try:
        import numpy  # noqa: F401
        import tokenizers  # noqa: F401
        if a.so:
            import gguf  # noqa: F401
    except ImportError as e:
        print(f"skipped: {sys.executable} lacks a reference package ({e})")
        sys.exit(77)
    if a.stub_so:
        n = check_stub(a.stub_so)
        what = "stub encoder checks"
    elif a.encoder_so:
        n = check_encoder(a.kgen, a.encoder_so, a.encoder_dir, a.tmp)
        what = "encoder checks"
    else:
        n = check_layout(shutil.which(a.cc) or a.cc, a.include, a.tmp)
        import time
        t0 = time.time()
        with kgen.Model(a.so, n_threads=2) as m:
            vocab = read_vocab(a.gguf)
            nt = check_tokenize(m, vocab)
            t1 = time.time()
            ng = check_generate(m, a.kgen, a.so, vocab[3])
            t2 = time.time()
            ne = check_errors(m, a.so, a.tmp)
        print(f"times: tokenize {t1 - t0:.1f} s, generate {t2 - t1:.1f} s, errors {time.time() - t2:.1f} s")
        what = f"layout fields, {nt} tokenizations, {ng} generations, {ne} error cases"
        n += nt + ng + ne
    if FAILS:
        print(f"{len(FAILS)} of {n} checks failed", file=sys.stderr)
        sys.exit(1)
    print(f"{n} prompts pass; {what}")


if __name__ == "__main__":
    main()
