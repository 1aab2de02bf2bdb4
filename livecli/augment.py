"""Reference augmentation for the image objective (`--reference-augment`): the object seen at
other sizes, places, angles and mirrored, never in other colours, so that the learned token
holds the object rather than one photograph of it (Textual Inversion and DreamBooth train on
several photos; from one, these are the views it can fake).

It works on the VAE latents, which are spatial (each cell a patch of 8×8 pixels): a random
scale, shift and rotation through one bilinear resampling, then a horizontal flip. Pixels
drawn from outside the picture repeat it mirrored, as the framing's margins do; the loss
weights of a reference mask move with the picture and are 0 outside it. Latent-space
resampling is not the VAE of a resampled picture, but it costs nothing per step, where
encoding a new view each step would cost a VAE pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Strength:
    scale: tuple[float, float]
    """The range of the zoom (above 1: the object larger)."""
    degrees: float
    """The rotation, at most this either way."""
    shift: float
    """The shift, at most this fraction of the side either way."""


STRENGTHS: dict[str, Strength] = {
    "light": Strength(scale=(0.9, 1.1), degrees=5.0, shift=0.05),
    "strong": Strength(scale=(0.75, 1.25), degrees=15.0, shift=0.1),
}


def augment(
    latents: torch.Tensor, weights: torch.Tensor | None, strength: Strength, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One random view of reference latents [1, 4, h, w] and their loss weights [1, 1, h, w]
    (or None), drawn from `generator` (5 numbers a call)."""
    zoom_draw, angle_draw, dx, dy, flip_draw = torch.rand(5, generator=generator).tolist()
    low, high = strength.scale
    zoom = low + (high - low) * zoom_draw
    angle = math.radians((2 * angle_draw - 1) * strength.degrees)
    height, width = latents.shape[-2:]
    cos, sin = math.cos(angle), math.sin(angle)
    # affine_grid maps each output position to the input position it reads, in coordinates
    # normalised to [-1, 1] per axis: the rotation is corrected for the aspect ratio.
    theta = torch.tensor(
        [
            [cos / zoom, -sin * height / width / zoom, 2 * (2 * dx - 1) * strength.shift],
            [sin * width / height / zoom, cos / zoom, 2 * (2 * dy - 1) * strength.shift],
        ],
        dtype=torch.float32,
    ).unsqueeze(0)
    grid = F.affine_grid(theta, [1, 1, height, width], align_corners=False).to(latents.device)
    viewed = F.grid_sample(latents.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False).to(
        latents.dtype
    )
    moved = None
    if weights is not None:
        moved = F.grid_sample(weights.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        moved = (moved > 0.5).to(weights.dtype)
    if flip_draw < 0.5:
        viewed = viewed.flip(-1)
        moved = None if moved is None else moved.flip(-1)
    return viewed, moved
