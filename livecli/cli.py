"""The `live` command line: parse flags, call a stage, render its result. No logic of its own."""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from livecli import __version__
from livecli.config import (
    DEFAULT_MODEL,
    DEFAULT_TOKEN,
    EditConfig,
    InvertConfig,
    ModelConfig,
    PrepareConfig,
    TrainConfig,
    help_for,
    resolve_model_config,
)
from livecli.errors import ConfigError, Interrupted, LiveError
from livecli.progress import console
from livecli.stages import StageResult
from livecli.store import Project, default_project_dir, find_project

app = typer.Typer(
    name="live",
    help="Edit a video so that one object in it becomes the object in a reference image (LIVE, on Stable Diffusion v1.x).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = console.__class__(highlight=False, soft_wrap=True)

# Typer vendors click in recent releases; reach its base exception through a public class.
ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
"""stdout: results and --json."""

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


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def _where(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def report(result: StageResult, summary: str) -> None:
    if result.skipped:
        console.print(f"[bold]{result.stage}[/]: up to date ({escape(_where(result.folder))})", soft_wrap=True)
    else:
        console.print(
            f"[bold]{result.stage}[/]: {escape(summary)} in {result.record.seconds:.1f} s -> {escape(_where(result.folder))}",
            soft_wrap=True,
        )


def _prepared(result: StageResult) -> str:
    settings, facts = result.record.settings, result.record.facts
    return (
        f"{settings['frames']} frames {settings['size']}×{settings['size']}, "
        f"latents {facts['frames_shape']} + reference {facts['reference_shape']}"
    )


def _trained(result: StageResult) -> str:
    facts = result.record.facts
    before, after = facts["fixed_draw_loss_before"], facts["fixed_draw_loss_after"]
    return (
        f"{result.record.settings['steps']} steps, token {facts['token']}; loss on fixed draws: "
        f"video {before['video']:.4f} -> {after['video']:.4f}, image {before['text']:.4f} -> {after['text']:.4f}"
    )


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
    clip: Annotated[Path, typer.Argument(help="The video (mp4, mov, webm, mkv, gif, …) or a folder of frames (1.jpg … 10.jpg).", show_default=False)],
    image: Annotated[Path, typer.Argument(help="The reference image showing the new object.", show_default=False)],
    prompt: Annotated[str, typer.Option("--prompt", help=help_for(PrepareConfig, "prompt"), show_default=False)],
    object_: Annotated[str, typer.Option("--object", help=help_for(PrepareConfig, "object"), show_default=False)],
    project: ProjectOpt = None,
    model: ModelOpt = None,
    model_config_: ModelConfigOpt = None,
    frames: Annotated[int, typer.Option(help=help_for(PrepareConfig, "frames"))] = 8,
    size: Annotated[int, typer.Option(help=help_for(PrepareConfig, "size"))] = 512,
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
    report(result, _prepared(result))


PREPARING = "Preparing (with CLIP IMAGE)"


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
    size: Annotated[Optional[int], typer.Option(help=help_for(PrepareConfig, "size") + escape(" [default: 512]"), show_default=False, rich_help_panel=PREPARING)] = None,
    stride: Annotated[Optional[int], typer.Option(help=help_for(PrepareConfig, "stride") + escape(" [default: 1]"), show_default=False, rich_help_panel=PREPARING)] = None,
    start: Annotated[Optional[float], typer.Option(help=help_for(PrepareConfig, "start") + escape(" [default: 0.0]"), show_default=False, rich_help_panel=PREPARING)] = None,
    project: ProjectOpt = None,
    model: ModelOpt = None,
    model_config_: ModelConfigOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    steps: Annotated[int, typer.Option(help=help_for(TrainConfig, "steps"))] = 500,
    lr: Annotated[float, typer.Option(help=help_for(TrainConfig, "lr"))] = 3e-5,
    ti_lr: Annotated[float, typer.Option("--ti-lr", help=help_for(TrainConfig, "ti_lr"))] = 5e-3,
    text_weight: Annotated[float, typer.Option("--lambda", help=help_for(TrainConfig, "text_weight"))] = 1.0,
    token: Annotated[str, typer.Option(help=help_for(TrainConfig, "token"))] = DEFAULT_TOKEN,
    seed: Annotated[int, typer.Option(help=help_for(TrainConfig, "seed"))] = 33,
    checkpoint_every: Annotated[int, typer.Option(help=help_for(TrainConfig, "checkpoint_every"))] = 100,
    mixed_precision: Annotated[str, typer.Option(help=help_for(TrainConfig, "mixed_precision"))] = "no",
    gradient_checkpointing: Annotated[bool, typer.Option("--gradient-checkpointing", help=help_for(TrainConfig, "gradient_checkpointing"))] = False,
    weight_decay: Annotated[float, typer.Option(help=help_for(TrainConfig, "weight_decay"))] = 1e-2,
    max_grad_norm: Annotated[float, typer.Option(help=help_for(TrainConfig, "max_grad_norm"))] = 1.0,
    force: Annotated[bool, typer.Option("--force", help="Train again from step 0, even when up to date or a checkpoint exists.")] = False,
) -> None:
    """Fine-tune the video UNet, the latent prompt and the learned token on the project.

    Given CLIP and IMAGE, prepares them first (when missing or stale). A run with the same settings continues from its last checkpoint; other settings train afresh.
    """
    from livecli.stages import prepare as prepare_stage
    from livecli.stages import train as stage

    config = TrainConfig(
        steps=steps,
        lr=lr,
        ti_lr=ti_lr,
        text_weight=text_weight,
        token=token,
        seed=seed,
        checkpoint_every=checkpoint_every,
        mixed_precision=mixed_precision,
        gradient_checkpointing=gradient_checkpointing,
        weight_decay=weight_decay,
        max_grad_norm=max_grad_norm,
    )
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
    report(prepared, _prepared(prepared))
    result = stage.run(target, config, models, force=force)
    report(result, _trained(result))


def _inverted(result: StageResult) -> str:
    settings, facts = result.record.settings, result.record.facts
    refined = f", {settings['refine']} fixed-point iterations a step" if settings.get("refine") else ""
    return f"{settings['steps']} DDIM steps{refined} under {settings['prompt']!r}, x_T std {facts['noise_std']}"


def _edited(result: StageResult) -> str:
    settings, facts = result.record.settings, result.record.facts
    blend = "no blend" if facts.get("mask_coverage") is None else f"blend mask covers {facts['mask_coverage']:.0%}"
    return f"{settings['target_prompt']!r}, {settings['steps']} steps, guidance {settings['guidance']:g}, {blend}"


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
    report(result, _inverted(result))


EDIT_CONTROL = "Attention control and local blend"


@app.command(
    epilog="Examples:\n\n"
    "  live edit --replace motorcycle=<tok>\n\n"
    "  live edit --replace motorcycle=<tok> --keep \"man riding\" --blend motorcycle --name dog-ride\n\n"
    "  live edit --replace car=\"red sports car\" --guidance 7.5      (a plain text edit)\n\n"
    "<tok> is the object learned from the reference image. The first edit inverts the video; "
    "later edits with the same --steps reuse that inversion.",
)
def edit(
    replace: Annotated[list[str], typer.Option("--replace", help=help_for(EditConfig, "replace"), show_default=False)],
    project: ProjectOpt = None,
    name: Annotated[Optional[str], typer.Option("--name", help=help_for(EditConfig, "name"), show_default=False)] = None,
    steps: Annotated[int, typer.Option(help=help_for(EditConfig, "steps"))] = 50,
    guidance: Annotated[float, typer.Option(help=help_for(EditConfig, "guidance"))] = 12.5,
    cross_replace: Annotated[float, typer.Option(help=help_for(EditConfig, "cross_replace"), rich_help_panel=EDIT_CONTROL)] = 0.6,
    self_replace: Annotated[float, typer.Option(help=help_for(EditConfig, "self_replace"), rich_help_panel=EDIT_CONTROL)] = 0.3,
    keep: Annotated[Optional[str], typer.Option("--keep", help=help_for(EditConfig, "keep"), show_default=False, rich_help_panel=EDIT_CONTROL)] = None,
    blend: Annotated[Optional[str], typer.Option("--blend", help=help_for(EditConfig, "blend"), show_default=False, rich_help_panel=EDIT_CONTROL)] = None,
    no_blend: Annotated[bool, typer.Option("--no-blend", help=help_for(EditConfig, "no_blend"), rich_help_panel=EDIT_CONTROL)] = False,
    blend_threshold: Annotated[float, typer.Option(help=help_for(EditConfig, "blend_threshold"), rich_help_panel=EDIT_CONTROL)] = 0.3,
    blur_sigma: Annotated[float, typer.Option(help=help_for(EditConfig, "blur_sigma"), rich_help_panel=EDIT_CONTROL)] = 1.0,
    blend_start: Annotated[float, typer.Option(help=help_for(EditConfig, "blend_start"), rich_help_panel=EDIT_CONTROL)] = 0.2,
    refine: Annotated[int, typer.Option(help=help_for(EditConfig, "refine"))] = 0,
    pin_source: Annotated[bool, typer.Option("--pin-source", help=help_for(EditConfig, "pin_source"))] = False,
    eta: Annotated[float, typer.Option(help=help_for(EditConfig, "eta"))] = 0.0,
    seed: Annotated[int, typer.Option(help=help_for(EditConfig, "seed"))] = 0,
    model: ModelOpt = None,
    model_config_: ModelConfigOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Edit again, replacing an edit of the same name.")] = False,
) -> None:
    """Edit the video: swap words of the prompt (A=<tok> for the reference object) and render edits/NAME/."""
    from livecli.stages import edit as stage

    config = EditConfig(
        replace=tuple(replace),
        name=name,
        steps=steps,
        guidance=guidance,
        cross_replace=cross_replace,
        self_replace=self_replace,
        keep=keep,
        blend=blend,
        no_blend=no_blend,
        blend_threshold=blend_threshold,
        blur_sigma=blur_sigma,
        blend_start=blend_start,
        refine=refine,
        pin_source=pin_source,
        eta=eta,
        seed=seed,
    )
    target = find_project(project)
    result = stage.run(target, config, _model(target, model, model_config_, device, dtype), force=force)
    report(result.inversion, _inverted(result.inversion))
    report(result.edit, _edited(result.edit))
    if not result.edit.skipped:
        console.print(f"video: {escape(_where(result.edit.folder / stage.VIDEO))}, side by side: {escape(_where(result.edit.folder / stage.COMPARE))}", soft_wrap=True)


@app.command(epilog="Examples:\n\n  live status\n\n  live status -p clip.live --json")
def status(project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """Show each stage of the project: done, stale or missing, with sizes and times."""
    target = find_project(project)
    stages = target.status()
    if as_json:
        out.print_json(json.dumps({"project": str(target.root), "stages": [s.as_dict() for s in stages]}))
        return
    table = Table(title=escape(_where(target.root)), title_justify="left")
    for column in ("stage", "state", "size", "took", "finished", "note"):
        table.add_column(column, no_wrap=column != "note")
    colours = {"done": "green", "stale": "yellow", "missing": "dim"}
    for s in stages:
        table.add_row(
            s.stage,
            f"[{colours[s.state]}]{s.state}[/]",
            _size(s.bytes) if s.bytes else "",
            f"{s.seconds:.1f} s" if s.seconds is not None else "",
            (s.finished or "")[:16].replace("T", " "),
            escape(s.reason),
        )
    out.print(table)


@app.command(epilog="Examples:\n\n  live demo\n\n  live demo --out /tmp/live-demo")
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the sample clip, image and project.")] = Path("live-demo"),
) -> None:
    """Make a sample clip and reference image, and run the pipeline on them with the tiny model.

    The tiny model is random: the demo shows the pipeline working, not a real edit.
    """
    from livecli import demo as sample

    clip, image = sample.make_samples(out_dir)
    console.print(f"[bold]demo[/]: sample clip {escape(_where(clip))}, reference {escape(_where(image))}", soft_wrap=True)
    made = sample.run(out_dir)
    report(made.prepare, _prepared(made.prepare))
    report(made.train, _trained(made.train))
    report(made.edit.inversion, _inverted(made.edit.inversion))
    report(made.edit.edit, _edited(made.edit.edit))
    console.print(f"project: {escape(_where(made.project.root))}  (see `live status -p {escape(_where(made.project.root))}`)", soft_wrap=True)


# --------------------------------------------------------------------------- entry point

INTERRUPTED = 130


def _print_error(message: str, hint: str | None) -> None:
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    if hint:
        console.print(f"[dim]hint:[/] {escape(hint)}", soft_wrap=True)


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
        _print_error(exc.message, exc.hint)
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
