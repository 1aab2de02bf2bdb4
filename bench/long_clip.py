"""Benchmark (not a test): invert and edit of long clips in windows, memory and time per frame.

For each model and clip length, in a fresh process (its own peak memory): DDIM steps
(--steps, default 1) of inversion (one video, no guidance) and of an edit (source and edit with
guidance and full attention control: four videos a window), over F frames in windows of
8 overlapping by 2, after one warm-up window. Reports seconds per frame of each and the
process's peak RSS; the claim is that both stay flat as F grows (a window's memory, a
window's time per frame).

- `shapes`: the shipped model, inflated (its own size, 64 px);
- `sd256`: the SD-v1.4-shaped UNet and text encoder with random weights (bench/sd_shapes.py),
  256 px frames.

    python bench/long_clip.py                              # both models, 16/48/96 frames
    python bench/long_clip.py --models shapes --steps 10    # a small model: time several steps
"""

from __future__ import annotations

import argparse
import json
import time

from isolated import device_name, peak_memory, run_isolated

PROMPT = "a jeep car is moving on the road"
WINDOW, OVERLAP = 8, 2


def build(model_name: str, device, dtype):
    """A TrainedModel-shaped model: inflated UNet, text encoder, random latent prompt."""
    import torch
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from sd_shapes import SD_SCHEDULE, SD_TEXT, SD_UNET
    from transformers import CLIPTextConfig, CLIPTextModel

    from livecli.models import text as text_model
    from livecli.models.loading import load_denoiser, native_size, resolve_model
    from livecli.models.tiny import build_tiny_pipeline
    from livecli.models.trained import TrainedModel
    from livecli.models.video_unet import inflate

    torch.manual_seed(0)
    if model_name == "shapes":
        source = resolve_model("shapes")
        parts = load_denoiser(source, device, torch.float32)
        tokenizer, text_encoder, unet = parts.tokenizer, parts.text_encoder, parts.unet
        scheduler = dict(parts.noise_scheduler.config)
        latent = native_size(source) // 4
    else:
        tokenizer = build_tiny_pipeline().tokenizer  # any CLIP tokenizer: ids index the random embedding
        text_encoder = CLIPTextModel(CLIPTextConfig(**SD_TEXT)).eval()
        unet = UNet2DConditionModel(**SD_UNET)
        scheduler = dict(DDPMScheduler(**SD_SCHEDULE).config)
        latent = 256 // 8
    text_encoder.requires_grad_(False)
    text_model.install_token(tokenizer, text_encoder, "<@#$>", torch.randn(text_encoder.config.hidden_size))
    video_unet = inflate(unet).to(device=device, dtype=dtype).eval().requires_grad_(False)
    model = TrainedModel(
        video_unet=video_unet,
        tokenizer=tokenizer,
        text_encoder=text_encoder.to(device=device, dtype=dtype),
        scheduler_config=scheduler,
        latent_prompt=torch.randn(1, 4, latent, latent, device=device, dtype=dtype),
        reference=torch.randn(1, 4, latent, latent, device=device, dtype=dtype),
        token="<@#$>",
        device=device,
        dtype=dtype,
    )
    return model, latent


def one(model_name: str, frames: int, steps: int) -> dict:
    import torch

    from livecli.config import EditConfig
    from livecli.sampling import plan_edit, sample_edit
    from livecli.stages.invert import invert_latents
    from livecli.windows import plan_windows

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    model, latent = build(model_name, device, dtype)
    windows = plan_windows(frames, WINDOW, OVERLAP)
    clip = torch.randn(frames, 4, latent, latent)

    def synchronize():
        if device.type == "cuda":
            torch.cuda.synchronize()

    invert_latents(model, clip[:WINDOW], PROMPT, 1)  # warm-up: one window
    synchronize()
    started = time.perf_counter()
    start = invert_latents(model, clip, PROMPT, steps, windows=windows)[0]
    synchronize()
    invert_seconds = time.perf_counter() - started

    config = EditConfig(replace=("car=<tok>",), steps=steps, cross_replace=1.0, self_replace=1.0, blend_start=0.0)
    plan = plan_edit(model, config, PROMPT, frames, (latent, latent), windows)
    started = time.perf_counter()
    sample_edit(model, plan, start)
    synchronize()
    edit_seconds = time.perf_counter() - started
    return {
        "model": model_name,
        "frames": frames,
        "windows": len(windows),
        "device": device_name(device),
        "dtype": str(dtype).removeprefix("torch."),
        "steps": steps,
        "invert_seconds_per_frame": round(invert_seconds / frames / steps, 4),
        "edit_seconds_per_frame": round(edit_seconds / frames / steps, 4),
        **peak_memory(device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=["shapes", "sd256"], default=["shapes", "sd256"])
    parser.add_argument("--frames", type=int, nargs="+", default=[16, 48, 96])
    parser.add_argument("--json", default="bench/long_clip.json", help="where to write the results")
    parser.add_argument("--steps", type=int, default=1, help="DDIM steps timed (per step, per frame)")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.steps)))
        return
    columns = ("model", 7), ("frames", 6), ("windows", 7), ("invert s/frame", 15), ("edit s/frame", 13)
    print(" ".join(f"{name:>{width}}" for name, width in columns), f"{'peak RSS MB':>12}", flush=True)
    results = []
    for model_name in args.models:
        rows = []
        for frames in args.frames:
            arguments = ["--one", model_name, str(frames), "--steps", str(args.steps)]
            row = {"model": model_name, "frames": frames, **run_isolated(__file__, arguments)}
            rows.append(row)
            if "error" in row:
                print(f"{model_name:>7} {frames:>6}  {row['error']}", flush=True)
                continue
            print(
                f"{model_name:>7} {frames:>6} {row['windows']:>7} {row['invert_seconds_per_frame']:>15} "
                f"{row['edit_seconds_per_frame']:>13} {row['peak_rss_mb']:>12}",
                flush=True,
            )
        good = [r for r in rows if "error" not in r]
        if len(good) > 1:
            first, last = good[0], good[-1]
            memory = last["peak_rss_mb"] / first["peak_rss_mb"]
            spreads = {
                stage: max(r[f"{stage}_seconds_per_frame"] for r in good)
                / min(r[f"{stage}_seconds_per_frame"] for r in good)
                for stage in ("invert", "edit")
            }
            print(
                f"{model_name}: peak RSS at {last['frames']} frames = {memory:.2f}× that at {first['frames']}; "
                f"seconds per frame max/min: invert {spreads['invert']:.2f}, edit {spreads['edit']:.2f}",
                flush=True,
            )
        results += rows
    with open(args.json, "w") as handle:
        json.dump({"window": WINDOW, "overlap": OVERLAP, "results": results}, handle, indent=2)
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
