"""`live demo`: a sample clip and reference image made here, run through the pipeline on `tiny`.

The clip is a red disc gliding over a striped, gradient background; the reference image is
a blue square on a plain one. Both are drawn with Pillow and the clip encoded with PyAV,
so the demo needs no file and no network. The pipeline then runs on the tiny model and the
tiny CLIP, both random: the demo shows every stage working, not a real edit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

from livecli.config import EditConfig, EvalConfig, ModelConfig, PrepareConfig, TrainConfig
from livecli.pipeline import Job, JobOutcome, run_job
from livecli.stages import StageResult
from livecli.video import write_mp4

SIDE = 128
CLIP_FRAMES = 16
CLIP_FPS = 8.0
PROMPT = "a red ball is rolling on the stripes"
OBJECT = "ball"
TRAIN_STEPS = 30
EDIT_STEPS = 20
REPLACE = "ball=<tok>"


def background(step: int = 0) -> Image.Image:
    """Diagonal stripes over a vertical gradient: texture that shows motion and framing."""
    image = Image.new("RGB", (SIDE, SIDE))
    draw = ImageDraw.Draw(image)
    for y in range(SIDE):
        shade = 90 + y
        draw.line([(0, y), (SIDE, y)], fill=(shade // 2, shade, 60))
    for offset in range(-SIDE, SIDE, 16):
        draw.line([(offset, SIDE), (offset + SIDE, 0)], fill=(230, 220, 140), width=3)
    return image


def sample_frames() -> list[Image.Image]:
    frames = []
    for step in range(CLIP_FRAMES):
        frame = background()
        angle = 2 * math.pi * step / CLIP_FRAMES
        x = SIDE / 2 + 36 * math.cos(angle)
        y = SIDE / 2 + 24 * math.sin(angle)
        r = 18
        ImageDraw.Draw(frame).ellipse([x - r, y - r, x + r, y + r], fill=(210, 30, 30), outline=(90, 0, 0), width=2)
        frames.append(frame)
    return frames


def reference_image() -> Image.Image:
    image = Image.new("RGB", (SIDE, SIDE), (235, 235, 225))
    ImageDraw.Draw(image).rectangle([34, 34, 94, 94], fill=(30, 60, 200), outline=(10, 20, 90), width=3)
    return image


def make_samples(folder: Path) -> tuple[Path, Path]:
    """demo.mp4 and reference.png in `folder` (kept when they exist, so reruns redo nothing)."""
    folder.mkdir(parents=True, exist_ok=True)
    clip, image = folder / "demo.mp4", folder / "reference.png"
    if not clip.is_file():
        partial = clip.with_suffix(".partial.mp4")
        write_mp4(sample_frames(), partial, CLIP_FPS)
        partial.replace(clip)
    if not image.is_file():
        reference_image().save(image)
    return clip, image


def demo_job(folder: Path, clip: Path, image: Path) -> Job:
    """Every stage on `tiny`, few steps, 64 px: a couple of minutes on a laptop CPU at most."""
    return Job(
        name="demo",
        clip=clip,
        image=image,
        project=folder / "demo.live",
        model=ModelConfig(model="tiny", device="cpu"),
        prepare=PrepareConfig(prompt=PROMPT, object=OBJECT, frames=8, size=64, stride=2),
        train=TrainConfig(steps=TRAIN_STEPS, checkpoint_every=10),
        edit=EditConfig(replace=(REPLACE,), steps=EDIT_STEPS),
        eval=EvalConfig(clip_model="tiny"),
    )


def run(folder: Path, on_stage: Callable[[StageResult], None] = lambda result: None) -> JobOutcome:
    clip, image = make_samples(folder)
    return run_job(demo_job(folder, clip, image), on_stage)
