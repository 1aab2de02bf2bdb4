"""A whole clip through the video UNet in windows of W frames, memory of one window.

LIVE's frame attention lets frame i see `[z_lp, z_1, z_{i-1}]` only (paper Eq. 5): the
latent prompt, the clip's first frame and its previous frame. So a clip runs window by
window, in order, at each DDIM step, and every frame's frame attention is what it would
be over the whole clip:

- every window is `[z_lp, z_1, z_s … z_{s+W-1}]`: the latent prompt and the clip's first
  frame (the anchor every frame attends to) in front of a run of W consecutive frames;
  the first window's run begins at z_1 itself;
- a run's first frame z_s attends to the keys and values its previous frame z_{s-1} had
  at the same layer of the window before, at the same step (`FrameChain`);
- temporal attention works inside a window. Runs overlap by `overlap` frames, and a
  frame's predictions from two windows are blended with linear ramps across the overlap,
  so that no seam shows where the temporal context changes.

With the temporal attentions off, the windowed prediction equals the whole clip's to
float error; with W at least the clip's length there is one window, which is the whole
clip, bit for bit. Training draws windows of the same shape (`draw_training_window`),
so that every frame is equally often in the loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from livecli.models.attention import FrameChain, WindowLinks

WindowPredictor = Callable[[torch.Tensor, WindowLinks | None], torch.Tensor]
"""(latents of a window's frames [V, n, 4, h, w], its links) -> ε of those frames."""


@dataclass(frozen=True)
class Window:
    start: int
    """The run's first frame (0-based: 0 is z_1)."""
    stop: int
    """One past the run's last frame."""
    keep: int | None = None
    """The clip frame whose keys and values the next window's first frame attends to."""
    weights: tuple[float, ...] = ()
    """How much the run's predictions count in the clip's, frame by frame (ramps across overlaps)."""

    @property
    def anchored(self) -> bool:
        """z_1 goes in front of the run, as context: the run does not begin with it."""
        return self.start > 0

    @property
    def frames(self) -> list[int]:
        """The clip frames of the window's batch, in order."""
        return ([0] if self.anchored else []) + list(range(self.start, self.stop))

    def links(self, chain: FrameChain | None) -> WindowLinks | None:
        if not self.anchored and self.keep is None:
            return None
        offset = 1 if self.anchored else 0
        restart = offset if self.start > 1 else None  # after z_1 itself, the run's previous frame is z_1
        keep = None if self.keep is None else self.frames.index(self.keep)
        return WindowLinks(restart=restart, keep=keep, chain=chain)


def fits(frames: int, window: int) -> bool:
    """Whether a clip of `frames` frames runs as one window of `window`: then the window is
    the whole clip, and its size and overlap change nothing."""
    return frames <= window


def window_settings(frames: int, window: int, overlap: int | None = None) -> dict[str, int]:
    """The window's settings (and the overlap's, where there is one) as a stage's record
    keeps them: only when the clip needs more than one window."""
    if fits(frames, window):
        return {}
    return {"window": window} if overlap is None else {"window": window, "overlap": overlap}


def plan_windows(frames: int, window: int, overlap: int) -> list[Window]:
    """The windows of a clip of `frames` frames: runs of `window` frames from the first to
    the last frame, as few as share at least `overlap` frames with their neighbours, spread
    evenly. A frame's weights across its windows sum to 1."""
    if fits(frames, window):
        return [Window(0, frames, weights=(1.0,) * frames)]
    count = math.ceil((frames - overlap) / (window - overlap))
    starts = [round(k * (frames - window) / (count - 1)) for k in range(count)]
    spans = [(start, start + window) for start in starts]
    raw = []
    for index, (start, stop) in enumerate(spans):
        before = spans[index - 1][1] - start if index else 0  # frames shared with the previous run
        after = stop - spans[index + 1][0] if index + 1 < len(spans) else 0
        raw.append([min(1.0, (f - start + 1) / (before + 1), (stop - f) / (after + 1)) for f in range(start, stop)])
    totals = [0.0] * frames
    for (start, _), weights in zip(spans, raw, strict=True):
        for offset, weight in enumerate(weights):
            totals[start + offset] += weight
    windows = []
    for index, ((start, stop), weights) in enumerate(zip(spans, raw, strict=True)):
        next_start = spans[index + 1][0] if index + 1 < len(spans) else None
        keep = next_start - 1 if next_start is not None and next_start > 1 else None
        normalised = tuple(weight / totals[start + offset] for offset, weight in enumerate(weights))
        windows.append(Window(start, stop, keep, normalised))
    return windows


def windowed_noise(
    predict: WindowPredictor,
    latents: torch.Tensor,
    windows: list[Window] | None = None,
    on_window: Callable[[Window], None] | None = None,
    after_window: Callable[[Window], None] | None = None,
) -> torch.Tensor:
    """ε of a whole clip [V, F, 4, h, w], window by window (None: the clip as one window),
    blended where runs overlap.

    `on_window` is told which window runs next (local blend records its maps there) and
    `after_window` when it is done (the progress bar).
    """
    windows = windows or plan_windows(latents.shape[1], latents.shape[1], 0)
    if len(windows) == 1 and not windows[0].anchored:
        if on_window is not None:
            on_window(windows[0])
        noise = predict(latents, None)
        if after_window is not None:
            after_window(windows[0])
        return noise
    chain = FrameChain()
    total = torch.zeros_like(latents)
    for window in windows:
        if on_window is not None:
            on_window(window)
        noise = predict(latents[:, window.frames], window.links(chain))
        chain.next_window()
        run = noise[:, 1:] if window.anchored else noise
        weights = torch.tensor(window.weights, dtype=latents.dtype, device=latents.device)
        total[:, window.start : window.stop] += run * weights.view(1, -1, *([1] * (run.ndim - 2)))
        if after_window is not None:
            after_window(window)
    return total


def training_batch(frames: int, window: int) -> int:
    """The clip frames a training step runs at most: its W frames and, when the clip is
    longer than one window, z_1 and the run's previous frame in front as context."""
    return min(frames, window) + (0 if fits(frames, window) else 2)


@dataclass(frozen=True)
class TrainingWindow:
    """The frames one training step runs the video objective on, and which count in its loss."""

    frames: tuple[int, ...]
    """The clip frames of the batch, in order: context first, then the run."""
    counted: tuple[int, ...]
    """The batch positions whose loss counts (the rest is context)."""
    size: int
    """W: a step's loss is the sum of its counted frames' losses over W, so that every
    frame weighs the same whatever window it is drawn in."""
    restart: int | None = None
    """The video position of the context frame that begins the batch's run of consecutive
    frames (its own previous frame is not in the batch)."""

    @property
    def whole(self) -> bool:
        """Every frame of the batch counts: the whole clip as one window."""
        return len(self.counted) == len(self.frames)

    def links(self) -> WindowLinks | None:
        return None if self.restart is None else WindowLinks(restart=self.restart)


def training_window_at(frames: int, window: int, virtual_start: int) -> TrainingWindow:
    """The training window of a run of W frames beginning at `virtual_start`, which may lie
    before the clip's first frame or run past its last (-(W-1) … F-1).

    The frames of that run inside the clip count in the loss; the batch is the nearest run
    of W frames inside the clip, so its other frames are context. In front of it come z_1,
    the anchor every frame attends to, and the run's previous frame, so that the run's
    first frame attends to its true previous frame as it does in the edit; both are
    context, out of the loss.
    """
    start = min(max(virtual_start, 0), frames - window)
    run = list(range(start, start + window))
    context = ([0] if start > 0 else []) + ([start - 1] if start > 1 else [])
    batch = context + run
    counted = tuple(
        position
        for position, frame in enumerate(batch)
        if position >= len(context) and virtual_start <= frame < virtual_start + window
    )
    return TrainingWindow(tuple(batch), counted, window, restart=1 if start > 1 else None)


def draw_training_window(frames: int, window: int, generator: torch.Generator) -> TrainingWindow:
    """The window one training step runs the video objective on: the whole clip, drawing
    nothing, when it has at most W frames; else a run of W frames whose (virtual) start is
    drawn uniformly from -(W-1) … F-1, so that every frame counts in exactly W of the
    F+W-1 draws: each frame, the first and last included, is equally often in the loss
    (`training_window_at`)."""
    if fits(frames, window):
        every = tuple(range(frames))
        return TrainingWindow(every, every, frames)
    virtual_start = int(torch.randint(1 - window, frames, (1,), generator=generator))
    return training_window_at(frames, window, virtual_start)
