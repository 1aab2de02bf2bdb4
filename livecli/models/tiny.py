"""A tiny, seeded, randomly initialised Stable Diffusion, built offline.

Shaped like SD v1.x where it matters to `live`: a VAE that downsamples ×8 into 4 latent
channels, a UNet with cross-attention at two resolutions and a cross-attention mid
block, a CLIP text encoder with 77 positions, a byte-level CLIP tokenizer whose
vocabulary is generated here, and SD's DDIM scheduler. It is saved once as a diffusers
folder in the user cache and then loaded like any other folder, so `--model tiny` runs
through the same loading code as a real model. Its weights are random: it shows the
pipeline working, not a real edit.

A tiny CLIP (same tokenizer, 32×32 images) is built the same way for `live eval
--clip-model tiny`: its scores are numbers from random weights, for tests and demos.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import platformdirs
import torch

from livecli import environment
from livecli.errors import InputError
from livecli.words import byte_characters

TINY_VERSION = "tiny-v1"
"""Bumped whenever the builder below changes, so cached folders and fingerprints follow."""

TINY_CLIP_VERSION = "tiny-clip-v1"
"""The same for the tiny CLIP that `live eval --clip-model tiny` scores with."""

TINY_SEED = 0
CLIP_IMAGE_SIZE = 32
TEXT_WIDTH = 32


def cache_root() -> Path:
    return Path(environment.folder(environment.CACHE_DIR) or platformdirs.user_cache_dir("live"))


def tiny_vocabulary() -> dict[str, int]:
    """Every byte-level character, alone and word-final (`</w>`), then the two specials."""
    symbols = list(byte_characters().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    return {token: index for index, token in enumerate(tokens)}


def _tiny_tokenizer():
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "vocab.json").write_text(json.dumps(tiny_vocabulary()))
        (Path(scratch) / "merges.txt").write_text("#version: 0.2\n")
        return CLIPTokenizer.from_pretrained(scratch, model_max_length=77)


SD_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
}
"""SD v1's DDIM scheduler, as its scheduler_config.json has it."""


def build_tiny_pipeline(seed: int = TINY_SEED):
    """The tiny model as a diffusers StableDiffusionPipeline, weights drawn from `seed`."""
    tokenizer = _tiny_tokenizer()
    vae, unet, text_encoder = _tiny_vae(seed), _tiny_unet(seed + 1), _tiny_text_encoder(seed + 2, tokenizer.get_vocab())
    return sd_pipeline(vae, text_encoder, tokenizer, unet)


def sd_pipeline(vae, text_encoder, tokenizer, unet):
    """A StableDiffusionPipeline of these parts with SD v1's DDIM scheduler (as its
    scheduler_config.json has it) and no safety checker: what `save_pretrained` writes is a
    model folder `live` loads (the tiny model, the shapes model, the benchmarks' SD-shaped one)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DDIMScheduler(**SD_SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _tiny_vae(seed: int):
    """SD's VAE shape (×8 down, 4 latent channels), narrow."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 32, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=0.18215,
    )


def _tiny_unet(seed: int):
    """SD's UNet shape: cross-attention at two resolutions, a plain block below."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=TEXT_WIDTH,
        attention_head_dim=8,
    )


def _tiny_text_encoder(seed: int, vocab: dict[str, int]):
    """A CLIP text encoder with 77 positions over the tiny vocabulary."""
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab),
            hidden_size=TEXT_WIDTH,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            projection_dim=TEXT_WIDTH,
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
        )
    )


def tiny_model_dir() -> Path:
    """The tiny model's diffusers folder in the cache, built on first use."""
    return _cached(TINY_VERSION, lambda folder: build_tiny_pipeline().save_pretrained(folder, safe_serialization=True))


def build_tiny_clip(seed: int = TINY_SEED):
    """A tiny CLIP (text and 32×32 vision towers), its tokenizer and image processor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tokenizer = _tiny_tokenizer()
    vocab = tokenizer.get_vocab()
    towers = {"hidden_size": TEXT_WIDTH, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
    config = CLIPConfig(
        text_config={
            **towers,
            "vocab_size": len(vocab),
            "max_position_embeddings": 77,
            "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": vocab["<|endoftext|>"],
            "pad_token_id": vocab["<|endoftext|>"],
        },
        vision_config={**towers, "image_size": CLIP_IMAGE_SIZE, "patch_size": 8},
        projection_dim=TEXT_WIDTH,
    )
    torch.manual_seed(seed + 3)
    model = CLIPModel(config)
    processor = CLIPImageProcessor(
        size={"shortest_edge": CLIP_IMAGE_SIZE}, crop_size={"height": CLIP_IMAGE_SIZE, "width": CLIP_IMAGE_SIZE}
    )
    return model, tokenizer, processor


def tiny_clip_dir() -> Path:
    """The tiny CLIP's transformers folder in the cache, built on first use."""

    def save(folder: Path) -> None:
        for part in build_tiny_clip():
            part.save_pretrained(folder)

    return _cached(TINY_CLIP_VERSION, save)


def _unusable_cache(folder: Path, exc: OSError) -> InputError:
    """The one line for a cache folder that cannot be written, naming what sets it."""
    if environment.folder(environment.CACHE_DIR):
        setting = f"${environment.CACHE_DIR}"
    elif os.environ.get("XDG_CACHE_HOME"):
        setting = "$XDG_CACHE_HOME"
    else:
        setting = "the platform's cache folder"
    reason = exc.strerror or exc.__class__.__name__
    return InputError(
        f"the model cache {folder} cannot be written ({reason}); it is set by {setting}",
        hint=f"set {environment.CACHE_DIR} to a folder you can write",
    )


def _cached(name: str, save) -> Path:
    """`cache_root()/models/<name>`, written by `save(folder)` once, atomically."""
    folder = cache_root() / "models" / name
    if folder.is_dir():
        return folder
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{name}."))
    except OSError as exc:
        raise _unusable_cache(folder.parent, exc) from None
    try:
        try:
            save(scratch)
        except OSError as exc:  # a full disk, a quota
            raise _unusable_cache(folder.parent, exc) from None
        try:
            os.replace(scratch, folder)
        except OSError:  # another process finished first; its copy is identical
            pass
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder
