"""A jobs file as a SLURM array (`live batch JOBS.toml --sbatch FILE`): the script, and
what the array's tasks left (`live batch JOBS.toml --status`).

The script runs `live batch JOBS.toml --shard "$SLURM_ARRAY_TASK_ID/N" --keep-going
--json` as the batch step itself (`exec`), so that the SIGTERM SLURM sends before the
time limit (`--signal=B:TERM@…`, to the batch step: the one `live` runs in) reaches
`live`, which finishes the training step it is in, saves a checkpoint and exits 143; a
requeue (`--requeue`, `scontrol requeue`) or a re-submission resumes it. Each task
appends its JSON lines to its own file, so a task run again adds to what it said. Nothing
is submitted: the command prints the `sbatch` line to run.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from livecli import __version__
from livecli.errors import ConfigError, LiveError
from livecli.pipeline import Job
from livecli.stages import EDIT, EVAL, STAGES
from livecli.store import MANIFEST, Project, atomic_write_bytes

SBATCH_OPTION = re.compile(r"^--?[a-z][a-z0-9-]*(=[^\s\n]+)?$")
"""One `#SBATCH` option as the user passes it (`--time=12:00:00`, `--gres=gpu:1`): no spaces, no newline."""
SIGNAL_SECONDS = 120
"""SIGTERM this long before the time limit: a training step and its checkpoint fit in it."""


@dataclass(frozen=True)
class ArrayScript:
    path: Path
    tasks: int
    results: Path
    logs: Path

    @property
    def submit(self) -> str:
        return f"sbatch {shlex.quote(str(self.path))}"


def results_folder(jobs_file: Path) -> Path:
    """Where the array's tasks write their JSON lines: `<jobs>.results/` beside the file."""
    return jobs_file.resolve().with_suffix(".results")


def write_script(
    jobs_file: Path,
    jobs: list[Job],
    path: Path,
    tasks: int | None,
    options: list[str],
    signal_before: int = SIGNAL_SECONDS,
) -> ArrayScript:
    """The array script for `jobs_file` at `path`: `tasks` array tasks (default: one a job),
    each a shard; `options` become `#SBATCH` lines as given; SIGTERM `signal_before`
    seconds before the time limit (0: only the one SLURM sends at the limit)."""
    tasks = len(jobs) if tasks is None else tasks
    if not 1 <= tasks <= len(jobs):
        raise ConfigError(
            f"--tasks {tasks}: the file has {len(jobs)} jobs", hint=f"pass 1 to {len(jobs)} (one job a task at most)"
        )
    for option in options:
        if not SBATCH_OPTION.match(option):
            raise ConfigError(
                f"--sbatch-option {option!r} is not one sbatch option",
                hint="pass each as --sbatch-option=--time=12:00:00 (no spaces), e.g. --sbatch-option=--gres=gpu:1",
            )
    if not 0 <= signal_before <= 86400:
        raise ConfigError(
            f"--sbatch-signal {signal_before} is not a number of seconds from 0 to a day",
            hint=f"the default is {SIGNAL_SECONDS}; 0 leaves only SLURM's own SIGTERM at the limit",
        )
    if path.exists() and not path.is_file():
        raise ConfigError(f"--sbatch {path} is not a file", hint="give the path of the script to write")
    jobs_file = jobs_file.resolve()
    results, logs = results_folder(jobs_file), jobs_file.with_suffix(".logs")
    live = shutil.which("live") or f"{sys.executable} -m livecli"
    lines = [
        "#!/bin/bash",
        f"# Written by `live batch {jobs_file.name} --sbatch` (live {__version__}): {len(jobs)} jobs in "
        f"{tasks} array tasks, each a shard.",
        "# Submit it with sbatch; submit it again (or `scontrol requeue`) to finish what a time limit cut:",
        "# finished jobs are skipped, interrupted trainings resume from their checkpoints.",
        f"#SBATCH --job-name=live-{jobs_file.stem}",
        f"#SBATCH --array=1-{tasks}",
        f"#SBATCH --output={logs}/task-%a.log",
        "#SBATCH --open-mode=append",
        *([f"#SBATCH --signal=B:TERM@{signal_before}"] if signal_before else []),
        "#SBATCH --requeue",
        *(f"#SBATCH {option}" for option in options),
        "",
        "export LIVE_QUIET=1  # no progress bars in the log",
        f"mkdir -p {shlex.quote(str(results))}",
        f'exec {live} batch {shlex.quote(str(jobs_file))} --shard "${{SLURM_ARRAY_TASK_ID}}/{tasks}" '
        f'--keep-going --json >> {shlex.quote(str(results))}/task-"${{SLURM_ARRAY_TASK_ID}}".jsonl',
        "",
    ]
    logs.mkdir(parents=True, exist_ok=True)  # SLURM opens the log before the script runs
    atomic_write_bytes(path, "\n".join(lines).encode())
    path.chmod(0o755)
    return ArrayScript(path, tasks, results, logs)


@dataclass(frozen=True)
class JobState:
    position: int
    name: str
    project: Path
    state: str
    """"done", "running" (a live process holds its project), "failed" (its last JSON line
    says so), "stopped" (a time limit or Ctrl-C ended it: run again), or "to do"."""
    note: str = ""


def job_states(jobs_file: Path, jobs: list[Job]) -> list[JobState]:
    """Each job of the file as the array's tasks left it: from its project (its edit and
    scores up to date, its lock held) and the tasks' JSON lines (their last word on it)."""
    said = _last_lines(results_folder(jobs_file))
    states = []
    for position, job in enumerate(jobs, 1):
        project = Project(job.project)
        last = said.get(position, {})
        holder = project.lock_holder()
        if holder:
            state, note = "running", f"pid {holder}"
        elif _finished(project, job):
            state, note = "done", ""
        elif last.get("status") in ("failed", "stopped"):
            state, note = last["status"], str(last.get("error") or "")
        else:
            state, note = "to do", ""
        states.append(JobState(position, job.name, job.project, state, note))
    return states


def _finished(project: Project, job: Job) -> bool:
    if not (project.root / MANIFEST).is_file():
        return False
    stage = (EVAL if job.eval is not None else EDIT).run(job.edit.folder_name)
    try:
        return project.record(stage) is not None and not project.stale_reason(stage, STAGES)
    except LiveError:  # a damaged record is not done; `live status` says why
        return False


def _last_lines(folder: Path) -> dict[int, dict]:
    """Per job number, the last JSON line any task wrote of it (tasks append; a requeued
    task's later line wins)."""
    last: dict[int, dict] = {}
    for path in sorted(folder.glob("task-*.jsonl")) if folder.is_dir() else []:
        for text in path.read_text(errors="replace").splitlines():
            try:
                line = json.loads(text)
            except ValueError:  # a line cut by a kill
                continue
            if isinstance(line, dict) and isinstance(line.get("job"), int):
                last[line["job"]] = line
    return last
