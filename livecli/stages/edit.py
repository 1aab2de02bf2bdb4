"""`live edit --replace A=B`: sample the edited video from the inversion (paper §3.3–3.4).

Runs (or reuses) the inversion with the edit's number of steps, then samples the source
and the target prompt side by side under attention control and local blend, and writes

    edits/<name>/
      edit.mp4            H.264 at the clip's sampled frame rate, with the clip's sound of the
                          span (AAC) when it has sound; --output-size source: upscaled to
                          the clip's own resolution
      edit.gif            up to 64 frames (a longer GIF is tens of MB)
      compare.mp4         source | edit, side by side, with the sound
      frames/0000.png …   the edited frames
      masks/0000.png …    the last local-blend mask of each frame (none with --no-blend)
      record.toml         every setting, the prompts, the inversion used

The name defaults to a slug of the replacements; an existing name with other settings
is refused unless `--force`, the same settings are "up to date".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from livecli import progress
from livecli.config import EditConfig, InvertConfig, ModelConfig
from livecli.control.prompts import EditPrompts, check_edit_words, check_prompt_fits, edit_words
from livecli.control.source_attention import (
    AttentionPlan,
    differs_from_earlier,
    layer_tokens,
    store_bytes,
)
from livecli.errors import ProjectError
from livecli.fields import SettingError
from livecli.masks import latent_cells, object_region
from livecli.models.loading import ModelSource, dtype_name, load_tokenizer, load_vae
from livecli.models.trained import TrainedModel
from livecli.models.vae import decode_latents
from livecli.resources import amount, disk_room
from livecli.sampling import EditOutcome, plan_edit, sample_edit, source_attention_plan
from livecli.stages import EDIT, MASKS, PREPARE, TRAIN
from livecli.stages import invert as invert_stage
from livecli.stages import masks as masks_stage
from livecli.stages import prepare as prepare_stage
from livecli.stages import train as train_stage
from livecli.stages.runtime import Runtime, Windows, frame_count
from livecli.store import Project, Record, Stage, StageResult
from livecli.video import GIF_MAX_FRAMES, read_pngs, write_gif, write_mp4, write_pngs

VIDEO, GIF, COMPARE = (EDIT.outputs[role] for role in ("video", "gif", "compare"))


@dataclass
class EditResult:
    inversion: StageResult
    edit: StageResult


def _changed(old: dict, new: dict) -> str:
    names = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    return ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in names[:3])


def check_words(prompt: str, config: EditConfig, token: str, source: ModelSource | None = None) -> str:
    """The target prompt, or the error a bad --replace, --keep or --blend gets, or a target
    prompt longer than `source`'s text encoder reads: before any stage runs, so that `live
    run` and `live batch` do not train (nor `live edit` invert) for an edit they refuse."""
    replacements, keep, blend = edit_words(config)
    target = check_edit_words(prompt, replacements, token, keep, blend)
    tokenizer = load_tokenizer(source) if source is not None else None
    if tokenizer is not None:
        tokenizer.add_tokens([token])  # one token, as training adds it
        check_prompt_fits(tokenizer, target, token, "the target prompt that --replace makes")
    return target


def say_kept_replaced(config: EditConfig) -> None:
    """A word both replaced and kept is Prompt-to-Prompt's plain word swap (the new word takes
    the old one's map, so the old object's shape): allowed, and said, since LIVE keeps the
    object's own maps out by default."""
    replacements, keep, _ = edit_words(config)
    kept = sorted({r.old.lower() for r in replacements} & {word.lower() for word in keep or []})
    if kept:
        words = ", ".join(repr(word) for word in kept)
        progress.say(
            f"edit: --keep names {words}, which --replace changes: the new words take its cross-attention maps and "
            "with them the old object's shape (leave it out of --keep to let the reference's shape show)"
        )


def mask_images(mask: torch.Tensor, size: tuple[int, int]) -> list[Image.Image]:
    """[F, 1, h, w] in [0, 1] -> grey PNG-ready images at the frames' size."""
    scaled = F.interpolate(mask.float().cpu(), size=size, mode="nearest")
    return [Image.fromarray((frame[0] * 255).round().byte().numpy(), mode="L") for frame in scaled]


def source_resolution(prepared: Record) -> tuple[int, int]:
    """The size the frames cover in the clip's own pixels (even sides, as H.264 needs)."""
    width, height = prepared.facts["frame_size"]
    source_width, source_height = prepared.facts["source_size"]
    if prepared.settings.get("crop") == "square":
        covered = min(source_width, source_height)
        return covered // 2 * 2, covered // 2 * 2
    scale = max(width / source_width, height / source_height)
    return round(width / scale / 2) * 2, round(height / scale / 2) * 2


def upscaled(frames: list[Image.Image], size: tuple[int, int]) -> list[Image.Image]:
    return [frame.resize(size, Image.Resampling.LANCZOS) for frame in frames]


def side_by_side(left: list[Image.Image], right: list[Image.Image]) -> list[Image.Image]:
    joined = []
    for a, b in zip(left, right, strict=False):
        canvas = Image.new("RGB", (a.width + b.width, max(a.height, b.height)))
        canvas.paste(a.convert("RGB"), (0, 0))
        canvas.paste(b.convert("RGB"), (a.width, 0))
        joined.append(canvas)
    return joined


@dataclass(frozen=True)
class EditPlan:
    """What an edit runs with, all checked before the inversion or anything else is made."""

    config: EditConfig
    """With --blend-mask and --source-branch resolved."""
    trained: Record
    runtime: Runtime
    windows: Windows
    inversion: InvertConfig
    settings: dict
    stage: Stage


def run(
    project: Project, config: EditConfig, model: ModelConfig, force: bool = False, replace_other: bool = False
) -> EditResult:
    """Edit the project's video, inverting it first when needed. `replace_other` replaces an
    edit of the same name made with other settings (for edits the tool names itself: the
    demo's and the benchmark's); a user's is refused instead, so that none is lost unasked."""
    manifest = project.manifest()
    with project.lock():
        plan = plan_edit_stage(project, manifest, config, model, force or replace_other)
        config, trained, runtime = plan.config, plan.trained, plan.runtime
        inversion = _inversion(project, plan)
        inputs = {TRAIN.folder: trained.fingerprint, inversion.stage.folder: inversion.result.record.fingerprint}
        reads = (PREPARE, TRAIN, inversion.stage)
        if config.blend_reads_masks:
            inputs[MASKS.folder] = project.record(MASKS).fingerprint
            reads += (MASKS,)
        work = project.run_stage(plan.stage, plan.settings, inputs, force=force, reads=reads)
        if work.skipped:
            return EditResult(inversion.result, work.result)
        say_kept_replaced(config)
        if config.latent_prompt != "trained" and trained.settings.get("no_latent_prompt"):
            progress.say(
                f"edit: the model was trained without a latent prompt, so --latent-prompt {config.latent_prompt} "
                "changes nothing"
            )
        prompts, outcome = _sample(plan, inversion, manifest["prompt"], given_masks(project, config))
        if not torch.isfinite(outcome.edit).all():
            raise SettingError(
                EditConfig,
                "the edit's latents are not finite (the sampling overflowed); nothing was recorded",
                "lower {guidance} (now {guidance_value:g})"
                + (", or edit in full precision (--dtype fp32)" if runtime.dtype != torch.float32 else "")
                + "; if the training diverged, `live train --force` with a lower --lr",
                guidance_value=config.guidance,
            )
        runtime.release()
        prepared = project.record(PREPARE)
        with work.staging() as staged:
            shown_size = write_videos(staged, project, prepared, plan, outcome)
            work.facts = {
                "token": trained.facts["token"],
                "inversion": inversion.stage.folder,
                "kept_words": list(prompts.keep),
                "blend_tokens": {"source": list(prompts.source_blend), "target": list(prompts.target_blend)},
                "mask_coverage": round(float(outcome.mask.mean()), 4) if outcome.mask is not None else None,
                "peak_stored_attention_bytes": outcome.peak_stored_bytes,
                "fps": float(prepared.facts["fps"]),
                "audio": bool(prepared.facts.get("audio")),
                "video_size": list(shown_size),
                "device": str(runtime.device),
            }
    return EditResult(inversion.result, work.result)


def plan_edit_stage(
    project: Project, manifest: dict, config: EditConfig, model: ModelConfig, replacing: bool
) -> EditPlan:
    """The checks of the edit's words, preset and name, the windows and the inversion it
    starts from, and what its record will say. `replacing`: an edit of the same name with
    other settings may be replaced."""
    config = dataclasses.replace(config, blend_mask=resolve_blend_mask(config, project))
    trained = train_stage.require(project)
    if config.preset is not None and trained.settings.get("preset") != config.preset:
        raise SettingError(
            EditConfig,
            "{preset:{preset_value}} edits with the paper's method, but the training was made without it",
            "train with it first (`live train --preset {preset_value} --force`), or leave {preset} out of the edit",
            preset_value=config.preset,
        )
    runtime = Runtime.resolve(project, model)
    target = check_words(manifest["prompt"], config, trained.facts["token"], runtime.source)
    windows = Windows.of(config, frame_count(project), trained.settings.get("window"))
    inversion = InvertConfig.for_edit(config, windows.window, windows.overlap)
    if config.source_branch == "auto":
        chosen = auto_source_branch(project, config, inversion, runtime, trained.facts["token"], windows)
        config = dataclasses.replace(config, source_branch=chosen)
    settings = {
        **config.settings(),
        **self_replace_settings(config, _latent_size(project)),
        **windows.settings,
        "dtype": dtype_name(runtime.dtype),
        "source_prompt": manifest["prompt"],
        "target_prompt": target,
    }
    settings = {name: value for name, value in settings.items() if value is not None}  # as record.toml keeps them
    stage = EDIT.run(config.folder_name)
    existing = project.record(stage)
    if existing is not None and existing.settings != settings and not replacing:
        raise ProjectError(
            f"edit {config.folder_name!r} exists with other settings ({_changed(existing.settings, settings)})",
            hint=_earlier_layers_hint(existing.settings, settings, _latent_size(project))
            + "pass --name to keep both, or --force to replace it",
        )
    return EditPlan(config, trained, runtime, windows, inversion, settings, stage)


def write_videos(
    staged: Path, project: Project, prepared: Record, plan: EditPlan, outcome: EditOutcome
) -> tuple[int, int]:
    """The edited frames (decoded), the blend masks, edit.mp4, edit.gif and compare.mp4 with
    the clip's sound (as `prepared` records it); the size the videos show them at."""
    fps = float(prepared.facts["fps"])
    audio = project.verified(PREPARE, prepare_stage.AUDIO) if prepared.facts.get("audio") else None
    source_frames = read_pngs(project.verified(PREPARE, "frames"))
    runtime = plan.runtime
    vae = load_vae(runtime.source, runtime.device, runtime.dtype)
    with progress.bar("decoding frames", len(source_frames)) as advance:
        edited = decode_latents(vae, outcome.edit, advance)
    write_pngs(edited, staged / "frames")
    if outcome.mask is not None:
        write_pngs(mask_images(outcome.mask, (edited[0].height, edited[0].width)), staged / "masks")
    shown, shown_source = edited, source_frames
    if plan.config.output_size == "source":
        size = source_resolution(prepared)
        shown, shown_source = upscaled(edited, size), upscaled(source_frames, size)
        clip_size = tuple(prepared.facts.get("source_size") or size)
        if size != clip_size:  # the frames crop the clip to sides the model takes: say so
            progress.say(
                f"edit: edit.mp4 is {size[0]}×{size[1]}: the part of the {clip_size[0]}×{clip_size[1]} clip "
                f"that the {edited[0].width}×{edited[0].height} frames cover, at the clip's own scale"
            )
    write_mp4(shown, staged / VIDEO, fps, audio)
    if len(edited) <= GIF_MAX_FRAMES:
        write_gif(edited, staged / GIF, fps)
    write_mp4(side_by_side(shown_source, shown), staged / COMPARE, fps, audio)
    return shown[0].size


def _earlier_layers_hint(old: dict, new: dict, latent_size: tuple[int, int]) -> str:
    """For an edit made before --self-replace-layers that differs in it alone: why, and how to keep it."""
    if "self_replace_layers" in old or {**old, "self_replace_layers": new.get("self_replace_layers")} != new:
        return ""
    keeps = not differs_from_earlier(latent_size, layer_tokens(latent_size, "all"))
    return (
        "an earlier live made it, replacing frame attention at the layers of at most 32×32 positions whatever the "
        "frames' size" + (" (--self-replace-layers all keeps it as it is)" if keeps else "") + "; "
    )


def self_replace_settings(config: EditConfig, latent_size: tuple[int, int]) -> dict[str, str]:
    """`self_replace_layers` for the record where it changes which layers the frame-attention
    replacement reaches from the earlier rule's (≤ 32×32 whatever the size): edits made
    before it existed stay up to date where it changes nothing (SD at 512 px square)."""
    tokens = layer_tokens(latent_size, config.self_replace_layers)
    if int(config.self_replace * config.steps) and differs_from_earlier(latent_size, tokens):
        return {"self_replace_layers": config.self_replace_layers}
    return {}


def resolve_blend_mask(config: EditConfig, project: Project) -> str:
    """--blend-mask: `auto` is `given` when the project has object masks, else `attention`,
    which records as `auto` did before masks existed (so earlier edits stay up to date);
    `given` or `both` without masks is an error."""
    has_masks = masks_stage.current(project) is not None
    if config.blend_mask == "auto":
        return "given" if has_masks else "auto"
    if config.blend_mask in ("given", "both") and not has_masks:
        raise SettingError(
            EditConfig,
            "{blend_mask:" + config.blend_mask + "} needs object masks, and the project has none",
            "prepare with --mask PATH (a mask video, a folder of masks, or one PNG for the first frame), or leave "
            "{blend_mask} out",
        )
    if config.blend_mask == "attention" and not has_masks:
        return "auto"
    return config.blend_mask


def given_masks(project: Project, config: EditConfig) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """The object masks at the latents' size [F, 1, h, w] (0/1: a cell any object pixel falls
    in, and the cells around it) and, but for --mask-region outline, their regions (the
    cells any pixel of a mask's grown box or hull falls in), when local blend reads them."""
    if not config.blend_reads_masks:
        return None
    masks, latent_size = masks_stage.clip_masks(project), _latent_size(project)
    # Grown by one cell, as the attention's maps are by their 3×3 max-pool.
    cells = latent_cells(masks, latent_size, grow=1)
    if config.blend_mask != "given" or config.mask_region == "outline":
        return cells, None
    regions = [object_region(mask, config.mask_region, config.mask_grow) for mask in masks]
    return cells, latent_cells(regions, latent_size, grow=0)


AUTO_MIN_LATENT_SIDE = 32
"""`--source-branch auto` reads the inversion's store from frames of 256 px (latents of 32)
on: below, the UNet is bound by reading its weights, so halving its batch saves nothing
(0.97× at 64 px, 0.445× at 256 px: docs/performance.md) while recording and reading the
store cost time."""


def auto_source_branch(
    project: Project, config: EditConfig, invert_config: InvertConfig, runtime: Runtime, token: str, windows: Windows
) -> str:
    """`--source-branch auto`: `inversion` where it pays (frames large enough, the store fits
    on the disk), else `sample`; says which and why."""
    latent_size = _latent_size(project)
    if min(latent_size) < AUTO_MIN_LATENT_SIDE:
        side = min(latent_size) * 8
        progress.say(f"edit: --source-branch auto: sample (at {side} px the stored attention would not pay)")
        return "sample"
    model = runtime.trained()
    plan = _stored_plan(project, config, invert_config, token)(model)
    needed = store_bytes(model.video_unet, plan, latent_size, windows.planned, config.steps)
    fits, free = disk_room(project.root, needed)
    if not fits:
        progress.say(
            f"edit: --source-branch auto: sample (the store would take {amount(needed)}; {amount(free)} is free)"
        )
        return "sample"
    progress.say(f"edit: --source-branch auto: inversion (a store of {amount(needed)})")
    return "inversion"


def _latent_size(project: Project) -> tuple[int, int]:
    return tuple(project.record(PREPARE).facts["frames_shape"][2:4])


def _stored_plan(
    project: Project, config: EditConfig, invert_config: InvertConfig, token: str
) -> Callable[[TrainedModel], AttentionPlan]:
    """What the inversion must store of the source's attention for `config` read from there,
    once the model is known."""
    prompt = invert_stage.inversion_prompt(project, invert_config, token)
    latent_size = _latent_size(project)
    reading = dataclasses.replace(config, source_branch="inversion")
    return lambda model: source_attention_plan(model, prompt, reading, latent_size)


def _inversion(project: Project, plan: EditPlan) -> invert_stage.Inversion:
    """The inversion the edit starts from, with the source's attention stored when the edit reads it from there."""
    config, token = plan.config, plan.trained.facts["token"]
    attention = _stored_plan(project, config, plan.inversion, token) if config.source_branch == "inversion" else None
    return invert_stage.ensure(project, plan.inversion, plan.runtime, attention=attention, windows=plan.windows)


def _sample(
    plan: EditPlan,
    inversion: invert_stage.Inversion,
    source_prompt: str,
    given: tuple[torch.Tensor, torch.Tensor | None] | None = None,
) -> tuple[EditPrompts, EditOutcome]:
    """The edit's prompts and latents, sampled from the inversion as `plan` says."""
    config, runtime = plan.config, plan.runtime
    model = runtime.trained()
    start = inversion.start().to(runtime.device)
    frames, _, height, width = start.shape
    stored = inversion.stored_attention(runtime.device, runtime.dtype) if config.source_branch == "inversion" else None
    windows = plan.windows.planned
    cells, region = (None, None) if given is None else (t if t is None else t.to(runtime.device) for t in given)
    sampling = plan_edit(model, config, source_prompt, frames, (height, width), windows, stored, cells, region)
    trajectory = list(inversion.trajectory()) if sampling.needs_trajectory else None
    with progress.window_bar("editing (DDIM)", frames, config.steps, len(windows)) as advance:
        return sampling.prompts, sample_edit(model, sampling, start, trajectory, after_window=advance)
