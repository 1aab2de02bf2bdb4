"""Object masks for the clip (`--mask PATH`): where the object to replace is, frame by frame.

A mask is given as

- a mask video, sampled with the clip's own settings (--frames, --stride, --start, --duration);
- a folder of mask images, one per sampled frame, or one per frame of the whole clip (the
  clip's sampling then picks among them), matched by (natural) order;
- one mask image for the first sampled frame, which is carried to the other frames along
  the clip's optical flow (flow.py: OpenCV's DIS, no learned weights).

Each is framed as the frames are, and read as L 0/255: a picture's alpha channel where it
has one, else its grey levels above half. Prepare stores them beside the frames; local
blend then keeps what they say (`--blend-mask`).

A mask says where the old object is, not what shape the new one takes: `object_region`
grows each frame's mask to a region (its bounding box or convex hull, scaled about the
box's centre), inside which the edit's own attention to the new word draws the outline
(control/blend.py). An occluder that cuts the mask does not cut its hull or box.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from livecli.errors import InputError
from livecli.flow import carry_mask
from livecli.metrics import mask_tensor
from livecli.video import (
    IMAGE_SUFFIXES,
    ClipInfo,
    Framing,
    as_mask,
    binarized,
    folder_files,
    load_mask,
    probe_clip,
    same_aspect,
    sample_frames,
    shown_path,
    source_problem,
)

FIRST_FRAME, FOLDER, VIDEO = "first frame, carried by optical flow", "a folder of masks", "a mask video"
"""How the masks were given, as the prepare record says it."""


@dataclass(frozen=True)
class Sampling:
    """Which frames of the clip were sampled: what a mask video or a whole-clip folder must match."""

    frames: int | None
    stride: int
    start: float
    duration: float | None


@dataclass(frozen=True)
class ClipMasks:
    masks: list[Image.Image]
    """L 0/255, one per sampled frame, at the frames' size."""
    given_as: str

    @property
    def coverage(self) -> float:
        return float(np.mean([np.asarray(mask) > 0 for mask in self.masks]))


def _problem(path: Path, message: str, hint: str) -> InputError:
    return InputError(f"--mask {shown_path(path)} {message}", hint=hint)


def read_clip_masks(
    path: Path, frames: list[Image.Image], framing: Framing, info: ClipInfo, sampling: Sampling
) -> ClipMasks:
    """The masks `path` gives for the sampled `frames`; one line for a mask that is missing,
    the wrong length or empty."""
    problem = source_problem(path, folder_allowed=True)
    if problem:
        raise _problem(path, problem, "pass a mask video, a folder of mask PNGs or one PNG for the first frame")
    count = len(frames)
    if path.is_dir():
        files = [file for file in folder_files(path) if file.suffix.lower() in IMAGE_SUFFIXES]
        if len(files) == count:
            chosen = files
        elif info.frames is not None and len(files) == info.frames:  # one per frame of the whole clip
            first = round(sampling.start * info.fps)
            last = len(files) if sampling.duration is None else first + round(sampling.duration * info.fps)
            chosen = files[first : last : sampling.stride][:count]
        else:
            whole = f" or {info.frames} for the whole clip" if info.frames else ""
            raise _problem(
                path,
                f"holds {len(files)} masks; the sampled clip has {count} frames",
                f"give one mask per sampled frame ({count}){whole}, in order",
            )
        masks, given_as = [framed(check_size(file, load_mask(file), info), framing) for file in chosen], FOLDER
    elif path.suffix.lower() in IMAGE_SUFFIXES - {".gif"}:
        first = framed(check_size(path, load_mask(path), info), framing)
        if not np.asarray(first).any():
            raise _problem(path, "is empty: no pixel is above half", "paint the object white (or opaque) on black")
        masks, given_as = carry_mask(first, frames), FIRST_FRAME
    else:
        shown = probe_clip(path)
        check_size(path, Image.new("L", (shown.width, shown.height)), info)
        try:
            sampled = sample_frames(
                path, sampling.frames, framing, sampling.stride, sampling.start, duration=sampling.duration
            )
        except InputError:  # its own words name the clip's flags; the mask is what is short
            sampled = None
        if sampled is None or len(sampled.frames) != count:
            length = f" of {shown.frames} frames" if shown.frames else ""
            short = (
                f"is a mask video{length}, too short for the clip's {count} sampled frames"
                if sampled is None
                else f"gives {len(sampled.frames)} frames with the clip's sampling; the clip gives {count}"
            )
            raise _problem(path, short, "pass a mask video as long as the clip, at its frame rate")
        masks, given_as = [as_mask(frame) for frame in sampled.frames], VIDEO
    if not any(np.asarray(mask).any() for mask in masks):
        raise _problem(path, "is empty in every frame: no pixel is above half", "paint the object white on black")
    return ClipMasks(masks, given_as)


def check_size(path: Path, mask: Image.Image, info: ClipInfo) -> Image.Image:
    """A mask must show the clip's picture: its size, or a scaled copy of it (the same
    aspect ratio, to 1 %), else it would be framed onto other pixels."""
    if not same_aspect(mask.size, (info.width, info.height)):
        raise _problem(
            path,
            f"is {mask.width}×{mask.height}, the clip {info.width}×{info.height}",
            "give masks of the clip's size (or scaled to it, keeping its aspect ratio)",
        )
    return mask


def framed(mask: Image.Image, framing: Framing) -> Image.Image:
    """A mask framed as the frames are (cropped to cover), L 0/255."""
    return binarized(framing(mask.convert("L")))


def latent_cells(masks: list[Image.Image], latent_size: tuple[int, int], grow: int) -> torch.Tensor:
    """[N, 1, h, w] 0/1: the latent cells any object pixel of each mask (L 0/255) falls in,
    grown by `grow` cells (a max-pool): what a mask means at the latents' resolution, for
    the image objective's loss weights and for local blend."""
    cells = (F.adaptive_avg_pool2d(mask_tensor(masks), latent_size) > 0).float()
    return F.max_pool2d(cells, kernel_size=2 * grow + 1, stride=1, padding=grow)


RegionShape = Literal["box", "hull"]


def object_region(mask: Image.Image, shape: RegionShape, grow: float) -> Image.Image:
    """The region (L 0/255) where the edit may draw the new object, from the old one's mask:
    its bounding box or convex hull, scaled about the box's centre by 1 + 2·`grow` (so each
    side of the box moves out by `grow` × its width or height), within the frame. Empty
    where the mask is: the object is out of sight there."""
    points = cv2.findNonZero(np.asarray(mask))
    if points is None:
        return Image.new("L", mask.size, 0)
    points = points.reshape(-1, 2).astype(np.float64)
    low, high = points.min(axis=0) - 0.5, points.max(axis=0) + 0.5  # pixel edges, not centres
    if shape == "box":
        outline = np.array([low, (high[0], low[1]), high, (low[0], high[1])])
    else:
        corners = (points[:, None, :] + np.array([(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)])).reshape(-1, 2)
        outline = cv2.convexHull(corners.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    centre = (low + high) / 2
    polygon = centre + (outline - centre) * (1 + 2 * grow)
    return Image.fromarray(np.where(inside_convex(polygon, mask.size), 255, 0).astype(np.uint8))


def inside_convex(polygon: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[H, W] bool: the pixels of a W×H frame whose centres lie inside (or on) the convex
    `polygon` [n, 2] (x, y; pixel i's centre at i): on the inner side of every edge."""
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    ahead = np.roll(polygon, -1, axis=0)
    turn = np.sign(np.sum(polygon[:, 0] * ahead[:, 1] - ahead[:, 0] * polygon[:, 1])) or 1.0  # its orientation
    inside = np.ones((height, width), bool)
    for (x0, y0), (x1, y1) in zip(polygon, ahead, strict=True):
        inside &= turn * ((x1 - x0) * (ys - y0) - (y1 - y0) * (xs - x0)) >= 0
    return inside
