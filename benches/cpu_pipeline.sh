#!/usr/bin/env bash
# benches/cpu_pipeline.sh: Tora Studio's CPU pipeline against the reference PyTorch pipeline (issue 15),
# side by side, both on 2 threads: the tiny fixture T2V model (tiny-tora-t2v), 352x240, 17 frames,
# 4 steps, the fixture pipeline's prompt and its two tracks. Prints one markdown table:
#
#   phase | ours (s) | PyTorch (s) | ours/PyTorch
#
#   bash benches/cpu_pipeline.sh     # ~1.5 min of PyTorch + ours (dev build: ~9.5 min; 10m43s in all, 2026-12-07)
#
# Order: (1) the reference is proven first (`cpu_pipeline.py parity`: per-step latents and frames against
# io/pipeline.safetensors at the fixture's 48x32; the script stops if that fails); (2) ours:
# `tora-studio generate --backend cpu` with RAYON_NUM_THREADS=2 (burn's flex backend runs on rayon's
# pool; the machine has 2 cores); its phase times are the "<phase> done in X.Xs" lines it prints;
# (3) the reference: `cpu_pipeline.py time` (torch.set_num_threads(2)), one untimed warm-up run of the
# same size, then one timed run; it reads the same flow video that ours computes (`tora-studio flow`),
# because ToraPipeline takes video_flow as an input (Tora's script computes it before the pipeline).
#
# What each phase holds. Ours: the model's load (from the safetensors) + its compute; "flow latents" also
# fits the live preview (one 1-frame decode of <=16x16 latents). PyTorch: compute only (all models are
# loaded once before, ~0.2 s for this tiny model, printed below the table); its TE runs inside every
# transformer forward (as Tora's does), ours once per run. Neither includes trajectory -> flow.
#
# Environment (defaults in brackets):
#   TORA_BIN       our binary [target/release/tora-studio, else target/debug/tora-studio with a warning:
#                  the dev profile builds the dependencies, burn included, at opt-level 0]
#   PYTHON         a Python with torch (CPU), diffusers, transformers, sentencepiece
#                  [../scratch/venv/bin/python beside the checkout]
#   TORA_FIXTURES  the fixtures folder [../shared/fixtures beside the checkout]
#   BENCH_DIR      where logs, the flow and our frames go [a new temp folder]
#   OURS_LOG       reuse this earlier ours.log instead of running ours again (reruns the reference only)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
FIXTURES=${TORA_FIXTURES:-$ROOT/../shared/fixtures}
MODEL=$FIXTURES/tiny-tora-t2v
PY=${PYTHON:-$ROOT/../scratch/venv/bin/python}
DIR=${BENCH_DIR:-$(mktemp -d /tmp/tora-cpu-bench.XXXXXX)}
SIZE=352x240
FRAMES=17
STEPS=4
THREADS=2

die() { echo "cpu_pipeline.sh: $*" >&2; exit 2; }
say() { echo "[cpu_pipeline.sh $(date +%H:%M:%S)] $*" >&2; }

if [[ -z "${TORA_BIN:-}" ]]; then
    if [[ -x $ROOT/target/release/tora-studio ]]; then
        TORA_BIN=$ROOT/target/release/tora-studio
    elif [[ -x $ROOT/target/debug/tora-studio ]]; then
        TORA_BIN=$ROOT/target/debug/tora-studio
        say "WARNING: no release build; using $TORA_BIN, whose dependencies (burn's CPU kernels) are unoptimised"
    fi
fi
[[ -n "${TORA_BIN:-}" && -x "$TORA_BIN" ]] ||
    die "no tora-studio binary: run 'cargo build --release --bin tora-studio' or set TORA_BIN=/path/to/tora-studio"
[[ -x "$PY" ]] ||
    die "no Python at $PY: make a venv with torch (CPU), then 'pip install diffusers==0.42.1 transformers==5.24.0 sentencepiece', and set PYTHON=/path/to/venv/bin/python"
"$PY" -c "import torch, diffusers, transformers, sentencepiece" 2>/dev/null ||
    die "$PY lacks torch/diffusers/transformers/sentencepiece: '$PY -m pip install diffusers==0.42.1 transformers==5.24.0 sentencepiece'"
[[ -f $MODEL/io/pipeline.safetensors ]] || die "fixture model $MODEL not found: set TORA_FIXTURES=/path/to/fixtures"
mkdir -p "$DIR"
say "binary $TORA_BIN; python $PY; logs in $DIR; load average: $(cut -d' ' -f1-3 /proc/loadavg)"

# The fixture pipeline's prompt and tracks (256x256 canvas, one "x,y" per line, one file per track).
read -r PROMPT < <("$PY" -c "import json,sys; from safetensors import safe_open
m = safe_open(sys.argv[1], 'pt').metadata(); s = json.loads(m['settings']); print(s['prompt'])
for i, t in enumerate(s['tracks']): open(f'{sys.argv[2]}/track{i}.txt', 'w').write(''.join(f'{x},{y}\n' for x, y in t))
" "$MODEL/io/pipeline.safetensors" "$DIR")
TRACKS=("$DIR"/track*.txt)

# 1. The reference, proven at the fixture's own settings before anything is timed.
say "reference parity (fixture settings, replayed noise)"
"$PY" "$HERE/cpu_pipeline.py" --model "$MODEL" --threads $THREADS parity 2>"$DIR/parity.err" | tee "$DIR/parity.log" >&2 ||
    die "the reference pipeline does not match the fixture (see $DIR/parity.log, $DIR/parity.err): nothing timed"

# 2. Ours, on the CPU backend.
say "ours: tora-studio generate --backend cpu, $SIZE, $FRAMES frames, $STEPS steps, RAYON_NUM_THREADS=$THREADS"
if [[ -n "${OURS_LOG:-}" ]]; then
    say "reusing our earlier log $OURS_LOG (OURS_LOG set): ours NOT rerun"
    [[ "$OURS_LOG" -ef "$DIR/ours.log" ]] || cp "$OURS_LOG" "$DIR/ours.log"
else
    start=$(date +%s%N)
    RAYON_NUM_THREADS=$THREADS "$TORA_BIN" generate --model "$MODEL" --prompt "$PROMPT" --points "${TRACKS[@]}" \
        --size $SIZE --frames $FRAMES --steps $STEPS --backend cpu --out "$DIR/ours_frames" 2>&1 |
        tr '\r' '\n' > "$DIR/ours.log" || die "our run failed: see $DIR/ours.log"
    echo "wall_s $(( ($(date +%s%N) - start) / 1000000 ))e-3" >> "$DIR/ours.log"
fi

# 3. The reference, timed, on the flow video ours computes from the same tracks.
RAYON_NUM_THREADS=$THREADS "$TORA_BIN" flow --points "${TRACKS[@]}" --frames $FRAMES --size $SIZE \
    --out "$DIR/flow.safetensors" > /dev/null
say "reference: warm-up run + timed run"
"$PY" "$HERE/cpu_pipeline.py" --model "$MODEL" --threads $THREADS time --flow "$DIR/flow.safetensors" \
    --steps $STEPS 2>"$DIR/pytorch.err" | tee "$DIR/pytorch.log" >&2 || die "the reference run failed: see $DIR/pytorch.err"

# 4. The table.
"$PY" - "$DIR" <<'EOF' | tee "$DIR/table.md"
import json, os, re, sys
d = sys.argv[1]
ours_log = open(os.path.join(d, "ours.log"), encoding="utf-8", errors="replace").read()
ref = next(json.loads(l[7:]) for l in open(os.path.join(d, "pytorch.log")) if l.startswith("RESULT "))
parity = [l.strip() for l in open(os.path.join(d, "parity.log")) if l.startswith(("  max", "PARITY"))]

def ours(label):
    m = re.search(re.escape(label) + r" done in ([0-9.]+)s", ours_log)
    return float(m.group(1)) if m else None

rows = [("text encoding (T5, prompt + negative)", "encoding the prompt", "text"),
        ("flow -> flow latents (VAE encode)", "encoding the motion", "flow_latents"),
        ("denoising (4 CFG steps)", "denoising", "denoising"),
        ("VAE decode", "decoding frames", "decode")]
f = lambda v: "—" if v is None else f"{v:.2f}"
r = lambda a, b: "—" if a is None or not b else f"{a / b:.2f}x"
print(f"CPU pipeline, tiny-tora-t2v, {ref['size']}, {ref['frames']} frames, {ref['steps']} steps, 2 threads each")
print("\n| phase | ours (s) | PyTorch (s) | ours/PyTorch |\n| --- | --- | --- | --- |")
total_ours = 0.0
for name, label, key in rows:
    mine, theirs = ours(label), ref["phases"][key]
    total_ours = None if mine is None or total_ours is None else total_ours + mine
    print(f"| {name} | {f(mine)} | {f(theirs)} | {r(mine, theirs)} |")
print(f"| **total (the four phases)** | {f(total_ours)} | {f(ref['phases']['total'])} "
      f"| {r(total_ours, ref['phases']['total'])} |")
wall = re.search(r"wall_s ([0-9.e-]+)", ours_log)
warm = ref.get("warmup_phases") or {}
print(f"\nours: whole `generate` command {f(float(wall.group(1)) if wall else None)} s (+ process start, "
      f"trajectory -> flow, PNG export); phases include each model's load; rayon threads 2.")
print(f"PyTorch: timed run after one untimed warm-up run of the same size (warm-up total {f(warm.get('total'))} s); "
      f"models loaded once before, {f(ref['load_s'])} s; torch threads {ref['threads']}.")
print("reference parity at 48x32 (fixture): " + "; ".join(p.replace("max |Δ| ", "").split()[0] + " " +
      p.split()[-1] for p in parity if p.startswith("max")) + " — " + parity[-1])
print(f"load average after: {' '.join(open('/proc/loadavg').read().split()[:3])}")
EOF
say "done; logs in $DIR"
