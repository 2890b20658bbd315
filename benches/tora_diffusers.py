"""The reference side of benches/gpu.sh: diffusers' CogVideoX transformer with Tora's Trajectory
Extractor (TE) and Motion-guidance Fusers (MGF), and diffusers' CogVideoX VAE, timed on one GPU
with random weights in bf16 (SDPA attention, as diffusers runs it); plus the table of both sides.

Tora's parts follow alibaba/Tora's diffusers version (`tora/traj_module.py`, as
`src/model/tora/` ports them): TE = patchify 1x2x2 -> conv_in 3x3 (64 -> 128) -> 2 pre-activation
residual blocks (BatchNorm, ReLU, conv 3x3) per DiT layer, one 128-channel map per layer; MGF per
block, between norm1 and the attention: h + GroupNorm32(h)·γ + β, γ/β = Conv1d_t(k=3, replicate)
(Conv2d_s 3x3 (128 -> D/4)) -> D. As the reference pipeline runs it, the TE and the MGFs run inside
every forward, on the flow tiled over the CFG batch.

Subcommands:
  transformer  time the CFG step (warm-up + --steps), print one RESULT line
  vae          time one VAE decode of --latent F,h,w, print one RESULT line
  table        read RESULT lines and our logs, print the table with ratios
torch and diffusers are imported only by the first two, so `table` runs anywhere.
"""

import argparse
import inspect
import json
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PRESET = os.path.join(HERE, "..", "models", "cogvideox-5b-tora.json")


def result(**fields):
    print("RESULT " + json.dumps(fields), flush=True)


# --- Tora's parts ----------------------------------------------------------------------------------
def tora_modules(torch, inner_dim, layers, in_channels=16, features=128, blocks_per_layer=2):
    nn = torch.nn
    F = torch.nn.functional

    class ResnetBlock(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.bn1, self.block1 = nn.BatchNorm2d(c), nn.Conv2d(c, c, 3, 1, 1)
            self.bn2, self.block2 = nn.BatchNorm2d(c), nn.Conv2d(c, c, 3, 1, 1)

        def forward(self, x):
            h = self.block1(F.relu(self.bn1(x)))
            return self.block2(F.relu(self.bn2(h))) + x

    class TrajExtractor(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv_in = nn.Conv2d(in_channels * 4, features, 3, 1, 1)
            self.body = nn.ModuleList(ResnetBlock(features) for _ in range(layers * blocks_per_layer))

        def forward(self, x):  # [B, C, T, h, w] -> layers x [(B T), 128, h/2, w/2]
            b, c, t, h, w = x.shape
            x = F.pad(x, (0, w % 2, 0, h % 2))
            h2, w2 = x.shape[3] // 2, x.shape[4] // 2
            x = x.reshape(b, c, t, h2, 2, w2, 2).permute(0, 2, 1, 4, 6, 3, 5).reshape(b * t, c * 4, h2, w2)
            x = self.conv_in(x)
            out = []
            for i in range(layers):
                for block in self.body[i * blocks_per_layer:(i + 1) * blocks_per_layer]:
                    x = block(x)
                out.append(x)
            return out

    class Mgf(nn.Module):
        def __init__(self):
            super().__init__()
            q = inner_dim // 4
            self.flow_gamma_spatial = nn.Conv2d(features, q, 3, 1, 1)
            self.flow_gamma_temporal = nn.Conv1d(q, inner_dim, 3, padding=1, padding_mode="replicate")
            self.flow_beta_spatial = nn.Conv2d(features, q, 3, 1, 1)
            self.flow_beta_temporal = nn.Conv1d(q, inner_dim, 3, padding=1, padding_mode="replicate")
            self.flow_cond_norm = nn.GroupNorm(32, inner_dim)

        @staticmethod
        def temporal(conv, x, t):  # (b t) c h w -> (b h w) c t -> conv -> back
            bt, c, h, w = x.shape
            b = bt // t
            y = conv(x.reshape(b, t, c, h, w).permute(0, 3, 4, 2, 1).reshape(b * h * w, c, t))
            return y.reshape(b, h, w, -1, t).permute(0, 4, 3, 1, 2).reshape(bt, -1, h, w)

        def forward(self, h, flow, t):
            gamma = self.temporal(self.flow_gamma_temporal, self.flow_gamma_spatial(flow), t)
            beta = self.temporal(self.flow_beta_temporal, self.flow_beta_spatial(flow), t)
            # FloatGroupNorm: statistics in f32
            n = self.flow_cond_norm
            normed = F.group_norm(h.float(), n.num_groups, n.weight.float(), n.bias.float(), n.eps).to(h.dtype)
            return h + normed * gamma + beta

    class FusedNorm1(nn.Module):
        """A block's norm1 followed by its MGF on the video stream (where Tora's block fuses)."""

        def __init__(self, norm1, fuser, layer, state):
            super().__init__()
            self.norm1, self.fuser, self.layer, self.state = norm1, fuser, layer, state

        def forward(self, hidden_states, encoder_hidden_states, temb):
            h, e, gate, e_gate = self.norm1(hidden_states, encoder_hidden_states, temb)
            feats = self.state.get("features")
            if feats is not None:
                b, n, d = h.shape
                t, fh, fw = self.state["grid"]
                x = h.reshape(b, t, fh, fw, d).permute(0, 1, 4, 2, 3).reshape(b * t, d, fh, fw)
                x = self.fuser(x, feats[self.layer], t)
                h = x.reshape(b, t, d, fh, fw).permute(0, 1, 3, 4, 2).reshape(b, n, d)
            return h, e, gate, e_gate

    return TrajExtractor, Mgf, FusedNorm1


# --- timing ------------------------------------------------------------------------------------------
def timed(torch, fn, warmup, steps):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize() if torch.cuda.is_available() else None
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize() if torch.cuda.is_available() else None
        times.append(time.perf_counter() - start)
    return times


def device_and_dtype(torch, args):
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = getattr(torch, args.dtype)
    return device, dtype


def peak_gib(torch):
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None


def transformer_config(args):
    with open(args.preset) as f:
        config = json.load(f)["variants"]["t2v"]["transformer"]
    for kv in args.override:
        key, value = kv.split("=", 1)
        config[key] = json.loads(value)
    return config


def run_transformer(args):
    import torch
    from diffusers import CogVideoXTransformer3DModel

    device, dtype = device_and_dtype(torch, args)
    config = transformer_config(args)
    accepted = inspect.signature(CogVideoXTransformer3DModel.__init__).parameters
    kwargs = {k: v for k, v in config.items() if k in accepted}
    torch.manual_seed(0)
    with torch.device(device):
        model = CogVideoXTransformer3DModel(**kwargs).to(dtype).eval()
        d = config["num_attention_heads"] * config["attention_head_dim"]
        TrajExtractor, Mgf, FusedNorm1 = tora_modules(torch, d, config["num_layers"])
        te = TrajExtractor().to(dtype).eval()
        fusers = torch.nn.ModuleList(Mgf() for _ in range(config["num_layers"])).to(dtype).eval()
    state = {}
    for i, block in enumerate(model.transformer_blocks):
        block.norm1 = FusedNorm1(block.norm1, fusers[i], i, state)

    width, height = (int(v) for v in args.size.split("x"))
    frames = (args.frames - 1) // config["temporal_compression_ratio"] + 1
    h, w, p = height // 8, width // 8, config["patch_size"]
    state["grid"] = (frames, h // p, w // p)
    b = args.batch
    gen = dict(device=device, dtype=dtype)
    hidden = torch.randn(b, frames, config["in_channels"], h, w, **gen)
    text = torch.randn(b, config["max_text_seq_length"], config["text_embed_dim"], **gen)
    flow = torch.randn(1, 16, frames, h, w, **gen)
    timestep = torch.full((b,), 999, device=device, dtype=torch.long)
    tokens = frames * (h // p) * (w // p)
    # RoPE tables of the right shape (values do not change the timing)
    rope = None
    if config["use_rotary_positional_embeddings"]:
        rope = tuple(torch.randn(tokens, config["attention_head_dim"], device=device) for _ in range(2))

    def step():
        # Tora's reference pipeline: TE and MGF inside every forward, on the flow tiled over the CFG batch
        state["features"] = te(flow.repeat(b, 1, 1, 1, 1)) if not args.no_flow else None
        return model(hidden_states=hidden, encoder_hidden_states=text, timestep=timestep,
                     image_rotary_emb=rope, return_dict=False)[0]

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        times = timed(torch, step, args.warmup, args.steps)
    result(part="transformer", impl="diffusers", device=str(device), dtype=args.dtype,
           mean_s=sum(times) / len(times), min_s=min(times), steps=len(times), peak_alloc_gib=peak_gib(torch),
           tokens=tokens + config["max_text_seq_length"], batch=b)


def run_vae(args):
    import torch
    from diffusers import AutoencoderKLCogVideoX

    device, dtype = device_and_dtype(torch, args)
    kwargs = {}
    for kv in args.override:
        key, value = kv.split("=", 1)
        kwargs[key] = json.loads(value)
    torch.manual_seed(0)
    with torch.device(device):
        vae = AutoencoderKLCogVideoX(**kwargs).to(dtype).eval()
    if args.tiling:
        vae.enable_tiling()
    f, h, w = (int(v) for v in args.latent.split(","))
    z = torch.randn(1, vae.config.latent_channels, f, h, w, device=device, dtype=dtype)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        times = timed(torch, lambda: vae.decode(z).sample, args.warmup, args.steps)
    result(part="vae_decode", impl="diffusers", device=str(device), dtype=args.dtype,
           mean_s=sum(times) / len(times), min_s=min(times), steps=len(times), peak_alloc_gib=peak_gib(torch))


# --- the table ---------------------------------------------------------------------------------------
def duration_s(text):
    """Rust's `{:.2?}` Duration: 1.23s, 456.70ms, 12.00µs."""
    m = re.fullmatch(r"([0-9.]+)(s|ms|µs|us|ns)", text.strip())
    if not m:
        return None
    scale = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}[m.group(2)]
    return float(m.group(1)) * scale


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def ours(part, log):
    """Our timing from a tora-studio log (None when it did not finish)."""
    if part == "transformer":
        m = re.search(r"time per transformer forward: mean ([0-9.]+) s", log)
        return float(m.group(1)) if m else None
    m = re.search(r"decoded \[[^\]]*\] -> \[[^\]]*\] in (\S+)", log)
    return duration_s(m.group(1)) if m else None


def smi_peak_gib(path):
    """Peak of an nvidia-smi memory.used sample file (MiB per line) above its first sample."""
    values = []
    for line in read(path).splitlines():
        try:
            values.append(float(line.strip().split(",")[0]))
        except ValueError:
            pass
    return (max(values) - values[0]) / 1024 if values else None


def fmt(v, unit=""):
    return "—" if v is None else f"{v:.2f}{unit}"


def ratio(a, b):
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def table(args):
    d = args.dir
    results = {}
    for line in read(os.path.join(d, "diffusers.log")).splitlines():
        if line.startswith("RESULT "):
            r = json.loads(line[len("RESULT "):])
            results[r["part"]] = r
    rows = [("transformer", "CFG step 49x480x720 (batch 2)", "ours_transformer"),
            ("vae_decode", "VAE decode 13x60x90", "ours_vae")]
    out = ["| part | ours (wgpu f16) s | diffusers (bf16, SDPA) s | ours / diffusers | ours peak GPU GiB "
           "| diffusers peak GPU GiB (nvidia-smi; torch max allocated) |",
           "| --- | --- | --- | --- | --- | --- |"]
    for part, label, stem in rows:
        mine = ours(part, read(os.path.join(d, stem + ".log")))
        theirs = results.get(part, {}).get("mean_s")
        torch_peak = results.get(part, {}).get("peak_alloc_gib")
        mine_mem = smi_peak_gib(os.path.join(d, stem + ".smi"))
        their_mem = smi_peak_gib(os.path.join(d, "diffusers_" + part + ".smi"))
        status = "" if mine is not None else " (did not finish: see " + stem + ".log)"
        out.append(f"| {label} | {fmt(mine)}{status} | {fmt(theirs)} | {ratio(mine, theirs)} | {fmt(mine_mem)} "
                   f"| {fmt(their_mem)}; {fmt(torch_peak)} |")
    print("\n".join(out))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    for name in ("transformer", "vae"):
        p = sub.add_parser(name)
        p.add_argument("--device", default=None)
        p.add_argument("--dtype", default="bfloat16")
        p.add_argument("--warmup", type=int, default=1)
        p.add_argument("--steps", type=int, default=3)
        p.add_argument("--override", action="append", default=[], help="config KEY=JSON (e.g. num_layers=2)")
    t = sub.choices["transformer"]
    t.add_argument("--preset", default=PRESET)
    t.add_argument("--size", default="720x480")
    t.add_argument("--frames", type=int, default=49)
    t.add_argument("--batch", type=int, default=2)
    t.add_argument("--no-flow", action="store_true")
    v = sub.choices["vae"]
    v.add_argument("--latent", default="13,60,90")
    v.add_argument("--tiling", action="store_true")
    tb = sub.add_parser("table")
    tb.add_argument("dir")
    args = ap.parse_args(argv)
    {"transformer": run_transformer, "vae": run_vae, "table": table}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
