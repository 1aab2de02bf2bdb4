"""The environment variables `live` reads, and the one way it reads an on/off one."""

from __future__ import annotations

import os

DEBUG = "LIVE_DEBUG"
"""On: a known error prints its traceback too."""
QUIET = "LIVE_QUIET"
"""On: no progress bars and no messages on stderr (errors still print)."""
PROGRESS_EVENTS = "LIVE_PROGRESS_EVENTS"
"""On: progress bars and messages are JSON lines on stderr instead (what `live ui` reads of its worker)."""
NO_MEMORY_CHECK = "LIVE_NO_MEMORY_CHECK"
"""On: work whose memory estimate is over what is free runs anyway."""
CONFIG_DIR = "LIVE_CONFIG_DIR"
"""The folder of the user's config.toml (default: the platform's config folder)."""
CACHE_DIR = "LIVE_CACHE_DIR"
"""The folder of the built-in models' cache (default: the platform's cache folder)."""


def flag(name: str) -> bool:
    """Whether an on/off variable is on: set to anything but '' or '0'."""
    return os.environ.get(name, "") not in ("", "0")


def folder(name: str) -> str | None:
    """A folder variable's value; None when unset or empty."""
    return os.environ.get(name) or None
