"""Ctrl-C and SIGTERM during a long loop: finish the current step, save, then stop.

SIGTERM is what a scheduler (SLURM, Kubernetes, systemd) sends before it kills a job, so
it gets what Ctrl-C gets. The first signal only asks the loop to stop at its next safe
point (after an optimizer step, where a checkpoint is consistent); a second one stops at
once, keeping the last saved checkpoint. Outside such a loop, SIGTERM raises
KeyboardInterrupt like Ctrl-C, so that an unfinished stage is cleaned up the same way.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from livecli.progress import say

INTERRUPTED = 130
"""The exit code of a command stopped by Ctrl-C (128 + SIGINT), as shells give it."""
TERMINATED = 143
"""The exit code of a command stopped by SIGTERM (128 + SIGTERM)."""
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    requested: bool = False
    exit_code: int = INTERRUPTED


_terminated = False


def terminated() -> bool:
    """True once this process has had a SIGTERM."""
    return _terminated


def _on_terminate(signum, frame) -> None:
    global _terminated
    _terminated = True
    raise KeyboardInterrupt


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM stops this process the way Ctrl-C does (the main thread only)."""
    global _terminated
    _terminated = False
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def stop_at_safe_point(message: str) -> Iterator[StopRequest]:
    """Within the block, Ctrl-C or SIGTERM sets `requested` (and prints `message`, with how
    to stop at once: a second Ctrl-C, or a second SIGTERM) instead of raising."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request  # signal handlers belong to the main thread; elsewhere the signals are not ours
        return

    def handle(signum, frame):
        global _terminated
        if signum == signal.SIGTERM:
            _terminated = True
            request.exit_code = TERMINATED
        if request.requested:
            raise KeyboardInterrupt
        request.requested = True
        again = "Ctrl-C again" if signum == signal.SIGINT else "a second SIGTERM"
        say(f"{message} ({again} to stop at once)")

    previous = {number: signal.signal(number, handle) for number in STOP_SIGNALS}
    try:
        yield request
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
