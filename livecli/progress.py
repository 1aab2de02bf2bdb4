"""Progress bars and messages on stderr, so stdout stays clean for `--json` and pipes."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from livecli import environment

console = Console(stderr=True, highlight=False)
"""Where stages talk to the user: stderr (stdout is for results)."""


def quiet() -> bool:
    return environment.flag(environment.QUIET)


def events() -> bool:
    """Whether progress goes out as JSON lines (LIVE_PROGRESS_EVENTS), for a program to read."""
    return environment.flag(environment.PROGRESS_EVENTS)


def emit(event: dict) -> None:
    """One progress event as a JSON line on stderr."""
    print(json.dumps(event), file=sys.stderr, flush=True)


def say(message: str) -> None:
    if quiet():
        return
    if events():
        emit({"message": message})
    else:
        console.print(message, soft_wrap=True)


EVENT_INTERVAL_S = 0.25
"""How often a bar sends an event at most (the last one always goes)."""


@contextmanager
def bar(description: str, total: int, completed: int = 0) -> Iterator[Callable[..., None]]:
    """A progress bar; yields `advance(n=1, description=None)`. Hidden when LIVE_QUIET is on;
    JSON lines (`{"bar", "completed", "total", "elapsed", "eta"}`) with LIVE_PROGRESS_EVENTS."""
    if events() and not quiet():
        with _event_bar(description, total, completed) as advance:
            yield advance
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=quiet(),
    )
    with progress:
        task = progress.add_task(description, total=total, completed=completed)
        yield lambda n=1, description=None: progress.update(task, advance=n, description=description)


@contextmanager
def _event_bar(description: str, total: int, completed: int) -> Iterator[Callable[..., None]]:
    """The bar as events: the ETA is the rich bar's (the mean speed so far)."""
    started = time.perf_counter()
    state = {"completed": completed, "description": description, "sent": 0.0}

    def send(force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - state["sent"] < EVENT_INTERVAL_S:
            return
        state["sent"] = now
        elapsed = now - started
        done = state["completed"] - completed
        left = total - state["completed"]
        eta = elapsed / done * left if done > 0 else None
        emit(
            {
                "bar": state["description"],
                "completed": state["completed"],
                "total": total,
                "elapsed": round(elapsed, 2),
                "eta": None if eta is None else round(eta, 2),
            }
        )

    def advance(n: int = 1, description: str | None = None) -> None:
        state["completed"] += n
        if description is not None:
            state["description"] = description
        send(force=state["completed"] >= total)

    send(force=True)
    yield advance


def duration(seconds: float) -> str:
    """12 s, 4.5 min, 2.1 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@contextmanager
def window_bar(description: str, frames: int, passes: int, windows: int) -> Iterator[Callable[..., None]]:
    """A bar over windows × passes of the UNet (DDIM steps), for a stage that runs a clip in
    windows: says the work first and, after the second window, an estimate of its time.
    Yields `advance(*_)`, to call after each window.

    The estimate is the second window's speed: the first carries the run's one-time costs
    (the first passes through the model, the text encoded, the store opened), and taken as
    the speed of all it overstated the time 7–10×."""
    stage = description.split(" ")[0]
    per_step = f", {windows} windows a step" if windows > 1 else ""
    say(f"{stage}: {frames} frames × {passes} steps{per_step}")
    total = passes * windows
    with bar(description, total) as advance:
        started = time.perf_counter()
        ended: list[float] = []

        def after_window(*_) -> None:
            ended.append(time.perf_counter())
            if len(ended) == 2 and total > 2:
                estimate = ended[1] - started + (ended[1] - ended[0]) * (total - 2)
                say(f"{stage}: about {duration(estimate)} in all, at the second window's speed")
            advance()

        yield after_window


def size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""
