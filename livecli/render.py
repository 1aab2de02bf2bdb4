"""How `live` shows results: one line per stage, and the tables of status, eval, run and batch.

Stage lines and messages go to stderr (`progress.console`); tables and JSON, the results,
to stdout (`out`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from livecli.progress import console, size
from livecli.scores import catalogue
from livecli.stages import clip_facts, stage_named
from livecli.store import StageResult

out = Console(highlight=False, soft_wrap=True)
"""stdout: results and --json."""


def where(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def report_stage(result: StageResult) -> None:
    """One line on stderr: what the stage made and where, or that it was up to date."""
    if result.skipped:
        console.print(f"[bold]{result.stage}[/]: up to date ({escape(where(result.folder))})", soft_wrap=True)
    else:
        console.print(
            f"[bold]{result.stage}[/]: {escape(stage_named(result.stage).summary(result.record))} in "
            f"{result.record.seconds:.1f} s -> "
            f"{escape(where(result.folder))}",
            soft_wrap=True,
        )


def metrics_table(evaluations, title: str) -> Table:
    """One row per edit and, dimmed under it, its source video's (the baseline)."""
    table = Table(title=escape(title), title_justify="left", box=box.SIMPLE_HEAD)  # the scores with a column
    table.add_column("edit", no_wrap=True)
    # A metric no row has (the judge's, on models other than shapes) gets no column.
    shown = [
        score
        for score in catalogue()
        if score.column
        and (not score.optional or any(e.metrics["rows"]["edit"].get(score.name) is not None for e in evaluations))
    ]
    for score in shown:
        table.add_column(score.column, justify="right", min_width=6)  # headers wrap, values never do
    for evaluation in evaluations:
        for video, label, style in (("edit", escape(evaluation.name), ""), ("source", "  source", "dim")):
            row = evaluation.metrics["rows"][video]
            values = [short(row.get(score.name)) for score in shown]
            if evaluation.metrics.get("clip_score_note"):  # say why there is no CLIP score, never show a random 0
                values[[score.name for score in shown].index("clip_score")] = "n/a"
            table.add_row(label, *values, style=style)
    notes = sorted({e.metrics["clip_score_note"] for e in evaluations if e.metrics.get("clip_score_note")})
    if notes:
        table.caption = f"CLIP {' / '.join(notes)}"
        table.caption_justify = "left"
    return table


def short(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3f}"


def job_summary(outcome) -> None:
    """The table at the end of `live run` and `live demo`: each stage, what happened, time, where."""
    table = Table(title=escape(f"{outcome.job.name}: done in {outcome.seconds:.1f} s"), title_justify="left")
    for column in ("stage", "result", "time", "output"):
        table.add_column(column, no_wrap=column != "output")
    for stage in outcome.stages:
        table.add_row(
            stage.result.stage,
            "up to date" if stage.result.skipped else "[green]ran[/]",
            f"{stage.seconds:.1f} s",
            escape(where(stage.result.folder)),
        )
    out.print(table)
    for label, path in outcome.paths().items():
        out.print(f"{label}: {escape(where(path))}", soft_wrap=True)


def print_error(message: str, hint: str | None) -> None:
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    if hint:
        console.print(f"[dim]hint:[/] {escape(hint)}", soft_wrap=True)


def status_table(root: Path, stages) -> Table:
    table = Table(title=escape(where(root)), title_justify="left")
    for column in ("stage", "state", "size", "took", "finished"):
        table.add_column(column, no_wrap=True)
    notes = any(s.reason for s in stages)  # a column only when a stage has one, wide enough to read
    if notes:
        table.add_column("note", min_width=12)
    colours = {"done": "green", "stale": "yellow", "missing": "dim"}
    for s in stages:
        row = [
            s.stage,
            f"[{colours[s.state]}]{s.state}[/]",
            size(s.bytes) if s.bytes else "",
            f"{s.seconds:.1f} s" if s.seconds is not None else "",
            (s.finished or "")[:16].replace("T", " "),
        ]
        table.add_row(*row, *([escape(s.reason)] if notes else []))
    return table


def batch_table(reports) -> Table:
    """The table at the end of `live batch`: each job run, its status, time, video or error."""
    table = Table(title="batch", title_justify="left")
    for column in ("job", "name", "status", "time", "video / error"):
        table.add_column(column, no_wrap=column != "video / error")
    for r in reports:
        colour = {"done": "green", "up to date": "dim", "busy": "yellow", "failed": "red"}[r.status]
        result = escape(r.error or "") if r.outcome is None else escape(where(r.outcome.paths()["video"]))
        table.add_row(str(r.position), escape(r.job.name), f"[{colour}]{r.status}[/]", f"{r.seconds:.1f} s", result)
    return table


def batch_counts(reports) -> str:
    """`2 done, 1 up to date, 1 busy (another worker has it)`: what this worker did, by status."""
    names = {"busy": "busy (another worker has it)"}
    counts = {status: sum(r.status == status for r in reports) for status in ("done", "up to date", "busy", "failed")}
    return ", ".join(f"{count} {names.get(status, status)}" for status, count in counts.items() if count)


def jobs_table(jobs: list[dict]) -> Table:
    """`live batch --dry-run`: the jobs a shard would run."""
    table = Table(title="jobs", title_justify="left")
    for column in ("job", "name", "project"):
        table.add_column(column, no_wrap=column != "project")
    for job in jobs:
        table.add_row(str(job["job"]), escape(job["name"]), escape(where(Path(job["project"]))))
    return table


# --------------------------------------------------------------------------- JSON: the shapes of results on stdout


def status_json(root: Path, prepared, stages) -> dict:
    """`live status --json`."""
    clip = clip_facts(prepared) if prepared is not None else None
    return {"project": str(root), "clip": clip, "stages": [asdict(stage) for stage in stages]}


def evaluations_json(root: Path, evaluations) -> dict:
    """`live eval --json`."""
    items = [
        {"edit": e.name, "folder": str(e.result.folder), "skipped": e.result.skipped, "metrics": e.metrics}
        for e in evaluations
    ]
    return {"project": str(root), "evaluations": items}


def outcome_json(outcome) -> dict:
    """`live run --json`: a job's stages, paths and metrics."""
    return {
        "name": outcome.job.name,
        "status": "done" if outcome.ran else "up to date",
        "seconds": round(outcome.seconds, 3),
        "stages": [
            {
                "stage": s.result.stage,
                "skipped": s.result.skipped,
                "seconds": round(s.seconds, 3),
                "folder": str(s.result.folder),
            }
            for s in outcome.stages
        ],
        "paths": {key: str(path) for key, path in outcome.paths().items()},
        "metrics": outcome.metrics(),
    }


def planned_job_json(position: int, job) -> dict:
    """`live batch --dry-run --json`: a job this shard would run."""
    return {"job": position, "name": job.name, "project": str(job.project)}


def job_ended(done, total: int) -> None:
    """`live batch`: one line as a job ends (its error, for a failed one)."""
    if done.status == "failed":
        print_error(f"job {done.position} ({done.job.name}) failed: {done.error}", done.hint)
        return
    what = f"skipped, {escape(done.error)}" if done.status == "busy" else f"{done.status} in {done.seconds:.1f} s"
    console.print(f"[bold]job {done.position}/{total}[/] {escape(done.job.name)}: {what}", soft_wrap=True)


def batch_ended(reports: list, mine: int) -> None:
    """`live batch`: the counts, and how many jobs a failure left unrun."""
    console.print(f"[bold]batch[/]: {batch_counts(reports) or 'no jobs run'}", soft_wrap=True)
    left = mine - len(reports)
    if left:
        console.print(
            f"[yellow]stopped[/]: {left} job{'s' if left != 1 else ''} not run after a failure (pass --keep-going to "
            "go on)",
            soft_wrap=True,
        )


def job_states_table(states) -> Table:
    """`live batch --status`: a row a job."""
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("job", "name", "state", "project", "note"):
        table.add_column(column, overflow="fold")
    styles = {"done": "green", "running": "cyan", "failed": "red", "stopped": "yellow"}
    for state in states:
        shown = f"[{styles[state.state]}]{state.state}[/]" if state.state in styles else state.state
        table.add_row(str(state.position), escape(state.name), shown, escape(where(state.project)), escape(state.note))
    return table


def job_state_json(state) -> dict:
    return {
        "job": state.position,
        "name": state.name,
        "state": state.state,
        "project": str(state.project),
        "note": state.note,
    }


def job_report_json(report) -> dict:
    """`live batch --json`: a job as it ends."""
    outcome = report.outcome
    paths = (
        {key: str(path) for key, path in outcome.paths().items()} if outcome else {"project": str(report.job.project)}
    )
    return {
        "job": report.position,
        "name": report.job.name,
        "status": report.status,
        "seconds": round(report.seconds, 3),
        "paths": {key: str(path) for key, path in paths.items()},
        "metrics": outcome.metrics() if outcome else None,
        "error": report.error,
        "hint": report.hint,
    }
