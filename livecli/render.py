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

from livecli.progress import console
from livecli.store import StageResult

out = Console(highlight=False, soft_wrap=True)
"""stdout: results and --json."""


def size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


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
            f"[bold]{result.stage}[/]: {escape(SUMMARIES[result.stage](result))} in {result.record.seconds:.1f} s -> "
            f"{escape(where(result.folder))}",
            soft_wrap=True,
        )


def clip_facts(record) -> dict:
    """What the prepare record says of the sampled clip: frames, span, frame rate, size, sound."""
    facts = record.facts
    width, height = facts.get("frame_size") or [facts["frames_shape"][-1] * 8] * 2
    span = facts.get("span") or {}
    return {
        "frames": facts["frames_shape"][0],
        "start": span.get("start"),
        "end": span.get("end"),
        "stride": span.get("stride", record.settings.get("stride", 1)),
        "fps": facts.get("fps"),
        "width": width,
        "height": height,
        "audio": bool(facts.get("audio")),
    }


def clip_line(record) -> str:
    """80 frames 512×288, 0.0–8.0 s at 10 fps, with sound."""
    clip = clip_facts(record)
    every = f" every {clip['stride']} frames" if clip["stride"] > 1 else ""
    span = f", {clip['start']:.1f}–{clip['end']:.1f} s{every}" if clip["start"] is not None else ""
    fps = f" at {clip['fps']:g} fps" if clip["fps"] else ""
    sound = "with sound" if clip["audio"] else "silent"
    return f"{clip['frames']} frames {clip['width']}×{clip['height']}{span}{fps}, {sound}"


def prepared(result: StageResult) -> str:
    facts = result.record.facts
    count = facts["reference_shape"][0]
    references = "reference" if count == 1 else f"{count} references"
    weighted = (
        f", reference masks cover {facts['reference_mask_coverage']:.0%} of their latents"
        if facts.get("reference_mask_coverage") is not None
        else ""
    )
    latents = f"latents {facts['frames_shape']} + {references} {facts['reference_shape']}"
    return f"{clip_line(result.record)}; {latents}{weighted}"


def masked(result: StageResult) -> str:
    facts = result.record.facts
    return f"{facts['frames']} object masks ({facts['given_as']}), covering {facts['coverage']:.0%} of the pixels"


def trained(result: StageResult) -> str:
    facts = result.record.facts
    before, after = facts["fixed_draw_loss_before"], facts["fixed_draw_loss_after"]
    steps = result.record.settings["steps"]
    if "auto_steps" in facts:
        steps = f"auto: {facts['auto_steps']['stopped_at']} steps, kept step {facts['auto_steps']['kept_step']},"
    else:
        steps = f"{steps} steps,"
    return (
        f"{steps} token {facts['token']}; loss on fixed draws: "
        f"video {before['video']:.4f} -> {after['video']:.4f}, image {before['text']:.4f} -> {after['text']:.4f}"
        + (f"; latent prompt moved {moved:.1%}" if (moved := facts.get("latent_prompt_moved")) is not None else "")
        + found_masks(facts.get("found_reference_masks"))
    )


def found_masks(found: dict[str, float] | None) -> str:
    """'; the object found in reference 1 (13% of it)', for --reference-mask auto."""
    if not found:
        return ""
    shares = [f"{number} ({share:.0%} of it)" for number, share in found.items() if share]
    if not shares:
        return f"; no object found in {'reference' if len(found) == 1 else 'references'} {', '.join(found)}"
    return f"; the object found in reference{'s' if len(shares) > 1 else ''} {', '.join(shares)}"


def inverted(result: StageResult) -> str:
    settings, facts = result.record.settings, result.record.facts
    refined = f", {settings['refine']} fixed-point iterations a step" if settings.get("refine") else ""
    attention = facts.get("attention")
    stored = f", source attention stored ({size(attention['bytes'])})" if attention else ""
    return f"{settings['steps']} DDIM steps{refined} under {settings['prompt']!r}, x_T std {facts['noise_std']}{stored}"


def edited(result: StageResult) -> str:
    settings, facts = result.record.settings, result.record.facts
    blend = "no blend" if facts.get("mask_coverage") is None else f"blend mask covers {facts['mask_coverage']:.0%}"
    return f"{settings['target_prompt']!r}, {settings['steps']} steps, guidance {settings['guidance']:g}, {blend}"


def evaluated(result: StageResult) -> str:
    facts = result.record.facts
    if facts.get("background_share") is None:
        psnr = "no blend mask, no background score"
    elif facts.get("background_psnr") is None:
        psnr = "the blend mask covers every pixel, no background score"
    else:
        psnr = f"background PSNR {facts['background_psnr']:.1f} dB over {facts['background_share']:.0%} of the pixels"
    judged = f", object match {facts['object_match']:.0%} (judge)" if facts.get("object_match") is not None else ""
    if facts.get("clip_score") is None:
        clip = f"CLIP score {facts.get('clip_score_note', 'n/a')}"
    else:
        clip = f"CLIP score {facts['clip_score']:.1f} (source {facts['source_clip_score']:.1f})"
    return f"{clip}, CLIP-I {facts['reference_similarity']:.3f}, {psnr}{judged}"


SUMMARIES = {
    "prepare": prepared,
    "masks": masked,
    "train": trained,
    "invert": inverted,
    "edit": edited,
    "eval": evaluated,
}


TABLE_METRICS = {
    "clip_score": "CLIP",
    "consistency_consecutive": "consist.",
    "reference_similarity": "CLIP-I",
    "reference_similarity_crop": "CLIP-I crop",
    "background_psnr": "bg PSNR",
    "background_ssim": "bg SSIM",
    "warp_error": "warp err",
    "object_match": "object",
}
"""The columns of `live eval`'s table (metrics.json and report.md have every metric)."""


def metrics_table(evaluations, title: str) -> Table:
    """One row per edit and, dimmed under it, its source video's (the baseline)."""
    table = Table(title=escape(title), title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("edit", no_wrap=True)
    # A metric no row has (the judge's, on models other than shapes) gets no column.
    shown = [
        f
        for f in TABLE_METRICS
        if f != "object_match" or any(e.metrics["rows"]["edit"].get(f) is not None for e in evaluations)
    ]
    for field in shown:
        table.add_column(TABLE_METRICS[field], justify="right", min_width=6)  # headers wrap, values never do
    for evaluation in evaluations:
        for video, label, style in (("edit", escape(evaluation.name), ""), ("source", "  source", "dim")):
            row = evaluation.metrics["rows"][video]
            values = [short(row.get(field)) for field in shown]
            if evaluation.metrics.get("clip_score_note"):  # say why there is no CLIP score, never show a random 0
                values[shown.index("clip_score")] = "n/a"
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
