"""Local blend (Prompt-to-Prompt §3.3) with LIVE's Gaussian blur (paper §3.4).

The blend words' cross-attention at the layers of one resolution (those whose maps are
nearest 16×16: Prompt-to-Prompt's for 512 px frames) is summed over heads, words, layers
and steps as it is produced: the only maps kept between UNet calls are these sums,
`[2, frames, h, w]`, whatever the number of steps. After each step from `--blend-start`
on, the mask is made from the sums so far:

    max-pool 3×3 (--blend-pool) → upsample to the latents → scale the frame's range to [0, 1] → > threshold
    → OR over source and edit → Gaussian blur (σ in latent pixels)

and the edit keeps the source branch's latents where the mask is 0 (with
`--blend-background clip`, the clip's inverted latents of the step):
`edit ← source + mask · (edit − source)`.

With object masks given to prepare (`--blend-mask given`), a mask says where, not what
shape: each frame's mask grown to a region (its box or hull, `--mask-region`, grown by
`--mask-grow`; masks.object_region) bounds the thresholded attention, and the given mask
itself is always in, so the old object is always replaced:

    (attention > threshold, OR over source and edit) AND region, OR given

then blurred the same way. `--mask-region outline` takes the given mask alone as the
mask (the new object must then fit the old one's outline); `both` is either of the
attention and the given mask, anywhere.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from livecli.windows import Window

BLEND_MAP_SIDE = 16
"""The blend layers' map side Prompt-to-Prompt uses at 512 px (64×64 latents, downsampled ×4)."""


def downsampled(size: int, factor: int) -> int:
    """A side after the UNet's stride-2 convolutions (each rounds up) reach `factor`."""
    while factor > 1:
        size, factor = math.ceil(size / 2), factor // 2
    return size


def pick_factor(available: set[int], latent_side: int) -> int:
    """The downsampling (of those the UNet has cross-attention at) whose maps are nearest
    16×16: ×4 for SD at 512 px, ×1 for 16×16 latents (the shapes model at 64 px)."""
    wanted = max(latent_side / BLEND_MAP_SIDE, 1.0)
    return min(sorted(available), key=lambda f: abs(math.log2(f) - math.log2(wanted)))


def gaussian_blur(mask: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [n, 1, h, w] with a kernel of radius ⌈3σ⌉, edges replicated.

    The kernel is finite, so latents farther than its radius from the thresholded mask
    stay exactly 0: the edit there is the source's, bit for bit.
    """
    radius = math.ceil(3 * sigma)
    offsets = torch.arange(-radius, radius + 1, dtype=mask.dtype, device=mask.device)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    padded = F.pad(mask, (radius, radius, radius, radius), mode="replicate")
    blurred = F.conv2d(padded, kernel.view(1, 1, 1, -1))
    return F.conv2d(blurred, kernel.view(1, 1, -1, 1))


class LocalBlend:
    def __init__(
        self,
        frames: int,
        latent_size: tuple[int, int],
        factor: int,
        source_tokens: tuple[int, ...],
        target_tokens: tuple[int, ...],
        threshold: float,
        sigma: float,
        latent_prompt: bool = True,
        scale: str = "range",
        given: torch.Tensor | None = None,
        mode: str = "attention",
        region: torch.Tensor | None = None,
        pool: int = 3,
    ):
        self.frames = frames
        self.first = 1 if latent_prompt else 0
        """Where the video's frames begin in the maps: after the latent prompt, if any."""
        self.latent_size = latent_size
        self.map_size = tuple(downsampled(side, factor) for side in latent_size)
        self.tokens = self.map_size[0] * self.map_size[1]
        self.source_tokens = list(source_tokens)
        self.target_tokens = list(target_tokens)
        self.threshold = threshold
        self.sigma = sigma
        self.pool = pool
        """The max-pool window over the maps (Prompt-to-Prompt's 3×3)."""
        self.scale = scale
        """'range' (minimum to 0, maximum to 1) or 'max' (divided by the maximum: Prompt-to-Prompt)."""
        self.sums: torch.Tensor | None = None
        """[2, frames, tokens]: source's and edit's blend-word attention, summed so far."""
        self.window: Window | None = None
        """The window of the clip that the UNet runs now (None: the whole clip at once)."""
        self.given = None if given is None else given > 0.5
        """[frames, 1, h, w] bool: the object masks given to prepare, or None."""
        self._given_mask: torch.Tensor | None = None
        """`given` mode: the mask, blurred once (it does not change from step to step)."""
        self.mode = mode
        """'attention', 'given' or 'both': what makes the mask (--blend-mask)."""
        self.region = None if region is None else region > 0.5
        """`given` mode: [frames, 1, h, w] bool, where the attention may add to the given
        masks (their grown regions); None: the given masks alone are the mask (`outline`)."""

    def focus(self, window: Window) -> None:
        """The maps recorded next are those of `window`'s frames."""
        self.window = window

    def wants(self, query_tokens: int) -> bool:
        """Whether a cross-attention layer with this many query tokens is a blend layer."""
        return query_tokens == self.tokens

    def record(self, source_maps: torch.Tensor, edit_maps: torch.Tensor) -> None:
        """Add one layer's maps, [frames (latent prompt first, if any), heads, queries, 77] each.

        In a window, only its run's frames count (the anchor z_1 in front is context),
        weighted as the window's predictions are where runs overlap."""
        first = self.first + (1 if self.window is not None and self.window.anchored else 0)
        source = source_maps[first:, :, :, self.source_tokens].float().sum(dim=(1, 3))
        edit = edit_maps[first:, :, :, self.target_tokens].float().sum(dim=(1, 3))
        both = torch.stack([source, edit])
        if self.sums is None:
            self.sums = both.new_zeros(2, self.frames, both.shape[-1])
        if self.window is None:
            self.sums += both
            return
        weights = torch.tensor(self.window.weights, dtype=both.dtype, device=both.device)
        self.sums[:, self.window.start : self.window.stop] += both * weights.view(1, -1, 1)

    @property
    def stored_bytes(self) -> int:
        return 0 if self.sums is None else self.sums.numel() * self.sums.element_size()

    def mask(self) -> torch.Tensor:
        """[frames, 1, h, w] in [0, 1] at the latents' size, from the maps recorded so far
        and/or the given masks."""
        if self.mode == "given" and self.region is None:
            if self._given_mask is None:
                given = self.given.float()
                self._given_mask = gaussian_blur(given, self.sigma) if self.sigma > 0 else given
            return self._given_mask
        height, width = self.latent_size
        if self.sums is None:
            raise RuntimeError("no blend layer ran: the mask has no maps to come from")
        maps = self.sums.reshape(2 * self.frames, 1, *self.map_size)
        maps = F.max_pool2d(maps, kernel_size=self.pool, stride=1, padding=self.pool // 2)
        maps = F.interpolate(maps, size=(height, width))
        # Prompt-to-Prompt divides by the maximum alone: in SD the object word's attention
        # off the object is near 0, so that is the same as this. A smaller model spreads a
        # floor of attention everywhere (half the peak in `shapes`), which this removes.
        floor = maps.amin(dim=(2, 3), keepdim=True) if self.scale == "range" else torch.zeros_like(maps[..., :1, :1])
        maps = (maps - floor) / (maps.amax(dim=(2, 3), keepdim=True) - floor).clamp_min(torch.finfo(maps.dtype).tiny)
        chosen = maps > self.threshold
        chosen = chosen[: self.frames] | chosen[self.frames :]
        if self.mode == "given":
            chosen = chosen & self.region.to(chosen.device)
        if self.mode != "attention":
            chosen = chosen | self.given.to(chosen.device)
        mask = chosen.float()
        return gaussian_blur(mask, self.sigma) if self.sigma > 0 else mask

    @staticmethod
    def apply(source: torch.Tensor, edit: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Outside the mask the edit becomes the source: source + mask · (edit − source)."""
        return source + mask.to(edit.dtype) * (edit - source)
