"""One frozen dataclass per stage, with the paper's defaults.

Each field's `help` metadata is the `--help` text of its flag; `__post_init__` checks
values and names the flag in its message. User-level defaults (model, device) come from
`config.toml` in `platformdirs.user_config_dir("live")` (or `$LIVE_CONFIG_DIR`).
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

from livecli.errors import ConfigError

DEFAULT_MODEL = "CompVis/stable-diffusion-v1-4"
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "fp32", "fp16", "bf16")


def _help(text: str, **more: Any) -> dict[str, Any]:
    return {"help": text, **more}


def help_for(config: type, name: str) -> str:
    """The `--help` text of a config field."""
    for item in fields(config):
        if item.name == name:
            return item.metadata["help"]
    raise KeyError(name)


@dataclass(frozen=True)
class ModelConfig:
    model: str = field(
        default=DEFAULT_MODEL,
        metadata=_help(
            "Base model: a Hugging Face Hub id, a local diffusers folder, a single "
            ".safetensors/.ckpt file, or 'tiny' (a small random model built offline)."
        ),
    )
    model_config: str | None = field(
        default=None,
        metadata=_help(
            "For a single-file --model: a diffusers folder or hub id whose configs describe it "
            "(default: diffusers infers the base model and fetches its configs)."
        ),
    )
    device: str = field(default="auto", metadata=_help("Where to run: auto, cpu, cuda or mps."))
    dtype: str = field(
        default="auto",
        metadata=_help("Precision: auto (fp16 on a GPU, fp32 on the CPU), fp32, fp16 or bf16."),
    )

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise ConfigError("--model is empty", hint="pass a hub id, a folder, a file or 'tiny'")
        if self.device not in DEVICES:
            raise ConfigError(f"--device {self.device!r} is not one of {', '.join(DEVICES)}", hint="--device auto picks the best one")
        if self.dtype not in DTYPES:
            raise ConfigError(f"--dtype {self.dtype!r} is not one of {', '.join(DTYPES)}", hint="--dtype auto picks fp16 on a GPU, fp32 on the CPU")


@dataclass(frozen=True)
class PrepareConfig:
    prompt: str = field(metadata=_help("The source prompt: what the clip shows, e.g. 'a man riding a motorcycle'."))
    object: str = field(metadata=_help("The word of the prompt naming the object to replace, e.g. 'motorcycle'."))
    frames: int = field(default=8, metadata=_help("Number of frames to sample from the clip."))
    size: int = field(default=512, metadata=_help("Frames are resized and centre-cropped to SIZE×SIZE (a multiple of 8)."))
    stride: int = field(default=1, metadata=_help("Take every STRIDE-th frame."))
    start: float = field(default=0.0, metadata=_help("Start sampling at this time, in seconds."))

    def __post_init__(self) -> None:
        if not self.prompt.strip():
            raise ConfigError("--prompt is empty", hint='describe the clip, e.g. --prompt "a jeep car is moving on the road"')
        if not self.object.strip() or len(self.object.split()) != 1:
            raise ConfigError(f"--object must be one word, got {self.object!r}", hint="pass the word of the prompt that names the object")
        if not prompt_has_word(self.prompt, self.object):
            raise ConfigError(
                f"the object word {self.object!r} is not a word of the prompt {self.prompt!r}",
                hint="--object must be one of the prompt's words: " + ", ".join(prompt_words(self.prompt)),
            )
        if self.frames < 1:
            raise ConfigError(f"--frames must be at least 1, got {self.frames}", hint="the paper trains on 8 frames (the default)")
        if self.size < 8 or self.size % 8:
            lower = max(8, self.size // 8 * 8)
            raise ConfigError(
                f"--size must be a multiple of 8 (the VAE downsamples by 8), got {self.size}",
                hint=f"try --size {lower} or --size {lower + 8}",
            )
        if self.stride < 1:
            raise ConfigError(f"--stride must be at least 1, got {self.stride}", hint="--stride 1 takes every frame")
        if self.start < 0:
            raise ConfigError(f"--start must be 0 or more seconds, got {self.start:g}", hint="--start 0 begins at the first frame")

    def settings(self) -> dict[str, Any]:
        return asdict(self)


MIXED_PRECISION = ("no", "fp16", "bf16")
DEFAULT_TOKEN = "<@#$>"


@dataclass(frozen=True)
class TrainConfig:
    steps: int = field(default=500, metadata=_help("Training steps, each one video step and one image step (the paper: 500–600)."))
    lr: float = field(default=3e-5, metadata=_help("Learning rate of the attention queries, temporal attentions and latent prompt."))
    ti_lr: float = field(default=5e-3, metadata=_help("Learning rate of the learned token's embedding (textual inversion)."))
    text_weight: float = field(default=1.0, metadata=_help("λ in L = L_unet + λ·L_text: the weight of the textual-inversion loss."))
    token: str = field(default=DEFAULT_TOKEN, metadata=_help("The placeholder string that learns the reference object."))
    seed: int = field(default=33, metadata=_help("Seed of the noise, timesteps and new weights: equal seeds give equal runs."))
    checkpoint_every: int = field(default=100, metadata=_help("Save a resumable checkpoint every N steps (and on Ctrl-C)."))
    mixed_precision: str = field(default="no", metadata=_help("no, fp16 (GPU) or bf16: compute precision of the forward passes."))
    gradient_checkpointing: bool = field(default=False, metadata=_help("Recompute activations in the backward pass: less memory, ~10–20 % slower."))
    weight_decay: float = field(default=1e-2, metadata=_help("AdamW weight decay."))
    max_grad_norm: float = field(default=1.0, metadata=_help("Clip the video objective's gradient to this norm."))

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"--steps must be at least 1, got {self.steps}", hint="the paper trains 500 steps (the default)")
        for flag, value in (("--lr", self.lr), ("--ti-lr", self.ti_lr)):
            if not value > 0:
                raise ConfigError(f"{flag} must be a positive number, got {value:g}", hint="the defaults are --lr 3e-5 --ti-lr 5e-3")
        if not self.text_weight >= 0:
            raise ConfigError(f"--lambda must be 0 or more, got {self.text_weight:g}", hint="--lambda 1 weighs both objectives equally")
        if self.checkpoint_every < 1:
            raise ConfigError(f"--checkpoint-every must be at least 1, got {self.checkpoint_every}", hint="e.g. --checkpoint-every 100")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ConfigError(
                f"--mixed-precision {self.mixed_precision!r} is not one of {', '.join(MIXED_PRECISION)}",
                hint="--mixed-precision fp16 on a GPU, no on the CPU",
            )
        if not self.weight_decay >= 0:
            raise ConfigError(f"--weight-decay must be 0 or more, got {self.weight_decay:g}", hint="the default is 1e-2")
        if not self.max_grad_norm > 0:
            raise ConfigError(f"--max-grad-norm must be positive, got {self.max_grad_norm:g}", hint="the default is 1.0")
        if not self.token or any(c.isspace() for c in self.token):
            raise ConfigError(f"--token must be one string without spaces, got {self.token!r}", hint=f"e.g. --token '{DEFAULT_TOKEN}'")

    def settings(self) -> dict[str, Any]:
        """What the trained result depends on (how often to checkpoint, or whether to
        recompute activations, changes nothing in it)."""
        values = asdict(self)
        del values["checkpoint_every"], values["gradient_checkpointing"]
        return values


def prompt_words(prompt: str) -> list[str]:
    """The prompt's words, lower-cased, punctuation dropped."""
    return re.findall(r"[\w<>@#$*-]+", prompt.lower())


def prompt_has_word(prompt: str, word: str) -> bool:
    return word.lower() in prompt_words(prompt)


# --------------------------------------------------------------------------- user defaults


def user_config_path() -> Path:
    root = os.environ.get("LIVE_CONFIG_DIR") or platformdirs.user_config_dir("live")
    return Path(root) / "config.toml"


def user_defaults() -> dict[str, Any]:
    """Defaults the user set in config.toml, e.g. `model = "/models/sd-v1-4"`, `device = "cuda"`."""
    from livecli.store import read_toml

    path = user_config_path()
    if not path.is_file():
        return {}
    try:
        data = read_toml(path)
    except Exception as exc:  # a broken user file must say where it is
        raise ConfigError(f"{path} cannot be read: {exc}", hint="fix or remove that file") from None
    known = {f.name for f in fields(ModelConfig)}
    return {k: v for k, v in data.items() if k in known}


def resolve_model_config(
    model: str | None, device: str | None, dtype: str | None, config: str | None = None
) -> ModelConfig:
    """Flags first, then the user's config.toml, then the built-in defaults."""
    defaults = user_defaults()
    given = {"model": model, "model_config": config, "device": device, "dtype": dtype}
    values = {k: v if v is not None else defaults.get(k) for k, v in given.items()}
    return ModelConfig(**{k: v for k, v in values.items() if v is not None})
