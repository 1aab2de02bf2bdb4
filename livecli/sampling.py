"""Sampling an edit from the inverted latents (paper §3.3 "Inference" and §3.4).

Classifier-free guidance with LIVE's latent-prompt scheme (Ho & Salimans 2022):

    ε = ε_θ(x_t, ∅, z_ref) + g · (ε_θ(x_t, prompt, z_lp) − ε_θ(x_t, ∅, z_ref))

the conditional branch with the trained latent prompt z_lp, the unconditional branch with
the reference image's latents z_ref as latent prompt. An edit runs the source prompt and
the target prompt side by side from the same x_T, under attention control
(control/attention.py) and local blend (control/blend.py); plain guided sampling is the
same loop with one video and no control. An edit from the inversion runs the edit alone:
the source's attention comes from what the inversion stored, its latents are the clip's
inverted ones (control/source_attention.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from livecli import ddim
from livecli.control.attention import AttentionControl, Batch, controlled
from livecli.control.blend import LocalBlend
from livecli.models.attention import WindowLinks
from livecli.models.trained import TrainedModel
from livecli.windows import Window, windowed_noise

StepWatcher = Callable[[int, torch.Tensor, torch.Tensor | None], None]
"""(step index, latents [2, F, 4, h, w] of source and edit after the step, mask or None)."""


def guided_noise(
    model: TrainedModel,
    latents: torch.Tensor,
    timestep: int,
    alpha: float,
    text: torch.Tensor,
    null: torch.Tensor,
    guidance: float,
    conditional: torch.Tensor | None = None,
    links: WindowLinks | None = None,
) -> torch.Tensor:
    """ε for V videos [V, F, 4, h, w] under their prompts `text` [V, 77, d], guided.

    The UNet sees one batch: the V unconditional videos first, then the V conditional
    ones (just the conditional ones when the guidance is 1, which needs no other).
    The conditional videos' latent prompts are `conditional` [V, 1, 4, h, w], by default
    the trained one (the paper); the unconditional ones get the reference's. `links`: for
    a window of a longer clip (windows.py).
    """
    videos = latents.shape[0]
    if model.latent_prompt is None:  # trained without one: plain guidance
        conditional = unconditional = None
    else:
        if conditional is None:
            conditional = model.latent_prompt.expand(videos, 1, *model.latent_prompt.shape[1:])
        unconditional = model.reference.expand(videos, 1, *model.reference.shape[1:])
    if guidance == 1:
        return model.noise(latents, timestep, alpha, text, conditional, links)
    noise = model.noise(
        torch.cat([latents, latents]),
        timestep,
        alpha,
        torch.cat([null.expand(videos, -1, -1), text]),
        torch.cat([unconditional, conditional]) if conditional is not None else None,
        links,
    )
    free, conditioned = noise.chunk(2)
    return free + guidance * (conditioned - free)


def branch_batch(guidance: float, source_branch: bool = True) -> Batch:
    """Where guided_noise puts the source's and the edit's conditional videos (without a
    source branch: the edit's alone)."""
    if not source_branch:
        return Batch(videos=1, source=None, edit=0) if guidance == 1 else Batch(videos=2, source=None, edit=1)
    return Batch(videos=2, source=0, edit=1) if guidance == 1 else Batch(videos=4, source=2, edit=3)


def guided_sample(
    model: TrainedModel,
    start: torch.Tensor,
    schedule: ddim.DdimSchedule,
    text: torch.Tensor,
    null: torch.Tensor,
    guidance: float,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    windows: list[Window] | None = None,
) -> torch.Tensor:
    """Plain guided DDIM sampling of one video from x_T [F, 4, h, w] under `text` [1, 77, d]."""

    def predict(latents, timestep, index):
        def window_noise(batch, links):
            return guided_noise(model, batch, timestep, schedule.alphas[index], text, null, guidance, links=links)

        return windowed_noise(window_noise, latents, windows)

    return ddim.sample(predict, start.unsqueeze(0), schedule, eta=eta, generator=generator)[0]


@dataclass
class EditOutcome:
    source: torch.Tensor
    """The source branch's final latents [F, 4, h, w]."""
    edit: torch.Tensor
    """The edit's final latents [F, 4, h, w]."""
    mask: torch.Tensor | None
    """The last blend mask [F, 1, h, w], or None when no step was blended."""
    peak_stored_bytes: int


def sample_edit(
    model: TrainedModel,
    start: torch.Tensor,
    schedule: ddim.DdimSchedule,
    texts: torch.Tensor,
    null: torch.Tensor,
    control: AttentionControl,
    guidance: float,
    blend_from: int,
    pinned: list[torch.Tensor] | None = None,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    watch: StepWatcher | None = None,
    edit_latent_prompt: str = "trained",
    clip_background: list[torch.Tensor] | None = None,
    windows: list[Window] | None = None,
    after_window: Callable[[Window], None] | None = None,
) -> EditOutcome:
    """Source and edit from x_T [F, 4, h, w] side by side; `texts` [2, 77, d] their prompts.

    After each step from `blend_from` on, local blend keeps the source's latents outside
    the mask. `pinned` (the inversion's trajectory) keeps the source branch on the
    inverted latents and moves the edit by the same correction (Direct Inversion,
    Ju et al. 2023): an extension, off in the paper's method. `edit_latent_prompt`
    "reference" gives the edit's conditional branch the reference's latents as latent
    prompt instead of the trained one (the source keeps the trained one): an extension too.
    `clip_background` (the inversion's trajectory) makes local blend keep the clip's own
    inverted latents outside the mask instead of the source branch's, which drift from
    the clip under guidance: an extension (blended latent diffusion's rule), off in the paper.
    `windows` (windows.py; default: the whole clip as one) run in order at each step, and
    local blend records each window's maps for its frames.

    With `control.cached` (the inversion's stored source attention) the edit runs alone:
    the source is the clip's inverted latents, `clip_background`, which must be given.
    """
    blend: LocalBlend | None = control.blend
    one_branch = control.cached is not None
    if one_branch and clip_background is None:
        raise ValueError("an edit from the inversion keeps the clip's inverted latents: pass clip_background")
    mask: torch.Tensor | None = None
    conditional = None
    if edit_latent_prompt == "reference" and model.latent_prompt is not None:
        conditional = torch.stack([model.latent_prompt, model.reference])
    if one_branch:
        texts = texts[1:]
        conditional = None if conditional is None else conditional[1:]

    def focus(window: Window) -> None:
        if blend is not None:
            blend.focus(window)
        if control.cached is not None:
            control.cached.focus(window)

    def predict(latents, timestep, index):
        control.begin_step(index)

        def window_noise(batch, links):
            alpha = schedule.alphas[index]
            return guided_noise(model, batch, timestep, alpha, texts, null, guidance, conditional, links)

        return windowed_noise(window_noise, latents, windows, focus, after_window)

    def after_step(index: int, latents: torch.Tensor) -> torch.Tensor:
        nonlocal mask
        if one_branch:
            source, edit = clip_background[index + 1].to(latents), latents[0]
        else:
            source, edit = latents[0], latents[1]
        if pinned is not None:
            exact = pinned[index + 1].to(source)
            edit, source = edit + (exact - source), exact
        if blend is not None and index >= blend_from:
            mask = blend.mask()
            kept = source if clip_background is None else clip_background[index + 1].to(source)
            edit = LocalBlend.apply(kept, edit, mask)
        both = torch.stack([source, edit])
        if watch is not None:
            watch(index, both, mask if blend is not None and index >= blend_from else None)
        return edit.unsqueeze(0) if one_branch else both

    videos = start.unsqueeze(0) if one_branch else torch.stack([start, start])
    with controlled(model.video_unet, control):
        final = ddim.sample(predict, videos, schedule, after_step, eta=eta, generator=generator)
    if one_branch:
        return EditOutcome(clip_background[-1].to(final), final[0], mask, control.peak_stored_bytes)
    return EditOutcome(final[0], final[1], mask, control.peak_stored_bytes)
