"""The reference side of benches/cpu_pipeline.sh: Tora's T2V pipeline in PyTorch on the CPU (2 threads),
loading the tiny fixture model folder, proven against the fixture and then timed phase by phase.

The reference is diffusers' own CogVideoXPipeline (prompt encoding, the denoising loop with CFG, dynamic
CFG and CogVideoXDPMScheduler, VAE decode + postprocess) with Tora's parts hooked in exactly as alibaba/Tora's
diffusers version runs them: the Trajectory Extractor (TE) inside every transformer forward, on the flow
latents tiled over the CFG batch, and one Motion-guidance Fuser (MGF) per block between norm1 and the
attention. TE/MGF are benches/tora_diffusers.py's `tora_modules` (imported, not copied). The flow latents are
`0.7 · sample(vae.encode(video_flow))`, as ToraPipeline computes them (fixtures README, pipeline.safetensors).

Subcommands:
  parity  run at the fixture's own settings (48x32, 17 frames, 4 steps) replaying its inputs and every random
          draw (io/pipeline.safetensors); print max |Δ| of the flow latents, each step's noise_pred and latents,
          and the frames; exit 1 unless latents and frames are within 1e-3
  time    one untimed warm-up run, then one timed run at --size/--frames/--steps with fresh seeded noise;
          prints one `RESULT {json}` line (seconds per phase)
The timed pipeline is the same function as the parity one, so what is timed is what was verified.
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE_MODEL = os.path.join(os.environ.get("TORA_FIXTURES") or os.path.join(HERE, "..", "..", "shared", "fixtures"),
                             "tiny-tora-t2v")
sys.path.insert(0, HERE)

import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

import diffusers  # noqa: E402
import diffusers.models.autoencoders.vae as vae_module  # noqa: E402
import diffusers.schedulers.scheduling_dpm_cogvideox as scheduler_module  # noqa: E402
import transformers  # noqa: E402
from diffusers import (AutoencoderKLCogVideoX, CogVideoXDPMScheduler, CogVideoXPipeline,  # noqa: E402
                       CogVideoXTransformer3DModel)
from transformers import AutoTokenizer, T5EncoderModel  # noqa: E402

from tora_diffusers import tora_modules  # noqa: E402

MAX_SEQUENCE_LENGTH = 226
GUIDANCE_SCALE = 6.0


def load_transformer(model_dir):
    """CogVideoXTransformer3DModel + Tora's TE and MGFs, weights from the checkpoint's own keys:
    `traj_extractor.*` -> the TE, `fuser.<i>.*` -> MGF i, everything else -> the CogVideoX transformer."""
    folder = os.path.join(model_dir, "transformer")
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(folder, "diffusion_pytorch_model.safetensors.index.json")) as f:
        shards = sorted(set(json.load(f)["weight_map"].values()))
    weights = {}
    for shard in shards:
        weights.update(load_file(os.path.join(folder, shard)))

    model = CogVideoXTransformer3DModel.from_config(config)  # Tora-only fields are ignored with a warning
    layers, inner = config["num_layers"], config["num_attention_heads"] * config["attention_head_dim"]
    TrajExtractor, Mgf, FusedNorm1 = tora_modules(torch, inner, layers, in_channels=config["out_channels"])
    te, fusers = TrajExtractor(), torch.nn.ModuleList(Mgf() for _ in range(layers))

    def part(prefix):
        return {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}

    te.load_state_dict(part("traj_extractor."), strict=True)
    fusers.load_state_dict(part("fuser."), strict=True)
    model.load_state_dict({k: v for k, v in weights.items() if not k.startswith(("traj_extractor.", "fuser."))},
                          strict=True)

    # Tora's fusion point: each block's norm1 is followed by its MGF on the video tokens.
    state = {}
    for i, block in enumerate(model.transformer_blocks):
        block.norm1 = FusedNorm1(block.norm1, fusers[i], i, state)

    def tora_forward_pre_hook(module, args, kwargs):
        # As Tora's transformer does inside every forward: TE on the flow latents tiled over the batch.
        flow = state.get("flow")  # [1, 16, F, h, w]
        if flow is None:
            state["features"] = None
            return
        b, f, _, h, w = kwargs["hidden_states"].shape
        p = config["patch_size"]
        state["grid"] = (f, h // p, w // p)
        state["features"] = te(torch.cat([flow] * b))

    model.register_forward_pre_hook(tora_forward_pre_hook, with_kwargs=True)
    model.tora_state = state
    return model.eval(), te.eval(), fusers.eval()


def load_pipeline(model_dir):
    transformer, te, fusers = load_transformer(model_dir)
    pipe = CogVideoXPipeline(
        tokenizer=AutoTokenizer.from_pretrained(os.path.join(model_dir, "tokenizer")),
        text_encoder=T5EncoderModel.from_pretrained(os.path.join(model_dir, "text_encoder")).eval(),
        vae=AutoencoderKLCogVideoX.from_pretrained(os.path.join(model_dir, "vae")).eval(),
        transformer=transformer,
        # Tora's inference always runs the DPM scheduler with trailing spacing
        scheduler=CogVideoXDPMScheduler.from_pretrained(os.path.join(model_dir, "scheduler"),
                                                        timestep_spacing="trailing"),
    )
    pipe.set_progress_bar_config(disable=True)
    pipe.tora_parts = (te, fusers)  # keeps them alive next to the pipeline
    return pipe


class NoiseReplay:
    """Feeds recorded tensors to diffusers' randn_tensor calls (VAE sample, scheduler steps), in order."""

    def __init__(self, tensors):
        self.queue = list(tensors)
        self.saved = {}

    def randn_tensor(self, shape, generator=None, device=None, dtype=None, layout=None):
        assert self.queue, "more random draws than the fixture recorded"
        t = self.queue.pop(0)
        assert tuple(t.shape) == tuple(shape), f"draw of shape {tuple(shape)}, fixture has {tuple(t.shape)}"
        return t.to(device=device, dtype=dtype)

    def __enter__(self):
        for m in (vae_module, scheduler_module):
            self.saved[m] = m.randn_tensor
            m.randn_tensor = self.randn_tensor
        return self

    def __exit__(self, *exc):
        for m, fn in self.saved.items():
            m.randn_tensor = fn


def run(pipe, prompt, video_flow, steps, generator, latents_init=None, record=None):
    """One T2V run; returns (frames [1,T,H,W,3] numpy, seconds per phase). video_flow: [1, T, 3, H, W]."""
    times = {}
    _, t, _, height, width = video_flow.shape
    clock = time.perf_counter()

    def lap(name):
        nonlocal clock
        now = time.perf_counter()
        times[name] = now - clock
        clock = now

    with torch.inference_mode():
        # 1. text: T5 on [negative, prompt] (the pipeline calls text_encoder(input_ids), no mask)
        prompt_embeds, negative_embeds = pipe.encode_prompt(
            prompt, negative_prompt="", do_classifier_free_guidance=True, max_sequence_length=MAX_SEQUENCE_LENGTH)
        lap("text")

        # 2. flow -> flow latents: 0.7 · sample(vae.encode(video_flow)), frames back in front of channels
        dist = pipe.vae.encode(video_flow.permute(0, 2, 1, 3, 4)).latent_dist
        flow_latents = dist.sample(generator) * pipe.vae.config.scaling_factor  # [1, 16, F, h, w]
        lap("flow_latents")

        # 3. denoising: diffusers' loop (CFG batch [uncond, cond], dynamic CFG, DPM steps); the hook runs TE+MGF
        pipe.transformer.tora_state["flow"] = flow_latents
        if latents_init is None:
            f = (t - 1) // pipe.vae_scale_factor_temporal + 1
            latents_init = torch.randn(1, f, 16, height // 8, width // 8, generator=generator)

        def on_step(_pipe, i, _t, kwargs):
            if record is not None:
                record[f"latents_step{i}"] = kwargs["latents"].clone()
            return {}

        latents = pipe(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_embeds, height=height,
                       width=width, num_frames=t, num_inference_steps=steps, guidance_scale=GUIDANCE_SCALE,
                       use_dynamic_cfg=True, generator=generator, latents=latents_init, output_type="latent",
                       callback_on_step_end=on_step, return_dict=False)[0]
        pipe.transformer.tora_state["flow"] = None
        lap("denoising")

        # 4. VAE decode (latents · 1/0.7) + postprocess: clamp(x/2 + 0.5, 0, 1), [1, T, H, W, 3]
        frames = pipe.video_processor.postprocess_video(pipe.decode_latents(latents), output_type="np")
        lap("decode")
    if record is not None:
        record["prompt_embeds"], record["negative_prompt_embeds"] = prompt_embeds, negative_embeds
        record["flow_latents"] = flow_latents.permute(0, 2, 1, 3, 4)
    times["total"] = sum(times.values())
    return frames, times


def parity(args):
    pipe = load_pipeline(args.model)
    path = os.path.join(args.model, "io", "pipeline.safetensors")
    with safe_open(path, "pt") as f:
        fx = {k: f.get_tensor(k) for k in f.keys()}
        settings = json.loads(f.metadata()["settings"])
        order = [n["name"] for n in json.loads(f.metadata()["noise_order"])]
    record = {}
    with NoiseReplay(fx[name] for name in order) as replay:
        frames, _ = run(pipe, settings["prompt"], fx["video_flow"], settings["num_inference_steps"], None,
                        latents_init=fx["latents_init"], record=record)
        assert not replay.queue, f"{len(replay.queue)} recorded draws were not consumed"
    print(f"parity at the fixture's settings: {settings['width']}x{settings['height']}, {settings['num_frames']} "
          f"frames, {settings['num_inference_steps']} steps (inputs and random draws replayed from {path})")
    worst = 0.0
    names = ["prompt_embeds", "negative_prompt_embeds", "flow_latents"] + \
        [f"latents_step{i}" for i in range(settings["num_inference_steps"])]
    for name in names:
        d = (record[name].float() - fx[name]).abs().max().item()
        if name.startswith("latents"):
            worst = max(worst, d)
        print(f"  max |Δ| {name:24s} {d:.3e}")
    d = (torch.from_numpy(frames) - fx["frames"]).abs().max().item()
    worst = max(worst, d)
    print(f"  max |Δ| {'frames':24s} {d:.3e}")
    ok = worst <= 1e-3
    print("PARITY " + ("OK" if ok else "FAILED") + f" (worst latents/frames max |Δ| {worst:.3e}, atol 1e-3)")
    return 0 if ok else 1


def timing(args):
    with safe_open(args.flow, "pt") as f:
        video_flow = f.get_tensor("video_flow")  # [T, 3, H, W], as `tora-studio flow --out x.safetensors`
    video_flow = video_flow.unsqueeze(0)
    with safe_open(os.path.join(args.model, "io", "pipeline.safetensors"), "pt") as f:
        prompt = json.loads(f.metadata()["settings"])["prompt"]
    start = time.perf_counter()
    pipe = load_pipeline(args.model)
    load_s = time.perf_counter() - start
    cold = None
    if args.warmup:
        _, cold = run(pipe, prompt, video_flow, args.steps, torch.Generator().manual_seed(args.seed))
    frames, times = run(pipe, prompt, video_flow, args.steps, torch.Generator().manual_seed(args.seed))
    _, t, h, w, _ = frames.shape
    print("RESULT " + json.dumps({"impl": "pytorch", "threads": torch.get_num_threads(), "size": f"{w}x{h}",
                                  "frames": t, "steps": args.steps, "load_s": load_s, "phases": times,
                                  "warmup_phases": cold}), flush=True)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=FIXTURE_MODEL, help="the tiny-tora-t2v fixture folder")
    ap.add_argument("--threads", type=int, default=2)
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("parity")
    t = sub.add_parser("time")
    t.add_argument("--flow", required=True, help="video_flow [T,3,H,W] (`tora-studio flow --out X.safetensors`)")
    t.add_argument("--steps", type=int, default=4)
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--no-warmup", dest="warmup", action="store_false")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__} · diffusers {diffusers.__version__} · transformers {transformers.__version__}"
          f" · {torch.get_num_threads()} threads", flush=True)
    return {"parity": parity, "time": timing}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
