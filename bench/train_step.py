"""Benchmark (not a test): one `live train` step with an SD-v1.4-shaped model.

Random weights, built offline from SD v1.4's configurations (bench/sd_shapes.py): the
inflated video UNet, the CLIP text encoder, both objectives of a step, AdamW on the
trainable set. Each setting runs in a fresh process (so peak memory is its own, and one
that runs out of memory does not end the benchmark): one warm-up step, then the median of
the timed steps. Prints a table and writes JSON.

    python bench/train_step.py                              # 256 and 512 px, 2/4/8 frames
    python bench/train_step.py --sizes 256 --frames 8 --gradient-checkpointing
    python bench/train_step.py --json bench/train_step.json
    python bench/train_step.py --sizes 256 --frames 24 96 --window 8    # long clips: a step's cost is the window's
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from isolated import device_name, peak_memory, run_isolated
from sd_shapes import SD_SCHEDULE, SD_TEXT, SD_UNET

from livecli.config import DEFAULT_WINDOW as TRAIN_WINDOW


def one(size: int, frames: int, steps: int, checkpointing: bool, window: int) -> dict:
    import torch
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from livecli.config import TrainConfig
    from livecli.models import text as text_model
    from livecli.models.tiny import build_tiny_pipeline
    from livecli.models.video_unet import inflate
    from livecli.objectives import LiveTrainer, MixedPrecision, TrainingData

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = "fp16" if device.type == "cuda" else "no"
    torch.manual_seed(0)
    tokenizer = build_tiny_pipeline().tokenizer  # any CLIP tokenizer: ids index the random embedding
    text_encoder = CLIPTextModel(CLIPTextConfig(**SD_TEXT)).eval().requires_grad_(False)
    placeholder = text_model.add_placeholder(tokenizer, text_encoder, "<@#$>", "car")
    unet = UNet2DConditionModel(**SD_UNET).eval().requires_grad_(False)
    video_unet = inflate(unet)
    if checkpointing:
        unet.enable_gradient_checkpointing()
    video_unet.to(device)
    text_encoder.to(device)
    latent = size // 8
    data = TrainingData(
        torch.randn(frames, 4, latent, latent),
        torch.randn(1, 4, latent, latent),
        "a jeep car is moving on the road",
        "a jeep <@#$> is moving on the road",
    )
    config = TrainConfig(steps=steps, mixed_precision=precision, gradient_checkpointing=checkpointing, window=window)
    trainer = LiveTrainer(
        video_unet,
        tokenizer,
        text_encoder,
        DDPMScheduler(**SD_SCHEDULE),
        placeholder,
        data,
        config,
        MixedPrecision(precision, device),
    )
    times = []
    for _ in range(steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        trainer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return {
        "size": size,
        "frames": frames,
        "window": window,
        "gradient_checkpointing": checkpointing,
        "device": device_name(device),
        "mixed_precision": precision,
        "seconds_per_step": round(statistics.median(times[1:]), 2),
        **peak_memory(device),
        "trainable_parameters": sum(p.numel() for p in trainer.video_params) + trainer.token_vector.numel(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--frames", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument(
        "--window", type=int, default=TRAIN_WINDOW, help="frames a step draws from the clip (train --window)"
    )
    parser.add_argument("--json", default="bench/train_step.json", help="where to write the results")
    parser.add_argument("--one", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(*args.one, args.steps, args.gradient_checkpointing, args.window)))
        return
    print(f"{'size':>5} {'frames':>6} {'s/step':>8} {'peak RSS MB':>12} {'peak GPU MB':>12}", flush=True)
    results = []
    for size in args.sizes:
        for frames in args.frames:
            arguments = ["--one", str(size), str(frames), "--steps", str(args.steps), "--window", str(args.window)]
            if args.gradient_checkpointing:
                arguments.append("--gradient-checkpointing")
            row = {"size": size, "frames": frames, **run_isolated(__file__, arguments)}
            results.append(row)
            if "error" in row:
                print(f"{size:>5} {frames:>6}  {row['error']}", flush=True)
            else:
                print(
                    f"{size:>5} {frames:>6} {row['seconds_per_step']:>8} {row['peak_rss_mb']:>12} "
                    f"{row.get('peak_gpu_mb', ''):>12}",
                    flush=True,
                )
    with open(args.json, "w") as handle:
        json.dump({"gradient_checkpointing": args.gradient_checkpointing, "results": results}, handle, indent=2)
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
