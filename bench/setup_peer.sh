#!/bin/sh
# setup_peer.sh — build the peer kgen is benchmarked against: llama.cpp, via
# the PyPI package llama-cpp-python at a pinned version, compiled from its
# sdist by pip into bench/.venv (git-ignored), CPU only.
#
# Build: llama.cpp's defaults (GGML_NATIVE=ON: -march=native; OpenMP when the
# compiler has it), no BLAS, no CUDA, no multimodal library (LLAVA_BUILD=OFF),
# and no AMX (-mno-amx-tile -mno-amx-int8 -mno-amx-bf16 in its C and C++
# flags; GCC lets explicit -mno-* win over -march=native whatever the order):
# llama.cpp 0.3.36's AMX path dies of SIGILL in ggml_backend_amx_mul_mat on the
# first multi-token prefill on the project's Sapphire Rapids VMs. AVX-512,
# VNNI, BF16 and the repacked CPU kernels stay; on CPUs without AMX the flags
# change nothing.
# Also installs the pinned `gguf` and numpy that bench/gen_model.py uses.
#
# Writes bench/.venv/peer.json: package version, the llama.cpp commit the
# sdist vendors (from the sdist's CHANGELOG entry for this version: the sdist
# has no .git, so llama.cpp's own build info says "unknown"), the sdist's
# SHA-256, build flags, compiler, CPU, build time.
#
# Idempotent: when the venv imports the pinned version and peer.json says it
# was built for this CPU, it does nothing (well under a second). A stale or
# broken venv is removed and built again. Missing Debian packages (cmake, g++,
# make, python3-venv) are installed with apt-get when run as root; otherwise
# it stops and prints the apt-get line.
#
# Usage: sh bench/setup_peer.sh [--force]      (env: PYTHON, default python3)
set -eu

LLAMA_CPP_PYTHON_VERSION=0.3.36
GGUF_VERSION=0.19.0
NUMPY_SPEC='numpy>=1.24,<3'
CMAKE_MIN=3.21
NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
CMAKE_ARGS_PEER="-DCMAKE_C_FLAGS='$NO_AMX' -DCMAKE_CXX_FLAGS='$NO_AMX' -DGGML_NATIVE=ON -DGGML_BLAS=OFF -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DLLAVA_BUILD=OFF -DLLAMA_CURL=OFF"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=$ROOT/bench/.venv
PEER_JSON=$VENV/peer.json
PYTHON=${PYTHON:-python3}
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

say() { echo "setup_peer: $*" >&2; }
die() { say "$*"; exit 1; }

# A fingerprint of this CPU: a -march=native build is only valid on it.
cpu_fingerprint() {
    { grep -m1 '^model name' /proc/cpuinfo 2>/dev/null || uname -m
      grep -m1 -E '^(flags|Features)' /proc/cpuinfo 2>/dev/null || true
    } | cksum | cut -d' ' -f1
}
CPU_FP=$(cpu_fingerprint)

# One setup at a time per checkout (make -j, two shells).
if command -v flock >/dev/null 2>&1; then
    exec 9>"${TMPDIR:-/tmp}/kgen-setup-peer.$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1).lock"
    flock 9
fi

# ── already there? ───────────────────────────────────────────────────────
if [ "$FORCE" = 0 ] && [ -x "$VENV/bin/python" ] && [ -f "$PEER_JSON" ]; then
    if "$VENV/bin/python" - "$PEER_JSON" "$LLAMA_CPP_PYTHON_VERSION" "$CPU_FP" "$GGUF_VERSION" "$CMAKE_ARGS_PEER" <<'EOF' 2>/dev/null
import json, sys
j = json.load(open(sys.argv[1]))
assert j["version"] == sys.argv[2] and j["cpu_fingerprint"] == sys.argv[3]
assert j.get("cmake_args") == sys.argv[5]  # built with other flags (e.g. with AMX): rebuild
import importlib.metadata as md
assert md.version("llama_cpp_python") == sys.argv[2]
assert md.version("gguf") == sys.argv[4]
import llama_cpp  # loads libllama: catches a broken build
assert llama_cpp.__version__ == sys.argv[2]
EOF
    then
        say "llama-cpp-python $LLAMA_CPP_PYTHON_VERSION present in bench/.venv (llama.cpp $(sed -n 's/.*"llama_cpp_commit": *"\([^"]*\)".*/\1/p' "$PEER_JSON"))"
        exit 0
    fi
    say "bench/.venv is stale or broken: building it again"
fi

# ── Debian packages ───────────────────────────────────────────────────────
version_ge() {  # version_ge A B: A >= B (dotted numbers)
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -t. -k1,1n -k2,2n -k3,3n | head -n1)" = "$2" ]
}
missing=""
if ! command -v cmake >/dev/null 2>&1 ||
   ! version_ge "$(cmake --version | sed -n '1s/[^0-9]*\([0-9][0-9.]*\).*/\1/p')" "$CMAKE_MIN"; then
    missing="$missing cmake"
fi
command -v g++ >/dev/null 2>&1 || missing="$missing g++"
command -v gcc >/dev/null 2>&1 || missing="$missing gcc"
command -v make >/dev/null 2>&1 || missing="$missing make"
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    missing="$missing python3 python3-venv"
elif ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    missing="$missing python3-venv"
fi
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing Debian packages:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >&2
        # shellcheck disable=SC2086
        apt-get install -y -q --no-install-recommends $missing >&2
    else
        die "missing:$missing; run: apt-get install$missing"
    fi
fi

# ── the sdist ─────────────────────────────────────────────────────────────
TMP=$(mktemp -d "${TMPDIR:-/tmp}/kgen-peer.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM
rm -rf "$VENV"
say "creating bench/.venv with $("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
"$PYTHON" -m venv "$VENV"
VPY=$VENV/bin/python
"$VPY" -m pip install -q --disable-pip-version-check --upgrade pip >&2

say "downloading the llama-cpp-python $LLAMA_CPP_PYTHON_VERSION sdist"
"$VPY" -m pip download -q --disable-pip-version-check --no-deps --no-binary=:all: \
    -d "$TMP" "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" >&2
SDIST=$(ls "$TMP"/llama_cpp_python-"$LLAMA_CPP_PYTHON_VERSION".tar.gz 2>/dev/null) ||
    die "pip download produced no sdist in $TMP: $(ls "$TMP")"
SDIST_SHA=$(sha256sum "$SDIST" | cut -d' ' -f1)
# The llama.cpp commit: the first "update llama.cpp to ...@HASH" line of this
# version's CHANGELOG section; checked against the vendored tree's presence.
TOP=llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION
tar -xzf "$SDIST" -C "$TMP" "$TOP/CHANGELOG.md" "$TOP/vendor/llama.cpp/include/llama.h" ||
    die "the sdist has no CHANGELOG.md or vendor/llama.cpp"
COMMIT=$(awk -v v="## [$LLAMA_CPP_PYTHON_VERSION]" '
    index($0, v) == 1 { in_v = 1; next }
    in_v && /^## \[/ { exit }
    in_v && match($0, /llama\.cpp@[0-9a-f]+/) { print substr($0, RSTART + 10, RLENGTH - 10); exit }
' "$TMP/$TOP/CHANGELOG.md")
[ -n "$COMMIT" ] || { COMMIT=unknown; say "warning: no llama.cpp commit in the CHANGELOG of $LLAMA_CPP_PYTHON_VERSION"; }

# ── build ─────────────────────────────────────────────────────────────────
NPROC=$(nproc 2>/dev/null || echo 2)
say "building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION (llama.cpp $COMMIT) from source with $NPROC jobs; this takes minutes"
say "  CMAKE_ARGS=$CMAKE_ARGS_PEER"
T0=$(date +%s)
CMAKE_ARGS=$CMAKE_ARGS_PEER CMAKE_BUILD_PARALLEL_LEVEL=$NPROC \
    "$VPY" -m pip install --disable-pip-version-check --no-cache-dir -q \
    "$SDIST" "gguf==$GGUF_VERSION" "$NUMPY_SPEC" >"$TMP/build.log" 2>&1 || {
    tail -n 60 "$TMP/build.log" >&2
    rm -rf "$VENV"
    die "building llama-cpp-python failed (last lines above)"
}
T1=$(date +%s)

"$VPY" - "$PEER_JSON" <<EOF
import json, os, platform, subprocess, sys, datetime
import llama_cpp
assert llama_cpp.__version__ == "$LLAMA_CPP_PYTHON_VERSION", llama_cpp.__version__
def first_line(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0]
    except Exception:
        return None
cpu = None
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip(); break
except OSError:
    pass
info = {
    "package": "llama-cpp-python",
    "version": llama_cpp.__version__,
    "llama_cpp_commit": "$COMMIT",
    "llama_cpp_commit_source": "CHANGELOG.md of the sdist, section [$LLAMA_CPP_PYTHON_VERSION]",
    "sdist_sha256": "$SDIST_SHA",
    "cmake_args": "$CMAKE_ARGS_PEER",
    "system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip(),
    "compiler": first_line(["g++", "--version"]),
    "cmake": first_line(["cmake", "--version"]),
    "python": sys.version.split()[0],
    "gguf": "$GGUF_VERSION",
    "cpu": cpu,
    "cpu_fingerprint": "$CPU_FP",
    "machine": platform.machine(),
    "build_seconds": $T1 - $T0,
    "build_jobs": $NPROC,
    "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
}
tmp = sys.argv[1] + ".tmp"
with open(tmp, "w") as f:
    json.dump(info, f, indent=2)
    f.write("\n")
os.replace(tmp, sys.argv[1])
EOF
say "done in $((T1 - T0)) s: llama-cpp-python $LLAMA_CPP_PYTHON_VERSION, llama.cpp $COMMIT; see bench/.venv/peer.json"
