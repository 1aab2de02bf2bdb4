"""Helpers the tests share."""

from __future__ import annotations

import hashlib
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
