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
#            models/ has it) and two mixed-type models (below): CUDA against
#            the CPU backend and the float reference, compute-sanitizer
#            memcheck; then the same for the Q8_0 one and the mixed ones with
#            every fusion off (KGEN_NOFUSE=all: each op its own kernel, rope,
#            kv_store, add, glu included)
#   kernels  kgen kernels (registers, spills, shared memory) for them, fused
#            and not
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

# Two mixed-type models (7 layers, embedding 512, 8/2 heads, feed-forward
# 1536), every layer's Q, K, V (and gate, up, down, attn_output) of
# different types in turn (shifted each layer), so Q/K/V run as products writing column slices
# (ldy) + rope_kv and gate/up as products + glu: mixed-legacy.gguf of Q4_0,
# Q4_1, Q8_0, F16; mixed-new.gguf of the seven newer block types. The types
# gguf cannot quantize (Q5_K, Q3_K, Q2_K, IQ4_NL, IQ4_XS) get random quants
# under scales that make the weights about N(0, 1) * 0.02 in size. Written
# with bench/gen_model.py's writer (its tokenizer, hyperparameters, seeds).
gen_mixed() {
    python3 - "$@" <<'PY'
import importlib.util, os, sys, hashlib
import numpy as np
spec = importlib.util.spec_from_file_location("gen_model", "bench/gen_model.py")
gm = sys.modules["gen_model"] = importlib.util.module_from_spec(spec)  # (the pool's workers find it by name)
spec.loader.exec_module(gm)
gm.JOBS = os.cpu_count() or 1
gm.SHAPES["mixed"] = dict(n_layer=7, n_embd=512, n_head=8, n_head_kv=2, n_ff=1536, n_vocab=8192, tied=False)
SETS = {"legacy": ["Q4_0", "Q4_1", "Q8_0", "F16"],
        "new": ["Q5_0", "Q5_1", "Q5_K", "Q3_K", "Q2_K", "IQ4_NL", "IQ4_XS"]}
# (offset of the f16 d, of dmin or None, d in units of SCALE) for random quants
RAW = {"Q5_K": (0, 2, 1 / 512), "Q3_K": (108, None, 1 / 32), "Q2_K": (80, 82, 1 / 12),
       "IQ4_NL": (0, None, 1 / 60), "IQ4_XS": (0, None, 1 / 960)}
quantized = gm.tensor_data

def tensor_data(name, shape, ttype):
    if ttype not in RAW:
        return quantized(name, shape, ttype)
    block, size = gm.gguf.GGML_QUANT_SIZES[gm.GGMLT[ttype]]
    seed = int.from_bytes(hashlib.sha256(f"{gm.SEED}:{name}".encode()).digest()[:8], "little")
    n = int(np.prod(shape)) // block
    b = np.random.default_rng(seed).integers(0, 256, size=(n, size), dtype=np.uint8)
    d_off, m_off, d = RAW[ttype]
    for off in (d_off, m_off):
        if off is not None:
            b[:, off:off + 2] = np.full(n, d * gm.SCALE, dtype=np.float16).view(np.uint8).reshape(n, 2)
    return b.reshape(shape[0], -1)

gm.tensor_data = tensor_data
base_plan = gm.plan
for kind in sys.argv[1:]:
    T = SETS[kind]
    def plan(shape, wtype, T=T):
        out, j, last = [], 0, None
        for name, shp, t in base_plan(shape, wtype):
            layer = int(name.split(".")[1]) if name.startswith("blk.") else -1
            j = 0 if layer != last else j
            if t != "F32":  # a layer's products in turn, from type `layer` on
                t, j = T[(j + layer + 1) % len(T)], j + 1
            out.append((name, shp, t))
            last = layer
        return out
    gm.plan = plan
    path = f"models/random/mixed-{kind}.gguf"
    if not os.path.exists(path):
        os.makedirs("models/random", exist_ok=True)
        gm.write_gguf(path + ".tmp", "mixed", "Q8_0")
        os.replace(path + ".tmp", path)
    print(f"gen_mixed: {path}", file=sys.stderr)
PY
}
mixed=()
add_mixed() { # the mixed models kgen computes with (mixed-new needs every type in kgen_types.h)
    gen_mixed legacy new
    for k in legacy new; do
        m=models/random/mixed-$k.gguf
        if build/kgen kernels "$m" --target cuda >/dev/null 2>"$OUT/kernels-mixed-$k.err"; then mixed+=("$m")
        else echo "gpu_run: skip $m: $(tail -1 "$OUT/kernels-mixed-$k.err")" | tee -a "$OUT/skipped.txt" >&2; fi
    done
}

for step in "$@"; do
    echo "== gpu_run: $step" >&2
    case $step in
    check)
        build/kgen-tests gpu_ 2>&1 | tee "$OUT/kgen-tests-gpu.txt"
        gen_small
        add_mixed
        python3 tests/gpu/check_gpu.py --kgen build/kgen $(printf -- '--model %s ' "${small[@]}" "${mixed[@]}") 2>&1 \
            | tee "$OUT/check-gpu.txt"
        KGEN_NOFUSE=all python3 tests/gpu/check_gpu.py --kgen build/kgen \
            $(printf -- '--model %s ' models/random/smollm2-Q8_0.gguf "${mixed[@]}") 2>&1 | tee "$OUT/check-gpu-nofuse.txt" ;;
    kernels)
        gen_small
        add_mixed
        for m in "${small[@]}" "${mixed[@]}"; do build/kgen kernels "$m" --target cuda; done 2>&1 | tee "$OUT/kernels.txt"
        for m in models/random/smollm2-Q8_0.gguf "${mixed[@]}"; do KGEN_NOFUSE=all build/kgen kernels "$m" --target cuda; done 2>&1 \
            | tee "$OUT/kernels-nofuse.txt" ;;
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
