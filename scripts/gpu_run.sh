#!/bin/bash
# gpu_run.sh — kgen's GPU checks and benchmarks on a machine with an NVIDIA
# GPU, from the bundle `make gpu-bundle` writes to gpu/ (kgen linked
# statically, the gguf wheel): that machine needs python3 with numpy, cc (to
# link models), and for the benchmark PyTorch; no LLVM, no network.
#
# Usage: bash scripts/gpu_run.sh STEP...
#   check    build/kgen-tests gpu_ (the CUDA kernels against the CPU
#            references), then tests/gpu/check_gpu.py over the random-weight SmolLM2-shaped
#            models in Q4_0, Q4_1, Q8_0, F16 (and the real SmolLM2 Q4_1 when
#            models/ has it): CUDA against the CPU backend and the float
#            reference, compute-sanitizer memcheck
#   kernels  kgen kernels --json (registers, spills, shared memory) for them
#   bench    bench/bench_peer.py --gpu only over its default models (the
#            random ones, and the real SmolLM2 when present): kgen --target
#            cuda against PyTorch eager and torch.compile, copy bandwidth
#   bench7b  the same over the LLaMA-2-7B-shaped random Q4_0
# Results (text, JSON; plots when gnuplot is there) go to $OUT (the device
# tool's folder) or gpu/out; `bench_peer.py --from-json F --plots DIR` draws
# the plots later on a machine with gnuplot.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=${OUT:-$ROOT/gpu/out}
mkdir -p "$OUT" build
[ -f gpu/kgen.xz ] || { echo "gpu_run: gpu/kgen.xz missing: run make gpu-bundle first (and carry gpu/)" >&2; exit 1; }
for b in kgen kgen-tests; do
    if [ ! -x build/$b ] || [ gpu/$b.xz -nt build/$b ]; then
        python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
            gpu/$b.xz build/$b
        chmod +x build/$b
    fi
done
if [ ! -d gpu/py/gguf ]; then
    python3 -m zipfile -e gpu/gguf-*.whl gpu/py
fi
export PYTHONPATH=$ROOT/gpu/py${PYTHONPATH:+:$PYTHONPATH}
{ build/kgen version; cat gpu/MANIFEST; nvidia-smi || true; } >"$OUT/machine.txt" 2>&1

gen() { python3 bench/gen_model.py --out-dir models/random "$@"; }
gen_small() { gen --shape smollm2 --type Q4_0 --type Q4_1 --type Q8_0 --type F16; }
real=models/SmolLM2-135M-Instruct.Q4_1.gguf
small=()
[ -f "$real" ] && small+=("$real")
for t in Q4_0 Q4_1 Q8_0 F16; do small+=("models/random/smollm2-$t.gguf"); done

for step in "$@"; do
    echo "== gpu_run: $step" >&2
    case $step in
    check)
        build/kgen-tests gpu_ 2>&1 | tee "$OUT/kgen-tests-gpu.txt"
        gen_small
        python3 tests/gpu/check_gpu.py --kgen build/kgen $(printf -- '--model %s ' "${small[@]}") 2>&1 | tee "$OUT/check-gpu.txt" ;;
    kernels)
        gen_small
        for m in "${small[@]}"; do build/kgen kernels "$m" --target cuda; done 2>&1 | tee "$OUT/kernels.txt" ;;
    bench)
        gen --all
        python3 bench/bench_peer.py --gpu only --json "$OUT/gpu.json" --plots "$OUT" 2>&1 | tee "$OUT/bench.txt" ;;
    bench7b)
        gen --shape llama7b --type Q4_0
        python3 bench/bench_peer.py --gpu only --json "$OUT/gpu-7b.json" models/random/llama7b-Q4_0.gguf 2>&1 \
            | tee "$OUT/bench-7b.txt" ;;
    *) echo "gpu_run: unknown step '$step' (check, kernels, bench, bench7b)" >&2; exit 2 ;;
    esac
done
