#!/usr/bin/env bash
# benches/gpu_prepare.sh: run HERE (the build machine) before benches/gpu.sh goes to the lent GPU.
# Fills .gpu/ (gitignored; the device tool carries it, 64 MiB at most with the working tree):
#   .gpu/tora-studio.xz   the release binary, xz-compressed (the GPU machine has no cargo)
#   .gpu/wheels/          diffusers (+ importlib_metadata, which the GPU image lacks), no other deps:
#                         torch, transformers, safetensors, huggingface_hub, numpy... are already there
#   .gpu/debs/            the Vulkan loader packages (amd64), unpacked there only if it has no libvulkan
# Options: --no-build (reuse target/release/tora-studio as it is; fails if there is none).
# The release build takes 15+ minutes of both cores here.
set -euo pipefail

BUILD=1
if [[ "${1:-}" == "--no-build" ]]; then BUILD=0; fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CARRY=$ROOT/.gpu
cd "$ROOT"
mkdir -p "$CARRY/wheels" "$CARRY/debs"

if [[ $BUILD == 1 ]]; then
    cargo build --release --locked --bin tora-studio
fi
bin=target/release/tora-studio
[[ -x $bin ]] || { echo "no $bin: run without --no-build" >&2; exit 2; }
# The GPU machine is x86-64 (benches/gpu.sh runs the binary there as is).
[[ $(uname -m) == x86_64 ]] || { echo "this machine is $(uname -m); the GPU machine needs an x86-64 build" >&2; exit 2; }
strip -o "$CARRY/tora-studio" "$bin"
xz -T0 -9 -f "$CARRY/tora-studio"

# Python 3.12 on the GPU image; diffusers is pure Python (py3-none-any)
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    -d "$CARRY/wheels" diffusers importlib_metadata

if ! compgen -G "$CARRY/debs/libvulkan1_*.deb" > /dev/null; then
    lists=$(mktemp -d)
    mkdir -p "$lists/partial"
    o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
    apt-get "${o[@]}" update -qq
    (cd "$CARRY/debs" && apt-get "${o[@]}" download libvulkan1)
    rm -rf "$lists"
fi

du -sh "$CARRY" "$CARRY"/* >&2
total=$(du -sm "$CARRY" | cut -f1)
if ((total > 56)); then
    echo "warning: .gpu is ${total} MiB; the device tool carries 64 MiB with the working tree" >&2
fi
echo "ready: run(command=\"bash benches/gpu.sh\", carry=[\".gpu\"], timeout_s=600)"
