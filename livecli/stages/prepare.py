"""`live prepare`: sample the clip, frame the reference image, encode both with the VAE.

Writes `prepare/` in the project:

    frames/0000.png …      the sampled frames, SIZE×SIZE (by default the model's own size)
    reference.png          the reference image, framed like the frames
    latents.safetensors    `frames` [F, 4, SIZE/8, SIZE/8] and `reference` [1, 4, SIZE/8, SIZE/8]
                           (SIZE/4 for `shapes`, whose VAE downsamples ×4):
                           the VAE posterior mean × the scaling factor, fp32
    record.toml            settings, input digests, output hashes, shapes, frame rate

and the manifest `live.toml` (model, sources with SHA-256, prompt, object).
"""

from __future__ import annotations

import time
from dataclasses import fields, replace
from pathlib import Path

import torch
from safetensors.torch import save_file

from livecli import progress
from livecli.config import ModelConfig, PrepareConfig
from livecli.errors import InputError, ProjectError
from livecli.models.loading import dtype_name, load_vae, native_size, resolve_device, resolve_dtype, resolve_model
from livecli.models.vae import encode_images
from livecli.stages import StageResult
from livecli.store import Project, Record, fingerprint, sha256_path
from livecli.video import load_image, sample_frames, write_pngs

STAGE = "prepare"
LATENTS = "latents.safetensors"


def vae_batch(device: torch.device) -> int:
    """Images per VAE forward pass.

    On the CPU batching buys no speed and costs memory (bench/prepare_vae.py, SD-v1.4 VAE,
    9 images at 512 px: 40 s either way, peak RSS 1.4 GB at batch 1, 3.3 GB at batch 4);
    on a GPU a batch of 4 keeps it busy and fits small cards.
    """
    return 1 if device.type == "cpu" else 4


def check_source(path: Path, what: str) -> Path:
    if not path.exists():
        raise InputError(f"{what} {path} does not exist", hint="check the path")
    return path.resolve()


def require(project: Project) -> Record:
    """The prepare record, or the error that says how to make it."""
    record = project.record(STAGE) if project.exists() else None
    if record is None or not (project.stage_dir(STAGE) / LATENTS).is_file():
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
    sources = project.manifest().get("sources", {})
    clip, image = (Path(sources.get(name, {}).get("path", "")) for name in ("clip", "image"))
    config = PrepareConfig(**{item.name: record.settings[item.name] for item in fields(PrepareConfig)})
    if clip.exists() and image.is_file():
        return run(project, config, clip, image, model)
    if record.inputs.get("model") != resolve_model(model.model, config=model.model_config).key:
        raise InputError(
            f"the project's clip or image is gone ({clip}, {image}) and the frames were prepared with another model",
            hint="pass CLIP IMAGE --prompt --object again to prepare with this model",
        )
    return StageResult(STAGE, project.stage_dir(STAGE), record, skipped=True)


def run(
    project: Project,
    config: PrepareConfig,
    clip: Path,
    image: Path,
    model: ModelConfig,
    force: bool = False,
) -> StageResult:
    """Prepare the project from CLIP and IMAGE, unless it is already up to date."""
    clip = check_source(clip, "clip")
    image = check_source(image, "reference image")
    if image.is_dir():
        raise InputError(f"reference image {image} is a folder", hint="pass one image file")
    project.check_writable()
    with project.lock():
        source = resolve_model(model.model, config=model.model_config)
        if config.size is None:
            config = replace(config, size=native_size(source))
        device = resolve_device(model.device)
        dtype = resolve_dtype(model.dtype, device)
        settings = {**config.settings(), "dtype": dtype_name(dtype)}
        inputs = {
            "clip": sha256_path(clip),
            "image": sha256_path(image),
            "model": source.key,
        }
        key = fingerprint(STAGE, settings, inputs)
        manifest = {
            "prompt": config.prompt,
            "object": config.object,
            "model": source.manifest_entry(),
            "sources": {
                "clip": {"path": str(clip), "sha256": inputs["clip"]},
                "image": {"path": str(image), "sha256": inputs["image"]},
            },
        }
        record = None if force else project.up_to_date(STAGE, key)
        if record is not None:
            project.update_manifest(**manifest)  # a crash may have cut it off after the swap
            return StageResult(STAGE, project.stage_dir(STAGE), record, skipped=True)

        started = time.perf_counter()
        reference = load_image(image, config.size)  # cheap: a bad image fails before any decoding
        with project.staging(STAGE) as folder:
            with progress.bar("decoding frames", config.frames) as advance:
                clip_frames = sample_frames(clip, config.frames, config.size, config.stride, config.start, advance)
            write_pngs(clip_frames.frames, folder / "frames")
            reference.save(folder / "reference.png")

            vae = load_vae(source, device, dtype)
            with progress.bar("encoding latents", config.frames + 1) as advance:
                latents = encode_images(vae, [*clip_frames.frames, reference], vae_batch(device), advance)
            frame_latents, reference_latents = latents[:-1].contiguous(), latents[-1:].contiguous()
            scaling = float(vae.config.scaling_factor)
            save_file(
                {"frames": frame_latents, "reference": reference_latents},
                folder / LATENTS,
                metadata={"scaling_factor": repr(scaling), "size": str(config.size)},
            )
            record = Project.write_record(
                folder,
                Record(
                    stage=STAGE,
                    fingerprint=key,
                    settings=settings,
                    inputs=inputs,
                    facts={
                        "frames_shape": list(frame_latents.shape),
                        "reference_shape": list(reference_latents.shape),
                        "scaling_factor": scaling,
                        "fps": clip_frames.fps,
                    },
                    seconds=round(time.perf_counter() - started, 3),
                ),
            )
        project.update_manifest(**manifest)
    return StageResult(STAGE, project.stage_dir(STAGE), record, skipped=False)
