#!/usr/bin/env bash
# benches/gpu.sh: Tora Studio against diffusers on ONE lent GPU, inside one 10-minute call.
#
#   (a) our transformer CFG step at 49x480x720 (batch 2, f16, random weights, wgpu) via `bench-step`
#   (b) the same step in diffusers: CogVideoXTransformer3DModel + Tora's TE/MGF (benches/tora_diffusers.py),
#       random weights, bf16, SDPA
#   (c) VAE decode of 13x60x90 latents, ours (wgpu f16) vs diffusers (bf16)
#   (d) peak GPU memory of each (nvidia-smi sampled every 100 ms; torch's max_memory_allocated too)
# and prints one table with the ratios (also written to $OUT/table.md).
#
# The GPU machine has PyTorch and transformers but no cargo and no internet: run
# benches/gpu_prepare.sh here first; it fills .gpu/ (gitignored) with the compressed release binary,
# the diffusers wheel and the Vulkan loader packages. Then, with the device tool:
#   run(command="bash benches/gpu.sh", carry=[".gpu"], timeout_s=600)
# `bash benches/gpu.sh --dry-run` runs nothing heavy: it prints the commands, feeds the table canned
# logs in the real formats, and checks the table comes out (CI-safe, no GPU needed).
#
# Each part has its own time limit (seconds; override with the variables below) so that a slow part
# leaves the others their time; a part that runs out shows as "did not finish" in the table.
set -uo pipefail

DRY=0
if [[ "${1:-}" == "--dry-run" ]]; then DRY=1; fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
CARRY=${GPU_CARRY:-$ROOT/.gpu}
RESULTS=${OUT:-/tmp/tora-gpu-bench}
BACKEND=${BACKEND:-wgpu}          # our fastest backend: the default build runs SPIR-V kernels on Vulkan GPUs, autotuned + fused
T_DIFF_STEP=${T_DIFF_STEP:-100}
T_DIFF_VAE=${T_DIFF_VAE:-80}
T_OURS_STEP=${T_OURS_STEP:-220}
T_OURS_VAE=${T_OURS_VAE:-150}
mkdir -p "$RESULTS"
BIN=/tmp/tora-bench/tora-studio
PY=${PYTHON:-python3}

say() { echo "[gpu.sh $(date +%H:%M:%S)] $*" >&2; }

# Runs "$@" under a time limit with nvidia-smi sampling the GPU's memory into $1.smi; output to $1.log.
measure() {
    local stem=$1 limit=$2
    shift 2
    say "$stem (limit ${limit}s): $*"
    if [[ $DRY == 1 ]]; then
        canned "$stem" > "$RESULTS/$stem.log"
        printf '1000\n1200\n%s\n' "$((RANDOM % 9000 + 3000))" > "$RESULTS/$stem.smi"
        return 0
    fi
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$RESULTS/$stem.smi" 2>/dev/null &
    local smi=$!
    local start=$SECONDS
    timeout --kill-after=10 "$limit" "$@" > "$RESULTS/$stem.log" 2>&1
    local rc=$?
    kill "$smi" 2>/dev/null
    wait "$smi" 2>/dev/null
    say "$stem: exit $rc after $((SECONDS - start)) s"
    tail -n 5 "$RESULTS/$stem.log" >&2
    return 0
}

# Outputs in the formats the real commands print (for --dry-run).
canned() {
    case $1 in
        ours_transformer) printf 'trajectory features (once per run): 0.412 s\nwarm-up forward: 9.100 s\nstep 1: 4.200 s\n'
                          printf 'time per transformer forward: mean 4.200 s, min 4.200 s over 1 step(s)\n' ;;
        ours_vae) printf 'decoded [1, 16, 13, 60, 90] -> [1, 3, 49, 480, 720] in 31.52s\n' ;;
        diffusers_transformer) printf 'RESULT {"part": "transformer", "impl": "diffusers", "mean_s": 1.85, "min_s": 1.8, "peak_alloc_gib": 21.3}\n' ;;
        diffusers_vae_decode) printf 'RESULT {"part": "vae_decode", "impl": "diffusers", "mean_s": 12.4, "min_s": 12.4, "peak_alloc_gib": 30.1}\n' ;;
    esac
}

# --- set-up -----------------------------------------------------------------------------------------
if [[ $DRY == 0 ]]; then
    for need in "$CARRY/tora-studio.xz" "$CARRY"/wheels/diffusers-*.whl; do
        [[ -e $need ]] || { echo "missing $need: run benches/gpu_prepare.sh here and carry .gpu" >&2; exit 2; }
    done
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$RESULTS/device.txt"
    mkdir -p "$(dirname "$BIN")"
    "$PY" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
        "$CARRY/tora-studio.xz" "$BIN" && chmod +x "$BIN" || exit 2
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/tora-site \
        "$CARRY"/wheels/*.whl || exit 2
    export PYTHONPATH=/tmp/tora-site${PYTHONPATH:+:$PYTHONPATH}
    # wgpu needs a Vulkan loader; the image may lack one (benches/gpu_prepare.sh downloads it)
    if ! ldconfig -p | grep -q libvulkan && compgen -G "$CARRY/debs/*.deb" > /dev/null; then
        for f in "$CARRY"/debs/*.deb; do dpkg -x "$f" /; done
        ldconfig
    fi
    icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    if [[ -e $icd && -z ${VK_DRIVER_FILES:-} ]]; then
        export VK_DRIVER_FILES=$icd
        export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    fi
else
    echo "dry run: $(date -u +%F) no GPU" > "$RESULTS/device.txt"
fi

# --- the runs: diffusers first (short and sure), then ours -----------------------------------------
export PYTHONUNBUFFERED=1
# which kernels our build runs on this GPU (SPIR-V + autotune in the default build), for the table
if [[ $DRY == 0 ]]; then
    timeout 60 "$BIN" devices > "$RESULTS/devices.txt" 2>&1
    cat "$RESULTS/devices.txt" >&2
fi
measure diffusers_transformer "$T_DIFF_STEP" "$PY" "$HERE/tora_diffusers.py" transformer --steps 3 --warmup 1
measure diffusers_vae_decode "$T_DIFF_VAE" "$PY" "$HERE/tora_diffusers.py" vae --steps 1 --warmup 0
cat "$RESULTS"/diffusers_*.log 2>/dev/null | grep '^RESULT ' > "$RESULTS/diffusers.log"
measure ours_transformer "$T_OURS_STEP" "$BIN" bench-step --preset cogvideox-5b-tora --random-weights \
    --backend "$BACKEND" --precision f16 --batch 2 --steps 1
measure ours_vae "$T_OURS_VAE" "$BIN" vae decode --random-weights --latent-shape 13,60,90 \
    --backend "$BACKEND" --precision f16 --out /tmp/tora-bench/decoded.safetensors

# --- the table ----------------------------------------------------------------------------------------
{
    echo "device: $(cat "$RESULTS/device.txt"); date: $(date -u +%F)"
    echo
    "$PY" "$HERE/tora_diffusers.py" table "$RESULTS"
} | tee "$RESULTS/table.md"
