"""One frozen dataclass per stage, with the paper's defaults: the one place for each setting.

Each field's default is its flag's default, its `setting(...)` metadata its help text and
what else the command line and the records need of it (fields.py); choices are `Literal`
types. `__post_init__` checks values, naming fields as `{field}` so that the command line
and a jobs file each put them in their own words. Text from outside becomes a config
through one typed path, `fields.from_table`. User-level defaults (model, device) come
from `config.toml` in `platformdirs.user_config_dir("live")` (or `$LIVE_CONFIG_DIR`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import platformdirs

from livecli import environment
from livecli.errors import ConfigError
from livecli.fields import (
    CHOICES,
    MAIN,
    SettingError,
    Within,
    apply_preset,
    check_fields,
    field_types,
    setting,
    settings_of,
    typed_table,
)
from livecli.words import DEFAULT_TOKEN, has_control_character, prompt_has_word, prompt_words

DEFAULT_MODEL = "CompVis/stable-diffusion-v1-4"
BUILT_IN_MODELS = ("tiny", "shapes")
"""--model names that need no download: `tiny` (random, for tests) and `shapes` (trained, shipped)."""
DEFAULT_MAX_FRAMES = 240
DEFAULT_WINDOW = 8
"""The paper's 8 frames: a training step's window, and invert's and edit's."""
DEFAULT_OVERLAP = 2
DEFAULT_CLIP_MODEL = "openai/clip-vit-large-patch14"

PREPARING = "Preparing"
TRAINING = "Training"
EDITING = "Editing"
ABLATIONS = "Ablations (not the paper's method)"
EDIT_CONTROL = "Attention control and local blend"
EVALUATING = "Evaluating"
"""The `--help` panels of the stages' options."""

Augment = Literal["none", "light", "strong"]
"""--reference-augment's choices (augment.py)."""
ReferenceMasking = Literal["auto", "none"]
"""What a reference image without a mask gets: a mask found by the model (find_object.py), or none."""

Preset = Literal["paper"]
PRESET = setting(
    "'paper': exactly the paper's method and settings (no extension of this tool's), recorded in the project; a "
    "flag that contradicts it is an error.",
    panel=MAIN,
    metavar=CHOICES,
    omit_default=True,
)
"""`--preset` of train and edit (and `live run`'s one for both)."""


@dataclass(frozen=True)
class ModelConfig:
    model: str = field(
        default=DEFAULT_MODEL,
        metadata=setting(
            "Base model: a Hugging Face Hub id, a local diffusers folder, a single "
            ".safetensors/.ckpt file, 'shapes' (a small model of drawn shapes that ships with live) "
            "or 'tiny' (a small random model built offline, for tests)."
        ),
    )
    model_config: str | None = field(
        default=None,
        metadata=setting(
            "For a single-file --model: a diffusers folder or hub id whose configs describe it "
            "(default: diffusers infers the base model and fetches its configs)."
        ),
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = field(
        default="auto",
        metadata=setting("Where to run: auto, cpu, cuda or mps.", choice_hint="{device:auto} picks the best one"),
    )
    dtype: Literal["auto", "fp32", "fp16", "bf16"] = field(
        default="auto",
        metadata=setting(
            "Precision: auto (fp16 on a GPU, fp32 on the CPU), fp32, fp16 or bf16.",
            choice_hint="{dtype:auto} picks fp16 on a GPU, fp32 on the CPU",
        ),
    )
    compile: bool = field(
        default=False,
        metadata=setting(
            "torch.compile the UNet's ResNet and feed-forward blocks (the first steps are slow while it compiles; "
            "outputs equal to float error)."
        ),
    )

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise SettingError(ModelConfig, "{model} is empty", "pass a hub id, a folder, a file, 'shapes' or 'tiny'")
        check_fields(self)


def number_or_word(config: type, name: str, value: int | str, word: str, hint: str) -> int | str:
    """`value` as a whole number or `word`, from an int or text ('8', 'ALL'); other text is an error."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, str):
        if value.strip().lower() != word:
            raise SettingError(config, f"{{{name}}} must be a number or '{word}', got {{value!r}}", hint, value=value)
        return word
    return value


@dataclass(frozen=True)
class PrepareConfig:
    PANEL: ClassVar[str] = PREPARING

    prompt: str = field(
        metadata=setting("The source prompt: what the clip shows, e.g. 'a man riding a motorcycle'.", panel=MAIN)
    )
    object: str = field(
        metadata=setting("The word of the prompt naming the object to replace, e.g. 'motorcycle'.", panel=MAIN)
    )
    frames: int | str = field(
        default="all",
        metadata=setting(
            "Frames to sample: a number, or 'all' (every frame from --start to the clip's end or --duration, after "
            "--stride).",
            metavar="N|all",
        ),
    )
    size: int | str | None = field(
        default=None,
        metadata=setting(
            "The frames' short side in pixels; the long side keeps the clip's aspect ratio, rounded to the model's "
            "multiple (64 px for SD). WxH sets both, e.g. 768x448 (default: the model's size: 512 for SD v1, 64 for "
            "shapes and tiny).",
            metavar="SIZE|WxH",
        ),
    )
    stride: int = field(
        default=1,
        metadata=setting("Take every STRIDE-th frame.", within=Within(1, hint="{stride:1} takes every frame")),
    )
    start: float = field(
        default=0.0,
        metadata=setting(
            "Start sampling at this time, in seconds.",
            within=Within(0, words="0 or more seconds", hint="{start:0} begins at the first frame"),
        ),
    )
    duration: float | None = field(
        default=None,
        metadata=setting(
            "Sample at most this many seconds from --start (default: to the clip's end).",
            metavar="SECONDS",
            omit_default=True,
            within=Within(
                0, low_open=True, words="a positive number of seconds", hint="leave it out to sample to the clip's end"
            ),
        ),
    )
    max_frames: int = field(
        default=DEFAULT_MAX_FRAMES,
        metadata=setting(
            "Refuse a clip that gives more frames than this, before any model loads (10 s at 24 fps by default).",
            inert=True,
            within=Within(1, hint="the default is {max_frames.default}"),
        ),
    )
    crop: Literal["none", "square"] = field(
        default="none",
        metadata=setting(
            "'none' keeps the clip's aspect ratio (cropping only the few pixels that rounding to the model's multiple "
            "needs); 'square' centre-crops SIZE×SIZE frames.",
            metavar=CHOICES,
            choice_hint="{crop:square} gives square frames; leave it out to keep the aspect",
        ),
    )

    def __post_init__(self) -> None:
        def error(message: str, hint: str, **values: Any) -> SettingError:
            return SettingError(PrepareConfig, message, hint, **values)

        check_fields(self)
        if not self.prompt.strip():
            raise error("{prompt} is empty", 'describe the clip, e.g. {prompt:"a jeep car is moving on the road"}')
        if not self.object.strip() or len(self.object.split()) != 1:
            raise error(
                "{object} must be one word, got {value!r}",
                "pass the word of the prompt that names the object",
                value=self.object,
            )
        if not prompt_has_word(self.prompt, self.object):
            raise error(
                "the object word {word!r} is not a word of the prompt {text!r}",
                "{object} must be one of the prompt's words: {words}",
                word=self.object,
                text=self.prompt,
                words=", ".join(prompt_words(self.prompt)),
            )
        object.__setattr__(self, "frames", self._frames())
        object.__setattr__(self, "size", self._size())
        if self.crop == "square" and isinstance(self.size, str):
            raise error(
                "{crop:square} and {size:{value}} contradict each other",
                "pass one side with {crop:square}, e.g. {size:512}",
                value=self.size,
            )

    def _frames(self) -> int | str:
        """--frames as a number or 'all'."""
        frames = number_or_word(PrepareConfig, "frames", self.frames, "all", hint="e.g. {frames:8}, or {frames:all}")
        if frames != "all" and frames < 1:
            raise SettingError(
                PrepareConfig,
                "{frames} must be at least 1, got {value}",
                "{frames:all} takes the whole clip; the paper uses 8",
                value=frames,
            )
        return frames

    def _size(self) -> int | str | None:
        """--size as a number (the short side) or 'WxH', from an int or text ('512', '768x448')."""
        size = self.size
        if isinstance(size, str):
            text = size.strip().lower()
            if text.isdigit():
                size = int(text)
            else:
                match = re.fullmatch(r"(\d+)\s*[x×]\s*(\d+)", text)
                if match is None:
                    raise SettingError(
                        PrepareConfig,
                        "{size} must be a number or WxH, got {value!r}",
                        "e.g. {size:512}, or {size:768x448}",
                        value=size,
                    )
                width, height = (int(side) for side in match.groups())
                if min(width, height) < 8:
                    raise SettingError(
                        PrepareConfig, "{size:{value}} is too small", "e.g. {size:768x448}", value=f"{width}x{height}"
                    )
                return f"{width}x{height}"
        if size is not None and size < 8:
            raise SettingError(
                PrepareConfig, "{size} must be at least 8 pixels, got {value}", "e.g. {size:512}", value=size
            )
        return size

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
        return settings_of(self)


WINDOW_HELP = (
    "Frames per window: long clips are inverted and edited W frames at a time, each window after the latent "
    "prompt and the clip's first frame (default: the training's --window)."
)
OVERLAP_HELP = (
    "Frames shared by neighbouring windows, whose predictions are blended so that no seam shows "
    "(0: windows side by side)."
)
REFINE_HELP = (
    "Fixed-point iterations per inversion step: 0 is plain DDIM inversion (the paper's); "
    "3–6 make sampling reproduce the clip almost exactly, at N+1 times the inversion's cost."
)


def check_window(config: type, window: int) -> None:
    if window < 2:
        raise SettingError(
            config,
            "{window} must be at least 2 frames, got {value}",
            "the paper trains on {frames} frames",
            value=window,
            frames=DEFAULT_WINDOW,
        )


def check_overlap(config: type, overlap: int, window: int | None) -> None:
    """--overlap against --window (None: the training's, checked when known)."""
    if overlap < 0 or (window is not None and overlap >= window):
        limit = " and less than {window:{window_value}}" if window is not None else ""
        raise SettingError(
            config,
            "{overlap} must be 0 or more" + limit + ", got {value}",
            "the default is {overlap:{overlap.default}}",
            value=overlap,
            window_value=window,
        )


def check_windows(config: Any) -> None:
    """--window (None: the training's, checked when known) and --overlap of invert and edit."""
    if config.window is not None:
        check_window(type(config), config.window)
    check_overlap(type(config), config.overlap, config.window)


DDIM_STEPS = Within(1, 1000, words="between 1 and 1000", hint="the paper uses {steps.default} DDIM steps (the default)")
REFINE = Within(0, 50, words="between 0 and 50", hint="0 is plain DDIM inversion; 3–6 is usually enough")


LEARNING_RATE = Within(
    0,
    1,
    low_open=True,
    low_words="a positive number",
    why_high=": AdamW's steps would outgrow the weights",
    hint="the defaults are {lr:{lr.default}} {ti_lr:{ti_lr.default}}",
)
"""The range of a learning rate (--lr, --ti-lr, --lp-lr)."""


@dataclass(frozen=True)
class TrainConfig:
    PANEL: ClassVar[str] = TRAINING
    PAPER: ClassVar[dict[str, Any]] = {"reference_mask": "none", "show_object": True}
    """Where the paper's setting differs from the default: it learns the whole picture, shown whole."""

    steps: int | str = field(
        default=500,
        metadata=setting(
            "Training steps, each one video step and one image step (the paper: 500–600), or 'auto': stop when the "
            "loss on fixed draws, measured every 50 steps, has not improved by 1 % in 150 steps (at most 1000), and "
            "keep the best step.",
            metavar="N|auto",
            paper=True,
        ),
    )
    lr: float = field(
        default=3e-5,
        metadata=setting(
            "Learning rate of the attention queries, temporal attentions and latent prompt.",
            paper=True,
            within=LEARNING_RATE,
        ),
    )
    ti_lr: float = field(
        default=5e-3,
        metadata=setting(
            "Learning rate of the learned token's embedding (textual inversion).",
            paper=True,
            within=LEARNING_RATE,
        ),
    )
    lp_lr: float | None = field(
        default=None,
        metadata=setting(
            "Learning rate of the latent prompt (default: --lr, as the paper, which gives it none of its own). At "
            "--lr 3e-5 the latent prompt moves ≤1.5 % of its size in 500 steps: it stays the first frame.",
            paper=True,
            omit_default=True,
            within=LEARNING_RATE,
        ),
    )
    text_weight: float = field(
        default=1.0,
        metadata=setting(
            "λ in L = L_unet + λ·L_text: the weight of the textual-inversion loss.",
            paper=True,
            within=Within(0, hint="{text_weight:1} weighs both objectives equally"),
        ),
    )
    token: str = field(
        default=DEFAULT_TOKEN, metadata=setting("The placeholder string that learns the reference object.")
    )
    reference_prompt: str | tuple[str, ...] | None = field(
        default=None,
        metadata=setting(
            "What the reference image shows, with <tok> (or the object word) where the new object is, "
            "e.g. 'a <tok> on a beach'. Default: the source prompt. Name the reference's own background: "
            "what the prompt leaves unsaid, the token learns. With several references, give it once for all "
            "or once per reference, in their order (each names its own picture's background).",
            metavar="TEXT",
            paper=True,
            omit_default=True,
        ),
    )
    init_word: str | None = field(
        default=None,
        metadata=setting(
            "The word whose embedding the token starts from (default: the object word). A word for the reference "
            "object helps, e.g. 'dog'.",
            metavar="WORD",
            paper=True,
            omit_default=True,
        ),
    )
    reference_mask: ReferenceMasking = field(
        default="auto",
        metadata=setting(
            "Where a reference image without a mask (a --reference-mask file, or a PNG's alpha) shows the object: "
            "'auto' finds it with the model itself (its attention to --init-word and how the caption changes its "
            "prediction, cut along the picture by GrabCut) and weights the image objective's loss to it, written "
            "to train/reference_masks/; 'none' learns the whole picture (the paper). Given as --reference-mask "
            "auto or --reference-mask none.",
            metavar=CHOICES,
            paper=True,
            omit_default=True,
        ),
    )
    show_object: bool = field(
        default=False,
        metadata=setting(
            "With a reference mask (given or found): let the image objective's latent prompt show the reference "
            "whole, as the paper does. By default its object is hidden there (its latent cells set to its "
            "background's mean), so that the token, not frame attention reading the clean reference, carries the "
            "object's look: with the object shown, masks cost the token the object's colour.",
            paper=True,
        ),
    )
    reference_augment: Augment = field(
        default="none",
        metadata=setting(
            "Random views of the reference for the image objective: 'light' (zoom ±10 %, shift ±5 %, rotation ±5°, "
            "mirrored) or 'strong' (±25 %, ±10 %, ±15°), never other colours; 'none': the picture as it is (the "
            "paper). Not in the paper.",
            metavar=CHOICES,
            paper=True,
            omit_default=True,
        ),
    )
    seed: int = field(
        default=33, metadata=setting("Seed of the noise, timesteps and new weights: equal seeds give equal runs.")
    )
    checkpoint_every: int = field(
        default=100,
        metadata=setting(
            "Save a resumable checkpoint every N steps (and on Ctrl-C).",
            inert=True,
            within=Within(1, hint="e.g. {checkpoint_every:100}"),
        ),
    )
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = field(
        default="auto",
        metadata=setting(
            "Compute precision of the forward passes: auto (bf16 autocast on a GPU that has it, else fp16 on a GPU; "
            "no on the CPU), no, fp16 (GPU) or bf16. Weights and optimizer state stay fp32.",
            metavar=CHOICES,
            choice_hint="{mixed_precision:fp16} on a GPU, no on the CPU",
        ),
    )
    gradient_checkpointing: Literal["auto", "on", "all", "off"] = field(
        default="auto",
        metadata=setting(
            "Recompute activations in the backward pass: 'on' for the blocks at the two highest resolutions (where "
            "activations dominate: ~29 % less peak memory, ~8 % slower), 'all' for every block (~34 % less, ~15 % "
            "slower), 'off', or 'auto' (off when the step fits in the memory free now, else on, else all).",
            metavar=CHOICES,
            choice_hint="{gradient_checkpointing} auto, on, all or off",
            inert=True,
        ),
    )
    weight_decay: float = field(
        default=1e-2,
        metadata=setting("AdamW weight decay.", within=Within(0, hint="the default is {weight_decay.default:g}")),
    )
    max_grad_norm: float = field(
        default=1.0,
        metadata=setting(
            "Clip the video objective's gradient to this norm.",
            within=Within(0, low_open=True, hint="the default is {max_grad_norm.default}"),
        ),
    )
    no_latent_prompt: bool = field(
        default=False,
        metadata=setting(
            "Ablation: train and edit without the latent prompt; frames attend to the first and previous frame only "
            "(Tune-A-Video's attention).",
            panel=ABLATIONS,
            paper=True,
        ),
    )
    image_temporal: bool = field(
        default=False,
        metadata=setting(
            "Ablation (the paper's Fig. 8): run the temporal attentions in the image objective too, and train them "
            "there (the paper bypasses them).",
            panel=ABLATIONS,
            paper=True,
        ),
    )
    window: int = field(
        default=DEFAULT_WINDOW,
        metadata=setting(
            "Frames per step of the video objective: each step draws W consecutive frames of the clip, with the "
            "latent prompt and the clip's first frame in front (the whole clip when it has at most W frames). "
            "Invert and edit run windows of the same size.",
            paper=True,
        ),
    )
    preset: Preset | None = field(default=None, metadata=PRESET)

    def __post_init__(self) -> None:
        def error(message: str, hint: str, **values: Any) -> SettingError:
            return SettingError(TrainConfig, message, hint, **values)

        if isinstance(self.gradient_checkpointing, bool):  # jobs files and earlier versions: a switch
            object.__setattr__(self, "gradient_checkpointing", "all" if self.gradient_checkpointing else "off")
        check_fields(self)
        check_window(TrainConfig, self.window)
        object.__setattr__(self, "steps", self._steps())
        if not self.token or any(c.isspace() or has_control_character(c) for c in self.token):
            raise error(
                "{token} must be one string without spaces or control characters, got {value!r}",
                "e.g. {token:'{token.default}'}",
                value=self.token,
            )
        if isinstance(self.reference_prompt, (list, tuple)):  # given once: the one caption, as before
            captions = tuple(self.reference_prompt)
            object.__setattr__(self, "reference_prompt", captions[0] if len(captions) == 1 else captions or None)
        if any(not caption.strip() for caption in self.reference_captions):
            raise error(
                "{reference_prompt} is empty",
                "describe the reference image, e.g. {reference_prompt:'a <tok> on a beach'}",
            )
        if self.init_word is not None and not self.init_word.strip():
            raise error("{init_word} is empty", "name the reference object, e.g. {init_word:dog}, or leave it out")
        apply_preset(self)

    @property
    def reference_captions(self) -> tuple[str, ...]:
        """--reference-prompt as given: none, one for every reference, or one per reference."""
        if self.reference_prompt is None:
            return ()
        return (self.reference_prompt,) if isinstance(self.reference_prompt, str) else self.reference_prompt

    def _steps(self) -> int | str:
        """--steps as a number or 'auto'."""
        steps = number_or_word(
            TrainConfig, "steps", self.steps, "auto", hint="e.g. {steps:500} (the paper), or {steps:auto}"
        )
        if steps != "auto" and steps < 1:
            raise SettingError(
                TrainConfig,
                "{steps} must be at least 1, got {value}",
                "the paper trains {steps.default} steps (the default)",
                value=steps,
            )
        return steps

    def settings(self) -> dict[str, Any]:
        """What the trained result depends on: not how often to checkpoint, nor whether to
        recompute activations (the stage leaves out the window too where the clip fits in one,
        and records --reference-mask where some reference is found a mask)."""
        values = settings_of(self)
        values.pop("reference_mask", None)  # the stage records it where a reference is found a mask (train.py)
        values.pop("show_object", None)  # and whether the object is hidden, where a mask weights the loss
        if self.image_temporal:  # since the image objective trains the temporal attentions: earlier runs are stale
            values["image_objective_trains"] = "token and temporal attentions"
        return values


@dataclass(frozen=True)
class InvertConfig:
    steps: int = field(
        default=50, metadata=setting("DDIM steps (an edit samples with the same number).", within=DDIM_STEPS)
    )
    prompt: str | None = field(
        default=None,
        metadata=setting("Prompt to invert with (default: the source prompt). <tok> is the learned token."),
    )
    refine: int = field(default=0, metadata=setting(REFINE_HELP, within=REFINE))
    window: int | None = field(default=None, metadata=setting(WINDOW_HELP))
    overlap: int = field(default=DEFAULT_OVERLAP, metadata=setting(OVERLAP_HELP))

    @classmethod
    def for_edit(cls, edit: Any, window: int, overlap: int) -> InvertConfig:
        """The inversion an edit starts from: its steps and refinement, in its windows."""
        return cls(steps=edit.steps, refine=edit.refine, window=window, overlap=overlap)

    def __post_init__(self) -> None:
        check_fields(self)
        check_windows(self)
        if self.prompt is not None and not self.prompt.strip():
            raise SettingError(InvertConfig, "{prompt} is empty", "leave it out to invert with the source prompt")


NAME_LENGTH = 100
"""The longest edit or job name: a folder name that fits every file system with room to spare."""
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
NAME_RULE = f"up to {NAME_LENGTH} plain letters (a-z, A-Z: no accents), digits, '.', '-', '_' or '+'"
"""What `plain_name` allows, in a hint's words."""


def plain_name(name: str) -> bool:
    """A name that makes a folder anyone can type: letters, digits, `.`, `-`, `_`, `+`,
    starting with a letter or digit, at most `NAME_LENGTH` long (no newline at the end,
    no control character, no separator)."""
    return len(name) <= NAME_LENGTH and PLAIN_NAME.fullmatch(name) is not None


def shown_name(name: str) -> str:
    """A name as an error quotes it: its control characters visible, a long one cut."""
    return repr(name if len(name) <= 40 else name[:40] + "…")


def edit_slug(replacements: tuple[str, ...]) -> str:
    """The default edit name: `car=<tok>` -> `car-tok`; several joined by `+`."""
    slugs = []
    for text in replacements:
        words = re.findall(r"[a-z0-9]+", text.lower())
        slugs.append("-".join(words) or "edit")
    return "+".join(slugs)[:80].strip("-+.") or "edit"


SourceBranch = Literal["sample", "inversion", "auto"]
"""Where an edit reads the source's attention: a source branch sampled beside it, or what the inversion stored."""
EditLatentPrompt = Literal["trained", "reference", "swapped"]
BlendBackground = Literal["source", "clip"]
BlendMask = Literal["auto", "attention", "given", "both"]
MaskRegion = Literal["box", "hull", "outline"]
SelfReplaceLayers = Literal["coarse", "all", "none"]
ReplaceLayers = Literal["all", "coarse"]
COMPACT_LAYERS = {"cross_replace_layers": "coarse", "temporal_replace_layers": "coarse", "self_replace_layers": "none"}
"""The --*-replace-layers of the compact store: word swap and temporal attention below the
UNet's top resolution, no frame attention (docs/performance.md, "The store's size")."""


MAX_BLEND_POOL = 15
"""--blend-pool's largest window: 15 cells of a 16×16 map is the whole frame."""
MAX_MASK_GROW = 4.0
"""--mask-grow's largest value: a region nine times the object's box is the whole frame anyway."""


@dataclass(frozen=True)
class EditConfig:
    PANEL: ClassVar[str] = EDITING
    PAPER: ClassVar[dict[str, Any]] = {"blend_scale": "max"}
    """Where the paper's setting differs from the default."""

    replace: tuple[str, ...] = field(
        metadata=setting(
            "A=B: swap the prompt's word A for B; <tok> is the learned token. Repeatable.", panel=MAIN, metavar="A=B"
        )
    )
    name: str | None = field(
        default=None,
        metadata=setting("Folder name under edits/ (default: from the replacements, e.g. car-tok).", inert=True),
    )
    steps: int = field(
        default=50, metadata=setting("DDIM steps of the inversion and the edit.", paper=True, within=DDIM_STEPS)
    )
    guidance: float = field(
        default=12.5,
        metadata=setting(
            "Classifier-free guidance scale.",
            paper=True,
            within=Within(0, hint="the paper uses {guidance:{guidance.default}}"),
        ),
    )
    cross_replace: float = field(
        default=0.6,
        metadata=setting(
            "Fraction of steps in which the kept words' cross-attention maps come from the source.",
            panel=EDIT_CONTROL,
            paper=True,
            within=Within(
                0,
                1,
                words="between 0 and 1",
                hint="{cross_replace} is a fraction of the steps or of the attention's range",
            ),
        ),
    )
    self_replace: float = field(
        default=0.3,
        metadata=setting(
            "Fraction of steps in which the frame and temporal attention maps come from the source.",
            panel=EDIT_CONTROL,
            paper=True,
            within=Within(
                0,
                1,
                words="between 0 and 1",
                hint="{self_replace} is a fraction of the steps or of the attention's range",
            ),
        ),
    )
    self_replace_layers: SelfReplaceLayers = field(
        default="coarse",
        metadata=setting(
            "Which frame-attention layers --self-replace gives the source's maps: 'coarse' (every layer below the "
            "UNet's top resolution: Prompt-to-Prompt's ≤ 32×32 at 512 px; the top layers keep the edit's own, as "
            "FateZero's) or 'all' (the top layers too: their maps bring the old object's outline and colour into "
            "the new one) or 'none' (no frame attention is replaced: the inversion then stores none of it, its "
            "largest part).",
            panel=EDIT_CONTROL,
            metavar=CHOICES,
            paper=True,
            omit_default=True,
        ),
    )
    cross_replace_layers: ReplaceLayers = field(
        default="all",
        metadata=setting(
            "Which cross-attention layers word swap gives the source's maps: 'all' (Prompt-to-Prompt's, the paper) "
            "or 'coarse' (below the UNet's top resolution, FateZero's ≤ 32×32 at 512 px: the top layers keep the "
            "edit's own, and the inversion stores a quarter of the maps).",
            panel=EDIT_CONTROL,
            metavar=CHOICES,
            paper=True,
            omit_default=True,
        ),
    )
    temporal_replace_layers: ReplaceLayers = field(
        default="all",
        metadata=setting(
            "Which temporal-attention layers --self-replace gives the source's maps: 'all' (the paper's video "
            "extension of Prompt-to-Prompt) or 'coarse' (below the UNet's top resolution: the inversion stores a "
            "quarter of the maps).",
            panel=EDIT_CONTROL,
            metavar=CHOICES,
            paper=True,
            omit_default=True,
        ),
    )
    keep: str | None = field(
        default=None,
        metadata=setting(
            "Source words whose cross-attention maps are kept (default: every word not replaced).", panel=EDIT_CONTROL
        ),
    )
    blend: str | None = field(
        default=None,
        metadata=setting(
            "Words whose attention makes the local-blend mask (default: the replaced words and their replacements).",
            panel=EDIT_CONTROL,
        ),
    )
    no_blend: bool = field(
        default=False,
        metadata=setting(
            "Turn local blend off: the edit may change the background too.", panel=EDIT_CONTROL, paper=True
        ),
    )
    blend_threshold: float = field(
        default=0.3,
        metadata=setting(
            "Local blend: where in each frame's range of attention (0: least, 1: most) the object begins.",
            panel=EDIT_CONTROL,
            paper=True,
            within=Within(
                0,
                1,
                words="between 0 and 1",
                hint="{blend_threshold} is a fraction of the steps or of the attention's range",
            ),
        ),
    )
    blend_pool: int = field(
        default=3,
        metadata=setting(
            "Local blend: the max-pool window (odd, in cells of the blend layers' maps: 16×16 at 512 px) that grows "
            "the attention before the threshold; 3 is Prompt-to-Prompt's (the paper's).",
            panel=EDIT_CONTROL,
            paper=True,
            omit_default=True,
        ),
    )
    blur_sigma: float = field(
        default=1.0,
        metadata=setting(
            "Local blend: Gaussian blur of the mask, in latent pixels (8 image pixels); 0: none.",
            panel=EDIT_CONTROL,
            within=Within(0, hint="0 turns the blur off"),
        ),
    )
    blend_start: float = field(
        default=0.2,
        metadata=setting(
            "Local blend: fraction of the steps after which the background is kept.",
            panel=EDIT_CONTROL,
            paper=True,
            within=Within(
                0,
                1,
                words="between 0 and 1",
                hint="{blend_start} is a fraction of the steps or of the attention's range",
            ),
        ),
    )
    blend_background: BlendBackground = field(
        default="source",
        metadata=setting(
            "Local blend: what the background keeps: 'source' (the source branch's latents: Prompt-to-Prompt, the "
            "paper) or 'clip' (the clip's own inverted latents: the background stays the clip's when guidance makes "
            "the source drift). 'clip' is not in the paper.",
            panel=EDIT_CONTROL,
            paper=True,
            omit_default=True,
        ),
    )
    blend_scale: Literal["range", "max"] = field(
        default="range",
        metadata=setting(
            "Local blend: how the summed attention is scaled before the threshold: 'range' (minimum to 0, maximum "
            "to 1: a model that spreads a floor of attention everywhere still gets a mask) or 'max' (divided by the "
            "maximum: Prompt-to-Prompt, the paper). In SD, where the floor is near 0, the two agree.",
            panel=EDIT_CONTROL,
            paper=True,
            omit_default=True,
        ),
    )
    blend_mask: BlendMask = field(
        default="auto",
        metadata=setting(
            "Local blend: what decides where the edit may change the clip: 'attention' (the blend words' "
            "cross-attention: Prompt-to-Prompt, the paper), 'given' (the object masks given to prepare with --mask) "
            "or 'both' (either of them); 'auto': given when the project has masks, else attention.",
            panel=EDIT_CONTROL,
            metavar=CHOICES,
            omit_default=True,
        ),
    )
    mask_region: MaskRegion = field(
        default="box",
        metadata=setting(
            "Local blend with object masks: the region the new object may take, from each frame's mask: its "
            "bounding 'box' or convex 'hull' (grown by --mask-grow), inside which the edit's own attention to the "
            "new word draws the outline; or 'outline': the mask itself is the edit's outline (a new object of "
            "another shape must fit the old one's).",
            panel=EDIT_CONTROL,
            metavar=CHOICES,
        ),
    )
    mask_grow: float = field(
        default=0.25,
        metadata=setting(
            "Local blend with object masks: how far the region reaches past the object, as a fraction of its box's "
            "width and height on each side (0: the box or hull itself).",
            panel=EDIT_CONTROL,
            within=Within(
                0,
                MAX_MASK_GROW,
                words=f"between 0 and {MAX_MASK_GROW:g}",
                hint="0 keeps the box or hull; the default is {mask_grow.default:g}",
            ),
        ),
    )
    refine: int = field(default=0, metadata=setting(REFINE_HELP, paper=True, within=REFINE))
    pin_source: bool = field(
        default=False,
        metadata=setting(
            "Keep the source branch on the inverted latents and move the edit by the same correction "
            "(Direct Inversion, Ju et al. 2023): the background follows the clip more closely. Not in the paper.",
            paper=True,
        ),
    )
    eta: float = field(
        default=0.0,
        metadata=setting(
            "DDIM η: 0 is deterministic (the paper); above 0 adds seeded noise each step.",
            paper=True,
            within=Within(
                0, 1, words="between 0 and 1", hint="{eta} is a fraction of the steps or of the attention's range"
            ),
        ),
    )
    latent_prompt: EditLatentPrompt = field(
        default="trained",
        metadata=setting(
            "The edit's latent prompt in the conditional branch: 'trained' (the paper: learnt from the clip, it "
            "carries the source object's look; the unconditional branch has the reference's latents) or 'reference' "
            "(the reference image's latents in both branches: the new object's look) or 'swapped' (the paper's two "
            "the other way round: the reference's latents in the conditional branch, the trained latent prompt in "
            "the unconditional one, so that guidance adds the reference rather than subtracting it). Not in the "
            "paper but 'trained'.",
            paper=True,
            omit_default=True,
        ),
    )
    source_branch: SourceBranch = field(
        default="sample",
        metadata=setting(
            "Where word swap and local blend read the source's attention: 'sample' (a source branch sampled beside "
            "the edit: Prompt-to-Prompt, the paper) or 'inversion' (stored by the inversion: the edit runs alone, "
            "about half the work; the source's latents are then the clip's inverted ones; not in the paper) or "
            "'auto' (inversion where it pays: frames of 256 px and more, and the store fits on the disk).",
            metavar=CHOICES,
            paper=True,
            omit_default=True,
        ),
    )
    seed: int = field(default=0, metadata=setting("Seed of the noise that --eta adds."))
    window: int | None = field(default=None, metadata=setting(WINDOW_HELP, inert=True, paper=True))
    overlap: int = field(default=DEFAULT_OVERLAP, metadata=setting(OVERLAP_HELP, inert=True))
    output_size: Literal["model", "source"] = field(
        default="model",
        metadata=setting(
            "Size of edit.mp4 and compare.mp4: 'model' (the frames as edited) or 'source' (upscaled to the clip's "
            "own resolution).",
            metavar=CHOICES,
            omit_default=True,
        ),
    )
    preset: Preset | None = field(default=None, metadata=PRESET)

    def __post_init__(self) -> None:
        def error(message: str, hint: str, **values: Any) -> SettingError:
            return SettingError(EditConfig, message, hint, **values)

        check_fields(self)
        if not self.replace:
            raise error("an edit needs at least one {replace:A=B}", "e.g. {replace:'motorcycle=<tok>'}")
        check_windows(self)
        if not (1 <= self.blend_pool <= MAX_BLEND_POOL and self.blend_pool % 2):
            raise error(
                f"{{blend_pool}} must be an odd number from 1 to {MAX_BLEND_POOL}, got {{value}}",
                "the default is {blend_pool.default} (Prompt-to-Prompt's)",
                value=self.blend_pool,
            )
        if self.name is not None and not plain_name(self.name):
            raise error(
                "{name:{value}} is not a plain folder name",
                f"use {NAME_RULE}, e.g. {{name:dog}}",
                value=shown_name(self.name),
            )
        if self.no_blend and self.blend is not None:
            raise error("{blend} and {no_blend} contradict each other", "pass one of them")
        apply_preset(self)

    @property
    def blend_reads_masks(self) -> bool:
        """Local blend reads the given object masks: --blend-mask given or both, blending on."""
        return not self.no_blend and self.blend_mask in ("given", "both")

    @property
    def folder_name(self) -> str:
        return self.name or edit_slug(self.replace)

    def settings(self) -> dict[str, Any]:
        """What the edited video depends on: not the folder's name, nor the windows (the
        stage adds them where they matter), nor the seed unless η > 0, nor the masks' region
        unless local blend reads masks (edits made before the region existed stay up to date),
        nor which layers --self-replace reaches (the edit stage records it where the frames'
        size makes it change them)."""
        values = settings_of(self)
        values.pop("self_replace_layers", None)  # the edit stage records it where it changes the layers (edit.py)
        if not self.eta:
            del values["seed"]
        if not (self.blend_reads_masks and self.blend_mask == "given"):
            del values["mask_region"], values["mask_grow"]
        elif self.mask_region == "outline":
            del values["mask_grow"]
        return values


@dataclass(frozen=True)
class EvalConfig:
    PANEL: ClassVar[str] = EVALUATING

    clip_model: str = field(
        default=DEFAULT_CLIP_MODEL,
        metadata=setting(
            "CLIP that scores: a hub id, a local transformers folder, or 'tiny' (random, built offline; the default "
            "for a project on --model tiny or shapes)."
        ),
    )
    text: str | None = field(
        default=None,
        metadata=setting(
            "Text of the CLIP score. Default: the edit's target prompt with <tok> read as --init-word, else the "
            "words of --reference-prompt; with neither, an edit to <tok> gets no CLIP score (never the source's "
            "object word, which would score a failed edit as a success)."
        ),
    )
    mask_margin: int = field(
        default=2,
        metadata=setting(
            "Background = pixels farther than this many latent cells (8 px; 4 px on shapes) from the blend mask: the "
            "VAE spreads edits that far.",
            within=Within(
                0, 64, words="between 0 and 64 latent cells", hint="the default is {mask_margin.default} (16 px)"
            ),
        ),
    )

    def __post_init__(self) -> None:
        def error(message: str, hint: str, **values: Any) -> SettingError:
            return SettingError(EvalConfig, message, hint, **values)

        check_fields(self)
        if not self.clip_model.strip():
            raise error(
                "{clip_model} is empty", "leave it out for {clip_model.default}, or pass 'tiny' for a smoke run"
            )
        if self.text is not None and not self.text.strip():
            raise error("{text} is empty", "leave it out to score against the edit's target prompt")

    def settings(self) -> dict[str, Any]:
        return settings_of(self)


# --------------------------------------------------------------------------- user defaults


def user_config_path() -> Path:
    root = environment.folder(environment.CONFIG_DIR) or platformdirs.user_config_dir("live")
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
    model: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
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
