"""Progress bars and messages on stderr, so stdout stays clean for `--json` and pipes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True, highlight=False)
"""Where stages talk to the user: stderr (stdout is for results)."""


def quiet() -> bool:
    return os.environ.get("LIVE_QUIET", "") not in ("", "0")


def say(message: str) -> None:
    if not quiet():
        console.print(message, soft_wrap=True)


@contextmanager
def bar(description: str, total: int, completed: int = 0) -> Iterator[Callable[..., None]]:
    """A progress bar; yields `advance(n=1, description=None)`. Hidden when LIVE_QUIET is set."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=quiet(),
    )
    with progress:
        task = progress.add_task(description, total=total, completed=completed)
        yield lambda n=1, description=None: progress.update(task, advance=n, description=description)
