"""Helpers the tests share."""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` (lock file aside) with its hash: to prove nothing changed."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
"""Real clips beside the checkout; tests that use them skip when it is absent."""

PREPARE_ARGS = ("--prompt", "a jeep car is moving on the road", "--object", "car", "--model", "tiny", "--frames", "8", "--size", "64")


def interrupt_after(monkeypatch, steps: int) -> None:
    """Press Ctrl-C (a real SIGINT) right after step `steps`, once."""
    from livecli.training import LiveTrainer

    original = LiveTrainer.step
    done = {"steps": 0}

    def step(self):
        losses = original(self)
        done["steps"] += 1
        if done["steps"] == steps and not done.get("pressed"):
            done["pressed"] = True
            os.kill(os.getpid(), signal.SIGINT)
        return losses

    monkeypatch.setattr(LiveTrainer, "step", step)
