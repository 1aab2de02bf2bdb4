"""Drawn scenes and clips with known content: the `shapes` model's data and the benchmark's truth.

A scene is one coloured shape on a patterned, coloured background, 64×64, described by a
caption such as "a red circle on a dotted yellow background". Everything is drawn with
Pillow at 4× and reduced, so edges are antialiased and sub-pixel motion is smooth, and
every random choice comes from a seed, so scene `i` of seed `s` is the same everywhere.

A clip moves one object along a smooth path (translation and scale) over a fixed
background. Its ground-truth edit is the same clip with another object on the same path;
the benchmark compares edits with it, inside and outside the objects' masks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

SIDE = 64
SUPERSAMPLE = 4

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "star")
COLOURS = {
    "red": (215, 40, 40),
    "orange": (245, 140, 20),
    "yellow": (240, 215, 30),
    "green": (40, 165, 60),
    "blue": (40, 90, 215),
    "purple": (135, 55, 185),
}
COLOUR_NAMES = tuple(COLOURS)
PATTERNS = ("plain", "gradient", "striped", "dotted", "checkered")

HELD_OUT_OBJECTS = frozenset({("star", "green"), ("triangle", "purple"), ("diamond", "orange"), ("cross", "blue")})
"""(shape, colour) pairs the model never sees: the benchmark's reference objects."""
HELD_OUT_SCENES = frozenset({("star", "checkered"), ("circle", "striped")})
"""(shape, pattern) pairs the model never sees together."""

RADIUS_RANGE = (9.0, 17.0)
"""Half the object's extent, in pixels of the 64×64 scene."""


@dataclass(frozen=True)
class Background:
    pattern: str
    colour: str
    period: float = 12.0
    """Stripe, dot or checker spacing in pixels."""
    angle: int = 0
    """Stripes: 0 horizontal, 1 vertical, 2 diagonal; gradient: 0 top-down, 1 left-right."""
    phase: float = 0.0


@dataclass(frozen=True)
class Placed:
    """An object and where it is: centre (x, y) and half-extent, in scene pixels."""

    shape: str
    colour: str
    x: float
    y: float
    radius: float


@dataclass(frozen=True)
class Scene:
    background: Background
    object: Placed

    @property
    def caption(self) -> str:
        return caption(self.object.shape, self.object.colour, self.background.pattern, self.background.colour)

    def labels(self) -> dict[str, int]:
        """What the judge names, as class indices."""
        return labels(self.object.shape, self.object.colour, self.background.pattern, self.background.colour)


def caption(shape: str, colour: str | None, pattern: str, background_colour: str) -> str:
    """Always names the background's colour: a caption that leaves it out teaches the model to guess.

    `colour` None leaves the object's colour unsaid ("a star on …"): the form an edit's
    source prompt takes, so that the learned token stands for shape and colour alike.
    """
    described = f"{colour} {shape}" if colour else shape
    article = "an" if described[0] in "aeiou" else "a"
    return f"{article} {described} on a {pattern} {background_colour} background"


def labels(shape: str, colour: str, pattern: str, background_colour: str) -> dict[str, int]:
    return {
        "shape": SHAPES.index(shape),
        "colour": COLOUR_NAMES.index(colour),
        "pattern": PATTERNS.index(pattern),
        "background": COLOUR_NAMES.index(background_colour),
    }


def caption_words() -> list[str]:
    """Every word a caption can hold: the `shapes` tokenizer's vocabulary."""
    return sorted({"a", "an", "on", "background", *SHAPES, *COLOUR_NAMES, *PATTERNS})


def is_held_out(shape: str, colour: str, pattern: str) -> bool:
    return (shape, colour) in HELD_OUT_OBJECTS or (shape, pattern) in HELD_OUT_SCENES


# --------------------------------------------------------------------------- drawing


def tint(colour: str, white: float) -> tuple[int, int, int]:
    """`colour` mixed with `white` parts of white: backgrounds are lighter than objects."""
    return tuple(round(c + (255 - c) * white) for c in COLOURS[colour])


def draw_background(background: Background, side: int = SIDE) -> Image.Image:
    big = side * SUPERSAMPLE
    dark, light = tint(background.colour, 0.2), tint(background.colour, 0.72)
    period = background.period * SUPERSAMPLE
    phase = background.phase * period
    if background.pattern == "plain":
        return Image.new("RGB", (side, side), tint(background.colour, 0.35))
    if background.pattern == "gradient":
        ramp = np.linspace(0.0, 1.0, side, dtype=np.float32)
        ramp = ramp[:, None] if background.angle == 0 else ramp[None, :]
        mix = np.broadcast_to(ramp, (side, side))[..., None]
        pixels = np.asarray(dark, np.float32) * (1 - mix) + np.asarray(light, np.float32) * mix
        return Image.fromarray(pixels.round().astype(np.uint8))
    image = Image.new("RGB", (big, big), light)
    draw = ImageDraw.Draw(image)
    if background.pattern == "striped":
        band = period / 2
        for k in range(-2 * big // int(period) - 2, 2 * big // int(period) + 3):
            start = k * period + phase
            if background.angle == 0:
                draw.rectangle([0, start, big, start + band - 1], fill=dark)
            elif background.angle == 1:
                draw.rectangle([start, 0, start + band - 1, big], fill=dark)
            else:
                draw.polygon([(start, 0), (start + band, 0), (start + band - big, big), (start - big, big)], fill=dark)
    elif background.pattern == "dotted":
        radius = period * 0.22
        count = int(big / period) + 2
        for row in range(-1, count):
            for column in range(-1, count):
                cx = column * period + phase + (period / 2 if row % 2 else 0)
                cy = row * period + phase
                draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=dark)
    elif background.pattern == "checkered":
        count = int(big / period) + 2
        for row in range(-1, count):
            for column in range(-1, count):
                if (row + column) % 2 == 0:
                    x0, y0 = column * period + phase, row * period + phase
                    draw.rectangle([x0, y0, x0 + period - 1, y0 + period - 1], fill=dark)
    else:
        raise ValueError(f"unknown pattern {background.pattern!r}")
    return image.resize((side, side), Image.Resampling.BOX)


def outline(shape: str, x: float, y: float, r: float) -> list[tuple[float, float]] | None:
    """The shape's polygon around (x, y) with half-extent r; None for the circle."""
    if shape == "circle":
        return None
    if shape == "square":
        s = r * 0.86
        return [(x - s, y - s), (x + s, y - s), (x + s, y + s), (x - s, y + s)]
    if shape == "triangle":
        return [(x, y - r), (x + r, y + r * 0.8), (x - r, y + r * 0.8)]
    if shape == "diamond":
        return [(x, y - r), (x + r, y), (x, y + r), (x - r, y)]
    if shape == "cross":
        a = r * 0.36
        return [
            (x - a, y - r), (x + a, y - r), (x + a, y - a), (x + r, y - a), (x + r, y + a), (x + a, y + a),
            (x + a, y + r), (x - a, y + r), (x - a, y + a), (x - r, y + a), (x - r, y - a), (x - a, y - a),
        ]  # fmt: skip
    if shape == "star":
        points = []
        for k in range(10):
            reach = r if k % 2 == 0 else r * 0.45
            angle = -math.pi / 2 + k * math.pi / 5
            points.append((x + reach * math.cos(angle), y + reach * math.sin(angle) + r * 0.1))
        return points
    raise ValueError(f"unknown shape {shape!r}")


def object_layer(placed: Placed, side: int = SIDE) -> tuple[Image.Image, Image.Image]:
    """The object drawn at 4×: its RGB and its coverage (L), both reduced to `side`."""
    big = side * SUPERSAMPLE
    scale = SUPERSAMPLE * side / SIDE
    x, y, r = placed.x * scale, placed.y * scale, placed.radius * scale
    fill = COLOURS[placed.colour]
    edge = tuple(round(c * 0.55) for c in fill)
    colour = Image.new("RGB", (big, big), edge)
    coverage = Image.new("L", (big, big), 0)
    inner = Image.new("L", (big, big), 0)
    polygon = outline(placed.shape, x, y, r)
    border = 1.2 * scale
    for mask, grow in ((coverage, 0.0), (inner, border)):
        draw = ImageDraw.Draw(mask)
        if polygon is None:
            draw.ellipse([x - r + grow, y - r + grow, x + r - grow, y + r - grow], fill=255)
        else:
            draw.polygon(polygon, fill=255)
    if polygon is not None:  # a darker rim: shrink the fill by drawing the outline over it
        ImageDraw.Draw(inner).line(polygon + polygon[:1], fill=0, width=max(1, round(2 * border)))
    colour.paste(Image.new("RGB", (big, big), fill), mask=inner)
    return colour.resize((side, side), Image.Resampling.BOX), coverage.resize((side, side), Image.Resampling.BOX)


def render(scene: Scene, side: int = SIDE, backdrop: Image.Image | None = None) -> Image.Image:
    """The scene as an RGB image; `backdrop` reuses a drawn background (clips draw it once)."""
    image = (backdrop or draw_background(scene.background, side)).copy()
    colour, coverage = object_layer(scene.object, side)
    image.paste(colour, mask=coverage)
    return image


def object_mask(placed: Placed, side: int = SIDE) -> Image.Image:
    """Where the object covers at least half a pixel, as an L image of 0/255."""
    return object_layer(placed, side)[1].point(lambda v: 255 if v >= 128 else 0)


# --------------------------------------------------------------------------- random scenes


def random_background(rng: np.random.Generator, pattern: str, colour: str) -> Background:
    return Background(
        pattern=pattern,
        colour=colour,
        period=float(rng.uniform(10.0, 16.0)),
        angle=int(rng.integers(0, 3 if pattern == "striped" else 2)),
        phase=float(rng.uniform(0.0, 1.0)),
    )


def random_scene(rng: np.random.Generator, held_out: bool | None = False) -> Scene:
    """A scene with every choice drawn from `rng`; object and background colours differ.

    `held_out`: False draws only training combinations, True only held-out ones, None any.
    """
    while True:
        shape = SHAPES[rng.integers(len(SHAPES))]
        colour, background_colour = (COLOUR_NAMES[i] for i in rng.choice(len(COLOUR_NAMES), 2, replace=False))
        pattern = PATTERNS[rng.integers(len(PATTERNS))]
        if held_out is None or is_held_out(shape, colour, pattern) == held_out:
            break
    radius = float(rng.uniform(*RADIUS_RANGE))
    x, y = rng.uniform(radius + 1, SIDE - radius - 1, size=2)
    return Scene(random_background(rng, pattern, background_colour), Placed(shape, colour, float(x), float(y), radius))


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """Scene `index` of `seed`, drawn the same whatever else was drawn before it."""
    return np.random.default_rng([seed, index])


# --------------------------------------------------------------------------- clips and their true edits


@dataclass(frozen=True)
class ClipPair:
    """A source clip, a reference image of another object, and the edit that is true."""

    source: list[Image.Image]
    truth: list[Image.Image]
    source_masks: list[Image.Image]
    truth_masks: list[Image.Image]
    reference: Image.Image
    background: Background
    reference_background: Background
    source_object: tuple[str, str]
    """(shape, colour) of the object in the clip."""
    target_object: tuple[str, str]
    """(shape, colour) of the reference's object, which the true edit shows."""

    @property
    def source_prompt(self) -> str:
        """The source caption without the object's colour: what an edit replaces is one word."""
        return caption(self.source_object[0], None, self.background.pattern, self.background.colour)

    def reference_prompt(self, token: str) -> str:
        """The reference image's caption with `token` for its object (which has no word)."""
        return caption(token, None, self.reference_background.pattern, self.reference_background.colour)


def trajectory(rng: np.random.Generator, frames: int) -> list[tuple[float, float, float]]:
    """(x, y, radius) per frame: an eased sweep with a sideways sway, and a steady change of size."""
    r0, r1 = rng.uniform(11.0, 15.0), rng.uniform(11.0, 15.0)
    margin = max(r0, r1) + 2
    start, end = rng.uniform(margin, SIDE - margin, size=2), rng.uniform(margin, SIDE - margin, size=2)
    while np.linalg.norm(end - start) < 14:  # a clip whose object barely moves tests nothing
        end = rng.uniform(margin, SIDE - margin, size=2)
    sway = rng.uniform(-3.0, 3.0)
    along = (end - start) / (np.linalg.norm(end - start) + 1e-9)
    across = np.array([-along[1], along[0]])
    path = []
    for k in range(frames):
        t = k / max(frames - 1, 1)
        eased = t * t * (3 - 2 * t)
        x, y = start + (end - start) * eased + across * sway * math.sin(math.pi * t)
        path.append(
            (
                float(np.clip(x, margin, SIDE - margin)),
                float(np.clip(y, margin, SIDE - margin)),
                float(r0 + (r1 - r0) * t),
            )
        )
    return path


def clip_pair(
    seed: int,
    frames: int = 8,
    side: int = SIDE,
    source_object: tuple[str, str] | None = None,
    target_object: tuple[str, str] | None = None,
) -> ClipPair:
    """A benchmark clip: a training-combination object swapped for a held-out one by default."""
    rng = np.random.default_rng([seed, 7])
    target = target_object or sorted(HELD_OUT_OBJECTS)[rng.integers(len(HELD_OUT_OBJECTS))]
    while source_object is None:
        shape, colour = SHAPES[rng.integers(len(SHAPES))], COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))]
        if (shape, colour) != target and (shape, colour) not in HELD_OUT_OBJECTS:
            source_object = (shape, colour)
    colours = [c for c in COLOUR_NAMES if c not in (source_object[1], target[1])]
    while True:
        pattern, background_colour = PATTERNS[rng.integers(len(PATTERNS))], colours[rng.integers(len(colours))]
        if (source_object[0], pattern) not in HELD_OUT_SCENES and (target[0], pattern) not in HELD_OUT_SCENES:
            break
    background = random_background(rng, pattern, background_colour)
    backdrop = draw_background(background, side)
    source, truth, source_masks, truth_masks = [], [], [], []
    for x, y, radius in trajectory(rng, frames):
        for placed_object, images, masks in ((source_object, source, source_masks), (target, truth, truth_masks)):
            placed = Placed(*placed_object, x, y, radius)
            images.append(render(Scene(background, placed), side, backdrop))
            masks.append(object_mask(placed, side))
    reference_colours = [c for c in COLOUR_NAMES if c not in (target[1], background_colour)]
    reference_background = random_background(
        rng,
        PATTERNS[(PATTERNS.index(pattern) + 1 + rng.integers(len(PATTERNS) - 1)) % len(PATTERNS)],
        reference_colours[rng.integers(len(reference_colours))],
    )
    if (target[0], reference_background.pattern) in HELD_OUT_SCENES:
        reference_background = replace(reference_background, pattern="plain")
    reference = render(Scene(reference_background, Placed(*target, SIDE / 2, SIDE / 2, 15.0)), side)
    return ClipPair(
        source, truth, source_masks, truth_masks, reference, background, reference_background, source_object, target
    )
