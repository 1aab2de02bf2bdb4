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

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image

from livecli import ddim, progress
from livecli.config import EditConfig, InvertConfig, ModelConfig
from livecli.control.attention import AttentionControl, cross_attention_factors
from livecli.control.blend import LocalBlend, pick_factor
from livecli.control.prompts import EditPrompts, Replacement, check_edit_words, edit_prompts, split_words
from livecli.control.source_attention import CachedSource
from livecli.errors import ProjectError
from livecli.models.loading import dtype_name, load_vae
from livecli.models.vae import decode_latents
from livecli.sampling import branch_batch, sample_edit
from livecli.stages import StageResult
from livecli.stages import invert as invert_stage
from livecli.stages import prepare as prepare_stage
from livecli.stages import train as train_stage
from livecli.store import Project, Record, fingerprint
from livecli.video import GIF_MAX_FRAMES, read_pngs, write_gif, write_mp4, write_pngs
from livecli.windows import plan_windows, window_settings

STAGE = "edit"
EDITS = "edits"
VIDEO, GIF, COMPARE = "edit.mp4", "edit.gif", "compare.mp4"


@dataclass
class EditResult:
    inversion: StageResult
    edit: StageResult


def edit_folder(name: str) -> str:
    return f"{EDITS}/{name}"


def _changed(old: dict, new: dict) -> str:
    names = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    return ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in names[:3])


def edit_words(config: EditConfig) -> tuple[list[Replacement], list[str] | None, list[str] | None]:
    """--replace, --keep and --blend, parsed."""
    keep = split_words(config.keep) if config.keep is not None else None
    blend = split_words(config.blend) if config.blend is not None else None
    return [Replacement.parse(text) for text in config.replace], keep, blend


def check_words(prompt: str, config: EditConfig, token: str) -> str:
    """The target prompt, or the error a bad --replace, --keep or --blend gets: before any
    stage runs, so that `live run` and `live batch` do not train for an edit they refuse."""
    replacements, keep, blend = edit_words(config)
    return check_edit_words(prompt, replacements, token, keep, blend)


def make_control(
    model, prompts: EditPrompts, config: EditConfig, frames: int, latent_size: tuple[int, int]
) -> AttentionControl:
    blend = None
    if not config.no_blend:
        if not prompts.source_blend and not prompts.target_blend:
            raise ProjectError(
                "local blend has no word to make its mask from", hint="name words with --blend, or pass --no-blend"
            )
        factor = pick_factor(cross_attention_factors(model.video_unet), max(latent_size))
        blend = LocalBlend(
            frames, latent_size, factor, prompts.source_blend, prompts.target_blend,
            config.blend_threshold, config.blur_sigma, latent_prompt=model.latent_prompt is not None,
            scale=config.blend_scale,
        )  # fmt: skip
    batch = branch_batch(config.guidance, source_branch=config.source_branch == "sample")
    return AttentionControl(prompts, config.steps, config.cross_replace, config.self_replace, batch, blend)


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


def run(
    project: Project, config: EditConfig, model: ModelConfig, force: bool = False, replace_other: bool = False
) -> EditResult:
    """Edit the project's video, inverting it first when needed. `replace_other` replaces an
    edit of the same name made with other settings (for edits the tool names itself: the
    demo's and the benchmark's); a user's is refused instead, so that none is lost unasked."""
    manifest = project.manifest()
    with project.lock():
        trained = train_stage.require(project)
        token = trained.facts["token"]
        replacements, keep, blend = edit_words(config)
        target = check_edit_words(manifest["prompt"], replacements, token, keep, blend)
        runtime = invert_stage.Runtime.resolve(project, model)
        count = invert_stage.frame_count(project)
        window, overlap = invert_stage.resolve_windows(config, trained)
        settings = {
            **config.settings(),
            **window_settings(count, window, overlap),
            "dtype": dtype_name(runtime.dtype),
            "source_prompt": manifest["prompt"],
            "target_prompt": target,
        }
        settings = {name: value for name, value in settings.items() if value is not None}  # as record.toml keeps them
        where = edit_folder(config.folder_name)
        existing = project.record(where)
        if existing is not None and existing.settings != settings and not (force or replace_other):
            raise ProjectError(
                f"edit {config.folder_name!r} exists with other settings ({_changed(existing.settings, settings)})",
                hint="pass --name to keep both, or --force to replace it",
            )

        invert_config = InvertConfig(steps=config.steps, refine=config.refine, window=window, overlap=overlap)
        attention = None
        if config.source_branch == "inversion":
            prompt = invert_stage.inversion_prompt(project, invert_config, token)
            latent_size = tuple(project.record(prepare_stage.STAGE).facts["frames_shape"][2:4])

            def attention(model):
                return invert_stage.attention_plan(model, prompt, config, latent_size)

        inversion = invert_stage.ensure(project, invert_config, runtime, attention=attention)
        inputs = {
            train_stage.STAGE: trained.fingerprint,
            inversion.folder.relative_to(project.root).as_posix(): inversion.record.fingerprint,
        }
        key = fingerprint(STAGE, settings, inputs)
        record = None if force else project.up_to_date(where, key)
        if record is not None:
            return EditResult(inversion, StageResult(STAGE, project.stage_dir(where), record, skipped=True))

        started = time.perf_counter()
        if config.latent_prompt == "reference" and trained.settings.get("no_latent_prompt"):
            progress.say(
                "edit: the model was trained without a latent prompt, so --latent-prompt reference changes nothing"
            )
        trained_model = runtime.trained()
        prompts = edit_prompts(trained_model.tokenizer, manifest["prompt"], replacements, token, keep, blend)
        keeps_clip = (
            config.blend_background == "clip" or config.source_branch == "inversion"
        )  # the inversion is the source
        wants_trajectory = config.pin_source or keeps_clip
        trajectory = list(invert_stage.load_trajectory(project, inversion)) if wants_trajectory else None
        start = invert_stage.load_start(project, inversion).to(runtime.device)
        frames, _, height, width = start.shape
        control = make_control(trained_model, prompts, config, frames, (height, width))
        if config.source_branch == "inversion":
            control.cached = CachedSource(
                invert_stage.stored_plan(inversion.record),
                invert_stage.attention_files(project, inversion),
                runtime.device,
                runtime.dtype,
            )
        null, texts = trained_model.encode([""]), trained_model.encode([prompts.source, prompts.target])
        schedule = ddim.ddim_schedule(trained_model.scheduler_config, config.steps)
        generator = torch.Generator().manual_seed(config.seed)
        windows = plan_windows(frames, window, overlap)
        with progress.window_bar("editing (DDIM)", frames, config.steps, len(windows)) as advance:
            outcome = sample_edit(
                trained_model,
                start,
                schedule,
                texts,
                null,
                control,
                config.guidance,
                blend_from=int(config.blend_start * config.steps),
                pinned=trajectory if config.pin_source else None,
                eta=config.eta,
                generator=generator,
                edit_latent_prompt=config.latent_prompt,
                clip_background=trajectory if keeps_clip else None,
                windows=windows,
                after_window=advance,
            )
        del trajectory, control, trained_model
        runtime.release()

        prepared = project.record(prepare_stage.STAGE)
        fps = float(prepared.facts["fps"])
        audio = project.verified(prepare_stage.STAGE, prepare_stage.AUDIO) if prepared.facts.get("audio") else None
        source_frames = read_pngs(project.verified(prepare_stage.STAGE, "frames"))
        with project.staging(where) as staged:
            vae = load_vae(runtime.source, runtime.device, runtime.dtype)
            with progress.bar("decoding frames", frames) as advance:
                edited = decode_latents(vae, outcome.edit, advance)
            write_pngs(edited, staged / "frames")
            if outcome.mask is not None:
                write_pngs(mask_images(outcome.mask, (edited[0].height, edited[0].width)), staged / "masks")
            shown, shown_source = edited, source_frames
            if config.output_size == "source":
                size = source_resolution(prepared)
                shown, shown_source = upscaled(edited, size), upscaled(source_frames, size)
            write_mp4(shown, staged / VIDEO, fps, audio)
            if len(edited) <= GIF_MAX_FRAMES:
                write_gif(edited, staged / GIF, fps)
            write_mp4(side_by_side(shown_source, shown), staged / COMPARE, fps, audio)
            facts = {
                "token": token,
                "inversion": inversion.folder.relative_to(project.root).as_posix(),
                "kept_words": list(prompts.keep),
                "blend_tokens": {"source": list(prompts.source_blend), "target": list(prompts.target_blend)},
                "mask_coverage": round(float(outcome.mask.mean()), 4) if outcome.mask is not None else None,
                "peak_stored_attention_bytes": outcome.peak_stored_bytes,
                "fps": fps,
                "audio": audio is not None,
                "video_size": list(shown[0].size),
                "device": str(runtime.device),
            }
            record = Project.write_record(
                staged,
                Record(STAGE, key, settings, inputs, facts=facts, seconds=round(time.perf_counter() - started, 3)),
            )
    return EditResult(inversion, StageResult(STAGE, project.stage_dir(where), record, skipped=False))
