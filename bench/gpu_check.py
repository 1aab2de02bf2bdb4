"""Benchmark (not a test): how long a clip takes from nothing to its first edit on a GPU.

With Stable Diffusion v1.4's shapes and random weights (bench/sd_shapes.py: nothing is
downloaded; a step costs what it costs with the real weights), saved as a diffusers folder
and loaded by `live`'s own loading code, it runs the real stages on drawn clips:
prepare → train (--train-steps) → invert → edit, at --size for each of --frames (8: one
window; 96: in windows of 8), with what `auto` picks for the device (precision, mixed
precision, gradient checkpointing, the source branch). It prints and writes JSON:

- seconds per stage (from each stage's record), per train step (the median of
  losses.csv's), per inversion step and per edit step (the DDIM loops alone, without
  loading, decoding or writing);
- peak GPU memory per stage (the edit's call runs its inversion: `invert+edit`);
- the source attention stored for the edit (bytes on disk), and where it was read from;
- the projected time from the clip to its first edit at 500 training steps and --steps
  DDIM steps (the long clips may run fewer steps, --long-steps, and are projected to --steps).

It stops cleanly within --budget-s (the stage running is stopped as Ctrl-C stops it: a
training keeps its checkpoint, nothing is half-written) and writes what it has, with
`"stopped"` saying where. On the CPU, `--tiny` runs the same at a tiny size in seconds
(tests/test_gpu_check.py keeps it working).

    python bench/gpu_check.py --budget-s 540                      # CUDA: 8 and 96 frames at 512 px
    python bench/gpu_check.py --frames 8 --train-steps 20 --budget-s 240
    python bench/gpu_check.py --device cpu --tiny --json /tmp/gpu_check.json
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

import torch  # noqa: E402  (after the path: run as a script from anywhere)
from PIL import Image, ImageDraw  # noqa: E402

from bench.isolated import device_name  # noqa: E402
from livecli import progress  # noqa: E402
from livecli.config import EditConfig, ModelConfig, PrepareConfig, TrainConfig  # noqa: E402
from livecli.stages import TRAIN  # noqa: E402
from livecli.stages import edit as edit_stage  # noqa: E402
from livecli.stages import prepare as prepare_stage  # noqa: E402
from livecli.stages import train as train_stage  # noqa: E402
from livecli.store import Project  # noqa: E402
from livecli.video import write_mp4  # noqa: E402

PROMPT, OBJECT = "a red ball rolling on the grass", "ball"
PROJECTED_TRAIN_STEPS = 500
"""The paper's training, which the projection counts."""


class BudgetSpent(KeyboardInterrupt):
    """--budget-s is spent: raised in the main thread, and handled by the stages as Ctrl-C."""


def sd_model_folder(folder: Path, dtype: torch.dtype) -> Path:
    """SD v1.4's UNet, VAE and text encoder with random weights, a CLIP tokenizer (the tiny
    model's: its ids index the random embedding) and SD's scheduler, as a diffusers folder."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from bench.sd_shapes import SD_TEXT, SD_UNET, SD_VAE
    from livecli.models.tiny import build_tiny_pipeline, sd_pipeline

    torch.manual_seed(0)
    text_encoder = CLIPTextModel(CLIPTextConfig(**SD_TEXT))
    tokenizer = build_tiny_pipeline().tokenizer
    pipeline = sd_pipeline(AutoencoderKL(**SD_VAE), text_encoder, tokenizer, UNet2DConditionModel(**SD_UNET))
    pipeline.to(dtype=dtype).save_pretrained(folder)
    return folder


def drawn_clip(folder: Path, frames: int, size: int) -> tuple[Path, Path]:
    """A ball rolling across grass (MP4) and a reference picture of a star (PNG)."""
    pictures = []
    for index in range(frames):
        picture = Image.new("RGB", (size, size), (60, 140, 60))
        draw = ImageDraw.Draw(picture)
        x = size * (0.2 + 0.6 * index / max(frames - 1, 1))
        radius = size * 0.12
        draw.ellipse((x - radius, size * 0.5 - radius, x + radius, size * 0.5 + radius), fill=(200, 30, 30))
        pictures.append(picture)
    clip, reference = folder / f"clip{frames}.mp4", folder / "star.png"
    write_mp4(pictures, clip, 8.0)
    star = Image.new("RGB", (size, size), (240, 240, 240))
    middle, outer, inner = size / 2, size * 0.4, size * 0.16
    points = []
    for k in range(10):
        angle, radius = math.pi * k / 5 - math.pi / 2, outer if k % 2 == 0 else inner
        points.append((middle + radius * math.cos(angle), middle + radius * math.sin(angle)))
    ImageDraw.Draw(star).polygon(points, fill=(230, 200, 20))
    star.save(reference)
    return clip, reference


@contextmanager
def budget(seconds: float) -> Iterator[None]:
    """Within the block, BudgetSpent is raised in the main thread once `seconds` have passed."""

    def spent(_signal, _frame):
        raise BudgetSpent

    previous = signal.signal(signal.SIGALRM, spent)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def timed_loops(seconds: dict[str, tuple[float, int]]) -> Iterator[None]:
    """Within the block, the DDIM loops' wall time and steps, by stage ('invert', 'edit'):
    the stages' window bars wrap exactly their loops."""
    original = progress.window_bar

    @contextmanager
    def timed(description: str, frames: int, passes: int, windows: int):
        began = time.perf_counter()
        with original(description, frames, passes, windows) as advance:
            yield advance
        synchronise()
        seconds[description.split(" ")[0]] = (time.perf_counter() - began, passes)

    progress.window_bar = timed
    try:
        yield
    finally:
        progress.window_bar = original


def on_gpu() -> bool:
    """Whether the run has used the GPU (not so for `--device cpu` on a machine that has one)."""
    return torch.cuda.is_available() and torch.cuda.is_initialized()


def synchronise() -> None:
    if on_gpu():
        torch.cuda.synchronize()


def peak_mb() -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**20) if on_gpu() else None


def reset_peak() -> None:
    if on_gpu():
        torch.cuda.reset_peak_memory_stats()


def one_clip(run: dict, work: Path, model: ModelConfig, frames: int, args) -> None:
    """Prepare, train and edit one drawn clip of `frames` frames, filling `run` as each stage ends."""
    clip, reference = drawn_clip(work, frames, args.size)
    project = Project(work / f"clip{frames}.live")
    steps = args.steps if frames <= 8 else args.long_steps
    run.update(frames=frames, size=args.size, ddim_steps=steps, train_steps=args.train_steps, stages={})
    stages = run["stages"]

    reset_peak()
    prepared = prepare_stage.run(
        project, PrepareConfig(prompt=PROMPT, object=OBJECT, frames="all", size=args.size), clip, reference, model
    )
    stages["prepare"] = {"seconds": prepared.record.seconds, "peak_gpu_mb": peak_mb()}

    reset_peak()
    trained = train_stage.run(project, TrainConfig(steps=args.train_steps), model)
    facts = trained.record.facts
    with open(project.stage_dir(TRAIN) / "losses.csv") as handle:
        step_seconds = [float(row["seconds"]) for row in csv.DictReader(handle)]
    stages["train"] = {
        "seconds": trained.record.seconds,
        "seconds_per_step": round(statistics.median(step_seconds), 4),
        "peak_gpu_mb": peak_mb(),
        "mixed_precision": trained.record.settings.get("mixed_precision"),
        "gradient_checkpointing": facts.get("gradient_checkpointing"),
    }

    loops: dict[str, tuple[float, int]] = {}
    reset_peak()
    with timed_loops(loops):
        editing = EditConfig(replace=(f"{OBJECT}=<tok>",), steps=steps, source_branch=args.source_branch)
        edited = edit_stage.run(project, editing, model, replace_other=True)
    inversion, edit = edited.inversion.record, edited.edit.record
    stages["invert"] = {"seconds": inversion.seconds, "seconds_per_step": per_step(loops.get("inverting"))}
    stages["edit"] = {
        "seconds": edit.seconds,
        "seconds_per_step": per_step(loops.get("editing")),
        "source_branch": edit.settings.get("source_branch", "sample"),
    }
    stages["invert+edit"] = {"peak_gpu_mb": peak_mb()}
    stored = inversion.facts.get("attention") or {}
    run["store_bytes"] = stored.get("bytes", 0)
    run["projected_first_edit_seconds"] = projected(stages, steps, args)


def per_step(loop: tuple[float, int] | None) -> float | None:
    return None if loop is None else round(loop[0] / loop[1], 4)


def projected(stages: dict, steps: int, args) -> float:
    """Clip → first edit at 500 training steps and --steps DDIM steps: the stages' own costs
    (loading, encoding, decoding, writing) as measured, the loops scaled to those steps."""
    train = stages["train"]
    fixed_train = train["seconds"] - args.train_steps * train["seconds_per_step"]
    total = stages["prepare"]["seconds"] + fixed_train + PROJECTED_TRAIN_STEPS * train["seconds_per_step"]
    for name in ("invert", "edit"):
        stage = stages[name]
        loop = (stage["seconds_per_step"] or 0) * steps
        total += stage["seconds"] - loop + (stage["seconds_per_step"] or 0) * args.steps
    return round(total, 1)


def environment(device: str) -> dict:
    import diffusers

    cuda = device == "cuda"
    return {
        "device": device_name(torch.device(device)),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "python": platform.python_version(),
        "bf16": bool(cuda and torch.cuda.is_bf16_supported()),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="the tiny model at 64 px (the CPU's check of this script)")
    parser.add_argument("--size", type=int, help="frames' side in px (default 512; --tiny: 64)")
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 96], help="one run per clip length")
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps of the 8-frame clip, and of the projection")
    parser.add_argument("--long-steps", type=int, default=10, help="DDIM steps of the clips longer than 8 frames")
    parser.add_argument("--source-branch", choices=["sample", "inversion", "auto"], default="sample")
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet's blocks (`live --compile`)")
    parser.add_argument("--budget-s", type=float, default=540.0, help="stop cleanly within this many seconds")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "gpu_check.json")
    parser.add_argument("--work", type=Path, help="where the model and projects go (default: a temporary folder)")
    args = parser.parse_args(argv)
    args.size = args.size or (64 if args.tiny else 512)
    began = time.perf_counter()
    report = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "runs": []}
    report["environment"] = environment(args.device)
    report["stopped"] = None
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu_check-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        with budget(args.budget_s):
            if args.tiny:
                model = ModelConfig(model="tiny", device=args.device, compile=args.compile)
            else:
                dtype = torch.float16 if args.device == "cuda" else torch.float32
                folder = sd_model_folder(work / "sd-v1-4-random", dtype)
                model = ModelConfig(model=str(folder), device=args.device, compile=args.compile)
            report["model_seconds"] = round(time.perf_counter() - began, 1)
            for frames in args.frames:
                run: dict = {}
                report["runs"].append(run)
                one_clip(run, work, model, frames, args)
    except BudgetSpent:
        report["stopped"] = f"--budget-s {args.budget_s:g} spent, during the run of {len(report['runs'])} clip(s)"
    report["seconds"] = round(time.perf_counter() - began, 1)
    for line in summary(report):
        say(line)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    say(f"written to {args.json}")
    return report


def summary(report: dict) -> list[str]:
    """The report in a few lines: each clip's stages, seconds (per step), peak GPU memory."""
    lines = [f"{report['environment']['device']}, torch {report['environment']['torch']}"]
    for run in report["runs"]:
        parts = []
        for name, stage in run.get("stages", {}).items():
            if "seconds" not in stage:
                continue
            step = f" ({stage['seconds_per_step']:g} s a step)" if stage.get("seconds_per_step") else ""
            peak = f", peak {stage['peak_gpu_mb']} MB" if stage.get("peak_gpu_mb") is not None else ""
            parts.append(f"{name} {stage['seconds']:.1f} s{step}{peak}")
        edit_peak = run.get("stages", {}).get("invert+edit", {}).get("peak_gpu_mb")
        parts += [f"invert+edit peak {edit_peak} MB"] if edit_peak is not None else []
        if "projected_first_edit_seconds" in run:
            parts.append(f"store {run['store_bytes'] / 2**20:.0f} MB")
            parts.append(f"clip → first edit at 500 steps ≈ {run['projected_first_edit_seconds'] / 60:.1f} min")
        lines.append(f"{run.get('frames', '?')} frames at {run.get('size', '?')} px: " + "; ".join(parts))
    if report["stopped"]:
        lines.append(f"stopped: {report['stopped']}")
    return lines


def say(message: str) -> None:
    print(message, flush=True)


if __name__ == "__main__":
    main()
