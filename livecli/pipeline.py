"""Stages run one after another: every stage for one clip and reference image (`live run`,
`live demo`, `live batch`), and prepare-then-train (`live train CLIP IMAGE`).

prepare → train → invert + edit → eval, each skipped when up to date, so a job run again
costs only the checks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livecli.config import (
    EditConfig,
    EvalConfig,
    ModelConfig,
    PrepareConfig,
    TrainConfig,
)
from livecli.errors import ConfigError, LiveError
from livecli.fields import SettingError
from livecli.models.loading import resolve_model
from livecli.references import References
from livecli.stages import EDIT
from livecli.stages import edit as edit_stage
from livecli.stages import evaluate as eval_stage
from livecli.stages import masks as masks_stage
from livecli.stages import prepare as prepare_stage
from livecli.stages import train as train_stage
from livecli.stages.runtime import resolve_windows
from livecli.store import Project, StageResult


@dataclass(frozen=True)
class Job:
    """One clip, its reference image(s), one edit: all a pipeline run needs."""

    name: str
    clip: Path
    image: Path | References
    """The reference image, or several (with their masks)."""
    project: Path
    model: ModelConfig
    prepare: PrepareConfig
    train: TrainConfig
    edit: EditConfig
    eval: EvalConfig | None
    """None: stop after the edit (no CLIP model is loaded)."""
    mask: Path | None = None
    """The clip's object masks (masks.py), or None."""

    @property
    def references(self) -> References:
        return References.of(self.image)


@dataclass
class StageTime:
    result: StageResult
    seconds: float
    """Wall time of this call, checks included (a skipped stage's record keeps the time it once took)."""


@dataclass
class JobOutcome:
    job: Job
    project: Project
    stages: list[StageTime] = field(default_factory=list)
    evaluation: eval_stage.Evaluation | None = None

    @property
    def ran(self) -> bool:
        """True when some stage did work; False when everything was up to date."""
        return any(not s.result.skipped for s in self.stages)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages)

    def paths(self) -> dict[str, Path]:
        edit_dir = self.project.stage_dir(EDIT.run(self.job.edit.folder_name))
        paths = {"project": self.project.root}
        paths |= {
            role: edit_dir / file for role, file in EDIT.outputs.items() if role != "gif"
        }  # a GIF only when short
        if self.evaluation is not None:
            paths.update(eval_stage.outputs(self.project, self.evaluation.name))
        return paths

    def metrics(self) -> dict[str, Any] | None:
        return self.evaluation.metrics["rows"] if self.evaluation is not None else None


def check_job(job: Job) -> None:
    """What the settings of `job` say against each other and its inputs, before any stage
    runs (not after the training): the edit's words, the windows, a caption per reference."""
    try:  # the target prompt's length too, where the model's tokenizer is at hand (else prepare names the model)
        source = resolve_model(job.model.model, config=job.model.model_config)
    except LiveError:
        source = None
    edit_stage.check_words(job.prepare.prompt, job.edit, job.train.token, source)
    resolve_windows(job.edit, job.train.window)
    check_captions(job.train, job.prepare, job.image)


def check_captions(train: TrainConfig, prepare: PrepareConfig, image: Path | References | None) -> None:
    """--reference-prompt once, or once per reference image: said before anything is prepared."""
    references = len(image.images) if isinstance(image, References) else 1
    train_stage.reference_captions(train, prepare.prompt, prepare.object, references)


def run_job(
    job: Job,
    on_stage: Callable[[StageResult], None] = lambda result: None,
    redo_edit: bool = False,
    replace_other: bool = False,
) -> JobOutcome:
    """Run (or skip) every stage of `job`; `on_stage` hears of each as it finishes.

    `redo_edit` makes the edit and its evaluation again, replacing an edit of the same
    name (the stages before them still run only when stale); `replace_other` replaces
    it only when it was made with other settings.
    """
    check_job(job)
    project = Project(job.project)
    project.check_writable()
    with project.lock():  # the whole job: a second worker on the same jobs file skips it
        return _run_stages(job, project, on_stage, redo_edit, replace_other)


def _run_stages(
    job: Job, project: Project, on_stage: Callable[[StageResult], None], redo_edit: bool, replace_other: bool
) -> JobOutcome:
    outcome = JobOutcome(job, project)

    def timed(call: Callable[[], StageResult]) -> StageResult:
        started = time.perf_counter()
        result = call()
        outcome.stages.append(StageTime(result, time.perf_counter() - started))
        on_stage(result)
        return result

    started = time.perf_counter()
    prepared = prepare_project(project, job.prepare, job.clip, job.references, job.model, job.mask)
    outcome.stages.append(StageTime(prepared.prepare, time.perf_counter() - started))
    on_stage(prepared.prepare)
    if prepared.masks is not None:  # read inside prepare's time: the masks' own record's
        masks = prepared.masks
        outcome.stages.append(StageTime(masks, 0.0 if masks.skipped else masks.record.seconds))
        on_stage(masks)
    timed(lambda: train_stage.run(project, job.train, job.model))
    started = time.perf_counter()
    edited = edit_stage.run(project, job.edit, job.model, force=redo_edit, replace_other=replace_other)
    # The edit ran its inversion inside the same call; split the time between them.
    inversion_seconds = 0.0 if edited.inversion.skipped else edited.inversion.record.seconds
    outcome.stages.append(StageTime(edited.inversion, inversion_seconds))
    on_stage(edited.inversion)
    outcome.stages.append(StageTime(edited.edit, time.perf_counter() - started - inversion_seconds))
    on_stage(edited.edit)
    if job.eval is not None:
        scorer = eval_stage.Scorer.resolve(job.eval.clip_model, job.model.device, job.model.dtype)
        started = time.perf_counter()
        outcome.evaluation = eval_stage.run(project, job.eval, [job.edit.folder_name], scorer, force=redo_edit)[0]
        outcome.stages.append(StageTime(outcome.evaluation.result, time.perf_counter() - started))
        on_stage(outcome.evaluation.result)
    return outcome


@dataclass(frozen=True)
class Prepared:
    prepare: StageResult
    masks: StageResult | None
    """None: no --mask (an earlier run's masks removed)."""


def prepare_project(
    project: Project,
    config: PrepareConfig,
    clip: Path,
    image: Path | References,
    model: ModelConfig,
    mask: Path | None,
    force: bool = False,
) -> Prepared:
    """Prepare, then the clip's masks: new frames are recorded only once the masks have been
    read against them, so a mask that does not fit leaves the project as it was."""
    reading = masks_stage.Reading.of(masks_stage.check_source(mask), config)
    project.check_writable(repair=force)
    with project.lock():
        prepared = prepare_stage.run(project, config, clip, image, model, force=force, check_frames=reading)
        return Prepared(prepared, masks_stage.run(project, mask, force=force, read=reading))


def check_train_inputs(clip: Path | None, images: bool, prepare: dict[str, Any], mask: Path | None = None) -> None:
    """`live train`'s arguments: CLIP and IMAGE (or --reference DIR) together, with --prompt
    and --object, or neither and no preparing flag (`prepare`: the preparing settings given;
    `images`: whether any reference image was given)."""
    if clip is not None and not images:
        raise ConfigError(
            "CLIP needs IMAGE: pass both, or neither to train on the project's prepared frames",
            hint="live train CLIP IMAGE --prompt TEXT --object WORD",
        )
    if clip is None and (images or mask is not None):
        raise ConfigError(
            "reference images and --mask go with CLIP: pass CLIP too, or leave them out to train the project as "
            "prepared",
            hint="live train CLIP IMAGE… --prompt TEXT --object WORD",
        )
    if clip is None and prepare:
        verb = "goes" if len(prepare) == 1 else "go"
        raise SettingError(
            PrepareConfig,
            " and ".join(f"{{{name}}}" for name in prepare) + f" {verb} with CLIP IMAGE",
            "pass CLIP IMAGE too, or leave them out to train the project as prepared (`live prepare` changes it)",
        )
    if clip is not None and ("prompt" not in prepare or "object" not in prepare):
        raise ConfigError(
            "CLIP IMAGE need --prompt and --object",
            hint='e.g. --prompt "a man riding a motorcycle" --object motorcycle',
        )


def train_project(
    project: Project,
    model: ModelConfig,
    train: TrainConfig,
    prepare: PrepareConfig | None = None,
    clip: Path | None = None,
    image: Path | References | None = None,
    force: bool = False,
    on_stage: Callable[[StageResult], None] = lambda result: None,
    mask: Path | None = None,
) -> None:
    """`live train`: with `prepare` (and CLIP and IMAGE), prepare them first when missing or
    stale; without, bring the project's prepared frames up to date from their recorded
    sources. Then train."""
    if prepare is None:
        on_stage(prepare_stage.refresh(project, model))
        masks = masks_stage.refresh(project)
    else:
        check_captions(train, prepare, image)
        prepared = prepare_project(project, prepare, clip, image, model, mask)
        on_stage(prepared.prepare)
        masks = prepared.masks
    if masks is not None:
        on_stage(masks)
    on_stage(train_stage.run(project, train, model, force=force))
