#!/usr/bin/env python3
"""tok_spm_ref.py GGUF OUT — reference tokenizations of a SentencePiece-style
GGUF vocabulary (tokenizer.ggml.model = "llama": Gemma 3's) for
tests/test_tokenizer.c, by Google's `sentencepiece` (PyPI), independent of
kgen and llama.cpp.

The model: a ModelProto built from the GGUF's tokens, scores and types as
llama.cpp's Python reader (PyPI `gguf`) reads them: model_type BPE,
byte_fallback, the identity normalizer (no normalization, as llama.cpp),
add_dummy_prefix = tokenizer.ggml.add_space_prefix, no whitespace removal,
spaces escaped as U+2581. GGUF types map to SentencePiece's (1 normal,
2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte); the unknown token
(tokenizer.ggml.unknown_token_id) is typed UNKNOWN (SentencePiece needs one).

llama.cpp's pipeline around the model, which the reference follows:
special-token text is split off on the bytes first (user-defined tokens
always, control and unknown ones with flag 2 = parse special; leftmost,
then longest: tok_ref.split_special), and each fragment between them is
encoded alone, so add_dummy_prefix applies per fragment: llama.cpp adds the
space prefix to the first fragment and to every fragment after a special
token, which is every fragment.

Writes OUT in tok_ref.py's format (S and R records, pre-tokenizer "spm").
Strings: tok_corpus.py's valid ones plus EXTRA (Gemma's special-token text,
▁, byte-token text, whitespace runs). Excluded: strings that are not UTF-8
(tok_corpus.py's invalid ones): sentencepiece replaces each malformed
sequence with U+FFFD before encoding, while llama.cpp keeps the bytes (a
symbol's length comes from its first byte alone, and a symbol that is no
token becomes its bytes' tokens); kgen follows llama.cpp, and
tests/test_tokenizer.c checks those cases by hand. Their count is printed.
Exit status 3 if a package is missing.
"""
import sys

from tok_corpus import corpus

try:
    from gguf import GGUFReader
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb
except ImportError as e:
    print(f"missing Python package: {e} (pip install gguf sentencepiece protobuf)", file=sys.stderr)
    sys.exit(3)

from tok_ref import split_special

EXTRA = [
    "<start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\n", "<bos><eos><pad><unk><mask>",
    "<unused0> <unused99>x", "[multimodal]", "<start_of_image><end_of_image>", "<0x41><0x0A><0xFF>", "<0x",
    "\u2581", "\u2581\u2581hello \u2581 world", "a  b   c    d     e", "\t\t\tx\t\ty", "\n\n\n\n\n\n\n\n\n\nz",
    " " * 40 + "y", "\t" * 40, "<start_of_turn", "start_of_turn>", "<end_of_turn><end_of_turn>", "<eos>text<eos>",
    "x<start_of_turn>  y", " <start_of_turn> ", "\u2581<bos>\u2581",
] + [f"<unused{i}>" for i in range(0, 6000, 499)]


def field_str(f, i):
    return bytes(f.parts[f.data[i]]).decode("utf-8")


def read_gguf(path):
    f = GGUFReader(path).fields
    tokens = [field_str(f["tokenizer.ggml.tokens"], i) for i in range(len(f["tokenizer.ggml.tokens"].data))]
    types = [int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data]
    scores = [float(f["tokenizer.ggml.scores"].parts[i][0]) for i in f["tokenizer.ggml.scores"].data]
    def scalar(key, default):
        return f[key].parts[f[key].data[0]][0].item() if key in f else default
    return tokens, types, scores, bool(scalar("tokenizer.ggml.add_space_prefix", True)), \
        int(scalar("tokenizer.ggml.unknown_token_id", 0))


def build(tokens, types, scores, add_prefix, unk):
    m = pb.ModelProto()
    P = pb.ModelProto.SentencePiece
    kind = {1: P.NORMAL, 2: P.UNKNOWN, 3: P.CONTROL, 4: P.USER_DEFINED, 5: P.UNUSED, 6: P.BYTE}
    for i, (t, ty, s) in enumerate(zip(tokens, types, scores)):
        p = m.pieces.add()
        p.piece, p.score = t, s
        p.type = P.UNKNOWN if i == unk else kind.get(ty, P.NORMAL)
    ts = m.trainer_spec
    ts.model_type = pb.TrainerSpec.BPE
    ts.byte_fallback = True
    ts.vocab_size = len(tokens)
    ts.unk_id = unk
    ns = m.normalizer_spec
    ns.name = "identity"
    ns.add_dummy_prefix = add_prefix
    ns.remove_extra_whitespaces = False
    ns.escape_whitespaces = True
    sp = spm.SentencePieceProcessor()
    sp.LoadFromSerializedProto(m.SerializeToString())
    return sp


def main():
    if len(sys.argv) != 3:
        print("usage: tok_spm_ref.py GGUF OUT", file=sys.stderr)
        sys.exit(2)
    tokens, types, scores, add_prefix, unk = read_gguf(sys.argv[1])
    sp = build(tokens, types, scores, add_prefix, unk)
    valid, invalid = corpus()
    strings = valid + EXTRA
    specials = {flags: [(t.encode("utf-8"), i) for i, (t, ty) in enumerate(zip(tokens, types))
                        if t and (ty == 4 or (ty in (2, 3) and flags == 2))] for flags in (0, 2)}
    hx = lambda b: b.hex() or "-"
    lines = [f"S {i} {hx(s.encode('utf-8'))}" for i, s in enumerate(strings)]
    for flags in (0, 2):
        for i, s in enumerate(strings):
            ids = []
            for part in split_special(s.encode("utf-8"), specials[flags]):
                ids += [part] if isinstance(part, int) else sp.EncodeAsIds(part.decode("utf-8"))
            lines.append(f"R spm {flags} {i} {','.join(map(str, ids)) or '-'}")
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{len(strings)} strings; {len(invalid)} that are not UTF-8 excluded (sentencepiece reads them "
          f"differently from llama.cpp)")


if __name__ == "__main__":
    main()
