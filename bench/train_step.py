"""Benchmark (not a test): one `live train` step with an SD-v1.4-shaped model.

Random weights, built offline from SD v1.4's configurations (bench/sd_shapes.py): the
inflated video UNet, the CLIP text encoder, both objectives of a step, AdamW on the
trainable set. Each setting runs in a fresh process (so peak memory is its own, and one
that runs out of memory does not end the benchmark): one warm-up step, then the median of
the timed steps. Prints a table and writes JSON.

Three parts, each with its ratio to the floor measured in the same run:

- floor: the plain 2D UNet on the same F frames as a batch of images, the same trainable
  queries (`attn1.to_q`, `attn2.to_q`), MSE on the noise, the same AdamW: what a step
  cannot cost less than;
- video: `live`'s video objective alone (F frames + the latent prompt, frame and temporal
  attention, trainable temporal attentions and latent prompt);
- full: a whole `live` step (video + image objective, LIVE's L = L_unet + λ·L_text).

    python bench/train_step.py                              # 256 and 512 px, 2/4/8 frames
    python bench/train_step.py --sizes 256 --frames 8 --parts floor video full
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

PARTS = ("floor", "video", "full")


def one(size: int, frames: int, steps: int, checkpointing: str, window: int, part: str = "full") -> dict:
    import torch
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from livecli.config import TrainConfig
    from livecli.models import text as text_model
    from livecli.models.tiny import build_tiny_pipeline
    from livecli.models.video_unet import enable_checkpointing, inflate
    from livecli.objectives import LiveTrainer, MixedPrecision, TrainingData

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = "fp16" if device.type == "cuda" else "no"
    torch.manual_seed(0)
    tokenizer = build_tiny_pipeline().tokenizer  # any CLIP tokenizer: ids index the random embedding
    text_encoder = CLIPTextModel(CLIPTextConfig(**SD_TEXT)).eval().requires_grad_(False)
    placeholder = text_model.add_placeholder(tokenizer, text_encoder, "<@#$>", "car")
    unet = UNet2DConditionModel(**SD_UNET).eval().requires_grad_(False)
    latent = size // 8
    if part == "floor":
        return floor(unet, size, frames, steps, checkpointing, device)
    video_unet = inflate(unet)
    if checkpointing != "off":
        enable_checkpointing(video_unet, everywhere=checkpointing == "all")  # "on" and "dominant": the same
    video_unet.to(device)
    text_encoder.to(device)
    data = TrainingData(
        torch.randn(frames, 4, latent, latent),
        torch.randn(1, 4, latent, latent),
        "a jeep car is moving on the road",
        ("a jeep <@#$> is moving on the road",),
    )
    config = TrainConfig(steps=steps, mixed_precision=precision, window=window)
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

    def video_step():
        loss = trainer.video_loss()
        trainer.precision.backward(loss, inputs=trainer.video_params)
        trainer.precision.clip_grad_norm_(trainer.optimizer, trainer.video_params, config.max_grad_norm)
        trainer.precision.step(trainer.optimizer)
        trainer.optimizer.zero_grad(set_to_none=True)

    times = timed(trainer.step if part == "full" else video_step, steps, device)
    return {
        "part": part,
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


def timed(step, steps: int, device) -> list[float]:
    """Seconds of each of `steps` + 1 calls (the first is the warm-up)."""
    import torch

    times = []
    for _ in range(steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return times


def floor(unet, size: int, frames: int, steps: int, checkpointing: str, device) -> dict:
    """The plain 2D UNet on F frames as a batch, `to_q` of attn1/attn2 trainable, AdamW."""
    import torch
    import torch.nn.functional as F

    from livecli.config import TrainConfig

    config = TrainConfig()
    if checkpointing != "off":
        unet.enable_gradient_checkpointing()
    unet.to(device)
    trainable = [p for name, p in unet.named_parameters() if name.endswith(("attn1.to_q.weight", "attn2.to_q.weight"))]
    for param in trainable:
        param.requires_grad_(True)
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    latent = size // 8
    latents = torch.randn(frames, 4, latent, latent, device=device)
    text = torch.randn(1, 77, SD_TEXT["hidden_size"], device=device).expand(frames, -1, -1)
    generator = torch.Generator().manual_seed(0)

    def step():
        noise = torch.randn(latents.shape, generator=generator).to(device)
        timestep = torch.randint(0, 1000, (1,), generator=generator).to(device).expand(frames)
        loss = F.mse_loss(unet(latents + noise, timestep, encoder_hidden_states=text).sample, noise)
        loss.backward(inputs=trainable)
        torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    times = timed(step, steps, device)
    return {
        "part": "floor",
        "size": size,
        "frames": frames,
        "gradient_checkpointing": checkpointing,
        "device": device_name(device),
        "mixed_precision": "no",
        "seconds_per_step": round(statistics.median(times[1:]), 2),
        **peak_memory(device),
        "trainable_parameters": sum(p.numel() for p in trainable),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--frames", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    parser.add_argument(
        "--gradient-checkpointing",
        nargs="?",
        const="all",
        default="off",
        choices=["off", "on", "dominant", "all"],
        help="checkpoint no block, the blocks at the latents' resolution, or all (the bare flag)",
    )
    parser.add_argument(
        "--window", type=int, default=TRAIN_WINDOW, help="frames a step draws from the clip (train --window)"
    )
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=["full"], help="what a step runs (above)")
    parser.add_argument("--rounds", type=int, default=1, help="run the parts this many times, alternated")
    parser.add_argument("--json", default="bench/train_step.json", help="where to write the results")
    parser.add_argument("--one", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--part", choices=PARTS, default="full", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(*args.one, args.steps, args.gradient_checkpointing, args.window, args.part)))
        return
    print(f"{'size':>5} {'frames':>6} {'part':>6} {'s/step':>8} {'× floor':>8} {'peak RSS MB':>12} {'peak GPU MB':>12}")
    results = []
    for size in args.sizes:
        for frames in args.frames:
            for round_ in range(args.rounds):
                floor_seconds = None
                for part in args.parts:
                    arguments = ["--one", str(size), str(frames), "--steps", str(args.steps)]
                    arguments += ["--window", str(args.window), "--part", part]
                    arguments += ["--gradient-checkpointing", args.gradient_checkpointing]
                    row = {"size": size, "frames": frames, "part": part, "round": round_}
                    row.update(run_isolated(__file__, arguments))
                    results.append(row)
                    if "error" in row:
                        print(f"{size:>5} {frames:>6} {part:>6}  {row['error']}", flush=True)
                        continue
                    if part == "floor":
                        floor_seconds = row["seconds_per_step"]
                    elif floor_seconds:
                        row["ratio_to_floor"] = round(row["seconds_per_step"] / floor_seconds, 3)
                    print(
                        f"{size:>5} {frames:>6} {part:>6} {row['seconds_per_step']:>8} "
                        f"{row.get('ratio_to_floor', ''):>8} {row['peak_rss_mb']:>12} {row.get('peak_gpu_mb', ''):>12}",
                        flush=True,
                    )
    with open(args.json, "w") as handle:
        json.dump({"gradient_checkpointing": args.gradient_checkpointing, "results": results}, handle, indent=2)
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
