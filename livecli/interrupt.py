"""Ctrl-C during a long loop: finish the current step, save, then stop.

The first Ctrl-C only asks the loop to stop at its next safe point (after an optimizer
step, where a checkpoint is consistent); a second one stops at once, keeping the last
saved checkpoint.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from livecli.progress import say


class StopRequest:
    requested: bool = False


@contextmanager
def stop_at_safe_point(message: str) -> Iterator[StopRequest]:
    """Within the block, Ctrl-C sets `requested` (and prints `message`) instead of raising."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request  # signal handlers belong to the main thread; elsewhere Ctrl-C is not ours
        return

    def handle(signum, frame):
        if request.requested:
            raise KeyboardInterrupt
        request.requested = True
        say(message)

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield request
    finally:
        signal.signal(signal.SIGINT, previous)
