"""Shared fixtures: an isolated cache and config, the tiny model, clips, a CLI runner."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from clips import write_clip, write_image

SLOWEST_FIRST = (
    "test_train.py",
    "test_sampling.py",
    "test_edit.py",
    "test_safety.py",
    "test_objectives.py",
    "test_invert.py",
    "test_batch.py",
    "test_demo.py",
)
"""The files whose tests take longest in all (`--durations=0`, summed by file), first:
`nox -s tests` runs whole files on two workers (or more), and the others take the many
short ones meanwhile, so that both end together."""


def pytest_collection_modifyitems(items):
    rank = {name: place for place, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


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


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A trained 64 px project, its rebuilt model and its prepared latents, shared by the
    tests of inversion, editing and windows (which leave them as they found them)."""
    from edits import trained_project

    return trained_project(tmp_path_factory.mktemp("edit"))


@pytest.fixture(scope="session")
def made(tmp_path_factory):
    """`made(*args)`: a folder where `live ARGS…` ran once this session on the clip and image
    of the `clip` and `image` fixtures (`clip.mp4` and `ref.png` stand for them in ARGS),
    making `clip.live`; `copied_here` puts a copy in a test's folder. A project made once
    and copied is what each test would make itself, in a fraction of the time."""
    from livecli.cli import main

    folders: dict[tuple[str, ...], Path] = {}

    def make(*args: str) -> Path:
        if args not in folders:
            folder = tmp_path_factory.mktemp("made")
            write_clip(folder / "clip.mp4", frames=12)
            write_image(folder / "ref.png")
            resolved = [str(folder / arg) if arg in ("clip.mp4", "ref.png") else arg for arg in args]
            assert main([*resolved, "-p", str(folder / "clip.live")]) == 0, args
            folders[args] = folder
        return folders[args]

    return make


@pytest.fixture
def ran(made, clip, image):
    """Every stage run by `live run` on the tiny model (`helpers.RUN_ARGS`): `clip.live` here."""
    from helpers import RUN_ARGS, copied_here

    return copied_here(made("run", "clip.mp4", "ref.png", *RUN_ARGS))


@pytest.fixture
def edited(made, clip, image) -> Path:
    """A project prepared, trained, inverted and edited (car=<tok>) on 4 square frames: `clip.live` here."""
    from helpers import SMALL, copied_here

    run = ("run", "clip.mp4", "ref.png", *SMALL, "--replace", "car=<tok>", "--train-steps", "2", "--edit-steps", "3")
    return copied_here(made(*run))


@pytest.fixture
def capture_trainer(monkeypatch):
    """The LiveTrainer a run builds, kept for inspection."""
    from livecli.objectives import LiveTrainer

    built: list[LiveTrainer] = []
    original = LiveTrainer.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(LiveTrainer, "__init__", init)
    return built


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
