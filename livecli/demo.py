"""`live demo`: a drawn clip and reference image, edited with the shipped `shapes` model.

The clip is one of the benchmark's (livecli/shapes/scenes.py): a shape gliding over a
patterned background, written as PNG frames; the reference image shows another shape,
of a colour and shape the model never saw together, on another background. The pipeline
then runs every stage on `--model shapes` at 64 px, so a CPU runs a real model
in a few minutes, and the true edit is written beside it to compare with.

The settings below are the ones measured best on drawn clips (docs/shapes.md); the edit
benchmark (bench/edit_quality.py) scores them as its `live` variant.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from livecli.config import BUILT_IN_MODELS, EditConfig, EvalConfig, ModelConfig, PrepareConfig, TrainConfig
from livecli.errors import ConfigError
from livecli.words import TOKEN_ALIAS

# The CLI reads this module's settings for `live demo --help`; what runs the demo (the
# pipeline and torch, the scenes and PyAV) is imported when it runs.
if TYPE_CHECKING:
    from livecli.pipeline import Job, JobOutcome
    from livecli.shapes.scenes import ClipPair
    from livecli.stages import StageResult

DEMO_SEED = 3
"""A purple cross on a dotted red background, to become the reference's green star."""
FRAMES = 8
SIZE = 64
TRAIN_STEPS = 300
TRAIN_LR = 1e-4
"""The paper's 3e-5 leaves the small model's queries almost where they start in 300 steps."""
LP_LR = 1e-1
"""The latent prompt's own rate: best of 1e-4 (= --lr), 1e-2 and 1e-1 on the benchmark's tuning cases
(docs/shapes.md); at --lr it stays the first frame."""
GUIDANCE = 5.0
"""Measured best of 3, 5 and 7.5 on the benchmark's tuning cases; the paper's 12.5 burns drawn colours."""
LATENT_PROMPT = "reference"
BLEND_BACKGROUND = "clip"


def check_model(model: str) -> None:
    if model not in BUILT_IN_MODELS:
        raise ConfigError(
            f"--model {model!r}: the demo runs on {' or '.join(BUILT_IN_MODELS)}", hint="use live run for other models"
        )


def demo_pair() -> ClipPair:
    from livecli.shapes.scenes import clip_pair

    return clip_pair(DEMO_SEED, frames=FRAMES)


def make_samples(folder: Path) -> tuple[Path, Path]:
    """clip/ (frames), reference.png and truth/ (the true edit) in `folder`, kept when they
    exist, so that reruns redo nothing."""
    folder.mkdir(parents=True, exist_ok=True)
    clip, image, truth = folder / "clip", folder / "reference.png", folder / "truth"
    if not (clip.is_dir() and truth.is_dir() and image.is_file()):
        pair = demo_pair()
        pngs_once(clip, pair.source)
        pngs_once(truth, pair.truth)
        if not image.is_file():
            pair.reference.save(image)
    write_steering(folder)
    return clip, image


MASK, REFERENCES, REFERENCE_MASKS = "mask.png", "references", "reference_masks"
"""What the demo writes beside its clip for steering the swap: the object's mask in the
first frame (as a user would paint it), three more views of the new object (other sizes
and places, on the reference's background, which the reference prompt names), and the
object's mask in each of the four references."""
EXTRA_VIEWS = 3


def write_steering(folder: Path) -> None:
    """mask.png (the first frame's true object mask), references/ (the reference image, then
    EXTRA_VIEWS more views of its object) and reference_masks/ (each one's object mask),
    kept when they exist."""
    from livecli.shapes.scenes import reference_mask, reference_views

    mask, views, view_masks = folder / MASK, folder / REFERENCES, folder / REFERENCE_MASKS
    if mask.is_file() and views.is_dir() and view_masks.is_dir():
        return
    pair = demo_pair()
    if not mask.is_file():
        partial = mask.with_name("mask.partial.png")
        pair.source_masks[0].save(partial)
        partial.replace(mask)
    drawn = reference_views(pair, EXTRA_VIEWS, same_background=True)  # the background its caption names
    pngs_once(views, [pair.reference, *(view.image for view in drawn)])
    pngs_once(view_masks, [reference_mask(pair), *(view.mask for view in drawn)])


def pngs_once(target: Path, pictures: list) -> None:
    """`pictures` as target/0000.png …, written beside it and renamed whole, unless `target`
    exists (so that reruns redo nothing and a killed one leaves no half folder)."""
    from livecli.video import write_pngs

    if target.is_dir():
        return
    partial = target.with_name(target.name + ".partial")
    write_pngs(pictures, partial)
    partial.replace(target)


def train_config(pair: ClipPair, **changes: Any) -> TrainConfig:
    """The training of a drawn clip: the reference's caption, and its object's shape word to
    start the token from (what a user knows of an image). With `preset`, the preset's alone."""
    settings = {
        "steps": TRAIN_STEPS,
        "lr": TRAIN_LR,
        "lp_lr": LP_LR,
        "reference_prompt": pair.reference_prompt(TOKEN_ALIAS),
        "init_word": pair.target_object[0],
    }
    return TrainConfig(**{**({} if changes.get("preset") else settings), **changes})


def edit_config(pair: ClipPair, **changes: Any) -> EditConfig:
    """The edit of a drawn clip: its object word becomes the learnt token."""
    settings = {"guidance": GUIDANCE, "latent_prompt": LATENT_PROMPT, "blend_background": BLEND_BACKGROUND}
    if changes.get("preset"):
        settings = {}
    return EditConfig(replace=(f"{pair.source_object[0]}={TOKEN_ALIAS}",), **{**settings, **changes})


def check_settings(
    train_steps: int | str | None = None, preset: str | None = None, edit_steps: int | None = None
) -> None:
    """The demo's settings with these flags, checked before anything is written."""
    demo_job(Path("."), Path("clip"), Path("reference.png"), "shapes", train_steps, preset, edit_steps=edit_steps)


def steered_references(folder: Path):
    """references/ with reference_masks/, as `live run --reference DIR --reference-mask …` takes them."""
    from livecli.references import gather

    masks = sorted((folder / REFERENCE_MASKS).glob("*.png"))
    return gather([], folder / REFERENCES, masks)


def demo_job(
    folder: Path,
    clip: Path,
    image: Path,
    model: str = "shapes",
    train_steps: int | str | None = None,
    preset: str | None = None,
    mask: bool = False,
    references: bool = False,
    edit_steps: int | None = None,
) -> Job:
    """Every stage at 64 px, 8 frames: a few minutes on a laptop CPU. `train_steps` and
    `edit_steps` None: the demo's (or the preset's). `mask`: steer with the first frame's
    mask; `references`: learn the object from references/ (write_steering)."""
    from livecli.pipeline import Job

    pair = demo_pair()
    return Job(
        name="demo",
        clip=clip,
        image=steered_references(folder) if references else image,
        mask=folder / MASK if mask else None,
        project=folder / "demo.live",
        model=ModelConfig(model=model, device="cpu"),
        prepare=PrepareConfig(prompt=pair.source_prompt, object=pair.source_object[0], frames=FRAMES, size=SIZE),
        train=train_config(pair, **({"steps": train_steps} if train_steps else {}), preset=preset),
        edit=edit_config(pair, **({"steps": edit_steps} if edit_steps else {}), preset=preset),
        eval=EvalConfig(clip_model="tiny"),
    )


def run(
    folder: Path,
    on_stage: Callable[[StageResult], None] = lambda result: None,
    model: str = "shapes",
    train_steps: int | str | None = None,
    preset: str | None = None,
    mask: bool = False,
    references: bool = False,
    edit_steps: int | None = None,
) -> JobOutcome:
    from livecli.pipeline import run_job

    clip, image = make_samples(folder)
    job = demo_job(folder, clip, image, model, train_steps, preset, mask, references, edit_steps)
    return run_job(job, on_stage, replace_other=True)
