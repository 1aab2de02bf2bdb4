"""`live prepare`: sample the clip, frame the reference image, encode both with the VAE.

Writes `prepare/` in the project:

    frames/0000.png …      the sampled frames, W×H: the short side --size (by default the
                           model's own), the long side keeping the clip's aspect ratio,
                           both multiples of the model's (64 px for SD)
    reference.png          the reference image, whole, scaled to fit W×H, margins mirrored
    references/0000.png …  every reference image so framed (only when there are several)
    reference_masks/0000.png …  each reference's object mask (--reference-mask, else its
                           alpha channel; all white for one without), framed the same
                           way, the mirrored margins 0 (only when some reference has one)
    audio.m4a              the clip's sound over the sampled span, AAC (when it has sound)
    latents.safetensors    `frames` [F, 4, H/8, W/8] and `reference` [R, 4, H/8, W/8]
                           (/4 for `shapes`, whose VAE downsamples ×4):
                           the VAE posterior mean × the scaling factor, fp32; with
                           reference masks also `reference_weights` [R, 1, H/8, W/8]:
                           the image objective's loss weights (the mask at the latents'
                           size, grown by REFERENCE_MARGIN cells)
    record.toml            settings, input digests, output hashes, shapes, frame rate, span, audio

and the manifest `live.toml` (model, sources with SHA-256, prompt, object).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from livecli import progress
from livecli.config import ModelConfig, PrepareConfig
from livecli.control.prompts import check_prompt_fits
from livecli.errors import ConfigError, InputError, ProjectError
from livecli.fields import default_of
from livecli.masks import latent_cells
from livecli.models.loading import (
    ModelSource,
    dtype_name,
    load_tokenizer,
    load_vae,
    native_size,
    resolve_device,
    resolve_dtype,
    resolve_model,
    size_multiple,
    vae_width,
)
from livecli.models.vae import encode_images
from livecli.references import References
from livecli.resources import MAX_SIZE_FACTOR, check_fits, prepare_bytes
from livecli.stages import PREPARE
from livecli.store import Project, Record, StageResult, sha256_path
from livecli.tensor_files import load_tensors, save_tensors
from livecli.video import (
    AudioError,
    ClipInfo,
    Framing,
    SampledClip,
    extract_audio,
    frame_reference_mask,
    frame_size,
    load_alpha,
    load_image,
    load_mask,
    probe_clip,
    read_pngs,
    same_aspect,
    sample_frames,
    shown_path,
    source_problem,
    too_long,
    write_pngs,
)

LATENTS = "latents.safetensors"
AUDIO = "audio.m4a"
REFERENCES, REFERENCE_MASKS = "references", "reference_masks"
WHOLE = 0.98
"""A mask that covers this share of its picture or more is all object: it keeps nothing out."""
REFERENCE_MARGIN = 0
"""Latent cells the reference's mask grows by for the loss. The cells any object pixel falls
in already hold its edge; a ring of one more cell taught the token the background around
the object: three views on other backgrounds lost the object in 2 of 4 tuning cases with
a ring and in none without (docs/shapes.md)."""


def vae_batch(device: torch.device) -> int:
    """Images per VAE forward pass.

    On the CPU batching buys no speed and costs memory (bench/prepare_vae.py, SD-v1.4 VAE,
    9 images at 512 px: 40 s either way, peak RSS 1.4 GB at batch 1, 3.3 GB at batch 4);
    on a GPU a batch of 4 keeps it busy and fits small cards.
    """
    return 1 if device.type == "cpu" else 4


def check_source(path: Path, what: str) -> Path:
    """A clip (a file or a folder of frames) or an image (a file) that can be read: a FIFO,
    a device or a socket would hang or feed endless bytes, so each is refused."""
    problem = source_problem(path, folder_allowed=what == "clip")
    if problem:
        raise InputError(f"{what} {shown_path(path)} {problem}", hint="check the path; pass a plain file")
    return path.resolve()


def latents(project: Project) -> dict[str, torch.Tensor]:
    """The prepared latents (`frames`, `reference` and, with reference masks,
    `reference_weights`), checked against the record: its digest, and the shapes it gives."""
    record = require(project)
    shapes = {"frames": record.facts["frames_shape"], "reference": record.facts["reference_shape"]}
    if record.facts.get("reference_weights_shape"):
        shapes["reference_weights"] = record.facts["reference_weights_shape"]
    return load_tensors(project.verified(PREPARE, LATENTS), shapes, f"make it again: {PREPARE.remake_command}")


def masked_references(prepared: Record) -> list[bool]:
    """Per reference, whether it was prepared with a mask (a file or its alpha channel)."""
    count = int(prepared.facts["reference_shape"][0])
    kinds = prepared.inputs.get("reference_masks")
    return [kind != "none" for kind in kinds.split(",")] if kinds else [False] * count


def reference_pictures(project: Project) -> list[Image.Image]:
    """The reference images as prepared (framed as the frames), in order."""
    if project.record(PREPARE).facts["reference_shape"][0] > 1:
        return [picture.convert("RGB") for picture in read_pngs(project.verified(PREPARE, REFERENCES))]
    with Image.open(project.verified(PREPARE, "reference.png")) as opened:
        return [opened.convert("RGB")]


def reference_mask_pictures(project: Project) -> list[Image.Image] | None:
    """The references' object masks as prepared (all white for one without), or None when
    none had a mask."""
    if not (project.stage_dir(PREPARE) / REFERENCE_MASKS).is_dir():
        return None
    return [mask.convert("L") for mask in read_pngs(project.verified(PREPARE, REFERENCE_MASKS))]


def require(project: Project) -> Record:
    """The prepare record, or the error that says how to make it."""
    record = project.record(PREPARE) if project.exists() else None
    if record is None or not (project.stage_dir(PREPARE) / LATENTS).is_file():
        raise ProjectError(
            f"{project.root} has no prepared frames",
            hint=(
                "run `live prepare CLIP IMAGE --prompt TEXT --object WORD` first, or pass CLIP IMAGE --prompt "
                "--object to this command"
            ),
        )
    return record


def refresh(project: Project, model: ModelConfig) -> StageResult:
    """Prepare again, from the recorded settings and sources, if they or the model changed.

    Later stages call this when no clip is given, so that a changed source (or another
    --model) flows down like in `make`.
    """
    record = require(project)
    manifest = project.manifest()
    sources = manifest.get("sources", {})
    clip, image = (Path(sources.get(name, {}).get("path", "")) for name in ("clip", "image"))
    references = recorded_references(manifest)
    config = recorded_config(record)
    present = all(path.is_file() for path in (*references.images, *(m for m in references.masks if m)))
    if clip.exists() and present:
        return run(project, config, clip, references, model)
    if record.inputs.get("model") != resolve_model(model.model, config=model.model_config).key:
        raise InputError(
            f"the project's clip or image is gone ({clip}, {image}) and the frames were prepared with another model",
            hint="pass CLIP IMAGE --prompt --object again to prepare with this model",
        )
    return StageResult(PREPARE.name, project.stage_dir(PREPARE), record, skipped=True)


def recorded_config(record: Record) -> PrepareConfig:
    """The settings the frames were prepared with, as a config."""
    values = {item.name: record.settings[item.name] for item in fields(PrepareConfig) if item.name in record.settings}
    # The --max-frames guard is not recorded: the frames once prepared were allowed then.
    prepared = record.facts["frames_shape"][0]  # a checked fact (stages.PREPARE)
    return PrepareConfig(**values, max_frames=max(prepared, default_of(PrepareConfig, "max_frames")))


def framing_of(record: Record) -> Framing:
    """How the frames were framed, from the record."""
    width, height = record.facts.get("frame_size") or [record.settings["size"]] * 2
    return Framing(int(width), int(height), square=record.settings.get("crop") == "square")


def recorded_references(manifest: dict) -> References:
    """The reference images (and their mask files) the manifest names."""
    listed = manifest.get("references")
    if not listed:
        return References((Path(manifest.get("sources", {}).get("image", {}).get("path", "")),))
    return References(
        tuple(Path(entry["path"]) for entry in listed),
        tuple(Path(entry["mask"]) if entry.get("mask") else None for entry in listed),
    )


def manifest_references(references: References) -> list[dict[str, str]]:
    return [
        {"path": str(image), "sha256": sha256_path(image), **({"mask": str(mask)} if mask else {})}
        for image, mask in zip(references.images, references.masks, strict=True)
    ]


def reference_inputs(references: References, alphas: list[Image.Image | None]) -> dict[str, str]:
    """What the fingerprint adds for several references or masks (nothing for one picture
    without a mask, so that such a project keeps its fingerprint)."""
    inputs = {}
    if len(references.images) > 1:
        inputs["references"] = ",".join(sha256_path(image) for image in references.images)
    kinds = [
        sha256_path(mask) if mask is not None else "alpha" if alpha is not None else "none"
        for mask, alpha in zip(references.masks, alphas, strict=True)
    ]
    if any(kind != "none" for kind in kinds):
        inputs["reference_masks"] = ",".join(kinds)
    return inputs


@dataclass(frozen=True)
class Plan:
    """What prepare reads and makes, all checked before anything is written."""

    config: PrepareConfig
    source: ModelSource
    info: ClipInfo
    framing: Framing
    expected: int | None
    """Frames the settings take, as the clip's container tells (None: unknown until decoded)."""
    device: torch.device
    dtype: torch.dtype
    references: References
    alphas: list[Image.Image | None]
    """Per reference without a mask file, its alpha channel (its mask then), if it has one."""
    settings: dict
    inputs: dict
    manifest: dict


FramesCheck = Callable[[list[Image.Image], Framing, ClipInfo], None]
"""Something read against the frames just sampled, before they are recorded (the clip's masks)."""


def run(
    project: Project,
    config: PrepareConfig,
    clip: Path,
    image: Path | References,
    model: ModelConfig,
    force: bool = False,
    check_frames: FramesCheck | None = None,
) -> StageResult:
    """Prepare the project from CLIP and IMAGE (one reference image, or `References`),
    unless it is already up to date. (The clip's object masks are a stage of their own,
    stages/masks.py, so that giving them retrains nothing; `check_frames` reads them against
    new frames before those are recorded.)"""
    clip, references = check_sources(clip, References.of(image))
    project.check_writable(repair=force)
    with project.lock():
        damaged = project.manifest_damaged()
        if damaged:
            progress.say(f"prepare: {project.manifest_path} is damaged ({damaged}); --force writes it anew")
        plan = plan_prepare(config, clip, references, model)
        work = project.run_stage(PREPARE, plan.settings, plan.inputs, force=force)
        if work.skipped:
            project.update_manifest(**plan.manifest)  # a crash may have cut it off after the swap
            return work.result
        pictures = [load_image(path, plan.framing) for path in references.images]  # cheap: fails before decoding
        object_masks = reference_masks(references, plan.alphas, plan.framing)
        with work.staging() as folder:
            sampled = sample(clip, plan)
            if check_frames is not None:
                check_frames(sampled.frames, plan.framing, plan.info)
            write_pictures(folder, sampled, pictures, object_masks)
            audio = save_audio(clip, sampled, folder / AUDIO) if plan.info.audio else False
            work.facts = encode(folder, plan, sampled, pictures, object_masks) | {"audio": audio}
        project.update_manifest(anew=bool(damaged), **plan.manifest)
    return work.result


def check_sources(clip: Path, references: References) -> tuple[Path, References]:
    """The clip and the reference images (and their masks), each a file or folder that can be read."""
    return check_source(clip, "clip"), References(
        tuple(check_source(path, "reference image") for path in references.images),
        tuple(None if path is None else check_source(path, "reference mask") for path in references.masks),
    )


def plan_prepare(config: PrepareConfig, clip: Path, references: References, model: ModelConfig) -> Plan:
    """The model, the frames' size and count, the memory they need, and what the record and
    the manifest will say: every check of the inputs that needs no decoding."""
    source = resolve_model(model.model, config=model.model_config)
    tokenizer = load_tokenizer(source)
    if tokenizer is not None:
        check_prompt_fits(tokenizer, config.prompt, config.object)
    info = probe_clip(clip)
    framing = plan_framing(config, info, native_size(source), size_multiple(source))
    expected = expected_frames(config, info, clip)
    device = resolve_device(model.device)
    dtype = resolve_dtype(model.dtype, device)
    check_fits(
        prepare_bytes(expected or 1, framing.width, framing.height, vae_width(source), vae_batch(device), dtype),
        device,
        f"preparing {expected or 'the'} frames at {framing.width}x{framing.height}",
        hint="pass a smaller --size, or fewer frames (--frames, --duration, --stride)",
    )
    settings = {**config.settings(), "size": f"{framing.width}x{framing.height}", "dtype": dtype_name(dtype)}
    if config.crop == "square":
        settings["size"] = framing.width
    alphas = [  # a reference without a mask file may have an alpha channel, which is its mask then
        load_alpha(path) if given is None else None
        for path, given in zip(references.images, references.masks, strict=True)
    ]
    image = references.first
    inputs = {"clip": sha256_path(clip), "image": sha256_path(image), "model": source.key}
    inputs |= reference_inputs(references, alphas)
    manifest = {
        "prompt": config.prompt,
        "object": config.object,
        "model": source.manifest_entry(),
        "sources": {
            "clip": {"path": str(clip), "sha256": inputs["clip"]},
            "image": {"path": str(image), "sha256": inputs["image"]},
        },
        # A project of one picture without a mask keeps the manifest it always had.
        "references": None if references.single else manifest_references(references),
    }
    return Plan(config, source, info, framing, expected, device, dtype, references, alphas, settings, inputs, manifest)


def sample(clip: Path, plan: Plan) -> SampledClip:
    """The clip's frames as the settings take them, framed."""
    config = plan.config
    with progress.bar("decoding frames", plan.expected or 0) as advance:
        return sample_frames(
            clip,
            config.frame_count,
            plan.framing,
            config.stride,
            config.start,
            advance,
            duration=config.duration,
            limit=config.max_frames,
        )


def write_pictures(
    folder: Path, sampled: SampledClip, pictures: list[Image.Image], object_masks: list[Image.Image] | None
) -> None:
    """The frames, the reference picture(s) and their masks as PNGs."""
    write_pngs(sampled.frames, folder / "frames")
    pictures[0].save(folder / "reference.png")
    if len(pictures) > 1:
        write_pngs(pictures, folder / REFERENCES)
    if object_masks is not None:
        write_pngs(object_masks, folder / REFERENCE_MASKS)


def encode(
    folder: Path,
    plan: Plan,
    sampled: SampledClip,
    pictures: list[Image.Image],
    object_masks: list[Image.Image] | None,
) -> dict:
    """The frames' and the references' VAE latents (and the references' loss weights) into
    LATENTS; the record's facts about them."""
    count = len(sampled.frames)
    vae = load_vae(plan.source, plan.device, plan.dtype)
    with progress.bar("encoding latents", count + len(pictures)) as advance:
        latents = encode_images(vae, [*sampled.frames, *pictures], vae_batch(plan.device), advance)
    frame_latents, reference_latents = latents[:count].contiguous(), latents[count:].contiguous()
    scaling = float(vae.config.scaling_factor)
    tensors = {"frames": frame_latents, "reference": reference_latents}
    if object_masks is not None:
        tensors["reference_weights"] = loss_weights(object_masks, tuple(reference_latents.shape[-2:]))
    framing, info = plan.framing, plan.info
    metadata = {"scaling_factor": repr(scaling), "size": f"{framing.width}x{framing.height}"}
    save_tensors(folder / LATENTS, tensors, metadata=metadata)
    facts = {
        "frames_shape": list(frame_latents.shape),
        "reference_shape": list(reference_latents.shape),
        "scaling_factor": scaling,
        "fps": sampled.fps,
        "source_fps": info.fps,
        "frame_size": [framing.width, framing.height],
        "source_size": [info.width, info.height],
        "span": {
            "start": round(sampled.first_time, 4),
            "end": round(sampled.end_time, 4),
            "stride": plan.config.stride,
        },
    }
    if object_masks is not None:
        facts["reference_weights_shape"] = list(tensors["reference_weights"].shape)
        facts["reference_mask_coverage"] = round(float(tensors["reference_weights"].mean()), 4)
    return facts


def reference_masks(
    references: References, alphas: list[Image.Image | None], framing: Framing
) -> list[Image.Image] | None:
    """Each reference's object mask framed as its picture (all white for one without a mask),
    or None when no reference has one: the image objective's loss is then today's."""
    if all(mask is None for mask in references.masks) and all(alpha is None for alpha in alphas):
        return None
    masks = []
    for image, path, alpha in zip(references.images, references.masks, alphas, strict=True):
        given = load_mask(path) if path is not None else alpha
        if given is None:
            masks.append(Image.new("L", framing.size, 255))
            continue
        with Image.open(image) as picture:
            size = ImageOps.exif_transpose(picture).size
        if not same_aspect(given.size, size):
            raise InputError(
                f"the mask {shown_path(path or image)} is {given.width}×{given.height}, its reference image "
                f"{size[0]}×{size[1]}",
                hint="give each reference image a mask of its own size (or scaled to it)",
            )
        framed = frame_reference_mask(given, framing)
        if np.mean(np.asarray(given.convert("L")) > 127) >= WHOLE:
            progress.say(
                f"prepare: the mask of reference image {shown_path(image)} covers all of it: it keeps nothing of its "
                "background out of the learned token (paint only the object white)"
            )
        if not framed.getbbox():
            raise InputError(
                f"the mask of reference image {shown_path(image)} is empty: no pixel is above half",
                hint="paint the object white (or opaque) on black",
            )
        masks.append(framed)
    return masks


def loss_weights(masks: list[Image.Image], latent_size: tuple[int, int]) -> torch.Tensor:
    """[R, 1, h, w] 0/1: the latent cells any object pixel falls in, grown by REFERENCE_MARGIN."""
    return latent_cells(masks, latent_size, REFERENCE_MARGIN)


def plan_framing(config: PrepareConfig, info: ClipInfo, native: int, multiple: int) -> Framing:
    """The frames' size for this clip and model; a --size the model cannot take is an error
    that names the nearest sizes it can."""
    requested = config.requested_size(native)
    sides = requested if isinstance(requested, tuple) else (requested,)
    largest = MAX_SIZE_FACTOR * native
    if any(side > largest for side in sides):
        raise ConfigError(
            f"--size {config.size} is larger than this model can take: sides up to {largest} px "
            f"({MAX_SIZE_FACTOR}× its own {native})",
            hint=f"pass a --size up to {largest}; the model's own size is {native}",
        )
    if any(side < multiple for side in sides):
        raise ConfigError(
            f"--size {config.size} is smaller than this model can take: sides from {multiple} px",
            hint=f"pass a --size of at least {multiple}; the model's own size is {native}",
        )
    if any(side % multiple for side in sides):
        nearest = [nearest_sizes(side, multiple) for side in sides]
        if isinstance(requested, tuple):
            options = " or ".join(f"{w}x{h}" for w in nearest[0] for h in nearest[1])
            shown = f"{requested[0]}x{requested[1]}"
        else:
            options, shown = " or ".join(str(side) for side in nearest[0]), str(requested)
        raise ConfigError(
            f"--size {shown} does not suit the model: its sides must be multiples of {multiple} px",
            hint=f"try --size {options}",
        )
    if config.crop == "square":
        return Framing(requested, requested, square=True)
    width, height = frame_size(info.width, info.height, requested, multiple)
    if max(width, height) > largest:  # the aspect ratio carries the long side past --size's bound
        fitting = largest * min(width, height) // max(width, height) // multiple * multiple
        fits = fitting >= multiple and max(frame_size(info.width, info.height, fitting, multiple)) <= largest
        raise InputError(
            f"the clip is {info.width}×{info.height}: at --size {requested} its frames would be {width}×{height}, "
            f"and this model takes sides up to {largest} px",
            hint=(f"pass --size {fitting}{' or less' if fitting > multiple else ''}, or " if fits else "")
            + "crop it with --crop square or --size WIDTHxHEIGHT",
        )
    return Framing(width, height)


def nearest_sizes(side: int, multiple: int) -> list[int]:
    """The multiples of `multiple` either side of `side` (`side` alone when it is one)."""
    below = side // multiple * multiple
    return [side] if side == below else sorted({max(multiple, below), below + multiple})


def expected_frames(config: PrepareConfig, info: ClipInfo, clip: Path) -> int | None:
    """How many frames the settings take from the clip, as its container tells; a --duration
    past the clip's end, or more than --max-frames, is an error before anything is decoded."""
    if (
        info.duration is not None
        and config.duration is not None
        and config.start + config.duration > info.duration + 1e-3
    ):
        raise InputError(
            f"--duration {config.duration:g} from --start {config.start:g} runs past the end of {clip} "
            f"({info.duration:.2f} s)",
            hint=f"pass a --duration up to {max(info.duration - config.start, 0):.2f}, or leave it out for the rest",
        )
    if info.frames is None:
        return config.frame_count
    available = info.frames - round(config.start * info.fps)
    if config.duration is not None:
        available = min(available, round(config.duration * info.fps))
    count = max(0, -(-available // config.stride))
    if config.frame_count is not None:
        count = min(count, config.frame_count)
    if count > config.max_frames:
        raise too_long(clip, f"{count}", config.max_frames)
    return count


def save_audio(clip: Path, sampled: SampledClip, path: Path) -> bool:
    """The clip's sound over the sampled span into `path`; a track that cannot be decoded
    is a warning, and the edit goes on silent."""
    try:
        return extract_audio(clip, sampled.first_time, sampled.end_time, path)
    except AudioError as exc:
        progress.say(f"prepare: warning: the audio of {clip} cannot be decoded ({exc}); the edit will be silent")
        path.unlink(missing_ok=True)
        return False
