"""The `live` command line: parse flags, call a stage, show its result (`render.py`).

Argument rules live in the configs and the stages; each option that sets a setting is
made from its config field (`options.py`), so its default and help text are the field's."""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from livecli import __version__, environment, render
from livecli import demo as sample
from livecli.config import (
    EVALUATING,
    PREPARING,
    EditConfig,
    EvalConfig,
    InvertConfig,
    ModelConfig,
    PrepareConfig,
    TrainConfig,
    resolve_clip_model,
    resolve_model_config,
)
from livecli.errors import ConfigError, InputError, Interrupted, LiveError, machine_fault
from livecli.fields import SettingError
from livecli.interrupt import INTERRUPTED, TERMINATED, terminate_as_interrupt, terminated
from livecli.options import Given, Section, flags_of, options
from livecli.progress import console
from livecli.references import References, gather, mask_files, masking
from livecli.store import MANIFEST, DamagedFile, Project, default_project_dir, find_project

app = typer.Typer(
    name="live",
    help=(
        "Edit a video so that one object in it becomes the object in a reference image (LIVE, on Stable Diffusion "
        "v1.x)."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = render.out

# Typer vendors click in recent releases; reach its base exception through a public class.
ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

# --------------------------------------------------------------------------- options of the commands themselves

ProjectOpt = Annotated[
    Path | None,
    typer.Option(
        "-p",
        "--project",
        help="Project directory. Default: ./<clip stem>.live, or the only *.live folder here.",
        show_default=False,
    ),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Run the stage again even when it is up to date.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")]
GalleryOpt = Annotated[
    Path | None,
    typer.Option(
        "--gallery",
        metavar="DIR",
        help="Then write (or refresh) the gallery page in DIR with these projects: see `live gallery`.",
        show_default=False,
    ),
]
ClipArg = Annotated[
    Path,
    typer.Argument(
        metavar="CLIP",
        help="The video (mp4, mov, webm, mkv, gif, …) or a folder of frames (1.jpg … 10.jpg).",
        show_default=False,
    ),
]
ImagesArg = Annotated[
    list[Path] | None,
    typer.Argument(
        metavar="IMAGE",
        help="The reference image showing the new object, or several of it (the image objective draws among them).",
        show_default=False,
    ),
]
ReferenceDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--reference",
        metavar="DIR",
        help="A folder of reference images (every image in it, in natural order), instead of or after IMAGE.",
        rich_help_panel=PREPARING,
        show_default=False,
    ),
]
ReferenceMaskOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--reference-mask",
        metavar="PATH|auto|none",
        help=(
            "Where the object is in a reference image (white or opaque: the object), once per image in order: the "
            "learned token then takes the object, not the photo's background. Default: a PNG's alpha channel, if "
            "any; else 'auto': training finds the object with the model itself (train/reference_masks/). 'none': "
            "the whole picture (the paper)."
        ),
        rich_help_panel=PREPARING,
        show_default=False,
    ),
]
MaskOpt = Annotated[
    Path | None,
    typer.Option(
        "--mask",
        metavar="PATH",
        help=(
            "Where the object is in the clip: a mask video, a folder of masks (one per frame, in order), or one "
            "mask image for the first frame, carried to the others by optical flow. Local blend then keeps what it "
            "says (--blend-mask)."
        ),
        rich_help_panel=PREPARING,
        show_default=False,
    ),
]


def _references(images: list[Path] | None, folder: Path | None, masks: list[Path] | None) -> References:
    return gather(images or [], folder, mask_files(masks))


# --------------------------------------------------------------------------- the settings each command takes

MODEL = Section(ModelConfig)
"""--model, --model-config, --device, --dtype, --compile: None until resolved (the
project's model, then config.toml, then the default)."""
FROM_INPUTS = ("reference_mask",)
"""Settings given with an input's option: --reference-mask auto or none sets the training's."""
TRAIN_IN_RUN = {"steps": "--train-steps"}
EDIT_IN_RUN = {"steps": "--edit-steps", "seed": "--edit-seed"}
"""`live run` names the training's and the edit's step counts and seeds apart."""


def _model(target: Project, given: Given) -> ModelConfig:
    """--model, else the project's model, else the user's config.toml, else the default."""
    return resolve_model_config(**given.values(ModelConfig), project=target.model_entry())


def _version(value: bool) -> None:
    if value:
        out.print(f"live {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Edit a video so that one object in it becomes the object in a reference image.

    Stages read and write one project directory, and each runs what it needs that is
    missing or stale: a stage whose inputs and settings did not change says "up to date".
    """


# --------------------------------------------------------------------------- commands


@app.command(
    epilog="Examples:\n\n"
    '  live prepare clip.mp4 dog.jpg --prompt "a man riding a motorcycle" --object motorcycle\n\n'
    '  live prepare clip.mp4 dog.jpg --prompt "a man riding a motorcycle" --object motorcycle '
    "--start 2 --duration 5 --size 448      (5 s of the clip, short side 448 px)\n\n"
    '  live prepare frames/ ref.png --prompt "a rabbit is jumping on the grass" --object rabbit '
    "--frames 8 --size 512 --crop square      (the paper's 8 square frames)\n\n"
    '  live prepare clip.mp4 ref.png --prompt "a jeep car is moving on the road" --object car --model tiny --size 64'
    "\n\n"
    '  live prepare clip.mp4 a.jpg b.jpg c.png --mask car-mask.png --prompt "a jeep car is moving on the road" '
    "--object car      (three references; the car's mask in the first frame, carried along the clip)",
)
@options(Section(PrepareConfig), Section(ModelConfig, only=("model", "model_config", "device", "dtype")))
def prepare(
    clip: ClipArg,
    images: ImagesArg = None,
    *,
    reference: ReferenceDirOpt = None,
    reference_mask: ReferenceMaskOpt = None,
    mask: MaskOpt = None,
    project: ProjectOpt = None,
    given: Given,
    force: ForceOpt = False,
) -> None:
    """Sample the clip's frames and encode them and the reference image(s) with the VAE."""
    from livecli.pipeline import prepare_project

    config = given.config(PrepareConfig)
    if masking(reference_mask):
        raise ConfigError(
            f"--reference-mask {reference_mask[0]} is the training's: give it to live train or live run",
            hint="prepare takes mask files (or a PNG's alpha channel)",
        )
    references = _references(images, reference, reference_mask)
    target = Project(project or default_project_dir(clip))
    prepared = prepare_project(target, config, clip, references, _model(target, given), mask, force=force)
    render.report_stage(prepared.prepare)
    if prepared.masks is not None:
        render.report_stage(prepared.masks)


@app.command(
    epilog="Examples:\n\n"
    '  live train clip.mp4 dog.jpg --prompt "a man riding a motorcycle" --object motorcycle\n\n'
    "  live train -p clip.live --steps 800      (continues a finished 500-step run)\n\n"
    '  live train clip.mp4 ref.png --prompt "a jeep car is moving on the road" --object car '
    "--model tiny --size 64 --steps 60\n\n"
    '  live train clip.mp4 --reference refs/ --reference-augment light --prompt "a man riding a motorcycle" '
    "--object motorcycle      (every picture in refs/, with random views)\n\n"
    "Ctrl-C saves a checkpoint after the current step; the same command resumes from it.",
)
@options(Section(PrepareConfig, panel=PREPARING, optional=True), MODEL, Section(TrainConfig, skip=FROM_INPUTS))
def train(
    clip: Annotated[
        Path | None,
        typer.Argument(
            metavar="CLIP",
            help="The video, to prepare first (else the project's prepared frames are used).",
            show_default=False,
        ),
    ] = None,
    images: Annotated[
        list[Path] | None,
        typer.Argument(metavar="IMAGE", help="The reference image(s), with CLIP.", show_default=False),
    ] = None,
    *,
    reference: ReferenceDirOpt = None,
    reference_mask: ReferenceMaskOpt = None,
    mask: MaskOpt = None,
    project: ProjectOpt = None,
    given: Given,
    force: Annotated[
        bool, typer.Option("--force", help="Train again from step 0, even when up to date or a checkpoint exists.")
    ] = False,
) -> None:
    """Fine-tune the video UNet, the latent prompt and the learned token on the project.

    Given CLIP and IMAGE, prepares them first when missing or stale.
    A run with the same settings resumes from its last checkpoint.
    """
    from livecli.pipeline import check_train_inputs, train_project

    config = given.config(TrainConfig, **masking(reference_mask))
    files = mask_files(reference_mask)
    check_train_inputs(clip, bool(images or reference or files), given.values(PrepareConfig), mask)
    references = _references(images, reference, reference_mask) if clip is not None else None
    target = find_project(project) if clip is None else Project(project or default_project_dir(clip))
    prepared = given.config(PrepareConfig) if clip is not None else None
    model = _model(target, given)
    train_project(target, model, config, prepared, clip, references, force, render.report_stage, mask=mask)


@app.command(
    epilog="Examples:\n\n"
    "  live invert\n\n"
    "  live invert -p clip.live --steps 100\n\n"
    "  live invert --refine 4      (sampling then reproduces the clip almost exactly)\n\n"
    "`live edit` runs the inversion it needs by itself; this command is for inspecting or precomputing it.",
)
@options(Section(InvertConfig), MODEL)
def invert(*, project: ProjectOpt = None, given: Given, force: ForceOpt = False) -> None:
    """DDIM-invert the prepared video through the trained video UNet (cached: edits share it)."""
    from livecli.stages import invert as stage

    config = given.config(InvertConfig)
    target = find_project(project)
    result = stage.run(target, config, _model(target, given), force=force)
    render.report_stage(result)


@app.command(
    epilog="Examples:\n\n"
    "  live edit --replace 'motorcycle=<tok>'\n\n"
    "  live edit --replace 'motorcycle=<tok>' --keep \"man riding\" --blend motorcycle --name dog-ride\n\n"
    '  live edit --replace car="red sports car" --guidance 7.5      (a plain text edit)\n\n'
    "  live edit --replace 'motorcycle=<tok>' --source-branch inversion --cross-replace-layers coarse "
    "--temporal-replace-layers coarse --self-replace-layers none      (one branch, a store that fits a long clip)\n\n"
    "<tok> is the object learned from the reference image. The first edit inverts the video; "
    "later edits with the same --steps reuse that inversion.",
)
@options(Section(EditConfig), MODEL)
def edit(
    *,
    project: ProjectOpt = None,
    given: Given,
    force: Annotated[bool, typer.Option("--force", help="Edit again, replacing an edit of the same name.")] = False,
) -> None:
    """Edit the video: swap words of the prompt (A=<tok> for the reference object) and render edits/NAME/."""
    from livecli.stages import edit as stage

    config = given.config(EditConfig)
    target = find_project(project)
    result = stage.run(target, config, _model(target, given), force=force)
    render.report_stage(result.inversion)
    render.report_stage(result.edit)
    if not result.edit.skipped:
        video, compare = (escape(render.where(result.edit.folder / name)) for name in (stage.VIDEO, stage.COMPARE))
        console.print(f"video: {video}, side by side: {compare}", soft_wrap=True)


@app.command(
    name="eval",
    epilog="Examples:\n\n"
    "  live eval\n\n"
    '  live eval --edit dog-ride --text "a man riding a dog"\n\n'
    "  live eval --all --json\n\n"
    "  live eval --clip-model /models/clip-vit-large-patch14      (offline: a local folder)\n\n"
    "Writes eval/NAME/metrics.json, report.md and contact_sheet.png. The source video is scored too, as the baseline.",
)
@options(Section(EvalConfig), Section(ModelConfig, only=("device", "dtype")))
def eval_(
    *,
    project: ProjectOpt = None,
    edit_name: Annotated[
        str | None,
        typer.Option(
            "--edit",
            help="The edit to score (default: the project's only edit).",
            show_default=False,
            autocompletion=lambda: _edit_names(),
        ),
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Score every edit of the project and compare them in one table.")
    ] = False,
    given: Given,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the metrics as JSON on stdout instead of a table.")
    ] = False,
    force: ForceOpt = False,
    gallery_dir: GalleryOpt = None,
) -> None:
    """Score edits: CLIP score, frame consistency, similarity to the reference, background PSNR/SSIM."""
    from livecli.stages import evaluate as stage

    target = find_project(project)
    models = _model(target, given)
    clip_model = resolve_clip_model(given.values(EvalConfig).get("clip_model"), models.model)
    config = given.config(EvalConfig, clip_model=clip_model)
    names = stage.pick_edits(target, edit_name, every)
    scorer = stage.Scorer.resolve(config.clip_model, models.device, models.dtype)
    evaluations = stage.run(target, config, names, scorer, force=force)
    for evaluation in evaluations:
        render.report_stage(evaluation.result)
    if gallery_dir is not None:
        _gallery([target.root], gallery_dir)
    if as_json:
        out.print_json(json.dumps(render.evaluations_json(target.root, evaluations)))
        return
    title = target.root.resolve().name if target.root.resolve() == Path.cwd() else render.where(target.root)
    out.print(
        render.metrics_table(
            evaluations, f"{title}: {evaluations[0].metrics['text']!r}" if len(evaluations) == 1 else title
        )
    )
    if len(evaluations) == 1:
        folder = evaluations[0].result.folder
        console.print(
            f"report: {escape(render.where(folder / stage.REPORT))}, contact sheet: "
            f"{escape(render.where(folder / stage.SHEET))}",
            soft_wrap=True,
        )


@app.command(epilog="Examples:\n\n  live status\n\n  live status -p clip.live --json")
def status(project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """Show each stage of the project: done, stale or missing, with sizes and times."""
    from livecli.stages import PREPARE, STAGES, clip_line

    target = find_project(project)
    stages = target.status(STAGES)
    try:
        prepared = target.record(PREPARE)
    except DamagedFile:
        prepared = None  # the table says so
    if as_json:
        out.print_json(json.dumps(render.status_json(target.root, prepared, stages)))
        return
    out.print(render.status_table(target.root, stages))
    if prepared is not None:
        out.print(f"clip: {escape(clip_line(prepared))}", soft_wrap=True)


def _edit_names() -> list[str]:
    """Shell completion of --edit: the edits of the project in the current directory."""
    try:  # the stage catalogue and the store alone: a tab press must not wait for torch
        from livecli.stages import EDIT

        return [stage.run_name for stage, _ in find_project(None).runs(EDIT)]
    except Exception:  # completion must never fail loudly
        return []


@app.command(
    epilog="Examples:\n\n"
    '  live run clip.mp4 dog.jpg --prompt "a man riding a motorcycle" --object motorcycle --replace '
    "'motorcycle=<tok>'\n\n"
    '  live run clip.mp4 dog.jpg --prompt "a man riding a motorcycle" --object motorcycle --replace '
    "'motorcycle=<tok>' "
    '--keep "man riding" --train-steps 600 --no-eval\n\n'
    "Each stage is skipped when up to date, so the same command again costs only the checks; "
    "a changed flag re-runs its stage and the ones after it.",
)
@options(
    Section(PrepareConfig),
    MODEL,
    Section(TrainConfig, flags=TRAIN_IN_RUN, skip=FROM_INPUTS),
    Section(EditConfig, flags=EDIT_IN_RUN, skip=("window",)),  # the edit's window is the training's
    Section(EvalConfig),
)
def run(
    clip: ClipArg,
    images: ImagesArg = None,
    *,
    reference: ReferenceDirOpt = None,
    reference_mask: ReferenceMaskOpt = None,
    mask: MaskOpt = None,
    project: ProjectOpt = None,
    given: Given,
    no_eval: Annotated[
        bool,
        typer.Option("--no-eval", help="Stop after the edit (no CLIP model is loaded).", rich_help_panel=EVALUATING),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the outcome (paths, times, metrics) as JSON on stdout.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help=(
                "Edit and evaluate again, replacing an edit of the same name (earlier stages still run only when "
                "stale)."
            ),
        ),
    ] = False,
) -> None:
    """Run every stage in order: prepare, train, invert, edit, eval; each skipped when up to date."""
    from livecli.pipeline import Job, run_job

    references = _references(images, reference, reference_mask)
    target = Project(project or default_project_dir(clip))
    models = _model(target, given)
    evaluate = None
    if not no_eval:
        clip_model = resolve_clip_model(given.values(EvalConfig).get("clip_model"), models.model)
        evaluate = given.config(EvalConfig, clip_model=clip_model)
    job = Job(
        name=target.root.name,
        clip=clip,
        image=references,
        project=target.root,
        model=models,
        prepare=given.config(PrepareConfig),
        train=given.config(TrainConfig, **masking(reference_mask)),
        edit=given.config(EditConfig),
        eval=evaluate,
        mask=mask,
    )
    outcome = run_job(job, render.report_stage, redo_edit=force)
    if as_json:
        out.print_json(json.dumps(render.outcome_json(outcome)))
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
    "  live batch jobs.toml --sbatch live.sbatch --sbatch-option=--gres=gpu:1 --sbatch-option=--time=12:00:00   "
    "(a SLURM array: then sbatch live.sbatch)\n\n"
    "  live batch jobs.toml --status      (done, running, failed, stopped, to do: across the array's tasks)\n\n"
    + escape(
        "A job:\n\n"
        "  [[jobs]]\n\n"
        '  clip = "clips/motorbike.mp4"\n\n'
        '  image = "refs/dog.jpg"\n\n'
        '  prompt = "a man riding a motorcycle"\n\n'
        '  object = "motorcycle"\n\n'
        '  replace = ["motorcycle=<tok>"]\n\n'
        "  train = { steps = 600 }\n\n"
        "Every key, [defaults] and a SLURM script: docs/guide.md, section 8."
    ),
)
def batch(
    jobs_file: Annotated[Path, typer.Argument(metavar="JOBS.toml", help=JOBS_HELP, show_default=False)],
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            metavar="I/N",
            help=(
                "Run only jobs I, I+N, I+2N, … (shards count from 1): N processes split the file without talking to "
                "each other."
            ),
            show_default=False,
        ),
    ] = None,
    keep_going: Annotated[
        bool, typer.Option("--keep-going", help="Go on with the other jobs when one fails (the exit code is still 1).")
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON line per job on stdout (status, paths, metrics), as each ends."),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Check the file and list the jobs this shard would run, with their projects; run nothing."
        ),
    ] = False,
    gallery_dir: GalleryOpt = None,
    sbatch: Annotated[
        Path | None,
        typer.Option(
            "--sbatch",
            metavar="FILE",
            help="Write a SLURM array script for the file to FILE (a task a shard, SIGTERM before the time limit, "
            "requeue) and print the sbatch command; run nothing.",
            show_default=False,
        ),
    ] = None,
    tasks: Annotated[
        int | None,
        typer.Option(
            "--tasks",
            metavar="N",
            help=escape("With --sbatch: N array tasks. [default: one a job]"),
            show_default=False,
        ),
    ] = None,
    sbatch_options: Annotated[
        list[str] | None,
        typer.Option(
            "--sbatch-option",
            metavar="OPTION",
            help="With --sbatch: an #SBATCH line, e.g. --sbatch-option=--gres=gpu:1 (repeat it).",
            show_default=False,
        ),
    ] = None,
    sbatch_signal: Annotated[
        int | None,
        typer.Option(
            "--sbatch-signal",
            metavar="SECONDS",
            help=escape(
                "With --sbatch: SIGTERM this long before the time limit, for a training step and its checkpoint "
                "(0: only SLURM's own at the limit). [default: 120]"
            ),
            show_default=False,
        ),
    ] = None,
    status: Annotated[
        bool,
        typer.Option(
            "--status", help="Show which jobs are done, running, failed, stopped or to do, across tasks; run nothing."
        ),
    ] = False,
) -> None:
    """Run many jobs (clip, image, prompt, replacements) through every stage; finished jobs are skipped."""
    from livecli import batch as batches
    from livecli import slurm

    picked = batches.Shard.parse(shard) if shard is not None else batches.ALL
    if (tasks is not None or sbatch_options or sbatch_signal is not None) and sbatch is None:
        raise ConfigError(
            "--tasks, --sbatch-option and --sbatch-signal go with --sbatch", hint="add --sbatch FILE, or leave them out"
        )
    if sbatch is not None and (shard is not None or status):
        raise ConfigError("--sbatch writes a script for every shard", hint="leave out --shard and --status")
    jobs = batches.load_jobs(jobs_file)
    if sbatch is not None:
        signal_before = slurm.SIGNAL_SECONDS if sbatch_signal is None else sbatch_signal
        script = slurm.write_script(jobs_file, jobs, sbatch, tasks, sbatch_options or [], signal_before)
        console.print(
            f"[bold]batch[/]: {escape(render.where(script.path))}: {len(jobs)} jobs in {script.tasks} array tasks; "
            f"their JSON lines in {escape(render.where(script.results))}, logs in {escape(render.where(script.logs))}",
            soft_wrap=True,
        )
        out.print(escape(script.submit))
        return
    if status:
        states = slurm.job_states(jobs_file, jobs)
        if as_json:
            for state in states:
                print(json.dumps(render.job_state_json(state)), flush=True)
        else:
            out.print(render.job_states_table(states))
        return
    mine = [position for position in range(1, len(jobs) + 1) if picked.takes(position)]
    console.print(
        f"[bold]batch[/]: {len(mine)} of {len(jobs)} jobs"
        + (f" (shard {picked.index}/{picked.count})" if shard else ""),
        soft_wrap=True,
    )
    if dry_run:
        listed = [render.planned_job_json(position, jobs[position - 1]) for position in mine]
        if as_json:
            for line in listed:
                print(json.dumps(line), flush=True)
        else:
            out.print(render.jobs_table(listed))
        return
    debug = environment.flag(environment.DEBUG)

    def started(position: int, job) -> None:
        console.print(
            f"[bold]job {position}/{len(jobs)}[/] {escape(job.name)} -> {escape(render.where(job.project))}",
            soft_wrap=True,
        )

    reports = []
    for done in batches.run_batch(jobs, picked, keep_going, started, render.report_stage, debug):
        reports.append(done)
        if as_json:
            print(json.dumps(render.job_report_json(done)), flush=True)
        render.job_ended(done, len(jobs))
    if not as_json:
        out.print(render.batch_table(reports))
    made = [r.job.project for r in reports if r.status != "failed" and (r.job.project / MANIFEST).is_file()]
    if gallery_dir is not None and made:
        _gallery(made, gallery_dir)
    render.batch_ended(reports, len(mine))
    if any(r.status == "failed" for r in reports):
        raise typer.Exit(1)


@app.command(
    epilog="Examples:\n\n"
    "  live gallery                           (every project under this folder: gallery/index.html)\n\n"
    "  live gallery runs/ --out ~/www/edits   (a folder of batches; serve it with any static server)\n\n"
    "  live gallery jobs.toml                 (the projects of a jobs file)\n\n"
    "  live gallery --out gallery             (refresh: the paths it was made from, read again)\n\n"
    "The folder holds index.html and copies of what it shows: open it from disk, copy it, or serve it "
    "(python -m http.server -d gallery).",
)
def gallery(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="PATHS",
            help=escape(
                "Projects, folders holding projects (looked for 4 levels down), or jobs files. [default: this "
                "folder; with a gallery in --out, the paths it was made from]"
            ),
            show_default=False,
        ),
    ] = None,
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out",
            metavar="DIR",
            help=escape("Folder of the page: new, empty, or a gallery to refresh. [default: gallery]"),
            show_default=False,
        ),
    ] = Path("gallery"),
    as_json: JsonOpt = False,
) -> None:
    """Write one static page over every edit of the projects found: source and edit playing side
    by side, the reference, the contact sheet, the scores beside the source's, the settings
    that differ from the defaults, and a table of all edits that sorts by any score."""
    written = _gallery(paths or ([] if (out_dir / "gallery.json").is_file() else [Path(".")]), out_dir)
    if as_json:
        print(json.dumps({"index": str(written.index), "projects": written.projects, "edits": len(written.cards)}))


@app.command(
    epilog="Examples:\n\n"
    "  live ui                                 (the projects of this folder, on http://127.0.0.1:7860)\n\n"
    "  live ui --folder ~/edits --model tiny --port 8000\n\n"
    + escape(
        "Needs the ui extra: pip install 'live[ui]'. The app runs the same commands as the shell (train, edit, "
        "eval), one at a time, on the same project folders."
    ),
)
def ui(
    folder: Annotated[
        Path,
        typer.Option(
            "--folder", metavar="DIR", help=escape("Folder of the projects. [default: this folder]"), show_default=False
        ),
    ] = Path("."),
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (127.0.0.1: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 7860,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help=escape("The form's model for new projects. [default: the configured one]"),
            show_default=False,
        ),
    ] = None,
) -> None:
    """A local web app over the stages: pick a clip and reference image(s), train, edit and
    evaluate, watch the progress and the edit; the folder's projects and edits are listed."""
    from livecli import ui as app

    app.load_gradio()  # before anything else: without the extra, one line says how to get it
    if not folder.is_dir():
        raise InputError(f"--folder {folder} is not a folder", hint="give the folder of your projects")
    if not 0 < port < 65536:
        raise InputError(f"--port {port} is not a port", hint="give a number from 1 to 65535")
    console.print(f"[bold]ui[/]: http://{host}:{port} over {escape(render.where(folder))} (Ctrl-C stops it)")
    app.serve(folder.resolve(), host, port, model)


def _gallery(paths: list[Path], folder: Path):
    from livecli import gallery as pages

    written = pages.write_gallery(paths, folder)
    console.print(
        f"[bold]gallery[/]: {len(written.cards)} edit{'s' if len(written.cards) != 1 else ''} of "
        f"{written.projects} project{'s' if written.projects != 1 else ''} -> {escape(render.where(written.index))}",
        soft_wrap=True,
    )
    return written


@app.command(
    epilog=(
        "Examples:\n\n  live demo\n\n  live demo --out /tmp/live-demo\n\n"
        "  live demo --model tiny --train-steps 30 --edit-steps 10   "
        "# seconds: the random model, to check an install\n\n  live demo --with-mask --references   "
        "# steered: the first frame's mask and four pictures of the new object"
    )
)
@options(Section(TrainConfig, only=("preset",)))
def demo(
    *,
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out",
            help=escape("Folder for the sample clip, image and project. [default: live-demo]"),
            show_default=False,
        ),
    ] = Path("live-demo"),
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help=escape(
                "shapes (trained, ships with live) or tiny (random: shows the pipeline only). [default: shapes]"
            ),
            show_default=False,
        ),
    ] = "shapes",
    train_steps: Annotated[
        str | None,
        typer.Option(
            "--train-steps",
            help=escape(f"Training steps, or auto. [default: {sample.TRAIN_STEPS}; the paper's 500 with --preset]"),
            metavar="N|auto",
            show_default=False,
        ),
    ] = None,
    edit_steps: Annotated[
        int | None,
        typer.Option(
            "--edit-steps",
            help=escape(f"DDIM steps of the inversion and the edit. [default: {EditConfig.steps}, the paper's]"),
            metavar="N",
            show_default=False,
        ),
    ] = None,
    mask: Annotated[
        bool,
        typer.Option(
            "--with-mask",
            help="Steer with mask.png (written beside the clip): the object's mask in the first frame, carried along "
            "the clip by optical flow; local blend keeps to it.",
        ),
    ] = False,
    old_mask: Annotated[bool, typer.Option("--mask", hidden=True)] = False,
    references: Annotated[
        bool,
        typer.Option(
            "--references",
            help="Learn the new object from references/ (written beside the clip): the reference image and three "
            "more views of the object, at other sizes and places.",
        ),
    ] = False,
    given: Given,
) -> None:
    """Edit a drawn clip with the shipped `shapes` model: every stage, on the CPU, in minutes.

    The clip is a shape gliding over a patterned background; the reference image shows another
    shape, in a colour the model never saw it in. The true edit is written to truth/ beside it.
    """
    if old_mask:  # everywhere else --mask takes a path; scripts written before keep working
        console.print("[yellow]note[/]: `live demo --mask` is now `--with-mask`", soft_wrap=True)
    mask = mask or old_mask
    preset = given.values(TrainConfig).get("preset")
    sample.check_model(model)
    try:
        sample.check_settings(train_steps, preset, edit_steps)  # a contradicting flag writes nothing
    except SettingError as exc:
        in_run = TRAIN_IN_RUN if exc.config is TrainConfig else EDIT_IN_RUN
        raise exc.worded(flags_of(Section(exc.config, flags=in_run))) from None
    clip, image = sample.make_samples(out_dir)
    pair = sample.demo_pair()
    console.print(
        f"[bold]demo[/]: {escape(pair.source_prompt)!r} ({escape(render.where(clip))}) "
        f"with the reference {escape(render.where(image))} ({' '.join(pair.target_object[::-1])})",
        soft_wrap=True,
    )
    outcome = sample.run(out_dir, render.report_stage, model, train_steps, preset, mask, references, edit_steps)
    render.job_summary(outcome)
    if model == "tiny":
        console.print("The tiny model is random, so edit.mp4 shows the pipeline, not a real edit.", soft_wrap=True)
    console.print(
        f"Compare the edit with the true one in {escape(render.where(out_dir / 'truth'))}; "
        f"see `live status -p {escape(render.where(outcome.project.root))}`.",
        soft_wrap=True,
    )


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    """Run `live`; known errors and the machine's faults print one line and a hint and exit
    1; Ctrl-C exits 130, SIGTERM 143, each after keeping the project's last complete state."""
    with terminate_as_interrupt():
        return _run(argv)


def bare_switches(argv: list[str]) -> list[str]:
    """`--gradient-checkpointing` was a switch before it took a mode: alone, it still means
    every block ("all"), so that earlier scripts run as they did. (Click's own way, an
    option with `is_flag=False, flag_value="all"`, does not reach through Typer 0.29: there
    `--gradient-checkpointing` alone is "requires an argument".)"""
    fixed = []
    for index, arg in enumerate(argv):
        fixed.append(arg)
        following = argv[index + 1] if index + 1 < len(argv) else None
        if arg == "--gradient-checkpointing" and (following is None or following.startswith("-")):
            fixed.append("all")
    return fixed


def _run(argv: list[str] | None) -> int:
    debug = environment.flag(environment.DEBUG)
    argv = bare_switches(list(sys.argv[1:] if argv is None else argv))
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
        console.print(f"[yellow]{_stopped_by(exc.exit_code)}[/]: {escape(exc.message)}", soft_wrap=True)
        return exc.exit_code
    except (KeyboardInterrupt, typer.Abort):
        if debug:
            traceback.print_exc()
        code = TERMINATED if terminated() else INTERRUPTED
        console.print(
            f"[yellow]{_stopped_by(code)}[/]: the project keeps its last complete state; run the command again to "
            "finish",
            soft_wrap=True,
        )
        return code
    except ClickException as exc:
        exc.show()
        return exc.exit_code
    except Exception as exc:
        fault = machine_fault(exc)
        if fault is None:
            raise
        if debug:
            traceback.print_exc()
        render.print_error(fault.message, fault.hint)
        return 1


def _stopped_by(code: int) -> str:
    return "terminated" if code == TERMINATED else "interrupted"


if __name__ == "__main__":
    sys.exit(main())
