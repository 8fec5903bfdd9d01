"""kgen — run models compiled by kgen from Python (ctypes over the C ABI in
include/kgen_model.h; pure Python, no compiled parts).

A model is first compiled into one shared object by the kgen tool:

    kgen compile models/SmolLM2-135M-Instruct.Q4_1.gguf -o libsmollm2.so     # a decoder (GGUF)
    kgen compile models/all-MiniLM-L6-v2 --batch 32 --max-len 128 -o libminilm.so   # an encoder (HF dir)

and then opened here:

    import kgen
    with kgen.Model("libsmollm2.so", n_threads=2) as m:
        print(m.generate("What is the capital of France?", max_tokens=32, chat=True))
        for piece in m.stream("Once upon a time", max_tokens=64, temperature=0.8, seed=1):
            print(piece, end="", flush=True)

    enc = kgen.Encoder("libminilm.so")
    vectors = enc.embed(["a sentence", "another one"])     # numpy array (2, enc.dim), float32

Only compiled .so files are opened (not .gguf files or model directories):
compile them with `kgen compile` as above. Failures raise kgen.Error with the
model's own message (kgm_error).
"""
import codecs
import ctypes as C
import dataclasses
import os

from . import _abi
from ._check import CheckError, read_note

__all__ = ["Model", "Encoder", "Error", "ModelInfo", "check_file", "ABI_VERSION"]
__version__ = "0.1.0"

ABI_VERSION = 2  # the newest kgm_api this package knows (kgen_model.h's KGM_ABI_VERSION)
_MIN_ABI = 1


class Error(Exception):
    """A kgen model refused or failed a call; the message is the model's own."""


def check_file(path):
    """Raises kgen.Error unless path holds a whole kgen model for this machine
    (the checks of include/kgen_check.h's kgm_check_file); returns its kgen
    note as a dict (abi_version, weights_where, weight_bytes, ...)."""
    try:
        return read_note(os.fspath(path))
    except CheckError as e:
        raise Error(str(e)) from None


def _info_field(name, ctype):
    return (name, str if ctype is C.c_char_p else int)


ModelInfo = dataclasses.make_dataclass(
    "ModelInfo", [_info_field(n, t) for n, t in _abi.kgm_info._fields_], frozen=True)
ModelInfo.__doc__ = ("What kgm_describe says about an opened model: the fields of kgm_info "
                     "(include/kgen_model.h), strings decoded from UTF-8.")


class _Opened:
    """A compiled model opened through its kgm_api table."""

    def __init__(self, path, n_threads=0, n_ctx=0, weights_path=None):
        self._m = None
        path = os.path.abspath(os.fspath(path))
        self.path = path
        note = check_file(path)
        if note["abi_version"] < _MIN_ABI:
            raise Error(f"{path}: the model's ABI version is {note['abi_version']}; this package needs {_MIN_ABI} "
                        "or later (compile it again with a newer kgen)")
        try:
            self._lib = C.CDLL(path, mode=os.RTLD_NOW | os.RTLD_LOCAL)
            table = C.c_int.in_dll(self._lib, "kgm_api")
        except (OSError, ValueError) as e:
            raise Error(f"{path}: cannot load it: {e}") from None
        abi = table.value
        if abi < _MIN_ABI:
            raise Error(f"{path}: kgm_api.abi_version is {abi}; this package needs {_MIN_ABI} or later")
        self.abi_version = abi
        api_type = _abi.kgm_api_v2 if abi >= 2 else _abi.kgm_api_v1  # never read members a model lacks
        self._api = api_type.from_address(C.addressof(table))
        if not isinstance(n_threads, int) or not isinstance(n_ctx, int) or n_threads < 0 or n_ctx < 0:
            raise ValueError("n_threads and n_ctx are integers >= 0 (0: the default)")
        params = _abi.kgm_open_params(n_threads, n_ctx,
                                      os.fsencode(weights_path) if weights_path is not None else None)
        err = C.create_string_buffer(1024)
        m = self._api.open(C.byref(params), err, len(err))
        if not m:
            raise Error(err.value.decode("utf-8", "replace") or f"{path}: kgm_open failed")
        self._m = m
        raw = _abi.kgm_info()
        self._api.describe(m, C.byref(raw))
        self.info = ModelInfo(**{n: (getattr(raw, n) or b"").decode("utf-8", "replace") if t is C.c_char_p
                                 else int(getattr(raw, n)) for n, t in _abi.kgm_info._fields_})

    # ── plumbing ──
    def _h(self):
        if not self._m:
            raise Error(f"{self.path}: the model is closed")
        return self._m

    def _error(self, what):
        msg = self._api.error(self._m) if self._m else None
        return Error(f"{what}: {msg.decode('utf-8', 'replace')}" if msg else what)

    def close(self):
        """Frees the model (its memory, threads and KV cache). Safe to call twice."""
        m, self._m = getattr(self, "_m", None), None
        if m:
            self._api.close(m)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def __repr__(self):
        state = "closed" if not self._m else f"{self.info.arch}, {self.info.weight_type}, {self.info.n_threads} threads"
        return f"<kgen.{type(self).__name__} {self.path} ({state})>"

    # ── tokens ──
    def tokenize(self, text, bos=True, special=False):
        """The token ids of text (str, or bytes taken as given). bos: prepend
        BOS when the model's metadata asks for it; special: text spelling a
        special token (e.g. "<|im_end|>") becomes that token."""
        m = self._h()
        b = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        flags = (_abi.KGM_TOK_BOS if bos else 0) | (_abi.KGM_TOK_SPECIAL if special else 0)
        cap = len(b) + 8
        while True:
            out = (C.c_int32 * cap)()
            n = self._api.tokenize(m, b, len(b), flags, out, cap)
            if n < 0:
                raise self._error("tokenize")
            if n <= cap:
                return list(out[:n])
            cap = n

    def token_bytes(self, tok):
        """The bytes of one token (b"" for control tokens such as EOS)."""
        m = self._h()
        buf = C.create_string_buffer(64)
        n = self._api.token_piece(m, int(tok), buf, len(buf))
        if n > len(buf):
            buf = C.create_string_buffer(n)
            n = self._api.token_piece(m, int(tok), buf, len(buf))
        if n < 0:
            raise Error(f"token id {tok} is out of range (the vocabulary has {self.info.n_vocab})")
        return buf.raw[:n]

    def detokenize(self, ids):
        """The text of token ids (control tokens give nothing; bytes that are
        not UTF-8 read as U+FFFD)."""
        return b"".join(self.token_bytes(t) for t in ids).decode("utf-8", "replace")


class Model(_Opened):
    """A decoder compiled by `kgen compile MODEL.gguf -o libNAME.so`.

    Model(path, n_threads=0, n_ctx=0): n_threads 0 uses every online CPU; n_ctx
    0 gives a KV cache of min(the training context, 4096) tokens. One thread
    at a time may use a Model (open several for parallel work)."""

    def __init__(self, path, n_threads=0, n_ctx=0, weights_path=None):
        super().__init__(path, n_threads, n_ctx, weights_path)
        if self.info.arch == "bert":
            arch = self.info.arch
            self.close()
            raise Error(f"{self.path}: an encoder ({arch}): open it with kgen.Encoder")

    def chat(self, messages, add_assistant=True):
        """messages ([{"role": ..., "content": ...}, ...] or (role, content)
        pairs) formatted with the model's chat template (kgm_chat)."""
        m = self._h()
        pairs = [(d["role"], d["content"]) if isinstance(d, dict) else tuple(d) for d in messages]
        arr = (_abi.kgm_message * max(len(pairs), 1))(
            *[_abi.kgm_message(r.encode("utf-8"), c.encode("utf-8")) for r, c in pairs])
        n = self._api.chat(m, arr, len(pairs), 1 if add_assistant else 0, None, 0)
        if n < 0:
            raise self._error("chat")
        buf = C.create_string_buffer(n + 1)
        if self._api.chat(m, arr, len(pairs), 1 if add_assistant else 0, buf, len(buf)) != n:
            raise self._error("chat")
        return buf.raw[:n].decode("utf-8", "replace")

    def stream(self, prompt, max_tokens=128, temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0,
               seed=0, chat=False, stop_at_eos=True, repeat_last_n=64):
        """Generates up to max_tokens tokens after prompt, yielding the text as
        it comes (a character split across tokens is yielded whole, once its
        last byte arrives). The prompt is tokenized as `kgen run` does: BOS
        when the model asks for it, special-token text read as those tokens.
        chat=True formats prompt as one user message with the model's chat
        template first. temperature <= 0 is greedy; stop_at_eos stops at
        end-of-turn tokens (not yielded). Starts from an empty KV cache."""
        m = self._h()
        text = self.chat([("user", prompt)]) if chat else prompt
        ids = self.tokenize(text, bos=True, special=True)
        if not ids:
            raise Error("the prompt is empty")
        n_ctx = self.info.n_ctx
        if len(ids) >= n_ctx:
            raise Error(f"the prompt is {len(ids)} tokens and the context holds {n_ctx}: generating needs room "
                        "for at least one more (open the model with a larger n_ctx, or shorten the prompt)")
        n_gen = min(int(max_tokens), n_ctx - len(ids))
        sp = _abi.kgm_sampler_params(float(temperature), int(top_k), float(top_p), float(min_p),
                                     float(repeat_penalty), int(repeat_last_n), int(seed) & (2**64 - 1))
        api = self._api
        api.reset(m)
        api.sampler_init(m, C.byref(sp))
        for t in ids:
            api.sampler_accept(m, t)
        arr = (C.c_int32 * len(ids))(*ids)
        logits = api.prefill(m, arr, len(ids), 0)
        dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        ng = 0
        while ng < n_gen:
            if not logits:
                raise self._error("prefill" if ng == 0 else "decode")
            t = api.sample(m, logits)
            if t < 0:
                raise self._error("sample")
            ng += 1
            if stop_at_eos and api.is_eog(m, t):
                break
            s = dec.decode(self.token_bytes(t))
            if s:
                yield s
            if ng == n_gen:
                break
            logits = api.decode(m, t, len(ids) + ng - 1)
        s = dec.decode(b"", final=True)
        if s:
            yield s

    def generate(self, prompt, max_tokens=128, temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0,
                 seed=0, chat=False, stop_at_eos=True, repeat_last_n=64):
        """The text generated after prompt (see stream() for the arguments)."""
        return "".join(self.stream(prompt, max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, seed,
                                   chat, stop_at_eos, repeat_last_n))


class Encoder(_Opened):
    """An encoder (BERT family; kgm_info.arch "bert") compiled by
    `kgen compile MODEL_DIR --batch B --max-len L -o libNAME.so`.

    .dim: the vector size; .batch: the compiled batch (sequences per step);
    .max_len: the compiled maximum length (longer texts are truncated).
    embed() returns a numpy float32 array (n, dim) when numpy is installed,
    else a list of n lists. Needs a model of ABI version 2 or later."""

    def __init__(self, path, n_threads=0, weights_path=None):
        super().__init__(path, n_threads, 0, weights_path)
        if self.abi_version < 2:
            abi = self.abi_version
            self.close()
            raise Error(f"{self.path}: the model's ABI version is {abi}, which has no encoder calls (kgm_embed "
                        "needs version 2: compile it with a newer kgen)")
        d = self._api.embed_dim(self._m)
        if d <= 0:
            arch = self.info.arch
            self.close()
            raise Error(f"{self.path}: not an encoder ({arch}): open it with kgen.Model")
        self.dim = d
        self.batch = self.info.n_batch
        self.max_len = self.info.n_ctx

    def _out(self, n):
        try:
            import numpy as np
        except ImportError:
            return (C.c_float * (n * self.dim))(), None
        a = np.empty((n, self.dim), dtype=np.float32)
        return a, a.ctypes.data_as(C.POINTER(C.c_float))

    def _result(self, out, n):
        if isinstance(out, C.Array):
            return [list(out[i * self.dim:(i + 1) * self.dim]) for i in range(n)]
        return out

    def embed(self, texts):
        """The embeddings of texts (a list of str), one row per text in order."""
        m = self._h()
        if isinstance(texts, (str, bytes)):
            raise TypeError("embed takes a list of texts (for one text: embed([text]))")
        enc = []
        for t in texts:
            b = t.encode("utf-8") if isinstance(t, str) else bytes(t)
            if b"\0" in b:
                raise ValueError("a text holds a NUL character (texts are passed as C strings)")
            enc.append(b)
        n = len(enc)
        out, ptr = self._out(n)
        if n == 0:
            return self._result(out, 0)
        arr = (C.c_char_p * n)(*enc)
        if ptr is None:
            ptr = C.cast(out, C.POINTER(C.c_float))
        if self._api.embed(m, arr, n, ptr) != n:
            raise self._error("embed")
        return self._result(out, n)

    def embed_tokens(self, ids):
        """The embeddings of token-id sequences (a list of lists of int, each
        already with [CLS] ... [SEP])."""
        m = self._h()
        seqs = [(C.c_int32 * max(len(s), 1))(*[int(t) for t in s]) for s in ids]
        n = len(seqs)
        out, ptr = self._out(n)
        if n == 0:
            return self._result(out, 0)
        lens = (C.c_int * n)(*[len(s) for s in ids])
        ptrs = (C.POINTER(C.c_int32) * n)(*[C.cast(s, C.POINTER(C.c_int32)) for s in seqs])
        if ptr is None:
            ptr = C.cast(out, C.POINTER(C.c_float))
        if self._api.embed_tokens(m, ptrs, lens, n, ptr) != n:
            raise self._error("embed_tokens")
        return self._result(out, n)
