"""Progress bars and messages on stderr, so stdout stays clean for `--json` and pipes."""

from __future__ import annotations

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


def say(message: str) -> None:
    if not quiet():
        console.print(message, soft_wrap=True)


@contextmanager
def bar(description: str, total: int, completed: int = 0) -> Iterator[Callable[..., None]]:
    """A progress bar; yields `advance(n=1, description=None)`. Hidden when LIVE_QUIET is on."""
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
