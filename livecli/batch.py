"""`live batch JOBS.toml`: many pipeline runs from one file, split across processes without coordination.

A jobs file is TOML: an optional `[defaults]` table merged under every job, and a
`[[jobs]]` array. Each job names its clip, reference image, prompt, object and
replacements, and may override any stage setting in tables named after the stages:

    [defaults]
    model = "CompVis/stable-diffusion-v1-4"
    train = { steps = 500 }

    [[jobs]]
    clip = "clips/motorbike.mp4"          # paths are relative to the jobs file
    image = "refs/dog.jpg"
    prompt = "a man riding a motorcycle"
    object = "motorcycle"
    replace = ["motorcycle=<tok>"]
    edit = { guidance = 7.5 }

Every job is checked before any runs. Each job is its own project directory
(`<name>.live` beside the jobs file unless `project` says otherwise), so a job already
done is skipped stage by stage, and `--shard I/N` (job k runs in shard ((k-1) mod N)+1)
lets N processes share one file.
"""

from __future__ import annotations

import re
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livecli.config import (
    BUILT_IN_MODELS,
    NAME_RULE,
    EditConfig,
    EvalConfig,
    PrepareConfig,
    TrainConfig,
    plain_name,
    resolve_clip_model,
    resolve_model_config,
    shown_name,
)
from livecli.errors import ConfigError, InputError, Interrupted, LiveError, ProjectBusy, machine_fault, reason
from livecli.fields import SettingError, field_types, from_table, typed_table
from livecli.pipeline import Job, JobOutcome, check_job, run_job
from livecli.references import gather, masking
from livecli.stages import STAGES
from livecli.store import PROJECT_SUFFIX, UNREADABLE_TOML, StageResult, read_toml
from livecli.video import source_problem
from livecli.words import has_control_character

REQUIRED = ("clip", "prompt", "object", "replace")
"""What every job names (and `image`, or a `reference` folder)."""
PATH_LISTS = ("image", "reference_mask")
"""Keys that take one path or a list of them."""
MODEL_KEYS = ("model", "model_config", "device", "dtype")
STAGE_TABLES: dict[str, type] = {stage.table: stage.config for stage in STAGES if stage.table}
SET_ELSEWHERE = {"prompt": "the job's `prompt`", "object": "the job's `object`", "replace": "the job's `replace`"}
"""Stage fields that a job sets at its top level, not in the stage's table."""
TABLE_OF = {config: table for table, config in STAGE_TABLES.items()}
KEY_ALIASES = {"replacements": "replace", "lambda": "text_weight"}
"""Other names a key may go by: the plural a user may write, and the flag's name (`--lambda`)."""
SHARD = re.compile(r"^(\d+)/(\d+)$")


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count`, counting from 1."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = SHARD.match(text.strip())
        if not match:
            raise ConfigError(
                f"--shard {text!r} is not I/N",
                hint="e.g. --shard 1/4 for the first of four shards (shards count from 1)",
            )
        index, count = int(match[1]), int(match[2])
        if count < 1 or not 1 <= index <= count:
            raise ConfigError(
                f"--shard {text}: I must be between 1 and N (N ≥ 1)",
                hint=f"shards count from 1: --shard 1/{max(count, 1)} … --shard {max(count, 1)}/{max(count, 1)}",
            )
        return cls(index, count)

    def takes(self, position: int) -> bool:
        """Whether job number `position` (from 1) belongs to this shard."""
        return (position - 1) % self.count == self.index - 1


ALL = Shard(1, 1)


# --------------------------------------------------------------------------- reading the file


def load_jobs(path: Path) -> list[Job]:
    """Every job of the file, checked; the first problem is an error naming job and field."""
    if not path.is_file():
        raise InputError(f"jobs file {path} does not exist", hint="see `live batch --help` for its format")
    try:
        data = read_toml(path)
    except UNREADABLE_TOML as exc:
        raise ConfigError(f"{path} is not valid TOML: {reason(exc)}", hint="fix the line it names") from None
    unknown = set(data) - {"defaults", "jobs"}
    if unknown:
        raise ConfigError(
            f"{path}: unknown top-level key {sorted(unknown)[0]!r}",
            hint="a jobs file has a [defaults] table and [[jobs]] entries",
        )
    defaults, entries = data.get("defaults", {}), data.get("jobs")
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: `defaults` must be a table", hint="write it as [defaults]")
    if entries is not None and not (isinstance(entries, list) and all(isinstance(e, dict) for e in entries)):
        raise ConfigError(
            f"{path}: `jobs` must be a list of [[jobs]] tables, got {str(entries)[:40]}",
            hint="write each job as a [[jobs]] table with clip, image, prompt, object and replace",
        )
    if not entries:
        raise ConfigError(
            f"{path} has no jobs", hint="add at least one [[jobs]] entry with clip, image, prompt, object and replace"
        )
    base = path.resolve().parent
    jobs = [
        _job(position, _merge(_canonical(defaults), _canonical(entry)), base)
        for position, entry in enumerate(entries, 1)
    ]
    for position, job in enumerate(jobs, 1):  # before any job runs: not after hours of the first ones
        sources = [("clip", job.clip), *(("image", image) for image in job.references.images)]
        sources += [("mask", job.mask)] if job.mask is not None else []
        for what, source in sources:
            problem = source_problem(source, folder_allowed=what in ("clip", "mask"))
            if problem:
                raise InputError(
                    f"job {position} ({job.name}): {what} {source} {problem}",
                    hint="fix the path (relative paths are read from the jobs file's folder), or remove the job",
                )
    seen: dict[Path, int] = {}
    for position, job in enumerate(jobs, 1):
        if job.project in seen:
            raise ConfigError(
                f"jobs {seen[job.project]} and {position} both write {job.project}",
                hint="give each job its own `name` or `project`",
            )
        seen[job.project] = position
    return jobs


def _canonical(table: dict[str, Any]) -> dict[str, Any]:
    """Keys with dashes read as underscores, aliases resolved, at every level."""
    result = {}
    for key, value in table.items():
        key = key.replace("-", "_")
        result[KEY_ALIASES.get(key, key)] = _canonical(value) if isinstance(value, dict) else value
    return result


def _merge(defaults: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    merged = dict(defaults)
    for key, value in job.items():
        merged[key] = (
            {**merged[key], **value} if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


def _job(position: int, entry: dict[str, Any], base: Path) -> Job:
    given = entry.get("name")
    label = f"job {position}" + (
        f" ({given if plain_name(given) else shown_name(given)})" if isinstance(given, str) else ""
    )
    _check_entry(label, entry)
    replace = entry["replace"]
    replace = [replace] if isinstance(replace, str) else replace
    clip = base / Path(entry["clip"]).expanduser()
    images = [base / Path(path).expanduser() for path in _paths(entry.get("image"))]
    folder = base / Path(entry["reference"]).expanduser() if "reference" in entry else None
    masks = [base / Path(path).expanduser() for path in _paths(entry.get("reference_mask"))]
    mask = base / Path(entry["mask"]).expanduser() if "mask" in entry else None
    name = entry.get("name") or f"{_stem(clip)}-{_stem(images[0] if images else folder)}"
    if not plain_name(name):
        raise ConfigError(f"{label}: `name` {shown_name(name)} is not a plain folder name", hint=f"use {NAME_RULE}")
    project = base / Path(entry["project"]).expanduser() if "project" in entry else base / f"{name}{PROJECT_SUFFIX}"
    try:
        word = masking(_paths(entry.get("reference_mask")), flag="`reference_mask`")
        references = gather(images, folder, [] if word else masks, what="`image`")
        model = resolve_model_config(
            _local(entry.get("model"), base),
            entry.get("device"),
            entry.get("dtype"),
            _local(entry.get("model_config"), base),
        )
        prepare = from_table(
            PrepareConfig, {"prompt": entry["prompt"], "object": entry["object"], **_table(entry, "prepare")}, "prepare"
        )
        train = from_table(TrainConfig, {**word, **_table(entry, "train")}, "train")
        edit = from_table(EditConfig, {"replace": replace, **_table(entry, "edit")}, "edit")
        evaluate = _eval_config(entry, base, model.model)
        job = Job(name, clip, references, project.resolve(), model, prepare, train, edit, evaluate, mask)
        check_job(job)
    except LiveError as exc:
        worded = exc.worded(job_keys) if isinstance(exc, SettingError) else exc
        raise ConfigError(f"{label}: {worded.message}", hint=worded.hint) from None
    return job


def _eval_config(entry: dict[str, Any], base: Path, model: str) -> EvalConfig | None:
    """The job's `eval` table as a config; None for `eval = false` (the job stops after its edit)."""
    if entry.get("eval") is False:
        return None
    settings = typed_table(field_types(EvalConfig), _table(entry, "eval"), "eval")
    clip_model = resolve_clip_model(_local(settings.pop("clip_model", None), base), model)
    return EvalConfig(clip_model=clip_model, **settings)


def _check_entry(label: str, entry: dict[str, Any]) -> None:
    """A job's keys: the required ones there, none unknown, each of its kind, no control character."""
    for key in REQUIRED:
        if key not in entry:
            raise ConfigError(f"{label} has no `{key}`", hint="every job needs clip, image, prompt, object and replace")
    if "image" not in entry and "reference" not in entry:
        raise ConfigError(
            f"{label} has no `image`",
            hint="every job needs clip, image (or a `reference` folder), prompt, object and replace",
        )
    known = {*REQUIRED, *MODEL_KEYS, *STAGE_TABLES, "name", "project", "image", "reference", "reference_mask", "mask"}
    for key in entry:
        if key not in known:
            raise ConfigError(f"{label}: unknown key `{key}`", hint=f"a job's keys are {', '.join(sorted(known))}")
    for key in PATH_LISTS:
        value = entry.get(key)
        items = [value] if isinstance(value, str) else value
        if value is not None and not (isinstance(items, list) and items and all(isinstance(i, str) for i in items)):
            raise ConfigError(
                f"{label}: `{key}` must be a path or a list of paths, got {value!r}", hint="quote each in the TOML file"
            )
        for item in items or []:
            _check_plain(label, key, item)
    for key in ("clip", "prompt", "object", "name", "project", "reference", "mask", *MODEL_KEYS):
        if key in entry and not isinstance(entry[key], str):
            raise ConfigError(
                f"{label}: `{key}` must be a string, got {entry[key]!r}", hint="quote it in the TOML file"
            )
        if key in ("clip", "project", "reference", "mask", *MODEL_KEYS) and key in entry:
            _check_plain(label, key, entry[key])
    replace = entry["replace"]
    replace = [replace] if isinstance(replace, str) else replace
    if not isinstance(replace, list) or not replace or not all(isinstance(r, str) for r in replace):
        raise ConfigError(
            f'{label}: `replace` must be a string or a list of strings like "car=<tok>"',
            hint='e.g. replace = ["car=<tok>"]',
        )


def _check_plain(label: str, key: str, text: str) -> None:
    if has_control_character(text):
        raise ConfigError(
            f"{label}: `{key}` {shown_name(text)} holds a control character",
            hint="a path or name here is plain text: remove the character (a NUL, a newline, a tab…)",
        )


def job_keys(config: type, name: str, value: str | None = None) -> str:
    """A setting in a jobs file's words: `train.steps`, and `train.steps = 500` with a value."""
    table = TABLE_OF.get(config)
    key = name if table is None or name in SET_ELSEWHERE else f"{table}.{name}"
    return f"`{key}`" if value is None else f"`{key} = {_toml_value(value)}`"


def _toml_value(text: str) -> str:
    """A value as a jobs file writes it: a number or a quoted string."""
    if text[:1] in "'\"" and text[-1:] == text[:1] and len(text) > 1:
        return text
    try:
        float(text)
    except ValueError:
        return f'"{text}"'
    return text


def _local(reference: str | None, base: Path) -> str | None:
    """A model named by a path relative to the jobs file, made absolute; hub ids and built-in models as they are."""
    if reference is None or reference in BUILT_IN_MODELS or Path(reference).expanduser().is_absolute():
        return reference
    beside = base / reference
    return str(beside) if beside.exists() else reference


def _paths(value: str | list[str] | None) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def _stem(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", path.stem if path.suffix else path.name).strip("-.") or "job"


def _table(entry: dict[str, Any], stage: str) -> dict[str, Any]:
    """The job's `[stage]` settings, as written (`from_table` checks their names and types)."""
    table = entry.get(stage, {})
    if stage == "eval" and table is True:
        return {}
    if not isinstance(table, dict):
        raise ConfigError(
            f"`{stage}` must be a table of settings",
            hint=f"e.g. {stage} = {{ ... }}" + (", or eval = false" if stage == "eval" else ""),
        )
    for key in table:
        if key in SET_ELSEWHERE:
            raise ConfigError(
                f"`{stage}.{key}` belongs at the job's top level", hint=f"set {SET_ELSEWHERE[key]} instead"
            )
    return table


# --------------------------------------------------------------------------- running


@dataclass
class JobReport:
    position: int
    """The job's number in the file, from 1."""
    job: Job
    status: str
    """"done" (some stage ran), "up to date" (nothing to do), "busy" (another live process
    holds its project: skipped), "failed", or "stopped" (Ctrl-C or SIGTERM: the batch ends)."""
    outcome: JobOutcome | None = None
    error: str | None = None
    hint: str | None = None
    seconds: float = 0.0


def run_batch(
    jobs: list[Job],
    shard: Shard = ALL,
    keep_going: bool = False,
    on_start: Callable[[int, Job], None] = lambda position, job: None,
    on_stage: Callable[[StageResult], None] = lambda result: None,
    debug: bool = False,
) -> Iterator[JobReport]:
    """Run this shard's jobs in order, yielding each one's report as it ends.

    A failing job is reported; without `keep_going` the batch then stops. A job whose
    project another process holds (another worker on the same file) is skipped as "busy".
    Ctrl-C and SIGTERM are not caught: they stop the batch, and the job's project keeps
    its last complete state (a training saves a checkpoint first).
    """
    for position, job in enumerate(jobs, 1):
        if not shard.takes(position):
            continue
        on_start(position, job)
        started = time.perf_counter()
        try:
            outcome = run_job(job, on_stage)
        except ProjectBusy as exc:
            report = JobReport(position, job, "busy", error=f"in use by another live process (pid {exc.holder})")
        except LiveError as exc:
            if isinstance(exc, SettingError):  # a stage's error naming settings: in the jobs file's words
                exc = exc.worded(job_keys)
            report = JobReport(position, job, "failed", error=exc.message, hint=exc.hint)
        except (Interrupted, KeyboardInterrupt) as exc:  # Ctrl-C or SIGTERM: the batch stops, saying where
            stopped = exc.message if isinstance(exc, Interrupted) else "the project keeps its last complete state"
            report = JobReport(position, job, "stopped", error=stopped, hint="run the batch again to finish")
            report.seconds = time.perf_counter() - started
            yield report
            raise
        except Exception as exc:  # a bug or an out-of-memory in one job must not hide the others' results
            if debug:
                traceback.print_exc()
            fault = machine_fault(exc)
            report = JobReport(
                position,
                job,
                "failed",
                error=fault.message if fault else f"{exc.__class__.__name__}: {reason(exc)}",
                hint=fault.hint if fault else "set LIVE_DEBUG=1 for the traceback",
            )
        else:
            report = JobReport(position, job, "done" if outcome.ran else "up to date", outcome)
        report.seconds = time.perf_counter() - started
        yield report
        if report.status == "failed" and not keep_going:
            return
