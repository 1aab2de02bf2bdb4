"""The ground-truth editing benchmark: edits of drawn clips scored against the true edit.

Each case is a clip pair from scenes.py: a source clip, a reference image of an object the
`shapes` model never saw (a held-out shape–colour pair), and the true edit, the same clip
with that object on the same path. Every variant of the method edits the case through the
real pipeline (prepare → train → invert → edit → eval, `--model shapes`, 64 px, 8 frames),
and the edit is scored:

- object accuracy: frames where the judge reads the reference object's shape and colour;
- PSNR against the true edit inside the true objects (source's and target's masks, OR-ed)
  and outside them (the background, which should not change);
- motion error: how far the edit's frame-to-frame change is from the truth's, mean |Δ|/255;
- the `live eval` metrics (background PSNR outside the blend mask, which needs no truth).

Variants sharing a training share its project: `live` and `no-blend` train once, as do
`no-latent-prompt` and `tav`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from livecli import demo
from livecli.config import (
    DEFAULT_OVERLAP,
    DEFAULT_WINDOW,
    EditConfig,
    EvalConfig,
    ModelConfig,
    PrepareConfig,
    TrainConfig,
)
from livecli.pipeline import Job, run_job
from livecli.shapes.judge import Judge
from livecli.shapes.scenes import COLOUR_NAMES, SHAPES, ClipPair, clip_pair
from livecli.video import read_pngs, write_pngs
from livecli.windows import plan_windows

FRAMES = demo.FRAMES
SIZE = demo.SIZE
PSNR_CAP = 100.0


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    train: dict[str, Any] = field(default_factory=dict)
    """TrainConfig fields that differ from the benchmark's settings."""
    edit: dict[str, Any] = field(default_factory=dict)
    """EditConfig fields that differ."""

    @property
    def training(self) -> str:
        """The project this variant's training lives in: equal trainings share one."""
        if not self.train:
            return "live"
        return "-".join(sorted(name.replace("_", "-") for name, value in self.train.items() if value))


VARIANTS = (
    Variant(
        "live",
        "LIVE (latent prompt, word swap, local blend) with this tool's two extensions: the reference's latents as the "
        "edit's "
        "latent prompt (`--latent-prompt reference`) and the clip's background kept by the blend (`--blend-background "
        "clip`)",
    ),
    Variant(
        "paper",
        "LIVE as the paper has it: the trained latent prompt in the edit's conditional branch, the blend keeping the "
        "source branch",
        edit={"latent_prompt": "trained", "blend_background": "source"},
    ),
    Variant(
        "from-inversion",
        "`live` editing from the inversion's stored attention (`--source-branch inversion`): one branch, no "
        "sampled source",
        edit={"source_branch": "inversion"},
    ),
    Variant(
        "source-background",
        "`live` with the blend keeping the source branch (the paper's blend)",
        edit={"blend_background": "source"},
    ),
    # A model without a latent prompt has none to choose: those variants' edits keep the default.
    Variant(
        "no-latent-prompt",
        "without the latent prompt: frames attend to the first and previous frame",
        train={"no_latent_prompt": True},
        edit={"latent_prompt": "trained"},
    ),
    Variant(
        "image-temporal",
        "temporal attention run, and trained, in the image objective too (the paper's Fig. 8)",
        train={"image_temporal": True},
    ),
    Variant("no-blend", "without local blend", edit={"no_blend": True}),
    Variant(
        "tav",
        "Tune-A-Video style: first + previous frame attention, textual inversion, DDIM inversion, no attention control",
        train={"no_latent_prompt": True},
        edit={"cross_replace": 0.0, "self_replace": 0.0, "no_blend": True, "latent_prompt": "trained"},
    ),
)
VARIANT_NAMES = tuple(v.name for v in VARIANTS)


@dataclass(frozen=True)
class Settings:
    """What every variant shares (the demo's settings unless changed); `--quick` shortens it."""

    cases: int = 8
    seed: int = 0
    train_steps: int = demo.TRAIN_STEPS
    lr: float = demo.TRAIN_LR
    ti_lr: float = TrainConfig.ti_lr
    edit_steps: int = EditConfig.steps
    guidance: float = demo.GUIDANCE
    latent_prompt: str = demo.LATENT_PROMPT
    """The edit's conditional latent prompt, for the variants that do not set their own."""
    blend_background: str = demo.BLEND_BACKGROUND
    """What local blend keeps outside the mask, for the variants that blend."""
    model: str = "shapes"
    frames: int = FRAMES
    """Frames per clip: more than the window (8) makes every stage work in windows."""

    def key(self) -> str:
        values = dict(self.__dict__)
        if values["frames"] == FRAMES:  # the 8-frame cases keep the key (and work folder) they had
            del values["frames"]
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:10]


QUICK = Settings(cases=2, train_steps=100, edit_steps=20)
LONG = Settings(cases=4, frames=48)
"""Long clips: the object's path spans eight windows of 8 frames (overlapping by 2)."""
LONG_VARIANTS = ("live", "no-latent-prompt")


# --------------------------------------------------------------------------- cases


def case_seed(settings: Settings, index: int) -> int:
    return settings.seed * 1000 + index


def write_case(folder: Path, pair: ClipPair) -> tuple[Path, Path]:
    """clip/, truth/, reference.png and case.json in `folder` (kept if there)."""
    if not (folder / "case.json").is_file():
        write_pngs(pair.source, folder / "clip")
        write_pngs(pair.truth, folder / "truth")
        pair.reference.save(folder / "reference.png")
        info = {
            "source_prompt": pair.source_prompt,
            "source_object": pair.source_object,
            "target_object": pair.target_object,
            "background": [pair.background.pattern, pair.background.colour],
        }
        (folder / "case.json").write_text(json.dumps(info, indent=2) + "\n")
    return folder / "clip", folder / "reference.png"


def train_config(pair: ClipPair, settings: Settings, **changes: Any) -> TrainConfig:
    """The demo's training of a case, with the benchmark's settings."""
    shared = {"steps": settings.train_steps, "lr": settings.lr, "ti_lr": settings.ti_lr, "checkpoint_every": 1000}
    return demo.train_config(pair, **{**shared, **changes})


def edit_config(pair: ClipPair, settings: Settings, name: str | None = None, **changes: Any) -> EditConfig:
    """The demo's edit of a case, with the benchmark's settings."""
    shared = {"name": name, "steps": settings.edit_steps, "guidance": settings.guidance}
    shared |= {"latent_prompt": settings.latent_prompt, "blend_background": settings.blend_background}
    return demo.edit_config(pair, **{**shared, **changes})


def variant_job(folder: Path, pair: ClipPair, variant: Variant, settings: Settings) -> Job:
    clip, image = write_case(folder, pair)
    return Job(
        name=f"{folder.name}/{variant.name}",
        clip=clip,
        image=image,
        project=folder / f"{variant.training}.live",
        model=ModelConfig(model=settings.model, device="cpu"),
        prepare=PrepareConfig(
            prompt=pair.source_prompt, object=pair.source_object[0], frames=settings.frames, size=SIZE
        ),
        train=train_config(pair, settings, **variant.train),
        edit=edit_config(pair, settings, variant.name, **variant.edit),
        eval=EvalConfig(clip_model="tiny"),
    )


# --------------------------------------------------------------------------- scores


def _array(images: list[Image.Image]) -> np.ndarray:
    return np.stack([np.asarray(image.convert("RGB"), np.float64) for image in images])


def masked_psnr(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float | None:
    """Mean per-frame PSNR over the pixels in `region` [F, H, W]; frames without any are left out."""
    values = []
    for frame_a, frame_b, where in zip(a, b, region, strict=False):
        if where.any():
            mse = ((frame_a - frame_b) ** 2)[where].mean()
            values.append(PSNR_CAP if mse == 0 else min(PSNR_CAP, 10 * np.log10(255.0**2 / mse)))
    return float(np.mean(values)) if values else None


def score_frames(frames: list[Image.Image], pair: ClipPair, judge: Judge) -> dict[str, float | None]:
    """The benchmark's scores of `frames` (an edit, or the source or truth as baselines)."""
    answers = judge.read(frames)
    shape_right = answers["shape"] == SHAPES.index(pair.target_object[0])
    colour_right = answers["colour"] == COLOUR_NAMES.index(pair.target_object[1])
    edit, truth = _array(frames), _array(pair.truth)
    objects = (_array(pair.source_masks)[..., 0] > 127) | (_array(pair.truth_masks)[..., 0] > 127)
    # per transition f -> f+1: how far the edit's change is from the truth's
    motions = np.abs(np.diff(edit, axis=0) - np.diff(truth, axis=0)).mean(axis=(1, 2, 3)) / 255
    scores = {
        "object_accuracy": float((shape_right & colour_right).mean()),
        "shape_accuracy": float(shape_right.mean()),
        "colour_accuracy": float(colour_right.mean()),
        "psnr_object": masked_psnr(edit, truth, objects),
        "psnr_background": masked_psnr(edit, truth, ~objects),
        "motion_error": float(motions.mean()) if len(motions) else None,
    }
    borders = window_borders(len(frames))
    if borders:
        inside = [t for t in range(len(motions)) if t not in borders]
        scores["motion_error_borders"] = float(motions[sorted(borders)].mean())
        scores["motion_error_inside"] = float(motions[inside].mean())
    return scores


def window_borders(frames: int) -> set[int]:
    """The transitions f -> f+1 (by f) where invert and edit change windows: into and
    across the frames two windows share (the default window and overlap)."""
    windows = plan_windows(frames, DEFAULT_WINDOW, DEFAULT_OVERLAP)
    borders = set()
    for following in windows[1:]:
        previous_stop = max(w.stop for w in windows if w.start < following.start)
        borders |= set(range(following.start - 1, previous_stop))
    return {t for t in borders if 0 <= t < frames - 1}


def run_case(
    folder: Path,
    index: int,
    settings: Settings,
    variants: tuple[Variant, ...],
    judge: Judge,
    on_stage=lambda result: None,
) -> dict:
    """Every variant on case `index`: its scores, and the source's and truth's as baselines."""
    pair = clip_pair(case_seed(settings, index), frames=settings.frames, side=SIZE)
    case = {
        "index": index,
        "source_prompt": pair.source_prompt,
        "target_object": " ".join(pair.target_object[::-1]),
        "variants": {},
    }
    case["baselines"] = {
        "source": score_frames(pair.source, pair, judge),
        "truth": score_frames(pair.truth, pair, judge),
    }
    for variant in variants:
        outcome = run_job(variant_job(folder, pair, variant, settings), on_stage, replace_other=True)
        frames = read_pngs(outcome.paths()["video"].parent / "frames")
        scores = score_frames(frames, pair, judge)
        edit_row = (outcome.metrics() or {}).get("edit", {})
        scores["eval_background_psnr"] = edit_row.get("background_psnr")
        scores["seconds"] = round(
            sum(stage.result.record.seconds for stage in outcome.stages if stage.result.record), 1
        )
        case["variants"][variant.name] = scores
    return case


def summarise(cases: list[dict], names: tuple[str, ...]) -> dict[str, dict[str, float | None]]:
    """Mean of each score over the cases, per variant and baseline."""
    rows: dict[str, dict[str, float | None]] = {}
    for name in ("source", "truth", *names):
        found = [case["baselines"].get(name) or case["variants"].get(name) for case in cases]
        found = [scores for scores in found if scores]
        if not found:
            continue
        rows[name] = {}
        for metric in found[0]:
            values = [scores[metric] for scores in found if scores.get(metric) is not None]
            rows[name][metric] = float(np.mean(values)) if values else None
    return rows
