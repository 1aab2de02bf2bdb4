"""The one family of errors a user can cause; each carries a hint on what to do.

`cli.main` prints a `LiveError` as `error: …` and `hint: …` and exits 1, without a
traceback (set `LIVE_DEBUG=1` to see it).
"""

from __future__ import annotations


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


class ModelError(LiveError):
    """A model cannot be found, downloaded or loaded."""


class Interrupted(Exception):
    """Ctrl-C, caught at a safe point: `message` says what was kept and how to go on.

    Not a KeyboardInterrupt, which Typer would swallow into a bare exit code; `cli.main`
    prints the message and exits 130 as for any Ctrl-C.
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def reason(exc: BaseException) -> str:
    """A library exception in one line: its OS error text, first message line, or class name."""
    text = getattr(exc, "strerror", None) or str(exc)
    return text.strip().splitlines()[0] if text.strip() else exc.__class__.__name__
