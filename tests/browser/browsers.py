"""Debian's Chromium, headless, driven by Playwright: Playwright's own browser download cannot
be reached here, so the system browser is launched through `executable_path`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # else it calls Google's hosts, which this network refuses
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


def chromium() -> Path:
    """The browser: $LIVE_CHROMIUM, else `chromium` on the PATH (Debian's package)."""
    found = os.environ.get("LIVE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("no chromium: `apt-get install -y chromium` (or set LIVE_CHROMIUM to a Chromium binary)")
    return Path(found)
