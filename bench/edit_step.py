"""Benchmark (not a test): one denoising step of `live edit` with an SD-v1.4-shaped model.

Random weights, built offline from SD v1.4's configurations (bench/sd_shapes.py): the
inflated video UNet and the CLIP text encoder. A step runs the source and the edit with
classifier-free guidance, four videos of F frames + latent prompt in one UNet batch.

- control on: every map replaced and the blend recorded and applied at every step
  (--cross-replace 1 --self-replace 1 --blend-start 0): the dearest step there is;
- control off: --cross-replace 0 --self-replace 0 --no-blend: plain guided sampling of
  both branches through the same code;
- source branch `sample` (Prompt-to-Prompt: four videos a step) or `inversion` (the edit
  alone, two videos, reading the source's attention that an inversion stored: the store is
  written first by recording passes of the inversion's one video, timed apart, and read
  from disk at each step as `live edit --source-branch inversion` does);
- layers replaced: the paper's, or the compact store's (`COMPACT_LAYERS`: word swap and
  temporal attention below the top resolution, no frame attention), each ratio to the
  sampled source branch with the paper's layers of the same run.

Each setting runs in a fresh process (its own peak memory); one warm-up step, then the
median of the timed steps.

    python bench/edit_step.py                            # 256 and 512 px, 2/4/8 frames
    python bench/edit_step.py --sizes 256 --frames 8 --steps 3
    python bench/edit_step.py --sizes 256 --frames 8 --control on --source-branch both
    python bench/edit_step.py --sizes 256 --frames 8 --control on --layers both   # the issue-41 aim
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from isolated import device_name, peak_memory, run_isolated
from sd_shapes import SD_SCHEDULE, SD_TEXT, SD_UNET

PROMPT = "a jeep car is moving on the road"


def one(size: int, frames: int, steps: int, control_on: bool, from_inversion: bool, compact: bool) -> dict:
    import tempfile
    from pathlib import Path

    import torch
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from livecli import ddim
    from livecli.config import COMPACT_LAYERS, EditConfig
    from livecli.control.source_attention import CachedSource, SourceRecorder, recording
    from livecli.models import text as text_model
    from livecli.models.tiny import build_tiny_pipeline
    from livecli.models.trained import TrainedModel
    from livecli.models.video_unet import inflate
    from livecli.sampling import plan_edit, sample_edit, source_attention_plan

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    tokenizer = build_tiny_pipeline().tokenizer  # any CLIP tokenizer: ids index the random embedding
    text_encoder = CLIPTextModel(CLIPTextConfig(**SD_TEXT)).eval().requires_grad_(False)
    text_model.install_token(tokenizer, text_encoder, "<@#$>", torch.randn(SD_TEXT["hidden_size"]))
    video_unet = inflate(UNet2DConditionModel(**SD_UNET)).to(device=device, dtype=dtype).eval().requires_grad_(False)
    latent = size // 8
    model = TrainedModel(
        video_unet=video_unet,
        tokenizer=tokenizer,
        text_encoder=text_encoder.to(device=device, dtype=dtype),
        scheduler_config=dict(DDPMScheduler(**SD_SCHEDULE).config),
        latent_prompt=torch.randn(1, 4, latent, latent, device=device, dtype=dtype),
        reference=torch.randn(1, 4, latent, latent, device=device, dtype=dtype),
        token="<@#$>",
        device=device,
        dtype=dtype,
    )
    settings = (
        dict(cross_replace=1.0, self_replace=1.0, blend_start=0.0)
        if control_on
        else dict(cross_replace=0.0, self_replace=0.0, no_blend=True)
    )
    branch = "inversion" if from_inversion else "sample"
    layers = COMPACT_LAYERS if compact else {}
    config = EditConfig(replace=("car=<tok>",), steps=steps + 1, source_branch=branch, **settings, **layers)
    schedule = ddim.ddim_schedule(model.scheduler_config, config.steps)
    start = torch.randn(frames, 4, latent, latent, device=device)
    trajectory, record_seconds, stored, cached = None, None, 0, None
    if from_inversion:  # what the inversion stores: one recording pass of its one video per step
        folder = Path(tempfile.mkdtemp())
        plan = source_attention_plan(model, PROMPT, config, (latent, latent))
        recorder = SourceRecorder(plan, folder)
        text, prompt = model.encode([PROMPT]), model.latent_prompt.unsqueeze(0)
        trajectory = [torch.randn(frames, 4, latent, latent, device=device) for _ in range(config.steps + 1)]
        began = time.perf_counter()
        with torch.inference_mode(), recording(model.video_unet, recorder):
            for index, timestep in enumerate(schedule.timesteps):
                recorder.begin_step(index)
                recorder.focus()
                model.noise(trajectory[index].unsqueeze(0), timestep, schedule.alphas[index], text, prompt)
            recorder.flush()
        record_seconds = round((time.perf_counter() - began) / config.steps, 2)
        stored = recorder.bytes
        cached = CachedSource.of(plan, folder.glob("*.safetensors"), device, dtype)
    edit = plan_edit(model, config, PROMPT, frames, (latent, latent), stored=cached)
    marks = [time.perf_counter()]

    def watch(index, latents, mask):
        if device.type == "cuda":
            torch.cuda.synchronize()
        marks.append(time.perf_counter())

    outcome = sample_edit(model, edit, start, trajectory, watch=watch)
    times = [b - a for a, b in zip(marks, marks[1:], strict=False)]
    return {
        "size": size,
        "frames": frames,
        "control": "on" if control_on else "off",
        "source_branch": branch,
        "layers": "compact" if compact else "paper",
        "device": device_name(device),
        "dtype": str(dtype).removeprefix("torch."),
        "seconds_per_step": round(statistics.median(times[1:]), 2),
        **peak_memory(device),
        "stored_attention_bytes": outcome.peak_stored_bytes,
        "inversion_store_bytes_per_step": round(stored / config.steps) if from_inversion else 0,
        "recording_seconds_per_step": record_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--frames", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    parser.add_argument("--control", choices=["on", "off", "both"], default="both")
    parser.add_argument("--source-branch", choices=["sample", "inversion", "both"], default="both")
    parser.add_argument(
        "--layers", choices=["paper", "compact", "both"], default="paper", help="the layers the inversion stores"
    )
    parser.add_argument("--json", default="bench/edit_step.json", help="where to write the results")
    parser.add_argument("--one", nargs=5, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        size, frames, control_on, from_inversion, compact = args.one
        print(json.dumps(one(size, frames, args.steps, bool(control_on), bool(from_inversion), bool(compact))))
        return
    modes = {"on": [1], "off": [0], "both": [0, 1]}[args.control]
    inverted = {"paper": [(1, 0)], "compact": [(1, 1)], "both": [(1, 0), (1, 1)]}[args.layers]
    branches = {"sample": [(0, 0)], "inversion": inverted, "both": [(0, 0), *inverted]}[args.source_branch]
    header = f"{'size':>5} {'frames':>6} {'control':>7} {'source':>17} {'s/step':>8} {'× sample':>8}"
    header += f" {'peak RSS MB':>12}"
    print(f"{header} {'peak GPU MB':>12}", flush=True)
    results = []
    for size in args.sizes:
        for frames in args.frames:
            for control_on in modes:
                sampled = None
                for from_inversion, compact in branches:
                    label, branch = "on" if control_on else "off", "inversion" if from_inversion else "sample"
                    branch += " (compact)" if compact else ""
                    arguments = [str(size), str(frames), str(control_on), str(from_inversion), str(compact)]
                    row = {
                        "size": size,
                        "frames": frames,
                        "control": label,
                        "source_branch": branch,
                        **run_isolated(__file__, ["--one", *arguments, "--steps", str(args.steps)]),
                    }
                    if "error" in row:
                        results.append(row)
                        print(f"{size:>5} {frames:>6} {label:>7} {branch:>17}  {row['error']}", flush=True)
                        continue
                    if from_inversion and sampled:
                        row["ratio_to_sample"] = round(row["seconds_per_step"] / sampled, 3)
                    else:
                        sampled = row["seconds_per_step"]
                    results.append(row)
                    ratio, gpu = row.get("ratio_to_sample", ""), row.get("peak_gpu_mb", "")
                    print(
                        f"{size:>5} {frames:>6} {label:>7} {branch:>17} {row['seconds_per_step']:>8} "
                        f"{ratio:>8} {row['peak_rss_mb']:>12} {gpu:>12}",
                        flush=True,
                    )
    with open(args.json, "w") as handle:
        json.dump({"results": results}, handle, indent=2)
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
