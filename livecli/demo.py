"""`live demo`: a drawn clip and reference image, edited with the shipped `shapes` model.

The clip is one of the benchmark's (livecli/shapes/scenes.py): a shape gliding over a
patterned background, written as PNG frames; the reference image shows another shape,
of a colour and shape the model never saw together, on another background. The pipeline
then runs every stage on `--model shapes` at 64 px, so a CPU runs a real model
in a few minutes, and the true edit is written beside it to compare with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from livecli.config import EvalConfig, ModelConfig, PrepareConfig
from livecli.pipeline import Job, JobOutcome, run_job
from livecli.shapes import benchmark
from livecli.shapes.scenes import ClipPair, clip_pair
from livecli.stages import StageResult
from livecli.video import write_pngs

DEMO_SEED = 3
"""A purple cross on a dotted red background, to become the reference's green star."""
FRAMES = benchmark.FRAMES
TRAIN_STEPS = benchmark.Settings.train_steps


def demo_pair() -> ClipPair:
    return clip_pair(DEMO_SEED, frames=FRAMES)


def make_samples(folder: Path) -> tuple[Path, Path]:
    """clip/ (frames), reference.png and truth/ (the true edit) in `folder`, kept when they
    exist, so that reruns redo nothing."""
    folder.mkdir(parents=True, exist_ok=True)
    clip, image, truth = folder / "clip", folder / "reference.png", folder / "truth"
    pair = None
    for target, frames in ((clip, "source"), (truth, "truth")):
        if not target.is_dir():
            pair = pair or demo_pair()
            partial = target.with_name(target.name + ".partial")
            write_pngs(getattr(pair, frames), partial)
            partial.replace(target)
    if not image.is_file():
        (pair or demo_pair()).reference.save(image)
    return clip, image


def demo_job(folder: Path, clip: Path, image: Path, model: str = "shapes", train_steps: int = TRAIN_STEPS) -> Job:
    """Every stage at 64 px, 8 frames, with the edit benchmark's settings: a few minutes on a laptop CPU."""
    pair = demo_pair()
    settings = replace(benchmark.Settings(), train_steps=train_steps, model=model)
    return Job(
        name="demo",
        clip=clip,
        image=image,
        project=folder / "demo.live",
        model=ModelConfig(model=model, device="cpu"),
        prepare=PrepareConfig(prompt=pair.source_prompt, object=pair.source_object[0], frames=FRAMES, size=benchmark.SIZE),
        train=benchmark.train_config(pair, settings, checkpoint_every=100),
        edit=benchmark.edit_config(pair, settings),
        eval=EvalConfig(clip_model="tiny"),
    )


def run(
    folder: Path, on_stage: Callable[[StageResult], None] = lambda result: None, model: str = "shapes", train_steps: int = TRAIN_STEPS
) -> JobOutcome:
    clip, image = make_samples(folder)
    return run_job(demo_job(folder, clip, image, model, train_steps), on_stage, replace_other=True)
