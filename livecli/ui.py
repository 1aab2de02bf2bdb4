"""`live ui`: a local web app (Gradio, the `ui` extra) over the same stages and project folders.

The form's fields are the configs' own: each shows its field's help and default, as the
command line's options do. *Train*, *Edit* and *Evaluate* run the command line itself
(`live train …`, `live edit …`, `live eval …`) in a worker process, with the flags the form
changed from their defaults, so a project the app makes is the one the shell makes with
the same settings: the project lock, "up to date", Ctrl-C and every check are the CLI's.
The worker reports its progress as JSON lines (`LIVE_PROGRESS_EVENTS`), which the page
shows as a bar with its ETA. The projects of the folder are listed with their edits, so
what the shell made shows here and the other way round.

One run at a time: a second is refused in one line while one is going. Closing the tab
leaves the run going to its end (each stage writes whole or not at all); Ctrl-C on
`live ui` reaches the worker as Ctrl-C reaches the CLI (training saves a checkpoint).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livecli.config import EditConfig, EvalConfig, ModelConfig, PrepareConfig, TrainConfig
from livecli.errors import InputError
from livecli.fields import choices_of, default_of, field_types, flag_of, help_for
from livecli.progress import duration, say
from livecli.scores import catalogue
from livecli.stages import EDIT, EVAL, STAGES
from livecli.store import MANIFEST, DamagedFile, Project

INSTALL_HINT = "pip install 'live[ui]'  (Gradio)"


@dataclass(frozen=True)
class FormField:
    """One setting on the form: a config's field, for the command that takes it."""

    config: type
    name: str
    command: str

    @property
    def key(self) -> str:
        return f"{self.command}.{self.name}"

    @property
    def flag(self) -> str:
        return flag_of(self.name)

    @property
    def default(self) -> Any:
        return default_of(self.config, self.name)

    @property
    def label(self) -> str:
        return f"{self.command} {self.flag}"

    @property
    def help(self) -> str:
        return help_for(self.config, self.name)

    @property
    def choices(self) -> tuple[str, ...]:
        return choices_of(field_types(self.config)[self.name])


REQUIRED = (FormField(PrepareConfig, "prompt", "train"), FormField(PrepareConfig, "object", "train"))
"""What every project needs: the clip's prompt and the object's word."""
OPTIONS = (
    FormField(ModelConfig, "model", "train"),
    FormField(TrainConfig, "preset", "train"),
    FormField(PrepareConfig, "frames", "train"),
    FormField(PrepareConfig, "size", "train"),
    FormField(TrainConfig, "steps", "train"),
    FormField(TrainConfig, "reference_mask", "train"),
    FormField(EditConfig, "keep", "edit"),
    FormField(EditConfig, "guidance", "edit"),
    FormField(EditConfig, "steps", "edit"),
    FormField(EditConfig, "mask_region", "edit"),
    FormField(EditConfig, "mask_grow", "edit"),
    FormField(EvalConfig, "text", "eval"),
)
"""The main options, with the CLI's defaults and help; the rest keep their defaults."""
REPLACE = FormField(EditConfig, "replace", "edit")


def shown_default(item: FormField, model: str | None = None) -> str:
    if item.name == "model" and model:
        return model
    default = item.default
    return "" if default is None else str(default)


def changed_flags(command: str, values: dict[str, str], model: str | None = None) -> list[str]:
    """The flags of `command` whose form value differs from its default: the defaults are
    left to the command, as a shell user leaves them out (a default given against a
    preset would contradict it)."""
    argv = []
    for item in OPTIONS:
        if item.command != command:
            continue
        value = values.get(item.key, "").strip()
        if value and value != shown_default(item) or (item.name == "model" and value):
            argv += [item.flag, value]
    return argv


# --------------------------------------------------------------------------- the commands


def train_argv(project: Path, clip: str, images: list[str], mask: str, values: dict[str, str]) -> list[str]:
    argv = ["train", clip, *images]
    for item in REQUIRED:
        argv += [item.flag, values.get(item.key, "").strip()]
    if mask:
        argv += ["--mask", mask]
    return [*argv, *changed_flags("train", values), "-p", str(project)]


def edit_argv(project: Path, replace: str, name: str, values: dict[str, str]) -> list[str]:
    argv = ["edit"]
    for swap in (line.strip() for line in replace.replace(",", "\n").splitlines()):
        if swap:
            argv += [REPLACE.flag, swap]
    if name.strip():
        argv += ["--name", name.strip()]
    return [*argv, *changed_flags("edit", values), "-p", str(project)]


def eval_argv(project: Path, edit: str, values: dict[str, str]) -> list[str]:
    argv = ["eval", "-p", str(project)] + (["--edit", edit] if edit else [])
    return [*argv, *changed_flags("eval", values)]


# --------------------------------------------------------------------------- the worker


class Worker:
    """Runs one `live` command at a time in a process of its own and reads its progress."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.running: subprocess.Popen | None = None
        self.what = ""
        self._one = threading.Lock()

    def run(self, argv: list[str]) -> Iterator[dict]:
        """Events of `live ARGV`: {"bar": …}, {"message": …}, {"line": …}, then {"exit": code}.
        A second run while one is going yields one {"refused": …} and nothing else."""
        if not self._one.acquire(blocking=False):
            yield {"refused": f"error: `live {self.what}` is running; wait for it to finish"}
            return
        try:
            self.what = " ".join(argv[:1] + [a for a in argv if a.endswith(".live")][:1])
            environment = {**os.environ, "LIVE_PROGRESS_EVENTS": "1", "LIVE_QUIET": "0"}
            # A process group of its own: Ctrl-C in the terminal reaches `live ui`, which passes
            # it on once (`stop`): a second one would tell training to stop without saving.
            self.running = subprocess.Popen(
                [sys.executable, "-m", "livecli", *argv],
                cwd=self.folder,
                env=environment,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                bufsize=1,
                start_new_session=True,
            )
            for line in self.running.stderr:
                yield _event(line.rstrip("\n"))
            yield {"exit": self.running.wait()}
        finally:
            self.running = None
            self._one.release()

    def stop(self) -> None:
        """On the app's way out: the worker gets the Ctrl-C, stops as the CLI does (training
        finishes its step and saves a checkpoint), and is waited for; Ctrl-C again while
        waiting passes a second one on, which stops it at once."""
        running = self.running
        if running is None or running.poll() is not None:
            return
        say(f"ui: stopping `live {self.what}` (Ctrl-C again to stop it at once)")
        running.send_signal(signal.SIGINT)
        try:
            running.wait()
        except KeyboardInterrupt:
            running.send_signal(signal.SIGINT)
            running.wait()


def _event(line: str) -> dict:
    if line.startswith("{"):
        try:
            event = json.loads(line)
            if isinstance(event, dict):
                return event
        except ValueError:
            pass
    return {"line": line}


def command_line(argv: list[str]) -> str:
    """`live ARGV` as it would be typed in a shell: the app's log starts with it, so a run
    from the page can be repeated (or checked) from the shell."""
    return shlex.join(["live", *argv])


def progress_text(event: dict) -> str:
    """A bar event as the page shows it: what, how far, and the time left."""
    done, total = event["completed"], max(event["total"], 1)
    eta = event.get("eta")
    left = "" if eta is None else f", {duration(eta)} left"
    return f"{event['bar']}: {done}/{event['total']} ({100 * done / total:.0f} %{left})"


# --------------------------------------------------------------------------- the folder's projects


def projects_of(folder: Path) -> list[Path]:
    """The projects directly in `folder` (what the app makes, and what a shell made there)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink() and (p / MANIFEST).is_file())


def edits_table(folder: Path) -> list[list[str]]:
    """[project, edit, state, finished] for every edit of the folder's projects."""
    rows = []
    for root in projects_of(folder):
        project = Project(root)
        try:
            runs = project.runs(EDIT)
        except (DamagedFile, OSError):
            rows.append([root.name, "—", "unreadable", ""])
            continue
        if not runs:
            rows.append([root.name, "—", "no edit yet", ""])
        for stage, record in runs:
            state = "stale" if project.stale_reason(stage, STAGES) else "done"
            scored = (project.stage_dir(EVAL.run(stage.run_name)) / EVAL.outputs["metrics"]).is_file()
            rows.append([root.name, stage.run_name, state + (", scored" if scored else ""), record.finished])
    return rows


def project_path(folder: Path, chosen: str | None) -> Path:
    """The project the form names: NAME.live directly in `folder`, never elsewhere."""
    name = (chosen or "").strip()
    name = name if name.endswith(".live") else f"{name}.live"
    if name == ".live" or "/" in name or "\\" in name or name.startswith(".") or not name.isprintable():
        raise InputError(f"project {chosen!r} is not a plain folder name", hint="give a name like clip or clip.live")
    return folder / name


def latest_edit(project: Path) -> str:
    """The edit of `project` finished last ("" when none)."""
    try:
        runs = Project(project).runs(EDIT)
    except (DamagedFile, OSError):
        return ""
    return max(runs, key=lambda run: run[1].finished)[0].run_name if runs else ""


def scores_markdown(project: Path, edit: str) -> str:
    path = project / EVAL.folder / edit / EVAL.outputs["metrics"]
    try:
        rows = json.loads(path.read_text())["rows"]
    except (OSError, ValueError, KeyError):
        return ""
    lines = ["| score | edit | source |", "| --- | --- | --- |"]
    for score in catalogue():
        edit_value, source_value = rows["edit"].get(score.name), rows["source"].get(score.name)
        if edit_value is None and source_value is None:
            continue
        lines.append(f"| {score.titled} | {_number(edit_value)} | {_number(source_value)} |")
    return "\n".join(lines)


def _number(value) -> str:
    return "—" if value is None else f"{value:.4g}"


# --------------------------------------------------------------------------- the app


def load_gradio():
    try:
        import gradio
    except ImportError:
        raise InputError("`live ui` needs Gradio, which is not installed", hint=INSTALL_HINT) from None
    return gradio


@dataclass
class Form:
    """The left column: where the project, its inputs and the settings are given, the
    buttons, and what the running command says."""

    project: Any
    clip: Any
    clip_upload: Any
    images: Any
    images_upload: Any
    mask: Any
    replace: Any
    edit_name: Any
    fields: dict[str, Any]
    """The config fields' inputs, by `stage.field` key."""
    train: Any
    edit: Any
    evaluate: Any
    status: Any
    progress: Any

    @property
    def inputs(self) -> list:
        """What a button's handler reads, in `Runner.unpack`'s order."""
        given = [self.project, self.clip, self.clip_upload, self.images, self.images_upload, self.mask]
        return [*given, self.replace, self.edit_name, *self.fields.values()]


@dataclass
class Views:
    """The right column: the edit playing, its scores, the log and the folder's edits."""

    video: Any
    scores: Any
    log: Any
    edits: Any
    refresh: Any


def build_app(folder: Path, model: str | None = None):
    """The Gradio Blocks of the app over the projects of `folder`: the form, the views, and
    the runner that turns a button into a `live` command in the worker."""
    gr = load_gradio()
    worker = Worker(folder)
    with gr.Blocks(title="live", analytics_enabled=False) as app:
        app.worker = worker
        gr.Markdown(f"## live — image-driven video editing\nProjects in `{folder}`.")
        with gr.Row():
            with gr.Column(scale=1):
                form = build_form(gr, folder, model)
            with gr.Column(scale=1):
                views = build_views(gr, folder)
        runner = Runner(folder, worker, list(form.fields))
        outputs = [form.status, form.progress, views.log, views.video, views.scores, views.edits]
        form.train.click(runner.handler(train_command, show_edit=False), form.inputs, outputs, concurrency_limit=None)
        form.edit.click(runner.handler(edit_command, show_edit=True), form.inputs, outputs, concurrency_limit=None)
        form.evaluate.click(runner.handler(eval_command, show_edit=True), form.inputs, outputs, concurrency_limit=None)
        views.refresh.click(lambda: edits_table(folder), None, views.edits)
        form.project.change(lambda chosen: shown_project(folder, chosen), form.project, [views.video, views.scores])
    return app


def build_form(gr, folder: Path, model: str | None) -> Form:
    project = gr.Dropdown(
        label="project",
        info="A project of this folder, or a new name (NAME.live is made here).",
        choices=[p.name for p in projects_of(folder)],
        value="clip.live",
        allow_custom_value=True,
        elem_id="project",
    )
    clip = gr.Textbox(label="clip", info="A video or a folder of frames (a path).", elem_id="clip")
    clip_upload = gr.File(label="or upload the clip", file_count="single", height=120, elem_id="clip-upload")
    images = gr.Textbox(label="reference image(s)", info="One path a line.", lines=2, elem_id="images")
    images_upload = gr.File(label="or upload them", file_count="multiple", height=120, elem_id="images-upload")
    mask = gr.Textbox(
        label="mask (optional)",
        info="The object's mask: one PNG for the first frame, a mask video, or a folder of masks.",
        elem_id="mask",
    )
    fields = {
        item.key: gr.Textbox(label=item.label, info=item.help, elem_id=item.key.replace(".", "-")) for item in REQUIRED
    }
    replace = gr.Textbox(label=REPLACE.label, info=REPLACE.help + " One a line.", value="", elem_id="edit-replace")
    edit_name = gr.Textbox(label="edit --name", info="Folder name under edits/ (optional).", elem_id="name")
    with gr.Row():
        train = gr.Button("Train", variant="primary", elem_id="train")
        edit = gr.Button("Edit", variant="primary", elem_id="edit")
        evaluate = gr.Button("Evaluate", elem_id="evaluate")
    status = gr.Markdown("", elem_id="status")
    progress = gr.Textbox(label="progress", interactive=False, elem_id="progress")
    with gr.Accordion("options", open=False):
        for item in OPTIONS:
            fields[item.key] = option_input(gr, item, model)
    return Form(
        project, clip, clip_upload, images, images_upload, mask, replace, edit_name, fields,
        train, edit, evaluate, status, progress,
    )  # fmt: skip


def option_input(gr, item: FormField, model: str | None):
    """A setting's input: its choices in a dropdown (frames' `all` is one choice among numbers: text), else text."""
    element = item.key.replace(".", "-")
    if item.choices and item.name != "frames":
        return gr.Dropdown(
            label=item.label, info=item.help, choices=["", *item.choices],
            value=shown_default(item, model), elem_id=element,
        )  # fmt: skip
    return gr.Textbox(label=item.label, info=item.help, value=shown_default(item, model), elem_id=element)


def build_views(gr, folder: Path) -> Views:
    video = gr.Video(label="source | edit", interactive=False, autoplay=True, loop=True, elem_id="video")
    scores = gr.Markdown("", elem_id="scores")
    log = gr.Textbox(label="log", lines=10, max_lines=20, interactive=False, elem_id="log")
    edits = gr.Dataframe(
        headers=["project", "edit", "state", "finished"],
        value=edits_table(folder),
        interactive=False,
        label="edits in this folder",
        elem_id="edits",
    )
    return Views(video, scores, log, edits, gr.Button("Refresh the list", elem_id="refresh"))


@dataclass(frozen=True)
class Given:
    """The form, read: the project's folder and what each input holds."""

    root: Path
    clip: str
    references: list[str]
    mask: str
    replace: str
    name: str
    values: dict[str, Any]


class Runner:
    """Turns a button into a `live` command run in the worker, and streams what it prints
    into the views: (status, progress, log, video, scores, the folder's edits)."""

    def __init__(self, folder: Path, worker: Worker, keys: list[str]):
        self.folder, self.worker, self.keys = folder, worker, keys

    def unpack(self, args) -> Given:
        chosen, clip_path, clip_file, image_paths, image_files, mask_path, swaps, name, *values = args
        listed = [line.strip() for line in (image_paths or "").splitlines() if line.strip()]
        uploaded = [_uploaded(f, self.folder) for f in image_files or []]
        return Given(
            project_path(self.folder, chosen),
            clip_path.strip() or (_uploaded(clip_file, self.folder) or ""),
            listed + uploaded,
            (mask_path or "").strip(),
            swaps,
            name,
            dict(zip(self.keys, values, strict=True)),
        )

    def handler(self, make, show_edit: bool):
        """A button's handler: the command `make` builds from the form, streamed; a form
        that cannot make one says why in one line."""

        def handle(*args):
            try:
                given = self.unpack(args)
                argv = make(given)
            except InputError as exc:
                yield f"error: {exc.message}", "", "", None, "", edits_table(self.folder)
                return
            yield from self.stream(argv, given.root, show_edit)

        return handle

    def stream(self, argv: list[str], root: Path, show_edit: bool):
        command, lines, bar, code = "$ " + command_line(argv), [], "", None

        def log() -> str:  # the command, then the last lines it printed
            return "\n".join([command, *lines[-199:]])

        yield "running `live " + " ".join(argv[:1]) + "` …", bar, log(), None, "", edits_table(self.folder)
        for event in self.worker.run(argv):
            if "refused" in event:
                yield event["refused"], bar, log(), None, "", edits_table(self.folder)
                return
            if "bar" in event:
                bar = progress_text(event)
            elif "message" in event or "line" in event:
                lines.append(event.get("message", event.get("line")))
            elif "exit" in event:
                code = event["exit"]
            yield "running …", bar, log(), None, "", edits_table(self.folder)
        errors = [line for line in lines if line.startswith("error:")]
        outcome = "done" if code == 0 else (errors[0] if errors else f"stopped (exit code {code})")
        shown, table = shown_edit(root) if show_edit and code == 0 else (None, "")
        yield outcome, bar, log(), shown, table, edits_table(self.folder)


def train_command(given: Given) -> list[str]:
    if not given.clip or not given.references:
        raise InputError("give the clip and at least one reference image")
    return train_argv(given.root, given.clip, given.references, given.mask, given.values)


def edit_command(given: Given) -> list[str]:
    if not given.replace.strip():
        raise InputError("give --replace, e.g. car=<tok>")
    return edit_argv(given.root, given.replace, given.name, given.values)


def eval_command(given: Given) -> list[str]:
    return eval_argv(given.root, given.name.strip() or latest_edit(given.root), given.values)


def shown_project(folder: Path, chosen: str) -> tuple[str | None, str]:
    """A project picked: its last edit's compare.mp4 to play, and its scores."""
    try:
        return shown_edit(project_path(folder, chosen))
    except InputError:
        return None, ""


def shown_edit(root: Path) -> tuple[str | None, str]:
    """The project's last edit's compare.mp4 to play (None without one), and its scores."""
    edit = latest_edit(root)
    compare = root / EDIT.folder / edit / EDIT.outputs["compare"]
    return (str(compare) if edit and compare.is_file() else None), scores_markdown(root, edit) if edit else ""


def _uploaded(file, folder: Path) -> str | None:
    """An uploaded file kept in the folder's uploads/ (Gradio's copy is temporary, and the
    project records where its sources are)."""
    if file is None:
        return None
    source = Path(str(getattr(file, "name", file)))
    kept = folder / "uploads" / source.name
    if not kept.is_file() or kept.read_bytes() != source.read_bytes():
        kept.parent.mkdir(exist_ok=True)
        shutil.copyfile(source, kept)
    return str(kept)


def serve(folder: Path, host: str, port: int, model: str | None = None) -> None:
    """Run the app until Ctrl-C; a run in progress stops as the CLI's does."""
    gr = load_gradio()
    app = build_app(folder, model)
    # System fonts: the default theme's come from Google's servers, and nothing here may.
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    try:
        app.queue(default_concurrency_limit=None).launch(
            server_name=host,
            server_port=port,
            inbrowser=False,
            share=False,
            quiet=True,
            show_error=True,
            allowed_paths=[str(folder)],  # the edits' videos, played in the page
            theme=theme,
            footer_links=[],
        )
    finally:
        app.worker.stop()
