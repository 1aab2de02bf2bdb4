"""The `live` command line: parse flags, call a stage, show its result (`render.py`). No logic of its own."""

from __future__ import annotations

import json
import os
import sys
import traceback
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from livecli import __version__, render
from livecli.config import (
    BUILT_IN_MODELS,
    DEFAULT_CLIP_MODEL,
    DEFAULT_MODEL,
    DEFAULT_TOKEN,
    EditConfig,
    EvalConfig,
    InvertConfig,
    ModelConfig,
    PrepareConfig,
    TrainConfig,
    help_for,
    resolve_clip_model,
    resolve_model_config,
)
from livecli.errors import ConfigError, Interrupted, LiveError
from livecli.progress import console
from livecli.store import Project, default_project_dir, find_project

app = typer.Typer(
    name="live",
    help="Edit a video so that one object in it becomes the object in a reference image (LIVE, on Stable Diffusion v1.x).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = render.out

# Typer vendors click in recent releases; reach its base exception through a public class.
ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

# --------------------------------------------------------------------------- shared options

ProjectOpt = Annotated[
    Optional[Path],
    typer.Option("-p", "--project", help="Project directory. Default: ./<clip stem>.live, or the only *.live folder here.", show_default=False),
]
ModelOpt = Annotated[
    Optional[str],
    typer.Option("--model", help=help_for(ModelConfig, "model") + escape(f" [default: {DEFAULT_MODEL}]"), show_default=False),
]
ModelConfigOpt = Annotated[Optional[str], typer.Option("--model-config", help=help_for(ModelConfig, "model_config"), show_default=False)]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help=help_for(ModelConfig, "device") + escape(" [default: auto]"), show_default=False)]
DtypeOpt = Annotated[Optional[str], typer.Option("--dtype", help=help_for(ModelConfig, "dtype"), show_default=False)]
ForceOpt = Annotated[bool, typer.Option("--force", help="Run the stage again even when it is up to date.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")]

ClipArg = Annotated[Path, typer.Argument(metavar="CLIP", help="The video (mp4, mov, webm, mkv, gif, …) or a folder of frames (1.jpg … 10.jpg).", show_default=False)]
ImageArg = Annotated[Path, typer.Argument(metavar="IMAGE", help="The reference image showing the new object.", show_default=False)]
PromptOpt = Annotated[str, typer.Option("--prompt", help=help_for(PrepareConfig, "prompt"), show_default=False)]
ObjectOpt = Annotated[str, typer.Option("--object", help=help_for(PrepareConfig, "object"), show_default=False)]

PREPARING = "Preparing (with CLIP IMAGE)"
TRAINING = "Training"
EDITING = "Editing"
ABLATIONS = "Ablations (not the paper's method)"
EDIT_CONTROL = "Attention control and local blend"
EVALUATING = "Evaluating"


def _flag(config: type, name: str, *flags: str, panel: str | None = None, default: str | None = None, **extra) -> typer.models.OptionInfo:
    """A typer.Option whose help is the config field's. `default`: None lets Typer show the
    default, "" shows none (the help says it), any other text is shown as the default."""
    text = help_for(config, name) + (escape(f" [default: {default}]") if default else "")
    return typer.Option(*flags, help=text, rich_help_panel=panel, show_default=default is None, **extra)


# Options of `live train` and `live run` (the step count is --steps in one, --train-steps in the other).
LrOpt = Annotated[float, _flag(TrainConfig, "lr", "--lr", panel=TRAINING)]
TiLrOpt = Annotated[float, _flag(TrainConfig, "ti_lr", "--ti-lr", panel=TRAINING)]
LambdaOpt = Annotated[float, _flag(TrainConfig, "text_weight", "--lambda", panel=TRAINING)]
TokenOpt = Annotated[str, _flag(TrainConfig, "token", "--token", panel=TRAINING)]
ReferencePromptOpt = Annotated[Optional[str], _flag(TrainConfig, "reference_prompt", "--reference-prompt", panel=TRAINING, default="", metavar="TEXT")]
InitWordOpt = Annotated[Optional[str], _flag(TrainConfig, "init_word", "--init-word", panel=TRAINING, default="", metavar="WORD")]
SeedOpt = Annotated[int, _flag(TrainConfig, "seed", "--seed", panel=TRAINING)]
CheckpointEveryOpt = Annotated[int, _flag(TrainConfig, "checkpoint_every", "--checkpoint-every", panel=TRAINING)]
MixedPrecisionOpt = Annotated[str, _flag(TrainConfig, "mixed_precision", "--mixed-precision", panel=TRAINING)]
GradientCheckpointingOpt = Annotated[bool, _flag(TrainConfig, "gradient_checkpointing", "--gradient-checkpointing", panel=TRAINING)]
WeightDecayOpt = Annotated[float, _flag(TrainConfig, "weight_decay", "--weight-decay", panel=TRAINING)]
MaxGradNormOpt = Annotated[float, _flag(TrainConfig, "max_grad_norm", "--max-grad-norm", panel=TRAINING)]
NoLatentPromptOpt = Annotated[bool, _flag(TrainConfig, "no_latent_prompt", "--no-latent-prompt", panel=ABLATIONS)]
ImageTemporalOpt = Annotated[bool, _flag(TrainConfig, "image_temporal", "--image-temporal", panel=ABLATIONS)]

# Options of `live edit` and `live run`.
ReplaceOpt = Annotated[list[str], _flag(EditConfig, "replace", "--replace", default="", metavar="A=B")]
NameOpt = Annotated[Optional[str], _flag(EditConfig, "name", "--name", default="")]
GuidanceOpt = Annotated[float, _flag(EditConfig, "guidance", "--guidance", panel=EDITING)]
CrossReplaceOpt = Annotated[float, _flag(EditConfig, "cross_replace", "--cross-replace", panel=EDIT_CONTROL)]
SelfReplaceOpt = Annotated[float, _flag(EditConfig, "self_replace", "--self-replace", panel=EDIT_CONTROL)]
KeepOpt = Annotated[Optional[str], _flag(EditConfig, "keep", "--keep", panel=EDIT_CONTROL, default="")]
BlendOpt = Annotated[Optional[str], _flag(EditConfig, "blend", "--blend", panel=EDIT_CONTROL, default="")]
NoBlendOpt = Annotated[bool, _flag(EditConfig, "no_blend", "--no-blend", panel=EDIT_CONTROL)]
BlendThresholdOpt = Annotated[float, _flag(EditConfig, "blend_threshold", "--blend-threshold", panel=EDIT_CONTROL)]
BlurSigmaOpt = Annotated[float, _flag(EditConfig, "blur_sigma", "--blur-sigma", panel=EDIT_CONTROL)]
BlendStartOpt = Annotated[float, _flag(EditConfig, "blend_start", "--blend-start", panel=EDIT_CONTROL)]
BlendBackgroundOpt = Annotated[str, _flag(EditConfig, "blend_background", "--blend-background", panel=EDIT_CONTROL)]
LatentPromptOpt = Annotated[str, _flag(EditConfig, "latent_prompt", "--latent-prompt", panel=EDITING)]
RefineOpt = Annotated[int, _flag(EditConfig, "refine", "--refine", panel=EDITING)]
PinSourceOpt = Annotated[bool, _flag(EditConfig, "pin_source", "--pin-source", panel=EDITING)]
EtaOpt = Annotated[float, _flag(EditConfig, "eta", "--eta", panel=EDITING)]

# Options of `live eval` and `live run`.
ClipModelOpt = Annotated[Optional[str], _flag(EvalConfig, "clip_model", "--clip-model", panel=EVALUATING, default=DEFAULT_CLIP_MODEL)]
TextOpt = Annotated[Optional[str], _flag(EvalConfig, "text", "--text", panel=EVALUATING, default="")]
MaskMarginOpt = Annotated[int, _flag(EvalConfig, "mask_margin", "--mask-margin", panel=EVALUATING)]


def _config(config_type: type, parameters: dict, **renamed):
    """A stage's config from a command's parameters: those named like its fields, and
    `renamed` for the others (`--train-steps` is TrainConfig's `steps`)."""
    names = {f.name for f in fields(config_type)} - renamed.keys()
    return config_type(**{name: value for name, value in parameters.items() if name in names}, **renamed)


def _version(value: bool) -> None:
    if value:
        out.print(f"live {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """Edit a video so that one object in it becomes the object in a reference image.

    Stages read and write one project directory, and each runs what it needs that is
    missing or stale: a stage whose inputs and settings did not change says "up to date".
    """


# --------------------------------------------------------------------------- rendering


def _model(target: Project, model: str | None, model_config: str | None, device: str | None, dtype: str | None) -> ModelConfig:
    """--model, else the project's model, else the user's config.toml, else the default."""
    if model is None and target.exists():
        entry = target.manifest().get("model", {})
        model = entry.get("path") or entry.get("id")
        model_config = model_config or entry.get("config")
    return resolve_model_config(model, device, dtype, model_config)


# --------------------------------------------------------------------------- commands


@app.command(
    epilog="Examples:\n\n"
    '  live prepare clip.mp4 dog.jpg --prompt "a man riding a motorcycle" --object motorcycle\n\n'
    '  live prepare frames/ ref.png --prompt "a rabbit is jumping on the grass" --object rabbit --frames 8 --size 512\n\n'
    '  live prepare clip.mp4 ref.png --prompt "a jeep car is moving on the road" --object car --model tiny --size 64',
)
def prepare(
    clip: ClipArg,
    image: ImageArg,
    prompt: PromptOpt,
    object_: ObjectOpt,
    project: ProjectOpt = None,
    model: ModelOpt = None,
    model_config_: ModelConfigOpt = None,
    frames: Annotated[int, typer.Option(help=help_for(PrepareConfig, "frames"))] = 8,
    size: Annotated[Optional[int], typer.Option(help=help_for(PrepareConfig, "size"), show_default=False)] = None,
    stride: Annotated[int, typer.Option(help=help_for(PrepareConfig, "stride"))] = 1,
    start: Annotated[float, typer.Option(help=help_for(PrepareConfig, "start"))] = 0.0,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    force: ForceOpt = False,
) -> None:
    """Sample the clip's frames and encode them and the reference image with the VAE."""
    from livecli.stages import prepare as stage

    config = PrepareConfig(prompt=prompt, object=object_, frames=frames, size=size, stride=stride, start=start)
    target = Project(project or default_project_dir(clip))
    result = stage.run(target, config, clip, image, _model(target, model, model_config_, device, dtype), force=force)
    render.report_stage(result)



@app.command(
    epilog="Examples:\n\n"
    '  live train clip.mp4 dog.jpg --prompt "a man riding a motorcycle" --object motorcycle\n\n'
    "  live train -p clip.live --steps 800      (continues a finished 500-step run)\n\n"
    '  live train clip.mp4 ref.png --prompt "a jeep car is moving on the road" --object car --model tiny --size 64 --steps 60\n\n'
    "Ctrl-C saves a checkpoint after the current step; the same command resumes from it.",
)
def train(
    clip: Annotated[Optional[Path], typer.Argument(help="The video, to prepare first (else the project's prepared frames are used).", show_default=False)] = None,
    image: Annotated[Optional[Path], typer.Argument(help="The reference image, with CLIP.", show_default=False)] = None,
    prompt: Annotated[Optional[str], typer.Option("--prompt", help=help_for(PrepareConfig, "prompt"), show_default=False, rich_help_panel=PREPARING)] = None,
    object_: Annotated[Optional[str], typer.Option("--object", help=help_for(PrepareConfig, "object"), show_default=False, rich_help_panel=PREPARING)] = None,
    frames: Annotated[Optional[int], typer.Option(help=help_for(PrepareConfig, "frames") + escape(" [default: 8]"), show_default=False, rich_help_panel=PREPARING)] = None,
    size: Annotated[Optional[int], typer.Option(help=help_for(PrepareConfig, "size"), show_default=False, rich_help_panel=PREPARING)] = None,
    stride: Annotated[Optional[int], typer.Option(help=help_for(PrepareConfig, "stride") + escape(" [default: 1]"), show_default=False, rich_help_panel=PREPARING)] = None,
    start: Annotated[Optional[float], typer.Option(help=help_for(PrepareConfig, "start") + escape(" [default: 0.0]"), show_default=False, rich_help_panel=PREPARING)] = None,
    project: ProjectOpt = None,
    model: ModelOpt = None,
    model_config_: ModelConfigOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    steps: Annotated[int, _flag(TrainConfig, "steps", "--steps", panel=TRAINING)] = 500,
    lr: LrOpt = 3e-5,
    ti_lr: TiLrOpt = 5e-3,
    text_weight: LambdaOpt = 1.0,
    token: TokenOpt = DEFAULT_TOKEN,
    reference_prompt: ReferencePromptOpt = None,
    init_word: InitWordOpt = None,
    seed: SeedOpt = 33,
    checkpoint_every: CheckpointEveryOpt = 100,
    mixed_precision: MixedPrecisionOpt = "no",
    gradient_checkpointing: GradientCheckpointingOpt = False,
    weight_decay: WeightDecayOpt = 1e-2,
    max_grad_norm: MaxGradNormOpt = 1.0,
    no_latent_prompt: NoLatentPromptOpt = False,
    image_temporal: ImageTemporalOpt = False,
    force: Annotated[bool, typer.Option("--force", help="Train again from step 0, even when up to date or a checkpoint exists.")] = False,
) -> None:
    """Fine-tune the video UNet, the latent prompt and the learned token on the project.

    Given CLIP and IMAGE, prepares them first (when missing or stale). A run with the same settings continues from its last checkpoint; other settings train afresh.
    """
    from livecli.stages import prepare as prepare_stage
    from livecli.stages import train as stage

    config = _config(TrainConfig, locals())
    if clip is not None and image is None:
        raise ConfigError("CLIP needs IMAGE: pass both, or neither to train on the project's prepared frames", hint="live train CLIP IMAGE --prompt TEXT --object WORD")
    sampling = {"frames": frames, "size": size, "stride": stride, "start": start}
    if clip is None:
        given = [f"--{name}" for name, value in {"prompt": prompt, "object": object_, **sampling}.items() if value is not None]
        if given:
            raise ConfigError(
                f"{' and '.join(given)} go{'es' if len(given) == 1 else ''} with CLIP IMAGE",
                hint="pass CLIP IMAGE too, or leave them out to train the project as prepared (`live prepare` changes it)",
            )
        target = find_project(project)
        models = _model(target, model, model_config_, device, dtype)
        prepared = prepare_stage.refresh(target, models)
    else:
        if prompt is None or object_ is None:
            raise ConfigError("CLIP IMAGE need --prompt and --object", hint='e.g. --prompt "a man riding a motorcycle" --object motorcycle')
        target = Project(project or default_project_dir(clip))
        models = _model(target, model, model_config_, device, dtype)
        prepare_config = PrepareConfig(prompt=prompt, object=object_, **{k: v for k, v in sampling.items() if v is not None})
        prepared = prepare_stage.run(target, prepare_config, clip, image, models)
    render.report_stage(prepared)
    result = stage.run(target, config, models, force=force)
    render.report_stage(result)


@app.command(
    epilog="Examples:\n\n"
    "  live invert\n\n"
    "  live invert -p clip.live --steps 100\n\n"
    "  live invert --refine 4      (sampling then reproduces the clip almost exactly)\n\n"
    "`live edit` runs the inversion it needs by itself; this command is for inspecting or precomputing it.",
)
def invert(
    project: ProjectOpt = None,
    steps: Annotated[int, typer.Option(help=help_for(InvertConfig, "steps"))] = 50,
    prompt: Annotated[Optional[str], typer.Option("--prompt", help=help_for(InvertConfig, "prompt"), show_default=False)] = None,
    refine: Annotated[int, typer.Option(help=help_for(InvertConfig, "refine"))] = 0,
    model: ModelOpt = None,
    model_config_: ModelConfigOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    force: ForceOpt = False,
) -> None:
    """DDIM-invert the prepared video through the trained video UNet (cached: edits share it)."""
    from livecli.stages import invert as stage

    config = InvertConfig(steps=steps, prompt=prompt, refine=refine)
    target = find_project(project)
    result = stage.run(target, config, _model(target, model, model_config_, device, dtype), force=force)
    render.report_stage(result)


@app.command(
    epilog="Examples:\n\n"
    "  live edit --replace 'motorcycle=<tok>'\n\n"
    "  live edit --replace 'motorcycle=<tok>' --keep \"man riding\" --blend motorcycle --name dog-ride\n\n"
    "  live edit --replace car=\"red sports car\" --guidance 7.5      (a plain text edit)\n\n"
    "<tok> is the object learned from the reference image. The first edit inverts the video; "
    "later edits with the same --steps reuse that inversion.",
)
def edit(
    replace: ReplaceOpt,
    project: ProjectOpt = None,
    name: NameOpt = None,
    steps: Annotated[int, _flag(EditConfig, "steps", "--steps", panel=EDITING)] = 50,
    guidance: GuidanceOpt = 12.5,
    cross_replace: CrossReplaceOpt = 0.6,
    self_replace: SelfReplaceOpt = 0.3,
    keep: KeepOpt = None,
    blend: BlendOpt = None,
    no_blend: NoBlendOpt = False,
    blend_threshold: BlendThresholdOpt = 0.3,
    blur_sigma: BlurSigmaOpt = 1.0,
    blend_start: BlendStartOpt = 0.2,
    blend_background: BlendBackgroundOpt = "source",
    refine: RefineOpt = 0,
    pin_source: PinSourceOpt = False,
    eta: EtaOpt = 0.0,
    latent_prompt: LatentPromptOpt = "trained",
    seed: Annotated[int, _flag(EditConfig, "seed", "--seed", panel=EDITING)] = 0,
    model: ModelOpt = None,
    model_config_: ModelConfigOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Edit again, replacing an edit of the same name.")] = False,
) -> None:
    """Edit the video: swap words of the prompt (A=<tok> for the reference object) and render edits/NAME/."""
    from livecli.stages import edit as stage

    config = _config(EditConfig, locals(), replace=tuple(replace))
    target = find_project(project)
    result = stage.run(target, config, _model(target, model, model_config_, device, dtype), force=force)
    render.report_stage(result.inversion)
    render.report_stage(result.edit)
    if not result.edit.skipped:
        console.print(f"video: {escape(render.where(result.edit.folder / stage.VIDEO))}, side by side: {escape(render.where(result.edit.folder / stage.COMPARE))}", soft_wrap=True)


@app.command(
    name="eval",
    epilog="Examples:\n\n"
    "  live eval\n\n"
    "  live eval --edit dog-ride --text \"a man riding a dog\"\n\n"
    "  live eval --all --json\n\n"
    "  live eval --clip-model /models/clip-vit-large-patch14      (offline: a local folder)\n\n"
    "Writes eval/NAME/metrics.json, report.md and contact_sheet.png. The source video is scored too, as the baseline.",
)
def eval_(
    project: ProjectOpt = None,
    edit_name: Annotated[Optional[str], typer.Option("--edit", help="The edit to score (default: the project's only edit).", show_default=False, autocompletion=lambda: _edit_names())] = None,
    every: Annotated[bool, typer.Option("--all", help="Score every edit of the project and compare them in one table.")] = False,
    clip_model: ClipModelOpt = None,
    text: TextOpt = None,
    mask_margin: MaskMarginOpt = 2,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON on stdout instead of a table.")] = False,
    force: ForceOpt = False,
) -> None:
    """Score edits: CLIP score, frame consistency, similarity to the reference, background PSNR/SSIM."""
    from livecli.stages import evaluate as stage

    if edit_name is not None and every:
        raise ConfigError("--edit and --all contradict each other", hint="pass one of them")
    target = find_project(project)
    models = _model(target, None, None, device, dtype)
    config = EvalConfig(clip_model=resolve_clip_model(clip_model, models.model), text=text, mask_margin=mask_margin)
    names = stage.pick_edits(target, edit_name, every)
    scorer = stage.Scorer.resolve(config.clip_model, models.device, models.dtype)
    evaluations = stage.run(target, config, names, scorer, force=force)
    for evaluation in evaluations:
        render.report_stage(evaluation.result)
    if as_json:
        items = [{"edit": e.name, "folder": str(e.result.folder), "skipped": e.result.skipped, "metrics": e.metrics} for e in evaluations]
        out.print_json(json.dumps({"project": str(target.root), "evaluations": items}))
        return
    title = target.root.resolve().name if target.root.resolve() == Path.cwd() else render.where(target.root)
    out.print(render.metrics_table(evaluations, f"{title}: {evaluations[0].metrics['text']!r}" if len(evaluations) == 1 else title))
    if len(evaluations) == 1:
        folder = evaluations[0].result.folder
        console.print(f"report: {escape(render.where(folder / stage.REPORT))}, contact sheet: {escape(render.where(folder / stage.SHEET))}", soft_wrap=True)


@app.command(epilog="Examples:\n\n  live status\n\n  live status -p clip.live --json")
def status(project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """Show each stage of the project: done, stale or missing, with sizes and times."""
    target = find_project(project)
    stages = target.status()
    if as_json:
        out.print_json(json.dumps({"project": str(target.root), "stages": [s.as_dict() for s in stages]}))
        return
    out.print(render.status_table(target.root, stages))


def _edit_names() -> list[str]:
    """Shell completion of --edit: the edits of the project in the current directory."""
    try:
        from livecli.stages.evaluate import edit_names

        return edit_names(find_project(None))
    except Exception:  # completion must never fail loudly
        return []


@app.command(
    epilog="Examples:\n\n"
    "  live run clip.mp4 dog.jpg --prompt \"a man riding a motorcycle\" --object motorcycle --replace 'motorcycle=<tok>'\n\n"
    "  live run clip.mp4 dog.jpg --prompt \"a man riding a motorcycle\" --object motorcycle --replace 'motorcycle=<tok>' "
    '--keep "man riding" --train-steps 600 --no-eval\n\n'
    "Each stage is skipped when up to date, so the same command again costs only the checks; "
    "a changed flag re-runs its stage and the ones after it.",
)
def run(
    clip: ClipArg,
    image: ImageArg,
    prompt: PromptOpt,
    object_: ObjectOpt,
    replace: ReplaceOpt,
    project: ProjectOpt = None,
    model: ModelOpt = None,
    model_config_: ModelConfigOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    frames: Annotated[int, _flag(PrepareConfig, "frames", "--frames", panel="Preparing")] = 8,
    size: Annotated[Optional[int], _flag(PrepareConfig, "size", "--size", panel="Preparing", default="")] = None,
    stride: Annotated[int, _flag(PrepareConfig, "stride", "--stride", panel="Preparing")] = 1,
    start: Annotated[float, _flag(PrepareConfig, "start", "--start", panel="Preparing")] = 0.0,
    train_steps: Annotated[int, _flag(TrainConfig, "steps", "--train-steps", panel=TRAINING)] = 500,
    lr: LrOpt = 3e-5,
    ti_lr: TiLrOpt = 5e-3,
    text_weight: LambdaOpt = 1.0,
    token: TokenOpt = DEFAULT_TOKEN,
    reference_prompt: ReferencePromptOpt = None,
    init_word: InitWordOpt = None,
    seed: SeedOpt = 33,
    checkpoint_every: CheckpointEveryOpt = 100,
    mixed_precision: MixedPrecisionOpt = "no",
    gradient_checkpointing: GradientCheckpointingOpt = False,
    weight_decay: WeightDecayOpt = 1e-2,
    max_grad_norm: MaxGradNormOpt = 1.0,
    no_latent_prompt: NoLatentPromptOpt = False,
    image_temporal: ImageTemporalOpt = False,
    name: Annotated[Optional[str], _flag(EditConfig, "name", "--name", panel=EDITING, default="")] = None,
    edit_steps: Annotated[int, _flag(EditConfig, "steps", "--edit-steps", panel=EDITING)] = 50,
    guidance: GuidanceOpt = 12.5,
    refine: RefineOpt = 0,
    pin_source: PinSourceOpt = False,
    eta: EtaOpt = 0.0,
    latent_prompt: LatentPromptOpt = "trained",
    edit_seed: Annotated[int, _flag(EditConfig, "seed", "--edit-seed", panel=EDITING)] = 0,
    cross_replace: CrossReplaceOpt = 0.6,
    self_replace: SelfReplaceOpt = 0.3,
    keep: KeepOpt = None,
    blend: BlendOpt = None,
    no_blend: NoBlendOpt = False,
    blend_threshold: BlendThresholdOpt = 0.3,
    blur_sigma: BlurSigmaOpt = 1.0,
    blend_start: BlendStartOpt = 0.2,
    blend_background: BlendBackgroundOpt = "source",
    clip_model: ClipModelOpt = None,
    text: TextOpt = None,
    mask_margin: MaskMarginOpt = 2,
    no_eval: Annotated[bool, typer.Option("--no-eval", help="Stop after the edit (no CLIP model is loaded).", rich_help_panel=EVALUATING)] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome (paths, times, metrics) as JSON on stdout.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Edit and evaluate again, replacing an edit of the same name (earlier stages still run only when stale).")] = False,
) -> None:
    """Run every stage in order: prepare, train, invert, edit, eval; each skipped when up to date."""
    from livecli.pipeline import Job, run_job

    parameters = dict(locals())
    target = Project(project or default_project_dir(clip))
    models = _model(target, model, model_config_, device, dtype)
    job = Job(
        name=target.root.name,
        clip=clip,
        image=image,
        project=target.root,
        model=models,
        prepare=PrepareConfig(prompt=prompt, object=object_, frames=frames, size=size, stride=stride, start=start),
        train=_config(TrainConfig, parameters, steps=train_steps),
        edit=_config(EditConfig, parameters, replace=tuple(replace), steps=edit_steps, seed=edit_seed),
        eval=None if no_eval else EvalConfig(clip_model=resolve_clip_model(clip_model, models.model), text=text, mask_margin=mask_margin),
    )
    outcome = run_job(job, render.report_stage, redo_edit=force)
    if as_json:
        out.print_json(json.dumps(render.outcome_dict(outcome)))
    else:
        render.job_summary(outcome)


JOBS_HELP = escape(
    "A TOML file: an optional [defaults] table merged under every job, then [[jobs]] entries with "
    "clip, image, prompt, object and replace (paths relative to the file), and optional name, project, "
    "model, device, dtype and stage tables prepare, train, edit, eval (eval = false skips it)."
)


@app.command(
    epilog="Examples:\n\n"
    "  live batch jobs.toml --keep-going\n\n"
    "  live batch jobs.toml --shard 2/4 --json > shard-2.jsonl      (the second of four processes)\n\n"
    "  sbatch --array=1-4 --wrap 'live batch jobs.toml --shard $SLURM_ARRAY_TASK_ID/4 --keep-going'\n\n"
    + escape(
        "A job:\n\n"
        "  [[jobs]]\n\n"
        '  clip = "clips/motorbike.mp4"\n\n'
        '  image = "refs/dog.jpg"\n\n'
        '  prompt = "a man riding a motorcycle"\n\n'
        '  object = "motorcycle"\n\n'
        '  replace = ["motorcycle=<tok>"]\n\n'
        '  train = { steps = 600 }\n\n'
        "Every key, [defaults] and a SLURM script: docs/guide.md, section 8."
    ),
)
def batch(
    jobs_file: Annotated[Path, typer.Argument(metavar="JOBS.toml", help=JOBS_HELP, show_default=False)],
    shard: Annotated[Optional[str], typer.Option("--shard", metavar="I/N", help="Run only jobs I, I+N, I+2N, … (shards count from 1): N processes split the file without talking to each other.", show_default=False)] = None,
    keep_going: Annotated[bool, typer.Option("--keep-going", help="Go on with the other jobs when one fails (the exit code is still 1).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line per job on stdout (status, paths, metrics), as each ends.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check the file and list the jobs this shard would run, with their projects; run nothing.")] = False,
) -> None:
    """Run many jobs (clip, image, prompt, replacements) through every stage; finished jobs are skipped."""
    from livecli import batch as batches

    picked = batches.Shard.parse(shard) if shard is not None else batches.ALL
    jobs = batches.load_jobs(jobs_file)
    mine = [position for position in range(1, len(jobs) + 1) if picked.takes(position)]
    console.print(f"[bold]batch[/]: {len(mine)} of {len(jobs)} jobs" + (f" (shard {picked.index}/{picked.count})" if shard else ""), soft_wrap=True)
    if dry_run:
        listed = [{"job": position, "name": jobs[position - 1].name, "project": str(jobs[position - 1].project)} for position in mine]
        if as_json:
            for line in listed:
                print(json.dumps(line), flush=True)
        else:
            out.print(render.jobs_table(listed))
        return
    debug = os.environ.get("LIVE_DEBUG", "") not in ("", "0")

    def started(position: int, job) -> None:
        console.print(f"[bold]job {position}/{len(jobs)}[/] {escape(job.name)} -> {escape(render.where(job.project))}", soft_wrap=True)

    reports = []
    for done in batches.run_batch(jobs, picked, keep_going, started, render.report_stage, debug):
        reports.append(done)
        if as_json:
            print(json.dumps(done.as_dict()), flush=True)
        if done.status == "failed":
            render.print_error(f"job {done.position} ({done.job.name}) failed: {done.error}", done.hint)
        else:
            console.print(f"[bold]job {done.position}/{len(jobs)}[/] {escape(done.job.name)}: {done.status} in {done.seconds:.1f} s", soft_wrap=True)
    failed = [r for r in reports if r.status == "failed"]
    left = len(mine) - len(reports)
    if not as_json:
        out.print(render.batch_table(reports))
    if left:
        console.print(f"[yellow]stopped[/]: {left} job{'s' if left != 1 else ''} not run after a failure (pass --keep-going to go on)", soft_wrap=True)
    if failed:
        raise typer.Exit(1)


@app.command(epilog="Examples:\n\n  live demo\n\n  live demo --out /tmp/live-demo\n\n  live demo --model tiny --train-steps 30   # seconds: the random model, to check an install")
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the sample clip, image and project.")] = Path("live-demo"),
    model: Annotated[str, typer.Option("--model", help="shapes (trained, ships with live) or tiny (random: shows the pipeline only).")] = "shapes",
    train_steps: Annotated[int, typer.Option("--train-steps", help="Training steps.", min=1)] = 300,
) -> None:
    """Edit a drawn clip with the shipped `shapes` model: every stage, on the CPU, in minutes.

    The clip is a shape gliding over a patterned background; the reference image shows another
    shape, in a colour the model never saw it in. The true edit is written to truth/ beside it.
    """
    from livecli import demo as sample

    if model not in BUILT_IN_MODELS:
        raise ConfigError(f"--model {model!r}: the demo runs on {' or '.join(BUILT_IN_MODELS)}", hint="use live run for other models")
    clip, image = sample.make_samples(out_dir)
    pair = sample.demo_pair()
    console.print(
        f"[bold]demo[/]: {escape(pair.source_prompt)!r} ({escape(render.where(clip))}) "
        f"with the reference {escape(render.where(image))} ({' '.join(pair.target_object[::-1])})",
        soft_wrap=True,
    )
    outcome = sample.run(out_dir, render.report_stage, model, train_steps)
    render.job_summary(outcome)
    if model == "tiny":
        console.print("The tiny model is random, so edit.mp4 shows the pipeline, not a real edit.", soft_wrap=True)
    console.print(
        f"Compare the edit with the true one in {escape(render.where(out_dir / 'truth'))}; "
        f"see `live status -p {escape(render.where(outcome.project.root))}`.",
        soft_wrap=True,
    )


# --------------------------------------------------------------------------- entry point

INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    """Run `live`; known errors print one line and a hint and exit 1; Ctrl-C exits 130."""
    debug = os.environ.get("LIVE_DEBUG", "") not in ("", "0")
    try:
        code = app(args=argv, prog_name="live", standalone_mode=False)
        if code == INTERRUPTED:  # Typer turns Ctrl-C inside a command into exit code 130
            raise KeyboardInterrupt
        return code if isinstance(code, int) else 0
    except LiveError as exc:
        if debug:
            traceback.print_exc()
        render.print_error(exc.message, exc.hint)
        return 1
    except Interrupted as exc:
        console.print(f"[yellow]interrupted[/]: {escape(exc.message)}", soft_wrap=True)
        return INTERRUPTED
    except (KeyboardInterrupt, typer.Abort):
        if debug:
            traceback.print_exc()
        console.print("[yellow]interrupted[/]: the project keeps its last complete state; run the command again to finish", soft_wrap=True)
        return INTERRUPTED
    except ClickException as exc:
        exc.show()
        return exc.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
