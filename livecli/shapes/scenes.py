"""Drawn scenes and clips with known content: the `shapes` model's data and the benchmark's truth.

A scene is one coloured shape on a patterned, coloured background, 64×64, described by a
caption such as "a red circle on a dotted yellow background". Everything is drawn with
Pillow at 4× and reduced, so edges are antialiased and sub-pixel motion is smooth, and
every random choice comes from a seed, so scene `i` of seed `s` is the same everywhere.

A clip moves one object over a background; its kind (`KINDS`) says how: a smooth glide,
bounces off the walls, rotation, growth or shrinking through a wide range, a foreground bar
passing over it, a camera pan (the background scrolls), a second shape that must stay, or
fast motion (half the frame between frames). Its ground-truth edit is the same clip with
another object in the same poses; the benchmark compares edits with it, inside and outside
the objects' masks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

from livecli.words import TOKEN_ALIAS

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
    angle: float = 0.0
    """Rotation in degrees, clockwise on screen."""


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


def outline(shape: str, x: float, y: float, r: float, angle: float = 0.0) -> list[tuple[float, float]] | None:
    """The shape's polygon around (x, y) with half-extent r, turned by `angle` degrees; None for the circle."""
    points = _outline(shape, x, y, r)
    if points is None or not angle:
        return points
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    return [(x + (px - x) * cos - (py - y) * sin, y + (px - x) * sin + (py - y) * cos) for px, py in points]


def read_as(shape: str, turn: float) -> frozenset[str]:
    """The shape names that are right for `shape` drawn turned by `turn` degrees. A square and
    a diamond are one outline 45° apart (the diamond 0.82× the size, and sizes vary), so from
    22.5° to 67.5° past upright (mod 90°) each is drawn as the other upright-er: either name is
    right."""
    pair = frozenset({"square", "diamond"})
    if shape in pair and abs(turn % 90.0 - 45.0) <= 22.5:
        return pair
    return frozenset({shape})


def _outline(shape: str, x: float, y: float, r: float) -> list[tuple[float, float]] | None:
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
    polygon = outline(placed.shape, x, y, r, placed.angle)
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


KINDS = ("glide", "bounce", "rotation", "growth", "occlusion", "pan", "distractor", "fast")
"""What a clip's motion tests. glide: an eased sweep (what the first and previous frames
explain well); bounce: straight runs with abrupt turns at the walls; rotation: the object
turns 20–35° a frame; growth: its size changes about threefold; occlusion: a foreground bar
passes over it for several frames; pan: the background scrolls (a moving camera);
distractor: a second shape of another kind, which the edit must leave; fast: it crosses
about half the frame between frames."""

OCCLUDER_COLOUR = (60, 60, 60)
"""The foreground bar's colour: a dark grey no object or background has."""


@dataclass(frozen=True)
class Pose:
    """Where the object is in one frame, in pixels of the 64×64 scene."""

    x: float
    y: float
    radius: float
    angle: float = 0.0


@dataclass(frozen=True)
class ClipPair:
    """A source clip, a reference image of another object, and the edit that is true."""

    source: list[Image.Image]
    truth: list[Image.Image]
    source_masks: list[Image.Image]
    """Where the object is seen (half-coverage, less what the foreground bar hides), L 0/255."""
    truth_masks: list[Image.Image]
    reference: Image.Image
    background: Background
    reference_background: Background
    source_object: tuple[str, str]
    """(shape, colour) of the object in the clip."""
    target_object: tuple[str, str]
    """(shape, colour) of the reference's object, which the true edit shows."""
    kind: str = "glide"
    backdrops: list[Image.Image] | None = None
    """Per frame, the background alone (no object, no distractor, no bar)."""
    keep_masks: list[Image.Image] | None = None
    """Per frame, what is not the object but must stay as it is (the distractor, the bar)."""
    turns: tuple[float, ...] = ()
    """Per frame, how far the object is turned (degrees; 0 but in the rotation kind)."""

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


def reflect(value: float, low: float, high: float) -> float:
    """`value` folded into [low, high] as a ball bouncing between two walls."""
    span = high - low
    folded = (value - low) % (2 * span)
    return low + (folded if folded <= span else 2 * span - folded)


def straight_runs(rng: np.random.Generator, frames: int, radius: float, speed: float) -> list[Pose]:
    """Constant speed in a straight line, turning sharply at the walls (at least once where it can)."""
    low, high = radius + 2, SIDE - radius - 2
    for _ in range(100):
        start = rng.uniform(low, high, size=2)
        heading = rng.uniform(0, 2 * math.pi)
        velocity = speed * np.array([math.cos(heading), math.sin(heading)])
        unfolded = [start + velocity * k for k in range(frames)]
        if any(((point < low) | (point > high)).any() for point in unfolded):
            break
    return [Pose(reflect(float(x), low, high), reflect(float(y), low, high), radius) for x, y in unfolded]


def leaps(rng: np.random.Generator, frames: int, radius: float, distance: float) -> list[Pose]:
    """`distance` between consecutive frames, each leap in a random direction that stays inside."""
    low, high = radius + 2, SIDE - radius - 2
    point = rng.uniform(low, high, size=2)
    path = [Pose(float(point[0]), float(point[1]), radius)]
    for _ in range(frames - 1):
        for _ in range(100):
            heading = rng.uniform(0, 2 * math.pi)
            landing = point + distance * np.array([math.cos(heading), math.sin(heading)])
            if ((landing >= low) & (landing <= high)).all():
                break
        point = np.clip(landing, low, high)
        path.append(Pose(float(point[0]), float(point[1]), radius))
    return path


def poses(kind: str, rng: np.random.Generator, glide: list[tuple[float, float, float]], frames: int) -> list[Pose]:
    """The object's pose per frame for a clip of `kind`; `glide` is the clip's eased sweep."""
    if kind in ("glide", "occlusion", "pan", "distractor"):
        return [Pose(x, y, radius) for x, y, radius in glide]
    if kind == "bounce":
        return straight_runs(rng, frames, float(rng.uniform(10.0, 13.0)), float(rng.uniform(6.0, 9.0)))
    if kind == "fast":
        return leaps(rng, frames, float(rng.uniform(9.0, 11.0)), float(rng.uniform(0.42, 0.5)) * SIDE)
    if kind == "rotation":
        spin = float(rng.uniform(20.0, 35.0)) * (1 if rng.random() < 0.5 else -1)
        return [Pose(x, y, radius, spin * k) for k, (x, y, radius) in enumerate(glide)]
    if kind == "growth":
        small, large = float(rng.uniform(6.0, 7.5)), float(rng.uniform(18.0, 20.0))
        if rng.random() < 0.5:
            small, large = large, small  # shrinking
        margin = 21.0
        start, end = rng.uniform(margin, SIDE - margin, size=2), rng.uniform(margin, SIDE - margin, size=2)
        path = []
        for k in range(frames):
            t = k / max(frames - 1, 1)
            x, y = start + (end - start) * t
            path.append(Pose(float(x), float(y), small + (large - small) * t))
        return path
    raise ValueError(f"unknown clip kind {kind!r}; the kinds are {', '.join(KINDS)}")


def pan_offsets(rng: np.random.Generator, frames: int, side: int) -> list[tuple[int, int]]:
    """The camera's offset into a larger background per frame: whole pixels, 3 a frame at 64 px."""
    step = max(1, round(3 * side / SIDE))
    step = min(step, max(1, side // (2 * max(frames - 1, 1))))  # long clips scroll at most half the frame
    dx, dy = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, 1), (1, -1), (-1, -1)][rng.integers(8)]
    travel = step * (frames - 1)
    x0, y0 = (0 if dx >= 0 else travel), (0 if dy >= 0 else travel)
    return [(x0 + dx * step * k, y0 + dy * step * k) for k in range(frames)]


def occluder_coverage(rng: np.random.Generator, frames: int, side: int) -> list[Image.Image]:
    """Per frame, the coverage (L) of a foreground bar that sweeps across the whole frame once."""
    big = side * SUPERSAMPLE
    width = rng.uniform(8.0, 11.0) * big / SIDE
    vertical = rng.random() < 0.5
    forward = rng.random() < 0.5
    layers = []
    for k in range(frames):
        t = (k + 0.5) / frames if forward else 1 - (k + 0.5) / frames
        centre = -width / 2 + (big + width) * t
        layer = Image.new("L", (big, big), 0)
        box = (
            [centre - width / 2, 0, centre + width / 2, big]
            if vertical
            else [0, centre - width / 2, big, centre + width / 2]
        )
        ImageDraw.Draw(layer).rectangle(box, fill=255)
        layers.append(layer.resize((side, side), Image.Resampling.BOX))
    return layers


def place_distractor(
    rng: np.random.Generator, path: list[Pose], taken: tuple[tuple[str, str], ...], background_colour: str
) -> Placed:
    """A shape of another kind and colour where the object never comes (as far from it as can be)."""
    shape = SHAPES[rng.integers(len(SHAPES))]
    while shape in {object_[0] for object_ in taken}:
        shape = SHAPES[rng.integers(len(SHAPES))]
    colours = [c for c in COLOUR_NAMES if c not in {background_colour, *(object_[1] for object_ in taken)}]
    colours = [c for c in colours if (shape, c) not in HELD_OUT_OBJECTS] or colours
    colour = colours[rng.integers(len(colours))]
    radius = float(rng.uniform(8.0, 10.0))
    best, best_gap = None, -math.inf
    for _ in range(200):
        x, y = rng.uniform(radius + 1, SIDE - radius - 1, size=2)
        gap = min(math.hypot(x - pose.x, y - pose.y) - pose.radius - radius for pose in path)
        if gap > best_gap:
            best, best_gap = (float(x), float(y)), gap
        if gap >= 3:
            break
    return Placed(shape, colour, *best, radius)


def clip_pair(
    seed: int,
    frames: int = 8,
    side: int = SIDE,
    source_object: tuple[str, str] | None = None,
    target_object: tuple[str, str] | None = None,
    kind: str = "glide",
) -> ClipPair:
    """A benchmark clip of `kind`: a training-combination object swapped for a held-out one by default."""
    if kind not in KINDS:
        raise ValueError(f"unknown clip kind {kind!r}; the kinds are {', '.join(KINDS)}")
    rng = np.random.default_rng([seed, 7])
    source_object, target = _objects(rng, source_object, target_object, kind)
    colours = [c for c in COLOUR_NAMES if c not in (source_object[1], target[1])]
    while True:
        pattern, background_colour = PATTERNS[rng.integers(len(PATTERNS))], colours[rng.integers(len(colours))]
        if (source_object[0], pattern) not in HELD_OUT_SCENES and (target[0], pattern) not in HELD_OUT_SCENES:
            break
    background = random_background(rng, pattern, background_colour)
    glide = trajectory(rng, frames)  # drawn for every kind, so that the glide's clips stay as they were
    motion = np.random.default_rng([seed, 8, KINDS.index(kind)])
    path = poses(kind, motion, glide, frames)
    backdrops = _backdrops(kind, motion, background, frames, side)
    distractor = (
        place_distractor(motion, path, (source_object, target), background_colour) if kind == "distractor" else None
    )
    bars = occluder_coverage(motion, frames, side) if kind == "occlusion" else None
    drawn = _draw(path, backdrops, background, (source_object, target), distractor, bars, side)
    reference_background, reference = _reference(rng, target, pattern, background_colour, side)
    return ClipPair(
        drawn[0][0],
        drawn[1][0],
        drawn[0][1],
        drawn[1][1],
        reference,
        background,
        reference_background,
        source_object,
        target,
        kind,
        backdrops,
        drawn[2] if kind in ("occlusion", "distractor") else None,
        tuple(pose.angle for pose in path),
    )


def _objects(
    rng: np.random.Generator, source_object: tuple[str, str] | None, target_object: tuple[str, str] | None, kind: str
) -> tuple[tuple[str, str], tuple[str, str]]:
    """The clip's object and the one that replaces it (a held-out combination by default)."""
    target = target_object or sorted(HELD_OUT_OBJECTS)[rng.integers(len(HELD_OUT_OBJECTS))]
    chosen = source_object is not None
    while source_object is None or (kind == "rotation" and not chosen and source_object[0] == "circle"):  # looks still
        shape, colour = SHAPES[rng.integers(len(SHAPES))], COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))]
        source_object = None
        if (shape, colour) != target and (shape, colour) not in HELD_OUT_OBJECTS:
            source_object = (shape, colour)
    return source_object, target


def _backdrops(kind: str, motion: np.random.Generator, background, frames: int, side: int) -> list[Image.Image]:
    """Each frame's background: the same picture, or a window panning over a wider one."""
    if kind != "pan":
        return [draw_background(background, side)] * frames
    offsets = pan_offsets(motion, frames, side)
    reach = max(max(x, y) for x, y in offsets)
    wide = draw_background(background, side + reach)
    return [wide.crop((x, y, x + side, y + side)) for x, y in offsets]


def _draw(
    path: list[Pose],
    backdrops: list[Image.Image],
    background,
    objects: tuple[tuple[str, str], tuple[str, str]],
    distractor: Placed | None,
    bars: list[Image.Image] | None,
    side: int,
) -> tuple[tuple[list, list], tuple[list, list], list[Image.Image]]:
    """((source frames, their masks), (true edit's frames, their masks), what must be kept
    in each frame: the distractor, or the occluder where it hides the object)."""
    drawn = ([], []), ([], [])
    keep_masks = []
    for k, pose in enumerate(path):
        backdrop, kept = backdrops[k], Image.new("L", (side, side), 0)
        if distractor is not None:
            backdrop = render(Scene(background, distractor), side, backdrop)
            kept = object_mask(distractor, side)
        for placed_object, (images, masks) in zip(objects, drawn, strict=True):
            placed = Placed(*placed_object, pose.x, pose.y, pose.radius, pose.angle)
            image, mask = render(Scene(background, placed), side, backdrop), object_mask(placed, side)
            if bars is not None:
                image.paste(OCCLUDER_COLOUR, mask=bars[k])
                hidden = bars[k].point(lambda v: 255 if v == 255 else 0)  # the object shows through its edge
                mask = Image.fromarray(np.where(np.asarray(hidden) > 0, 0, np.asarray(mask)).astype(np.uint8))
                kept = hidden
            images.append(image)
            masks.append(mask)
        keep_masks.append(kept)
    return drawn[0], drawn[1], keep_masks


def _reference(
    rng: np.random.Generator, target: tuple[str, str], pattern: str, background_colour: str, side: int
) -> tuple:
    """The reference picture: the new object, centred, on another background than the clip's."""
    reference_colours = [c for c in COLOUR_NAMES if c not in (target[1], background_colour)]
    reference_background = random_background(
        rng,
        PATTERNS[(PATTERNS.index(pattern) + 1 + rng.integers(len(PATTERNS) - 1)) % len(PATTERNS)],
        reference_colours[rng.integers(len(reference_colours))],
    )
    if (target[0], reference_background.pattern) in HELD_OUT_SCENES:
        reference_background = replace(reference_background, pattern="plain")
    return reference_background, render(Scene(reference_background, Placed(*target, SIDE / 2, SIDE / 2, 15.0)), side)


@dataclass(frozen=True)
class ReferenceView:
    """One more picture of a reference's object, its object mask (L 0/255), and its caption
    with `<tok>` for the object (as ClipPair.reference_prompt writes the reference's)."""

    image: Image.Image
    mask: Image.Image
    prompt: str


def reference_views(pair: ClipPair, count: int, seed: int = 0, same_background: bool = False) -> list[ReferenceView]:
    """`count` more pictures of the reference's object, each with its object mask and caption:
    at other sizes and places, on other backgrounds (never its own colour, nor the clip's
    background colour), for training with several references. Upright, as every scene the
    `shapes` model learnt from: turned ±30°, they made the token useless (0 % object
    accuracy on the first two benchmark cases). `same_background`: on the reference's own
    background, which its caption names. The same arguments draw the same views."""
    rng = np.random.default_rng([seed, 11])
    shape, colour = pair.target_object
    views = []
    while len(views) < count:
        pattern = PATTERNS[rng.integers(len(PATTERNS))]
        backdrop_colours = [c for c in COLOUR_NAMES if c not in (colour, pair.background.colour)]
        backdrop = random_background(rng, pattern, backdrop_colours[rng.integers(len(backdrop_colours))])
        if same_background:
            backdrop = pair.reference_background
        elif (shape, pattern) in HELD_OUT_SCENES:
            continue
        radius = float(rng.uniform(*RADIUS_RANGE))
        x, y = rng.uniform(radius + 1, SIDE - radius - 1, size=2)
        placed = Placed(shape, colour, float(x), float(y), radius)  # upright: the model never saw a turned object
        prompt = caption(TOKEN_ALIAS, None, backdrop.pattern, backdrop.colour)
        views.append(ReferenceView(render(Scene(backdrop, placed), SIDE), object_mask(placed, SIDE), prompt))
    return views


def reference_mask(pair: ClipPair) -> Image.Image:
    """The object mask of the pair's reference image (L 0/255)."""
    return object_mask(Placed(*pair.target_object, SIDE / 2, SIDE / 2, 15.0), SIDE)
