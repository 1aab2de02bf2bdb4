"""Finding and loading the base model: a hub id, a local folder, a single file, `tiny` or `shapes`.

`resolve_model` turns what the user passed to `--model` into a `ModelSource`: where the
diffusers folder (or single checkpoint file) lies on disk and a revision string that
identifies its content for fingerprints. Hub ids are downloaded once into the Hugging
Face cache and then read from the snapshot folder, so every kind of model but the
single file loads through the same `from_pretrained(folder)` code: `tiny` is built into
the user cache, `shapes` ships inside the package as a diffusers folder.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from livecli.errors import ConfigError, ModelError, reason
from livecli.models.tiny import TINY_VERSION, tiny_model_dir
from livecli.progress import say

SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")

# What a hub snapshot needs; left out: root-level checkpoints, fp16/EMA/flax/onnx copies.
_HUB_FILES = [
    "model_index.json",
    "scheduler/*.json",
    "tokenizer/*",
    "text_encoder/config.json",
    "unet/config.json",
    "vae/config.json",
]
_HUB_WEIGHTS = {
    "safetensors": [
        "text_encoder/model.safetensors",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
    ],
    "bin": [
        "text_encoder/pytorch_model.bin",
        "unet/diffusion_pytorch_model.bin",
        "vae/diffusion_pytorch_model.bin",
    ],
}

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class ModelSource:
    id: str
    """What the user passed to --model."""
    kind: Literal["tiny", "shapes", "folder", "file", "hub"]
    path: Path
    """The diffusers folder, or the checkpoint file for kind 'file'."""
    revision: str
    """Hub commit, or a digest of the local files, or the built-in model's version."""
    config: str | None = None
    """For a single file: the diffusers folder or hub id whose configs describe it."""

    @property
    def key(self) -> str:
        """What fingerprints record: the model's location and revision (a local path absolute)."""
        where = str(self.path) if self.kind in ("folder", "file") else self.id
        return f"{where}@{self.revision}"

    def manifest_entry(self) -> dict[str, str]:
        entry = {"id": self.id, "kind": self.kind, "revision": self.revision}
        if self.kind in ("folder", "file"):
            entry["path"] = str(self.path)
        if self.config:
            entry["config"] = self.config
        return entry


def quiet_libraries() -> None:
    """diffusers and transformers talk on their own loggers and bars; `live` has its own."""
    for name in ("diffusers", "transformers", "huggingface_hub", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import diffusers.utils.logging as diffusers_logging
        import transformers.utils.logging as transformers_logging

        diffusers_logging.set_verbosity_error()
        diffusers_logging.disable_progress_bar()
        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
    except ImportError:
        pass


def looks_like_path(ref: str) -> bool:
    """Hub ids are `name` or `org/name`; anything else the user meant as a path."""
    return ref.startswith((".", "/", "~")) or "\\" in ref or ref.count("/") > 1 or ref.endswith(SINGLE_FILE_SUFFIXES)


def local_revision(path: Path) -> str:
    """Identify local weights by name, size and modification time (hashing GBs is slow)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        stat = file.stat()
        digest.update(
            f"{file.relative_to(path) if file != path else file.name}:{stat.st_size}:{stat.st_mtime_ns}".encode()
        )
    return "local-" + digest.hexdigest()[:16]


def resolve_model(ref: str, revision: str | None = None, config: str | None = None) -> ModelSource:
    """Where `--model REF` lies on disk, downloading a hub id into the HF cache if needed.

    `config` only matters for a single-file checkpoint: a diffusers folder or hub id whose
    component configs describe it (by default diffusers infers one and fetches its configs).
    """
    quiet_libraries()
    if ref == "tiny":
        return ModelSource("tiny", "tiny", tiny_model_dir(), TINY_VERSION)
    if ref == "shapes":
        return _shapes_source()
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file() and not (path / "vae" / "config.json").is_file():
            raise ModelError(
                f"{path} is not a diffusers model folder (no model_index.json, no vae/config.json)",
                hint="pass the folder that save_pretrained wrote, a .safetensors/.ckpt file, or a hub id",
            )
        return ModelSource(ref, "folder", path.resolve(), local_revision(path))
    if path.is_file():
        if path.suffix not in SINGLE_FILE_SUFFIXES:
            raise ModelError(
                f"{path} is neither a model folder nor a .safetensors/.ckpt checkpoint",
                hint="pass a diffusers folder, a single-file checkpoint or a hub id",
            )
        if config and Path(config).expanduser().is_dir():
            config = str(Path(config).expanduser().resolve())
        revision = local_revision(path) + (f"+{config}" if config else "")
        return ModelSource(ref, "file", path.resolve(), revision, config)
    if looks_like_path(ref):
        raise ModelError(f"model {ref} not found: no such folder or file", hint="check the path passed to --model")
    return _download(ref, revision)


def _shapes_source() -> ModelSource:
    from livecli.shapes.model import MODEL_DIR, SHAPES_VERSION

    if not (MODEL_DIR / "model_index.json").is_file():
        raise ModelError(
            f"the shapes model's weights are missing from this install ({MODEL_DIR})",
            hint=(
                "reinstall live (or, in a checkout of its repository: python -m bench.shapes.train --out DIR --install)"
            ),
        )
    return ModelSource("shapes", "shapes", MODEL_DIR, f"{SHAPES_VERSION}-{content_digest(MODEL_DIR)}")


@functools.lru_cache(maxsize=4)
def content_digest(folder: Path) -> str:
    """A digest of every file's name and bytes: the same for every install of the same weights
    (the shipped model is ~14 MB, hashed in milliseconds; mtimes change with each install)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(file.relative_to(folder).as_posix().encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def _download(repo_id: str, revision: str | None) -> ModelSource:
    folder = download_snapshot(
        repo_id,
        revision,
        _HUB_FILES,
        list(_HUB_WEIGHTS.values()),
        what="model",
        offline_hint=(
            "with no network, download the model elsewhere and pass its folder: --model /path/to/stable-diffusion-v1-4"
        ),
    )
    if folder is None:
        raise ModelError(
            f"model {repo_id!r} has no diffusers weights for its text encoder, UNet and VAE",
            hint="pass a Stable Diffusion v1.x model in diffusers format",
        )
    return ModelSource(repo_id, "hub", folder, folder.name)


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE is set (as huggingface_hub reads it)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "on", "yes", "true")


def download_snapshot(
    repo_id: str, revision: str | None, files: list[str], weight_sets: list[list[str]], what: str, offline_hint: str
) -> Path | None:
    """The hub snapshot folder holding `files` and the first complete set of weights.

    The cache is tried first (no network call on every run, and a model that stays what
    it was); only what is listed is downloaded, never a repository's other formats.
    None when the repository has none of the weight sets.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    def fetch(weights: list[str], local_only: bool) -> Path | None:
        folder = Path(
            snapshot_download(repo_id, revision=revision, allow_patterns=files + weights, local_files_only=local_only)
        )
        return folder if all((folder / name).is_file() for name in weights) else None

    for weights in weight_sets:
        try:
            if folder := fetch(weights, local_only=True):
                return folder
        except (LocalEntryNotFoundError, OSError, ValueError):
            pass
    say(f"downloading {repo_id} from the Hugging Face Hub into its cache (once)")
    try:
        for weights in weight_sets:
            if folder := fetch(weights, local_only=False):
                return folder
    except RepositoryNotFoundError:
        raise ModelError(
            f"no {what} {repo_id!r} on the Hugging Face Hub (or it is private)",
            hint="check the id, log in with `hf auth login` for a gated model, or pass a local folder",
        ) from None
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as exc:
        if hub_offline():
            raise ModelError(
                f"{what} {repo_id!r} is not in the Hugging Face cache, and HF_HUB_OFFLINE forbids downloading it",
                hint=f"unset HF_HUB_OFFLINE to download it once; or {offline_hint}",
            ) from None
        raise ModelError(
            f"cannot download {what} {repo_id!r} from the Hugging Face Hub: {reason(exc)}",
            hint=f"{offline_hint} (or set HF_HUB_OFFLINE=1 to use what the Hugging Face cache holds)",
        ) from None
    return None


def _unet_and_vae_configs(source: ModelSource) -> tuple[dict, dict] | None:
    """The UNet's and the VAE's config.json of a model folder; None for a single file or unreadable configs."""
    import json

    if source.kind == "file":
        return None
    try:
        unet = json.loads((source.path / "unet" / "config.json").read_text())
        vae = json.loads((source.path / "vae" / "config.json").read_text())
        return unet, vae
    except (OSError, ValueError, TypeError):
        return None


def native_size(source: ModelSource) -> int:
    """The side the model was trained at: its UNet's sample size × the VAE's downsampling.

    diffusers' pipelines default to the same; a single file carries no configs to read
    before loading, so it gets SD v1's 512.
    """
    configs = _unet_and_vae_configs(source)
    try:
        unet, vae = configs
        return int(unet["sample_size"]) * 2 ** (len(vae["block_out_channels"]) - 1)
    except (KeyError, TypeError, ValueError):
        return 512


def size_multiple(source: ModelSource) -> int:
    """What the frames' sides must be a multiple of: the VAE's downsampling times the
    UNet's (its latents halve once per down block but the last): 64 for SD v1.x."""
    configs = _unet_and_vae_configs(source)
    try:
        unet, vae = configs
        return 2 ** (len(vae["block_out_channels"]) - 1) * 2 ** (len(unet["block_out_channels"]) - 1)
    except (KeyError, TypeError, ValueError):
        return 64


def vae_width(source: ModelSource) -> int:
    """The channels of the VAE's first block, whose full-resolution maps dominate its memory (128 for SD v1.x)."""
    configs = _unet_and_vae_configs(source)
    try:
        return int(configs[1]["block_out_channels"][0])
    except (KeyError, TypeError, ValueError, IndexError):
        return 128


# --------------------------------------------------------------------------- device and precision


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "--device cuda: no CUDA GPU is visible to PyTorch",
            hint="use --device cpu, or install a CUDA build of torch",
        )
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("--device mps: Apple's Metal backend is not available", hint="use --device cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """auto: fp16 on a GPU, fp32 on the CPU (CPU half precision is slow and partly missing)."""
    if name == "auto":
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    if name == "fp16" and device.type == "cpu":
        raise ConfigError("--dtype fp16 needs a GPU", hint="on the CPU use --dtype fp32 (or bf16)")
    return DTYPES[name]


def dtype_name(dtype: torch.dtype) -> str:
    return {v: k for k, v in DTYPES.items()}[dtype]


# --------------------------------------------------------------------------- loading components


def _load_error(source: ModelSource, component: str, exc: Exception) -> ModelError:
    return ModelError(
        f"cannot load the {component} of model {source.id}: {reason(exc)}",
        hint="check that --model is a Stable Diffusion v1.x model (diffusers folder, hub id or single file)",
    )


def load_vae(source: ModelSource, device: torch.device, dtype: torch.dtype):
    """The model's AutoencoderKL, in eval mode on `device`."""
    from diffusers import AutoencoderKL

    try:
        if source.kind == "file":
            vae = _from_single_file(AutoencoderKL, source, "vae", dtype)
        else:
            vae = AutoencoderKL.from_pretrained(source.path, subfolder="vae", torch_dtype=dtype)
    except ModelError:
        raise
    except Exception as exc:  # diffusers raises many kinds for a bad folder
        raise _load_error(source, "VAE", exc) from None
    return vae.to(device=device, dtype=dtype).eval().requires_grad_(False)


def load_tokenizer(source: ModelSource):
    """The model's CLIP tokenizer alone (no weights: cheap), to check prompts early; None for
    a single-file checkpoint without a local config folder, whose tokenizer comes with the
    whole conversion (`load_denoiser`)."""
    from transformers import CLIPTokenizer

    folder = source.path if source.kind != "file" else Path(source.config) if source.config else None
    if folder is None or not (folder / "tokenizer").is_dir():
        return None
    try:
        return CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")
    except Exception as exc:  # transformers raises many kinds for a bad folder
        raise _load_error(source, "tokenizer", exc) from None


def _from_single_file(model_class, source: ModelSource, component: str, dtype: torch.dtype, **extra):
    """One component of a single .safetensors/.ckpt checkpoint, converted by diffusers.

    diffusers needs the configs of the checkpoint's base model: from `source.config`
    (a diffusers folder or hub id) when given, else it infers the model and fetches its
    configs from the Hub or the Hugging Face cache.
    """
    try:
        kwargs = {"config": source.config} if source.config else {}
        if source.config and component != "model":
            kwargs["subfolder"] = component
        return model_class.from_single_file(str(source.path), torch_dtype=dtype, **kwargs, **extra)
    except Exception as exc:
        raise ModelError(
            f"cannot load the {component} from the checkpoint {source.path}: {reason(exc)}",
            hint="check that it is a Stable Diffusion v1.x checkpoint; offline, pass the configs of its "
            "base model with --model-config DIR (a diffusers folder of the same architecture)",
        ) from None


@dataclass
class DenoiserParts:
    """The base model's parts that predict noise from text: all but the VAE, frozen, in eval mode."""

    tokenizer: object
    text_encoder: torch.nn.Module
    unet: torch.nn.Module
    noise_scheduler: object
    """A DDPMScheduler with the model's noise schedule: training adds noise with it, and
    DDIM takes its timesteps from its config."""


def load_denoiser(source: ModelSource, device: torch.device, dtype: torch.dtype) -> DenoiserParts:
    """Tokenizer, text encoder, UNet and noise scheduler of the model, on `device`.

    A single-file checkpoint is converted once, whole, and only these parts are kept.
    """
    from diffusers import DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    component = "model"
    try:
        if source.kind == "file":
            pipeline = _from_single_file(
                StableDiffusionPipeline, source, "model", dtype, safety_checker=None, requires_safety_checker=False
            )
            tokenizer, text_encoder, unet = pipeline.tokenizer, pipeline.text_encoder, pipeline.unet
            noise_scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
            del pipeline  # the VAE is not needed: the latents were prepared
        else:
            component = "tokenizer"
            tokenizer = CLIPTokenizer.from_pretrained(source.path, subfolder="tokenizer")
            component = "text encoder"
            text_encoder = CLIPTextModel.from_pretrained(source.path, subfolder="text_encoder", torch_dtype=dtype)
            component = "UNet"
            unet = UNet2DConditionModel.from_pretrained(source.path, subfolder="unet", torch_dtype=dtype)
            component = "scheduler"
            noise_scheduler = DDPMScheduler.from_pretrained(source.path, subfolder="scheduler")
    except ModelError:
        raise
    except Exception as exc:  # diffusers and transformers raise many kinds for a bad folder
        raise _load_error(source, component, exc) from None
    return DenoiserParts(
        tokenizer,
        text_encoder.to(device=device, dtype=dtype).eval().requires_grad_(False),
        unet.to(device=device, dtype=dtype).eval().requires_grad_(False),
        noise_scheduler,
    )
