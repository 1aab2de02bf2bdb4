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

An edit is planned, then sampled: `plan_edit` turns an EditConfig into everything the
sampling needs (prompts, their embeddings, the schedule, the attention control, where the
source comes from), and `sample_edit` runs the plan from x_T. The edit stage, the tests
and the benchmarks call the same two.

What a plan's extensions do (each off in the paper's method):

- `pin_source` keeps the source branch on the inverted latents and moves the edit by the
  same correction (Direct Inversion, Ju et al. 2023);
- `latent_prompt` "reference" gives the edit's conditional branch the reference's latents
  as latent prompt instead of the trained one (the source keeps the trained one);
  "swapped" does the same and gives both unconditional branches the trained latent
  prompt instead of the reference's;
- `keeps_clip` makes local blend keep the clip's own inverted latents outside the mask
  instead of the source branch's, which drift from the clip under guidance (blended
  latent diffusion's rule);
- with the source from the inversion (`source_branch` "inversion") the edit runs alone:
  the source's attention is what the inversion stored (`plan.control.cached`), and its
  latents are the clip's inverted ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from livecli import ddim
from livecli.config import BlendBackground, EditConfig, EditLatentPrompt, SourceBranch
from livecli.control.attention import AttentionControl, Batch, controlled, cross_attention_factors
from livecli.control.blend import LocalBlend, downsampled, pick_factor
from livecli.control.prompts import EditPrompts, edit_prompts, edit_words
from livecli.control.source_attention import AttentionPlan, CachedSource, layer_tokens
from livecli.errors import ProjectError
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
    unconditional: torch.Tensor | None = None,
) -> torch.Tensor:
    """ε for V videos [V, F, 4, h, w] under their prompts `text` [V, 77, d], guided.

    The UNet sees one batch: the V unconditional videos first, then the V conditional
    ones (just the conditional ones when the guidance is 1, which needs no other).
    The conditional videos' latent prompts are `conditional` [V, 1, 4, h, w], by default
    the trained one (the paper); the unconditional ones get `unconditional` [1, 4, h, w],
    by default the reference's (the paper). `links`: for a window of a longer clip
    (windows.py).
    """
    videos = latents.shape[0]
    if model.latent_prompt is None:  # trained without one: plain guidance
        conditional = unconditional = None
    else:
        if conditional is None:
            conditional = model.latent_prompt.expand(videos, 1, *model.latent_prompt.shape[1:])
        unconditional = model.reference if unconditional is None else unconditional
        unconditional = unconditional.expand(videos, 1, *unconditional.shape[1:])
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


def branch_batch(guidance: float, source_branch: SourceBranch = "sample") -> Batch:
    """Where guided_noise puts the source's and the edit's conditional videos (with the
    source from the inversion: the edit's alone)."""
    if source_branch == "inversion":
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
class EditPlan:
    """Everything an edit samples with, decided before its first step (`plan_edit`)."""

    prompts: EditPrompts
    texts: torch.Tensor
    """The source and target prompts' embeddings [2, 77, d]."""
    null: torch.Tensor
    """The empty prompt's [1, 77, d], for guidance."""
    schedule: ddim.DdimSchedule
    control: AttentionControl
    guidance: float
    blend_from: int
    """Local blend keeps the background after each step from this one on."""
    eta: float
    seed: int
    latent_prompt: EditLatentPrompt
    source_branch: SourceBranch
    blend_background: BlendBackground
    pin_source: bool
    windows: list[Window] | None = None

    @property
    def keeps_clip(self) -> bool:
        """The background comes from the clip's inverted latents: asked for, or the inversion is the source."""
        return self.blend_background == "clip" or self.source_branch == "inversion"

    @property
    def needs_trajectory(self) -> bool:
        """Sampling reads the inversion's trajectory (`sample_edit`'s `trajectory`)."""
        return self.pin_source or self.keeps_clip


def plan_edit(
    model: TrainedModel,
    config: EditConfig,
    source_prompt: str,
    frames: int,
    latent_size: tuple[int, int],
    windows: list[Window] | None = None,
    stored: CachedSource | None = None,
    given: torch.Tensor | None = None,
    region: torch.Tensor | None = None,
) -> EditPlan:
    """The edit `config` asks for, of a clip of `frames` latents of `latent_size` under
    `source_prompt`, in `windows` (default: the whole clip as one); `stored`, the source's
    attention an inversion stored, for an edit from the inversion; `given`, the object
    masks [F, 1, h, w] local blend reads under --blend-mask given or both, and `region`,
    their grown regions (None under --mask-region outline)."""
    if (config.source_branch == "inversion") != (stored is not None):
        raise ValueError("an edit from the inversion reads the attention it stored: pass `stored`, and only then")
    replacements, keep, blend = edit_words(config)
    prompts = edit_prompts(model.tokenizer, source_prompt, replacements, model.token, keep, blend)
    control = make_control(model, prompts, config, frames, latent_size, given, region)
    control.cached = stored
    return EditPlan(
        prompts=prompts,
        texts=model.encode([prompts.source, prompts.target]),
        null=model.encode([""]),
        schedule=ddim.ddim_schedule(model.scheduler_config, config.steps),
        control=control,
        guidance=config.guidance,
        blend_from=int(config.blend_start * config.steps),
        eta=config.eta,
        seed=config.seed,
        latent_prompt=config.latent_prompt,
        source_branch=config.source_branch,
        blend_background=config.blend_background,
        pin_source=config.pin_source,
        windows=windows,
    )


def make_control(
    model: TrainedModel,
    prompts: EditPrompts,
    config: EditConfig,
    frames: int,
    latent_size: tuple[int, int],
    given: torch.Tensor | None = None,
    region: torch.Tensor | None = None,
) -> AttentionControl:
    """Word swap and local blend as `config` sets them (paper §3.4)."""
    blend = None
    mode = config.blend_mask if config.blend_reads_masks else "attention"
    if mode != "attention" and given is None:
        raise ValueError(f"--blend-mask {mode} reads the object masks: pass `given`")
    outline = mode == "given" and config.mask_region == "outline"
    if mode == "given" and (region is None) != outline:
        raise ValueError("--mask-region box or hull reads the masks' regions: pass `region`, and only then")
    if not config.no_blend:
        if not outline and not prompts.source_blend and not prompts.target_blend:
            raise ProjectError(
                "local blend has no word to make its mask from", hint="name words with --blend, or pass --no-blend"
            )
        factor = pick_factor(cross_attention_factors(model.video_unet), max(latent_size))
        blend = LocalBlend(
            frames, latent_size, factor, prompts.source_blend, prompts.target_blend,
            config.blend_threshold, config.blur_sigma, latent_prompt=model.latent_prompt is not None,
            scale=config.blend_scale, given=given if mode != "attention" else None, mode=mode,
            region=region if mode == "given" else None, pool=config.blend_pool,
        )  # fmt: skip
    batch = branch_batch(config.guidance, config.source_branch)
    return AttentionControl(
        prompts, config.steps, config.cross_replace, config.self_replace, batch, blend,
        **replaced_layers(config, latent_size),
    )  # fmt: skip


def replaced_layers(config: EditConfig, latent_size: tuple[int, int]) -> dict[str, int]:
    """The --*-replace-layers rules as the most query positions of a layer each replaces at."""
    return {
        "self_tokens": layer_tokens(latent_size, config.self_replace_layers),
        "cross_tokens": layer_tokens(latent_size, config.cross_replace_layers),
        "temporal_tokens": layer_tokens(latent_size, config.temporal_replace_layers),
    }


def source_attention_plan(
    model: TrainedModel, prompt: str, config: EditConfig, latent_size: tuple[int, int]
) -> AttentionPlan:
    """What an edit with `config`'s word-swap and self-replace steps needs an inversion under
    `prompt` to store of the source's attention."""
    words = len(model.tokenizer(prompt).input_ids) - 1  # the start token and the words, not the end token
    factor = pick_factor(cross_attention_factors(model.video_unet), max(latent_size))
    height, width = (downsampled(side, factor) for side in latent_size)
    steps = config.steps
    blend_tokens = 0 if config.no_blend else height * width
    return AttentionPlan(
        int(config.cross_replace * steps), int(config.self_replace * steps), words, blend_tokens,
        **replaced_layers(config, latent_size),
    )  # fmt: skip


@dataclass
class EditOutcome:
    source: torch.Tensor
    """The source branch's final latents [F, 4, h, w]."""
    edit: torch.Tensor
    """The edit's final latents [F, 4, h, w]."""
    mask: torch.Tensor | None
    """The last blend mask [F, 1, h, w], or None when no step was blended."""
    peak_stored_bytes: int


def branch_latent_prompts(
    model: TrainedModel, latent_prompt: EditLatentPrompt, one_branch: bool
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(the conditional branches' latent prompts, one a branch; the unconditional's), None
    where the trained ones stay: `reference` gives the edit's conditional branch the
    reference's latents, `swapped` also gives the unconditional branches the trained one."""
    if model.latent_prompt is None or latent_prompt == "trained":
        return None, None
    conditional = torch.stack([model.latent_prompt, model.reference])
    unconditional = model.latent_prompt if latent_prompt == "swapped" else None
    return (conditional[1:] if one_branch else conditional), unconditional


def predictor(
    model: TrainedModel,
    plan: EditPlan,
    texts: torch.Tensor,
    conditional: torch.Tensor | None,
    unconditional: torch.Tensor | None,
    after_window: Callable[[Window], None] | None,
) -> Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]:
    """The guided noise of a step, window by window, under the plan's attention control
    (which each window points at its frames: the blend's maps, the stored source's)."""
    control = plan.control

    def focus(window: Window) -> None:
        if control.blend is not None:
            control.blend.focus(window)
        if control.cached is not None:
            control.cached.focus(window)

    def predict(latents: torch.Tensor, timestep: torch.Tensor, index: int) -> torch.Tensor:
        control.begin_step(index)

        def window_noise(batch, links):
            alpha = plan.schedule.alphas[index]
            return guided_noise(
                model, batch, timestep, alpha, texts, plan.null, plan.guidance, conditional, links, unconditional
            )

        return windowed_noise(window_noise, latents, plan.windows, focus, after_window)

    return predict


def sample_edit(
    model: TrainedModel,
    plan: EditPlan,
    start: torch.Tensor,
    trajectory: list[torch.Tensor] | None = None,
    watch: StepWatcher | None = None,
    after_window: Callable[[Window], None] | None = None,
) -> EditOutcome:
    """Source and edit from x_T [F, 4, h, w] side by side, as `plan` says (the module's
    "What a plan's extensions do"). After each step from `plan.blend_from` on, local blend
    keeps the source's latents outside the mask; `trajectory` is the inversion's, which the
    plan may read (`plan.needs_trajectory`). The plan's windows run in order at each step,
    and local blend records each window's maps for its frames."""
    control = plan.control
    blend: LocalBlend | None = control.blend
    one_branch = plan.source_branch == "inversion"
    if plan.needs_trajectory and trajectory is None:
        raise ValueError("this edit reads the inversion's trajectory: pass `trajectory`")
    clip_background = trajectory if plan.keeps_clip else None
    pinned = trajectory if plan.pin_source else None
    texts, schedule = plan.texts, plan.schedule
    mask: torch.Tensor | None = None
    conditional, unconditional = branch_latent_prompts(model, plan.latent_prompt, one_branch)
    if one_branch:
        texts = texts[1:]

    predict = predictor(model, plan, texts, conditional, unconditional, after_window)

    def after_step(index: int, latents: torch.Tensor) -> torch.Tensor:
        nonlocal mask
        if one_branch:
            source, edit = clip_background[index + 1].to(latents), latents[0]
        else:
            source, edit = latents[0], latents[1]
        if pinned is not None:
            exact = pinned[index + 1].to(source)
            edit, source = edit + (exact - source), exact
        if blend is not None and index >= plan.blend_from:
            mask = blend.mask()
            kept = source if clip_background is None else clip_background[index + 1].to(source)
            edit = LocalBlend.apply(kept, edit, mask)
        both = torch.stack([source, edit])
        if watch is not None:
            watch(index, both, mask if blend is not None and index >= plan.blend_from else None)
        return edit.unsqueeze(0) if one_branch else both

    videos = start.unsqueeze(0) if one_branch else torch.stack([start, start])
    generator = torch.Generator().manual_seed(plan.seed)
    with controlled(model.video_unet, control):
        final = ddim.sample(predict, videos, schedule, after_step, eta=plan.eta, generator=generator)
    if one_branch:
        return EditOutcome(clip_background[-1].to(final), final[0], mask, control.peak_stored_bytes)
    return EditOutcome(final[0], final[1], mask, control.peak_stored_bytes)
