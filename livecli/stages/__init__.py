"""One module a stage, each with `run(project, config, ...)` callable from Python without the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from livecli.store import Record


@dataclass
class StageResult:
    stage: str
    folder: Path
    record: Record
    skipped: bool
    """True when the stage was up to date and nothing was redone."""
