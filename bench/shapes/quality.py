"""How well the `shapes` model follows captions: sample, let the judge read, compare.

Used by the caption-following test (shipped weights, a fixed seeded set of captions), by
`bench/shapes_model.py` and by the training script's final report. The model is loaded
with diffusers' `StableDiffusionPipeline.from_pretrained`, as any model folder would be.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from livecli.shapes.judge import QUESTIONS, Judge, accuracy
from livecli.shapes.scenes import (
    COLOUR_NAMES,
    HELD_OUT_OBJECTS,
    HELD_OUT_SCENES,
    PATTERNS,
    SHAPES,
    caption,
    is_held_out,
    labels,
)

GUIDANCE = 5.0
"""Classifier-free guidance the figures are measured at."""


@dataclass(frozen=True)
class Prompted:
    """A caption and what the judge should read from an image of it."""

    shape: str
    colour: str
    pattern: str
    background: str

    @property
    def caption(self) -> str:
        return caption(self.shape, self.colour, self.pattern, self.background)

    def labels(self) -> dict[str, int]:
        return labels(self.shape, self.colour, self.pattern, self.background)


def caption_set(kind: str, count: int, seed: int = 0) -> list[Prompted]:
    """`count` seeded captions: `seen` (training combinations), `held-out-objects` (a colour
    and shape never seen together) or `held-out-scenes` (a shape never seen on a pattern)."""
    rng = np.random.default_rng([seed, 11])
    chosen: list[Prompted] = []
    while len(chosen) < count:
        shape, pattern = SHAPES[rng.integers(len(SHAPES))], PATTERNS[rng.integers(len(PATTERNS))]
        colour, background = (COLOUR_NAMES[i] for i in rng.choice(len(COLOUR_NAMES), 2, replace=False))
        if kind == "held-out-objects":
            shape, colour = sorted(HELD_OUT_OBJECTS)[len(chosen) % len(HELD_OUT_OBJECTS)]
            if colour == background or (shape, pattern) in HELD_OUT_SCENES:
                continue
        elif kind == "held-out-scenes":
            shape, pattern = sorted(HELD_OUT_SCENES)[len(chosen) % len(HELD_OUT_SCENES)]
            if (shape, colour) in HELD_OUT_OBJECTS:
                continue
        elif kind != "seen":
            raise ValueError(f"unknown caption set {kind!r}")
        elif is_held_out(shape, colour, pattern):
            continue
        chosen.append(Prompted(shape, colour, pattern, background))
    return chosen


def load_pipeline(model_dir: Path):
    from diffusers import StableDiffusionPipeline

    from livecli.models.loading import quiet_libraries

    quiet_libraries()
    pipeline = StableDiffusionPipeline.from_pretrained(
        model_dir, dtype=torch.float32, safety_checker=None, requires_safety_checker=False
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@torch.inference_mode()
def sample(
    pipeline, captions: list[str], seed: int = 0, steps: int = 50, guidance: float = GUIDANCE, batch_size: int = 64
) -> list[Image.Image]:
    """One 64×64 sample per caption, DDIM, each from a generator seeded by (seed, position)."""
    images: list[Image.Image] = []
    for first in range(0, len(captions), batch_size):
        batch = captions[first : first + batch_size]
        generators = [torch.Generator().manual_seed(seed * 100_003 + first + k) for k in range(len(batch))]
        result = pipeline(
            batch,
            height=64,
            width=64,
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=generators,
            output_type="pil",
        )
        images += result.images
    return images


def judge_samples(judge: Judge, images: list[Image.Image], prompted: list[Prompted]) -> dict[str, float]:
    """Per question, the share of images the judge reads as their caption says; `all`: every answer right."""
    truth = {name: np.array([p.labels()[name] for p in prompted]) for name in QUESTIONS}
    return accuracy(judge.read(images), truth)


def grid(images: list[Image.Image], columns: int, scale: int = 2, gap: int = 2) -> Image.Image:
    """Images in rows of `columns`, each enlarged `scale` times (nearest), on white."""
    side = images[0].width * scale
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (columns * (side + gap) - gap, rows * (side + gap) - gap), "white")
    for k, image in enumerate(images):
        sheet.paste(
            image.resize((side, side), Image.Resampling.NEAREST),
            ((k % columns) * (side + gap), (k // columns) * (side + gap)),
        )
    return sheet
