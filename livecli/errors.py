"""The one family of errors a user can cause; each carries a hint on what to do.

`cli.main` prints a `LiveError` as `error: …` and `hint: …` and exits 1, without a
traceback (set `LIVE_DEBUG=1` to see it).
"""

from __future__ import annotations

import errno


class LiveError(Exception):
    """An error in the user's input or environment, with a hint on how to fix it."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class InputError(LiveError):
    """A file given on the command line is missing or cannot be read."""


class ConfigError(LiveError):
    """A flag has a value the stage cannot use."""


class ProjectError(LiveError):
    """The project directory is missing, foreign, too new or busy."""


class ProjectBusy(ProjectError):
    """Another live process holds the project's lock."""

    def __init__(self, root, holder: str):
        super().__init__(
            f"{root} is in use by another live process (pid {holder})",
            hint="wait for it to finish; one project takes one writer at a time",
        )
        self.holder = holder


class ModelError(LiveError):
    """A model cannot be found, downloaded or loaded."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM, caught at a safe point: `message` says what was kept and how to go on.

    Not a KeyboardInterrupt, which Typer would swallow into a bare exit code; `cli.main`
    prints the message and exits 130 (Ctrl-C) or 143 (SIGTERM), as the shell would.
    """

    def __init__(self, message: str, exit_code: int = 130):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


MACHINE_FAULTS = {
    errno.ENOSPC: ("the disk is full", "free some space (or move the project to a larger disk) and run it again"),
    errno.EDQUOT: ("the disk quota is used up", "free some space within your quota and run it again"),
    errno.EROFS: (
        "the file system is read-only",
        "copy the project to a writable folder (`live status` reads a read-only one)",
    ),
    errno.EACCES: ("permission denied", "check the folder's owner and permissions (ls -l), or pass another -p"),
    errno.EPERM: ("operation not permitted", "check the folder's owner and permissions (ls -l), or pass another -p"),
}


def machine_fault(exc: BaseException) -> LiveError | None:
    """A fault of the machine (full disk, read-only or forbidden folder, no memory) as a
    one-line error with what to do; None for anything else."""
    if isinstance(exc, OSError) and exc.errno in MACHINE_FAULTS:
        what, hint = MACHINE_FAULTS[exc.errno]
        where = f" ({exc.filename})" if exc.filename else ""
        return LiveError(f"cannot write{where}: {what}", hint=hint)
    if isinstance(exc, MemoryError) or exc.__class__.__name__ == "OutOfMemoryError":
        return LiveError(
            "out of memory" + (" on the GPU" if exc.__class__.__name__ == "OutOfMemoryError" else ""),
            hint="use a smaller --size, fewer frames per --window, or --gradient-checkpointing (training)",
        )
    return None


def reason(exc: BaseException) -> str:
    """A library exception in one line: its OS error text, first message line, or class name."""
    text = getattr(exc, "strerror", None) or str(exc)
    return text.strip().splitlines()[0] if text.strip() else exc.__class__.__name__
