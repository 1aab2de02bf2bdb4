"""Shared fixtures: an isolated cache and config, the tiny model, clips, a CLI runner."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from clips import write_clip, write_image


@pytest.fixture(autouse=True, scope="session")
def _isolated_environment(tmp_path_factory):
    """Tests never touch the user's cache or config, and never reach a model hub."""
    patch = pytest.MonkeyPatch()
    patch.setenv("LIVE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    patch.setenv("LIVE_CONFIG_DIR", str(tmp_path_factory.mktemp("config")))
    patch.setenv("LIVE_QUIET", "1")
    patch.setenv("HF_HUB_OFFLINE", "1")
    patch.delenv("LIVE_DEBUG", raising=False)
    yield
    patch.undo()


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """Each test runs in its own empty folder, where default projects are created."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def tiny_sd():
    """The seeded tiny SD components, built in memory (diffusers' get_dummy_components)."""
    from livecli.models.tiny import build_tiny_pipeline

    return build_tiny_pipeline()


@pytest.fixture
def clip(tmp_path) -> Path:
    return write_clip(tmp_path / "clip.mp4", frames=12)


@pytest.fixture
def image(tmp_path) -> Path:
    return write_image(tmp_path / "ref.png")


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("error:")]


@pytest.fixture
def cli(capsys):
    """Run `live ARGS…` through `main`, as the console script does."""
    from livecli.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
