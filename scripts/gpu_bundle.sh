#!/bin/sh
# gpu_bundle.sh — pack, under gpu/ (git-ignored), what a GPU machine with no
# LLVM 19 and no network needs to run kgen's GPU checks and benchmarks with
# scripts/gpu_run.sh:
#   gpu/kgen.xz          kgen linked statically (build/kgen-static: LLVM,
#                        libstdc++ and xxHash inside; it needs libc, libz and
#                        libzstd), xz-compressed (about 13 MB)
#   gpu/kgen-tests.xz    the tests, linked the same way (`kgen-tests gpu_`:
#                        the CUDA kernels against the CPU references)
#   gpu/gguf-V-*.whl     the pinned gguf package (bench/setup_peer.sh's
#                        version): bench/gen_model.py and tests/ref/ read and
#                        write GGUF with it
#   gpu/MANIFEST         the commit and the files' SHA-256
# Models are not packed (the real SmolLM2 is 98 MB): gpu_run.sh generates the
# random-weight ones there, and uses models/ when it is carried.
#
# Usage: make gpu-bundle (or: sh scripts/gpu_bundle.sh build/kgen-static build/kgen-tests-static)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/build/kgen-static}
TESTS=${2:-$ROOT/build/kgen-tests-static}
OUT=$ROOT/gpu
die() { echo "gpu_bundle: $*" >&2; exit 1; }

[ -x "$BIN" ] && [ -x "$TESTS" ] || die "$BIN or $TESTS not found (make gpu-bundle builds them)"
"$BIN" version >/dev/null || die "$BIN does not run"
command -v xz >/dev/null || die "xz not found (apt-get install xz-utils)"
mkdir -p "$OUT"
ver=$(sed -n 's/^GGUF_VERSION=//p' "$ROOT/bench/setup_peer.sh")
[ -n "$ver" ] || die "no GGUF_VERSION in bench/setup_peer.sh"
if ! ls "$OUT"/gguf-"$ver"-*.whl >/dev/null 2>&1; then
    rm -f "$OUT"/gguf-*.whl
    python3 -m pip download -q --no-deps --only-binary=:all: -d "$OUT" "gguf==$ver" \
        || die "pip could not download gguf==$ver"
fi
for f in "$BIN:kgen" "$TESTS:kgen-tests"; do
    xz -T0 -6 -c "${f%%:*}" >"$OUT/${f#*:}.xz.tmp"
    mv "$OUT/${f#*:}.xz.tmp" "$OUT/${f#*:}.xz"
done
rm -rf "$OUT/py"
{
    dirty=$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | head -n 1)
    echo "commit $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)${dirty:+ (with uncommitted changes)}"
    "$BIN" version
    (cd "$OUT" && sha256sum kgen.xz kgen-tests.xz gguf-*.whl)
} >"$OUT/MANIFEST"
echo "gpu_bundle: $OUT: $(du -sh "$OUT" | cut -f1) (carry it: the device tool's carry [\"gpu\"]; run: bash scripts/gpu_run.sh check kernels bench)"
