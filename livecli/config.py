"""One frozen dataclass per stage, with the paper's defaults: the one place for each default.

Each field's default is its flag's default (the CLI reads it from the class attribute),
its `help` metadata is the flag's `--help` text, and `__post_init__` checks values and
names the flag in its message. Text from outside — the CLI's parameters, a batch file's
stage tables, the user's `config.toml` — becomes a config through one typed path,
`from_table`. User-level defaults (model, device) come from `config.toml` in
`platformdirs.user_config_dir("live")` (or `$LIVE_CONFIG_DIR`).
"""

from __future__ import annotations

import os
import re
import types
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import platformdirs

from livecli.errors import ConfigError
from livecli.words import DEFAULT_TOKEN, prompt_has_word, prompt_words

DEFAULT_MODEL = "CompVis/stable-diffusion-v1-4"
BUILT_IN_MODELS = ("tiny", "shapes")
"""--model names that need no download: `tiny` (random, for tests) and `shapes` (trained, shipped)."""
DEVICES = ("auto", "cpu", "cuda", "mps")
CROPS = ("none", "square")
DEFAULT_MAX_FRAMES = 240
DTYPES = ("auto", "fp32", "fp16", "bf16")


def _help(text: str, **more: Any) -> dict[str, Any]:
    return {"help": text, **more}


def check_choice(flag: str, value: str, choices: tuple[str, ...], hint: str) -> None:
    if value not in choices:
        raise ConfigError(f"{flag} {value!r} is not one of {', '.join(choices)}", hint=hint)


PRESETS = ("paper",)
PAPER = {
    "TrainConfig": {
        "steps": 500,
        "lr": 3e-5,
        "ti_lr": 5e-3,
        "lp_lr": None,
        "text_weight": 1.0,
        "reference_prompt": None,
        "init_word": None,
        "no_latent_prompt": False,
        "image_temporal": False,
    },
    "EditConfig": {
        "steps": 50,
        "guidance": 12.5,
        "cross_replace": 0.6,
        "self_replace": 0.3,
        "no_blend": False,
        "blend_threshold": 0.3,
        "blend_start": 0.2,
        "blend_background": "source",
        "blend_scale": "max",
        "latent_prompt": "trained",
        "source_branch": "sample",
        "pin_source": False,
        "eta": 0.0,
        "refine": 0,
    },
}
"""`--preset paper`: the paper's method and settings (its §3–4; DESIGN.md "The method"): the
latent prompt learns at --lr, the token starts from the object word under the source prompt,
and the edit uses the trained latent prompt, the source branch's background and
Prompt-to-Prompt's mask scaling."""
FLAG_NAMES = {"text_weight": "--lambda"}


def apply_preset(config: Any) -> None:
    """Set the preset's values on `config` (a frozen TrainConfig or EditConfig); a value
    that is neither the field's default nor the preset's contradicts it."""
    if config.preset is None:
        return
    check_choice("--preset", config.preset, PRESETS, hint="--preset paper, or leave it out")
    for name, wanted in PAPER[type(config).__name__].items():
        value = getattr(config, name)
        if value != wanted and value != config_field(type(config), name).default:
            flag = FLAG_NAMES.get(name, "--" + name.replace("_", "-"))
            given = flag if isinstance(value, bool) else f"{flag} {value}"
            paper = "off" if wanted in (False, None) else wanted
            raise ConfigError(
                f"{given} contradicts --preset {config.preset} (the paper's: {paper})",
                hint=f"leave out {flag} or --preset",
            )
        object.__setattr__(config, name, wanted)


def config_field(config: type, name: str):
    """The dataclass field `name` of `config`."""
    for item in fields(config):
        if item.name == name:
            return item
    raise KeyError(name)


def help_for(config: type, name: str) -> str:
    """The `--help` text of a config field."""
    return config_field(config, name).metadata["help"]


def default_of(config: type, name: str) -> Any:
    """A field's default; None for a field without one (a required flag)."""
    default = config_field(config, name).default
    return None if default is MISSING else default


# --------------------------------------------------------------------------- text to config

Config = TypeVar("Config")


def field_types(config: type) -> dict[str, Any]:
    """Each field's type, resolved from its annotation (a string under `from __future__ import annotations`)."""
    hints = get_type_hints(config)
    return {item.name: hints[item.name] for item in fields(config)}


def describe(kind: Any) -> str:
    """A type as the hint of a wrong-type error says it."""
    if get_origin(kind) in (Union, types.UnionType):
        return " or ".join(describe(member) for member in get_args(kind) if member is not type(None))
    if get_origin(kind) is tuple:
        return f"a list of {describe(get_args(kind)[0]).removeprefix('a ')}s"
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(kind, str(kind))


def typed(value: Any, kind: Any) -> Any:
    """`value` as a `kind` (a config field's type), or TypeError. A whole number where a
    number goes becomes a float, so `lr = 1` and `--lr 1` give one fingerprint."""
    if get_origin(kind) in (Union, types.UnionType):
        for member in get_args(kind):
            try:
                return typed(value, member)
            except TypeError:
                pass
    elif kind is type(None):
        if value is None:
            return None
    elif get_origin(kind) is tuple:
        if isinstance(value, (list, tuple)):
            return tuple(typed(item, get_args(kind)[0]) for item in value)
    elif kind is bool:
        if isinstance(value, bool):
            return value
    elif kind in (int, float):
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and (kind is float or isinstance(value, int))
        ):
            return kind(value)
    elif isinstance(value, kind):
        return value
    raise TypeError(f"{value!r} is not {describe(kind)}")


def typed_table(kinds: Mapping[str, Any], table: Mapping[str, Any], section: str | None = None) -> dict[str, Any]:
    """Every value of `table` as its key's type in `kinds`; an unknown key or a wrong type is
    one error naming the key, within `section` when given (a batch job's `train` table)."""
    values = {}
    for key, value in table.items():
        name = f"{section}.{key}" if section else key
        if key not in kinds:
            where = f"`{section}` has" if section else "there is"
            raise ConfigError(f"{where} no setting `{key}`", hint=f"the settings are: {', '.join(kinds)}")
        try:
            values[key] = typed(value, kinds[key])
        except TypeError:
            raise ConfigError(
                f"`{name}` has the wrong type ({value!r})", hint=f"it is {describe(kinds[key])}"
            ) from None
    return values


def from_table(config: type[Config], table: Mapping[str, Any], section: str | None = None) -> Config:
    """A stage's config from outside text: the CLI's parameters, a batch job's stage table.
    Keys are field names; values are checked against the fields' types (`typed_table`),
    then by the config's own `__post_init__`."""
    return config(**typed_table(field_types(config), table, section))


@dataclass(frozen=True)
class ModelConfig:
    model: str = field(
        default=DEFAULT_MODEL,
        metadata=_help(
            "Base model: a Hugging Face Hub id, a local diffusers folder, a single "
            ".safetensors/.ckpt file, 'shapes' (a small model of drawn shapes that ships with live) "
            "or 'tiny' (a small random model built offline, for tests)."
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
    compile: bool = field(
        default=False,
        metadata=_help(
            "torch.compile the UNet's ResNet and feed-forward blocks (the first steps are slow while it compiles; "
            "outputs equal to float error)."
        ),
    )

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise ConfigError("--model is empty", hint="pass a hub id, a folder, a file, 'shapes' or 'tiny'")
        check_choice("--device", self.device, DEVICES, hint="--device auto picks the best one")
        check_choice("--dtype", self.dtype, DTYPES, hint="--dtype auto picks fp16 on a GPU, fp32 on the CPU")


@dataclass(frozen=True)
class PrepareConfig:
    prompt: str = field(metadata=_help("The source prompt: what the clip shows, e.g. 'a man riding a motorcycle'."))
    object: str = field(metadata=_help("The word of the prompt naming the object to replace, e.g. 'motorcycle'."))
    frames: int | str = field(
        default="all",
        metadata=_help(
            "Frames to sample: a number, or 'all' (every frame from --start to the clip's end or --duration, after "
            "--stride)."
        ),
    )
    size: int | str | None = field(
        default=None,
        metadata=_help(
            "The frames' short side in pixels; the long side keeps the clip's aspect ratio, rounded to the model's "
            "multiple (64 px for SD). WxH sets both, e.g. 768x448 (default: the model's size: 512 for SD v1, 64 for "
            "shapes and tiny)."
        ),
    )
    stride: int = field(default=1, metadata=_help("Take every STRIDE-th frame."))
    start: float = field(default=0.0, metadata=_help("Start sampling at this time, in seconds."))
    duration: float | None = field(
        default=None, metadata=_help("Sample at most this many seconds from --start (default: to the clip's end).")
    )
    max_frames: int = field(
        default=DEFAULT_MAX_FRAMES,
        metadata=_help(
            "Refuse a clip that gives more frames than this, before any model loads (10 s at 24 fps by default)."
        ),
    )
    crop: str = field(
        default="none",
        metadata=_help(
            "'none' keeps the clip's aspect ratio (cropping only the few pixels that rounding to the model's multiple "
            "needs); 'square' centre-crops SIZE×SIZE frames."
        ),
    )

    def __post_init__(self) -> None:
        if not self.prompt.strip():
            raise ConfigError(
                "--prompt is empty", hint='describe the clip, e.g. --prompt "a jeep car is moving on the road"'
            )
        if not self.object.strip() or len(self.object.split()) != 1:
            raise ConfigError(
                f"--object must be one word, got {self.object!r}",
                hint="pass the word of the prompt that names the object",
            )
        if not prompt_has_word(self.prompt, self.object):
            raise ConfigError(
                f"the object word {self.object!r} is not a word of the prompt {self.prompt!r}",
                hint="--object must be one of the prompt's words: " + ", ".join(prompt_words(self.prompt)),
            )
        object.__setattr__(self, "frames", _frames_value(self.frames))
        object.__setattr__(self, "size", _size_value(self.size))
        if self.stride < 1:
            raise ConfigError(f"--stride must be at least 1, got {self.stride}", hint="--stride 1 takes every frame")
        if self.start < 0:
            raise ConfigError(
                f"--start must be 0 or more seconds, got {self.start:g}", hint="--start 0 begins at the first frame"
            )
        if self.duration is not None and not self.duration > 0:
            raise ConfigError(
                f"--duration must be a positive number of seconds, got {self.duration:g}",
                hint="leave it out to sample to the clip's end",
            )
        if self.max_frames < 1:
            raise ConfigError(f"--max-frames must be at least 1, got {self.max_frames}", hint="the default is 240")
        check_choice(
            "--crop", self.crop, CROPS, hint="--crop square gives square frames; leave it out to keep the aspect"
        )
        if self.crop == "square" and isinstance(self.size, str):
            raise ConfigError(
                f"--crop square and --size {self.size} contradict each other",
                hint="pass one side with --crop square, e.g. --size 512",
            )

    @property
    def frame_count(self) -> int | None:
        """--frames as a number; None for all."""
        return None if self.frames == "all" else int(self.frames)

    def requested_size(self, native: int) -> int | tuple[int, int]:
        """The short side, or (width, height) for WxH; `native` (the model's size) when not given."""
        if self.size is None:
            return native
        if isinstance(self.size, str):
            width, height = self.size.split("x")
            return int(width), int(height)
        return self.size

    def settings(self) -> dict[str, Any]:
        """What the frames depend on (the --max-frames guard does not; nor an unset --duration)."""
        values = asdict(self)
        del values["max_frames"]
        if values["duration"] is None:
            del values["duration"]
        return values


def _number_or_word(value: int | str, word: str, flag: str, hint: str) -> int | str:
    """`value` as a whole number or `word`, from an int or text ('8', 'ALL'); other text is an error."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, str):
        if value.strip().lower() != word:
            raise ConfigError(f"{flag} must be a number or '{word}', got {value!r}", hint=hint)
        return word
    return value


def _train_steps_value(steps: int | str) -> int | str:
    """--steps as a number or 'auto'."""
    steps = _number_or_word(steps, "auto", "--steps", hint="e.g. --steps 500 (the paper), or --steps auto")
    if steps != "auto" and steps < 1:
        raise ConfigError(f"--steps must be at least 1, got {steps}", hint="the paper trains 500 steps (the default)")
    return steps


def _frames_value(frames: int | str) -> int | str:
    """--frames as a number or 'all'."""
    frames = _number_or_word(frames, "all", "--frames", hint="e.g. --frames 8, or --frames all")
    if frames != "all" and frames < 1:
        raise ConfigError(
            f"--frames must be at least 1, got {frames}", hint="--frames all takes the whole clip; the paper uses 8"
        )
    return frames


def _size_value(size: int | str | None) -> int | str | None:
    """--size as a number (the short side) or 'WxH', from an int or text ('512', '768x448')."""
    if isinstance(size, str):
        text = size.strip().lower()
        if text.isdigit():
            size = int(text)
        else:
            match = re.fullmatch(r"(\d+)\s*[x×]\s*(\d+)", text)
            if match is None:
                raise ConfigError(
                    f"--size must be a number or WxH, got {size!r}", hint="e.g. --size 512, or --size 768x448"
                )
            width, height = (int(side) for side in match.groups())
            if min(width, height) < 8:
                raise ConfigError(f"--size {width}x{height} is too small", hint="e.g. --size 768x448")
            return f"{width}x{height}"
    if size is not None and size < 8:
        raise ConfigError(f"--size must be at least 8 pixels, got {size}", hint="e.g. --size 512")
    return size


MIXED_PRECISION = ("auto", "no", "fp16", "bf16")
GRADIENT_CHECKPOINTING = ("auto", "on", "all", "off")
DEFAULT_WINDOW = 8
"""The paper's 8 frames: a training step's window, and invert's and edit's."""
DEFAULT_OVERLAP = 2


def check_window(window: int) -> None:
    if window < 2:
        raise ConfigError(
            f"--window must be at least 2 frames, got {window}", hint=f"the paper trains on {DEFAULT_WINDOW} frames"
        )


def check_overlap(overlap: int, window: int | None) -> None:
    if overlap < 0 or (window is not None and overlap >= window):
        limit = f" and less than --window {window}" if window is not None else ""
        raise ConfigError(
            f"--overlap must be 0 or more{limit}, got {overlap}", hint=f"the default is --overlap {DEFAULT_OVERLAP}"
        )


def check_windows(window: int | None, overlap: int) -> None:
    """--window (None: the training's, checked when known) and --overlap of invert and edit."""
    if window is not None:
        check_window(window)
    check_overlap(overlap, window)


WINDOW_HELP = (
    "Frames per window: long clips are inverted and edited W frames at a time, each window after the latent "
    "prompt and the clip's first frame (default: the training's --window)."
)
OVERLAP_HELP = (
    "Frames shared by neighbouring windows, whose predictions are blended so that no seam shows "
    "(0: windows side by side)."
)


def window_settings(window: int, overlap: int, frames: int) -> dict[str, int]:
    """The window's settings where they change a result: only when the clip needs more than one."""
    return {"window": window, "overlap": overlap} if frames > window else {}


@dataclass(frozen=True)
class TrainConfig:
    steps: int | str = field(
        default=500,
        metadata=_help(
            "Training steps, each one video step and one image step (the paper: 500–600), or 'auto': stop when the "
            "loss on fixed draws, measured every 50 steps, has not improved by 1 % in 150 steps (at most 1000), and "
            "keep the best step."
        ),
    )
    lr: float = field(
        default=3e-5, metadata=_help("Learning rate of the attention queries, temporal attentions and latent prompt.")
    )
    ti_lr: float = field(
        default=5e-3, metadata=_help("Learning rate of the learned token's embedding (textual inversion).")
    )
    lp_lr: float | None = field(
        default=None,
        metadata=_help(
            "Learning rate of the latent prompt (default: --lr, as the paper, which gives it none of its own). At "
            "--lr 3e-5 the latent prompt moves ≤1.5 % of its size in 500 steps: it stays the first frame."
        ),
    )
    text_weight: float = field(
        default=1.0, metadata=_help("λ in L = L_unet + λ·L_text: the weight of the textual-inversion loss.")
    )
    token: str = field(
        default=DEFAULT_TOKEN, metadata=_help("The placeholder string that learns the reference object.")
    )
    reference_prompt: str | None = field(
        default=None,
        metadata=_help(
            "What the reference image shows, with <tok> (or the object word) where the new object is, "
            "e.g. 'a <tok> on a beach'. Default: the source prompt. Name the reference's own background: "
            "what the prompt leaves unsaid, the token learns."
        ),
    )
    init_word: str | None = field(
        default=None,
        metadata=_help(
            "The word whose embedding the token starts from (default: the object word). A word for the reference "
            "object helps, e.g. 'dog'."
        ),
    )
    seed: int = field(
        default=33, metadata=_help("Seed of the noise, timesteps and new weights: equal seeds give equal runs.")
    )
    checkpoint_every: int = field(
        default=100, metadata=_help("Save a resumable checkpoint every N steps (and on Ctrl-C).")
    )
    mixed_precision: str = field(
        default="auto",
        metadata=_help(
            "Compute precision of the forward passes: auto (bf16 autocast on a GPU that has it, else fp16 on a GPU; "
            "no on the CPU), no, fp16 (GPU) or bf16. Weights and optimizer state stay fp32."
        ),
    )
    gradient_checkpointing: str = field(
        default="auto",
        metadata=_help(
            "Recompute activations in the backward pass: 'on' for the blocks at the two highest resolutions (where "
            "activations dominate: ~29 % less peak memory, ~8 % slower), 'all' for every block (~34 % less, ~15 % "
            "slower), 'off', or 'auto' (off when the step fits in the memory free now, else on, else all)."
        ),
    )
    weight_decay: float = field(default=1e-2, metadata=_help("AdamW weight decay."))
    max_grad_norm: float = field(default=1.0, metadata=_help("Clip the video objective's gradient to this norm."))
    no_latent_prompt: bool = field(
        default=False,
        metadata=_help(
            "Ablation: train and edit without the latent prompt; frames attend to the first and previous frame only "
            "(Tune-A-Video's attention)."
        ),
    )
    image_temporal: bool = field(
        default=False,
        metadata=_help(
            "Ablation (the paper's Fig. 8): run the temporal attentions in the image objective too, and train them "
            "there (the paper bypasses them)."
        ),
    )
    window: int = field(
        default=DEFAULT_WINDOW,
        metadata=_help(
            "Frames per step of the video objective: each step draws W consecutive frames of the clip, with the "
            "latent prompt and the clip's first frame in front (the whole clip when it has at most W frames). "
            "Invert and edit run windows of the same size."
        ),
    )

    preset: str | None = field(
        default=None,
        metadata=_help(
            "'paper': exactly the paper's method and settings (no extension of this tool's), recorded in the "
            "project; a flag that contradicts it is an error."
        ),
    )

    def __post_init__(self) -> None:
        check_window(self.window)
        if isinstance(self.gradient_checkpointing, bool):  # jobs files and earlier versions: a switch
            object.__setattr__(self, "gradient_checkpointing", "all" if self.gradient_checkpointing else "off")
        check_choice(
            "--gradient-checkpointing",
            self.gradient_checkpointing,
            GRADIENT_CHECKPOINTING,
            hint="--gradient-checkpointing auto, on, all or off",
        )
        object.__setattr__(self, "steps", _train_steps_value(self.steps))
        for flag, value in (("--lr", self.lr), ("--ti-lr", self.ti_lr), ("--lp-lr", self.lp_lr or 1.0)):
            if not value > 0:
                raise ConfigError(
                    f"{flag} must be a positive number, got {value:g}", hint="the defaults are --lr 3e-5 --ti-lr 5e-3"
                )
        if not self.text_weight >= 0:
            raise ConfigError(
                f"--lambda must be 0 or more, got {self.text_weight:g}",
                hint="--lambda 1 weighs both objectives equally",
            )
        if self.checkpoint_every < 1:
            raise ConfigError(
                f"--checkpoint-every must be at least 1, got {self.checkpoint_every}",
                hint="e.g. --checkpoint-every 100",
            )
        check_choice(
            "--mixed-precision",
            self.mixed_precision,
            MIXED_PRECISION,
            hint="--mixed-precision fp16 on a GPU, no on the CPU",
        )
        if not self.weight_decay >= 0:
            raise ConfigError(
                f"--weight-decay must be 0 or more, got {self.weight_decay:g}", hint="the default is 1e-2"
            )
        if not self.max_grad_norm > 0:
            raise ConfigError(
                f"--max-grad-norm must be positive, got {self.max_grad_norm:g}", hint="the default is 1.0"
            )
        if not self.token or any(c.isspace() for c in self.token):
            raise ConfigError(
                f"--token must be one string without spaces, got {self.token!r}", hint=f"e.g. --token '{DEFAULT_TOKEN}'"
            )
        if self.reference_prompt is not None and not self.reference_prompt.strip():
            raise ConfigError(
                "--reference-prompt is empty",
                hint="describe the reference image, e.g. --reference-prompt 'a <tok> on a beach'",
            )
        if self.init_word is not None and not self.init_word.strip():
            raise ConfigError(
                "--init-word is empty", hint="name the reference object, e.g. --init-word dog, or leave it out"
            )
        apply_preset(self)

    def settings(self, frames: int | None = None) -> dict[str, Any]:
        """What the trained result depends on (how often to checkpoint, or whether to
        recompute activations, changes nothing in it; nor does the window when a clip of
        `frames` fits in one)."""
        values = asdict(self)
        del values["checkpoint_every"], values["gradient_checkpointing"]
        if frames is not None and frames <= self.window:
            del values["window"]
        for optional in (
            "reference_prompt",
            "init_word",
            "lp_lr",
            "preset",
        ):  # unset, they leave earlier projects' fingerprints as they were
            if values[optional] is None:
                del values[optional]
        if self.image_temporal:  # since the image objective trains the temporal attentions: earlier runs are stale
            values["image_objective_trains"] = "token and temporal attentions"
        return values


REFINE_HELP = (
    "Fixed-point iterations per inversion step: 0 is plain DDIM inversion (the paper's); "
    "3–6 make sampling reproduce the clip almost exactly, at N+1 times the inversion's cost."
)


def check_refine(refine: int) -> None:
    if not 0 <= refine <= 50:
        raise ConfigError(
            f"--refine must be between 0 and 50, got {refine}", hint="0 is plain DDIM inversion; 3–6 is usually enough"
        )


@dataclass(frozen=True)
class InvertConfig:
    steps: int = field(default=50, metadata=_help("DDIM steps (an edit samples with the same number)."))
    prompt: str | None = field(
        default=None, metadata=_help("Prompt to invert with (default: the source prompt). <tok> is the learned token.")
    )
    refine: int = field(default=0, metadata=_help(REFINE_HELP))
    window: int | None = field(default=None, metadata=_help(WINDOW_HELP))
    overlap: int = field(default=DEFAULT_OVERLAP, metadata=_help(OVERLAP_HELP))

    def __post_init__(self) -> None:
        check_steps(self.steps)
        check_refine(self.refine)
        check_windows(self.window, self.overlap)
        if self.prompt is not None and not self.prompt.strip():
            raise ConfigError("--prompt is empty", hint="leave it out to invert with the source prompt")


def check_steps(steps: int) -> None:
    if not 1 <= steps <= 1000:
        raise ConfigError(
            f"--steps must be between 1 and 1000, got {steps}", hint="the paper uses 50 DDIM steps (the default)"
        )


def check_ratio(flag: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(
            f"{flag} must be between 0 and 1, got {value:g}",
            hint=f"{flag} is a fraction of the steps or of the attention's range",
        )


EDIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def edit_slug(replacements: tuple[str, ...]) -> str:
    """The default edit name: `car=<tok>` -> `car-tok`; several joined by `+`."""
    slugs = []
    for text in replacements:
        words = re.findall(r"[a-z0-9]+", text.lower())
        slugs.append("-".join(words) or "edit")
    return "+".join(slugs)[:80].strip("-+.") or "edit"


LATENT_PROMPTS = ("trained", "reference")
OUTPUT_SIZES = ("model", "source")
BLEND_BACKGROUNDS = ("source", "clip")
BLEND_SCALES = ("range", "max")
SOURCE_BRANCHES = ("sample", "inversion")


@dataclass(frozen=True)
class EditConfig:
    replace: tuple[str, ...] = field(
        metadata=_help("A=B: swap the prompt's word A for B; <tok> is the learned token. Repeatable.")
    )
    name: str | None = field(
        default=None, metadata=_help("Folder name under edits/ (default: from the replacements, e.g. car-tok).")
    )
    steps: int = field(default=50, metadata=_help("DDIM steps of the inversion and the edit."))
    guidance: float = field(default=12.5, metadata=_help("Classifier-free guidance scale."))
    cross_replace: float = field(
        default=0.6,
        metadata=_help("Fraction of steps in which the kept words' cross-attention maps come from the source."),
    )
    self_replace: float = field(
        default=0.3,
        metadata=_help("Fraction of steps in which the frame and temporal attention maps come from the source."),
    )
    keep: str | None = field(
        default=None,
        metadata=_help("Source words whose cross-attention maps are kept (default: every word not replaced)."),
    )
    blend: str | None = field(
        default=None,
        metadata=_help(
            "Words whose attention makes the local-blend mask (default: the replaced words and their replacements)."
        ),
    )
    no_blend: bool = field(
        default=False, metadata=_help("Turn local blend off: the edit may change the background too.")
    )
    blend_threshold: float = field(
        default=0.3,
        metadata=_help("Local blend: where in each frame's range of attention (0: least, 1: most) the object begins."),
    )
    blur_sigma: float = field(
        default=1.0,
        metadata=_help("Local blend: Gaussian blur of the mask, in latent pixels (8 image pixels); 0: none."),
    )
    blend_start: float = field(
        default=0.2, metadata=_help("Local blend: fraction of the steps after which the background is kept.")
    )
    blend_background: str = field(
        default="source",
        metadata=_help(
            "Local blend: what the background keeps: 'source' (the source branch's latents: Prompt-to-Prompt, the "
            "paper) "
            "or 'clip' (the clip's own inverted latents: the background stays the clip's when guidance makes the "
            "source drift). "
            "'clip' is not in the paper."
        ),
    )
    blend_scale: str = field(
        default="range",
        metadata=_help(
            "Local blend: how the summed attention is scaled before the threshold: 'range' (minimum to 0, maximum "
            "to 1: a model that spreads a floor of attention everywhere still gets a mask) or 'max' (divided by the "
            "maximum: Prompt-to-Prompt, the paper). In SD, where the floor is near 0, the two agree."
        ),
    )
    refine: int = field(default=0, metadata=_help(REFINE_HELP))
    pin_source: bool = field(
        default=False,
        metadata=_help(
            "Keep the source branch on the inverted latents and move the edit by the same correction "
            "(Direct Inversion, Ju et al. 2023): the background follows the clip more closely. Not in the paper."
        ),
    )
    eta: float = field(
        default=0.0, metadata=_help("DDIM η: 0 is deterministic (the paper); above 0 adds seeded noise each step.")
    )
    seed: int = field(default=0, metadata=_help("Seed of the noise that --eta adds."))
    window: int | None = field(default=None, metadata=_help(WINDOW_HELP))
    overlap: int = field(default=DEFAULT_OVERLAP, metadata=_help(OVERLAP_HELP))
    output_size: str = field(
        default="model",
        metadata=_help(
            "Size of edit.mp4 and compare.mp4: 'model' (the frames as edited) or 'source' (upscaled to the clip's "
            "own resolution)."
        ),
    )
    source_branch: str = field(
        default="sample",
        metadata=_help(
            "Where word swap and local blend read the source's attention: 'sample' (a source branch sampled beside "
            "the edit: Prompt-to-Prompt, the paper) or 'inversion' (stored by the inversion: the edit runs alone, "
            "about half the work; the source's latents are then the clip's inverted ones). Not in the paper."
        ),
    )
    latent_prompt: str = field(
        default="trained",
        metadata=_help(
            "The edit's latent prompt in the conditional branch: 'trained' (the paper: learnt from the clip, it "
            "carries "
            "the source object's look) or 'reference' (the reference image's latents: the new object's look). Not in "
            "the paper."
        ),
    )

    preset: str | None = field(
        default=None,
        metadata=_help(
            "'paper': exactly the paper's method and settings (no extension of this tool's), recorded in the "
            "project; a flag that contradicts it is an error."
        ),
    )

    def __post_init__(self) -> None:
        if not self.replace:
            raise ConfigError("an edit needs at least one --replace A=B", hint="e.g. --replace 'motorcycle=<tok>'")
        check_steps(self.steps)
        check_refine(self.refine)
        check_windows(self.window, self.overlap)
        if not self.guidance >= 0:
            raise ConfigError(
                f"--guidance must be 0 or more, got {self.guidance:g}", hint="the paper uses --guidance 12.5"
            )
        for flag, value in (
            ("--cross-replace", self.cross_replace),
            ("--self-replace", self.self_replace),
            ("--blend-threshold", self.blend_threshold),
            ("--blend-start", self.blend_start),
            ("--eta", self.eta),
        ):
            check_ratio(flag, value)
        if not self.blur_sigma >= 0:
            raise ConfigError(f"--blur-sigma must be 0 or more, got {self.blur_sigma:g}", hint="0 turns the blur off")
        if self.name is not None and not EDIT_NAME.match(self.name):
            raise ConfigError(
                f"--name {self.name!r} is not a plain folder name",
                hint="use letters, digits, '.', '-', '_' or '+', e.g. --name dog",
            )
        if self.no_blend and self.blend is not None:
            raise ConfigError("--blend and --no-blend contradict each other", hint="pass one of them")
        check_choice(
            "--blend-background",
            self.blend_background,
            BLEND_BACKGROUNDS,
            hint="--blend-background clip, or leave it out",
        )
        check_choice(
            "--latent-prompt", self.latent_prompt, LATENT_PROMPTS, hint="--latent-prompt reference, or leave it out"
        )
        check_choice("--output-size", self.output_size, OUTPUT_SIZES, hint="--output-size source, or leave it out")
        check_choice(
            "--source-branch", self.source_branch, SOURCE_BRANCHES, hint="--source-branch inversion, or leave it out"
        )
        check_choice("--blend-scale", self.blend_scale, BLEND_SCALES, hint="--blend-scale max, or leave it out")
        apply_preset(self)

    @property
    def from_inversion(self) -> bool:
        """The source's attention comes from the inversion: the edit runs without a source branch."""
        return self.source_branch == "inversion"

    @property
    def folder_name(self) -> str:
        return self.name or edit_slug(self.replace)

    def settings(self) -> dict[str, Any]:
        """What the edited video depends on (the folder name does not; the seed only with η > 0)."""
        values = asdict(self)
        values["replace"] = list(self.replace)
        del values["name"], values["window"], values["overlap"]  # the stage adds them where they matter
        if not self.eta:
            del values["seed"]
        for name, paper in (
            ("latent_prompt", "trained"),
            ("blend_background", "source"),
            ("output_size", "model"),
            ("source_branch", "sample"),
            ("blend_scale", "range"),
            ("preset", None),
        ):
            if values[name] == paper:  # the default leaves earlier edits' fingerprints as they were
                del values[name]
        return values


DEFAULT_CLIP_MODEL = "openai/clip-vit-large-patch14"


@dataclass(frozen=True)
class EvalConfig:
    clip_model: str = field(
        default=DEFAULT_CLIP_MODEL,
        metadata=_help(
            "CLIP that scores: a hub id, a local transformers folder, or 'tiny' (random, built offline; the default "
            "for a project on --model tiny or shapes)."
        ),
    )
    text: str | None = field(
        default=None,
        metadata=_help(
            "Text of the CLIP score. Default: the edit's target prompt with <tok> read as --init-word, else the "
            "words of --reference-prompt; with neither, an edit to <tok> gets no CLIP score (never the source's "
            "object word, which would score a failed edit as a success)."
        ),
    )
    mask_margin: int = field(
        default=2,
        metadata=_help(
            "Background = pixels farther than this many latent cells (8 px; 4 px on shapes) from the blend mask: the "
            "VAE spreads edits that far."
        ),
    )

    def __post_init__(self) -> None:
        if not self.clip_model.strip():
            raise ConfigError(
                "--clip-model is empty", hint=f"leave it out for {DEFAULT_CLIP_MODEL}, or pass 'tiny' for a smoke run"
            )
        if self.text is not None and not self.text.strip():
            raise ConfigError("--text is empty", hint="leave it out to score against the edit's target prompt")
        if not 0 <= self.mask_margin <= 64:
            raise ConfigError(
                f"--mask-margin must be between 0 and 64 latent cells, got {self.mask_margin}",
                hint="the default is 2 (16 px)",
            )

    def settings(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- user defaults


def user_config_path() -> Path:
    root = os.environ.get("LIVE_CONFIG_DIR") or platformdirs.user_config_dir("live")
    return Path(root) / "config.toml"


def user_defaults() -> dict[str, Any]:
    """Defaults the user set in config.toml, e.g. `model = "/models/sd-v1-4"`, `device = "cuda"`:
    the model's settings and `clip_model`, each of its field's type."""
    from livecli.store import read_toml

    path = user_config_path()
    if not path.is_file():
        return {}
    try:
        data = read_toml(path)
    except Exception as exc:  # a broken user file must say where it is
        raise ConfigError(f"{path} cannot be read: {exc}", hint="fix or remove that file") from None
    kinds = {**field_types(ModelConfig), "clip_model": field_types(EvalConfig)["clip_model"]}
    try:
        return typed_table(kinds, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}", hint=exc.hint) from None


def resolve_clip_model(clip_model: str | None, model: str | None = None) -> str:
    """--clip-model, else `clip_model` in the user's config.toml, else the tiny CLIP for a
    project on a built-in model (`tiny` and `shapes` runs stay offline), else the default."""
    return (
        clip_model or user_defaults().get("clip_model") or ("tiny" if model in BUILT_IN_MODELS else DEFAULT_CLIP_MODEL)
    )


def resolve_model_config(
    model: str | None,
    device: str | None,
    dtype: str | None,
    model_config: str | None = None,
    project: Mapping[str, Any] | None = None,
    compile: bool = False,
) -> ModelConfig:
    """Flags first, then the model a project was made with (`project`: its manifest's
    `model` entry, for --model and --model-config), then the user's config.toml, then the
    built-in defaults."""
    if model is None and project:
        model = project.get("path") or project.get("id")
        model_config = model_config or project.get("config")
    defaults = user_defaults()
    given = {"model": model, "model_config": model_config, "device": device, "dtype": dtype}
    values = {k: v if v is not None else defaults.get(k) for k, v in given.items()}
    return ModelConfig(**{k: v for k, v in values.items() if v is not None}, compile=compile)
