"""The cluster tests (`nox -s cluster`): each file is marked `cluster`, which `nox -s tests`
leaves out. One SLURM controller and node for the session, on this machine."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from local_slurm import LocalSlurm, why_not  # noqa: E402


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """A running SLURM cluster of one node; an error (never a pass) where it cannot start:
    `nox -s cluster` says why it skips before pytest runs."""
    problem = why_not()
    if problem:
        pytest.fail(f"no cluster: {problem}")
    with LocalSlurm(tmp_path_factory.mktemp("slurm")) as running:
        yield running
