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


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, server, timeout_s: float) -> None:
    """Until `server` (a process) accepts connections on `port`; it must not end meanwhile."""
    import socket
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            assert server.poll() is None, f"the server ended with code {server.returncode}"
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port} after {timeout_s} s")
