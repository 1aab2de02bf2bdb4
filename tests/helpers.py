"""Helpers the tests share."""

from __future__ import annotations

import hashlib
import os
import shutil
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

PREPARE_ARGS = (
    "--prompt",
    "a jeep car is moving on the road",
    "--object",
    "car",
    "--model",
    "tiny",
    "--frames",
    "8",
    "--size",
    "64",
    "--crop",
    "square",
)
"""Square frames, as before aspect ratios were kept: most tests need no more (test_whole_clip.py keeps the aspect)."""

SMALL = (*PREPARE_ARGS[:-6], "--frames", "4", "--size", "64", "--crop", "square")
"""The tiny model on 4 square frames: what the safety tests need of a project."""


def interrupt_after(monkeypatch, steps: int, signum: int = signal.SIGINT) -> None:
    """Press Ctrl-C (a real SIGINT; or send `signum`, e.g. SIGTERM) right after step `steps`, once."""
    from livecli.objectives import LiveTrainer

    original = LiveTrainer.step
    done = {"steps": 0}

    def step(self):
        losses = original(self)
        done["steps"] += 1
        if done["steps"] == steps and not done.get("pressed"):
            done["pressed"] = True
            os.kill(os.getpid(), signum)
        return losses

    monkeypatch.setattr(LiveTrainer, "step", step)


def count_checkpointed_calls(monkeypatch) -> list[int]:
    """Count the calls to torch's activation checkpointing (diffusers' blocks go through it
    when gradient checkpointing is on): a list whose length grows by one per call."""
    import torch.utils.checkpoint

    calls: list[int] = []
    checkpoint = torch.utils.checkpoint.checkpoint

    def counted(*args, **kwargs):
        calls.append(1)
        return checkpoint(*args, **kwargs)

    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", counted)
    return calls


def unwrapped(help_text: str) -> str:
    """Rich's `--help` panels as one line of words: a default wrapped onto the next line
    inside its box (`[default:` … `12.5]`) reads whole again."""
    import re

    return " ".join(re.sub("[│╭╮╰╯─]", " ", help_text).split())


def table_rows(text: str) -> list[list[str]]:
    """The body rows of a rich table printed in `text`, as lists of cell texts (a row's
    wrapped continuation lines, whose first cell is empty, are left out)."""
    rows = [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in text.splitlines()
        if line.startswith("│")
    ]
    return [row for row in rows if row[0]]


RUN_ARGS = (
    "--prompt", "a jeep car is moving on the road", "--object", "car", "--replace", "car=<tok>",
    "--model", "tiny", "--frames", "4", "--size", "64", "--crop", "square", "--train-steps", "2", "--edit-steps", "4",
)  # fmt: skip
"""`live run` on the tiny model, in seconds: the `ran` fixture's."""


def copied_here(folder: Path) -> Path:
    """The project `made` left in `folder`, with its clip and image, copied into the current
    folder, its sources where they are now: `clip.live`."""
    from livecli.store import read_toml, write_toml

    here = Path.cwd()
    for name in ("clip.mp4", "ref.png"):
        shutil.copyfile(folder / name, here / name)
    project = Path(shutil.copytree(folder / "clip.live", here / "clip.live"))
    manifest = read_toml(project / "live.toml")
    for name, file in (("clip", "clip.mp4"), ("image", "ref.png")):
        manifest["sources"][name]["path"] = str(here / file)
    write_toml(project / "live.toml", manifest)
    return project


def live_at_once(*commands: list[str]) -> list[tuple[int, str, str]]:
    """`live ARGS…` for each command, in as many processes running at once, as separate
    shells would run them: (exit code, stdout, stderr) of each. The processes are forked
    from this one, where torch and live are imported already: the same commands in fresh
    interpreters spend most of their time importing (5 s apiece here)."""
    import multiprocessing
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="live-at-once-"))
    context = multiprocessing.get_context("fork")
    processes = [
        context.Process(target=_live_to_files, args=(command, folder / str(n))) for n, command in enumerate(commands)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=600)
    results = [
        (process.exitcode, (folder / f"{n}.out").read_text(), (folder / f"{n}.err").read_text())
        for n, process in enumerate(processes)
    ]
    shutil.rmtree(folder)
    return results


def _live_to_files(command: list[str], stem: Path) -> None:
    """A forked process's `live COMMAND`, its output in `stem`.out and .err and its exit code its own."""
    import sys

    from livecli.cli import main

    with open(f"{stem}.out", "w") as out, open(f"{stem}.err", "w") as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        sys.stdout, sys.stderr = out, err
        code = main([str(part) for part in command])
        out.flush()
        err.flush()
    os._exit(code)


def tiny_jobs(path: Path, count: int, extra=lambda n: "", defaults: str = "") -> Path:
    """A jobs file of `count` tiny jobs (job1 …) on `clip.mp4` and `ref.png` beside it: 4 square
    frames of 64 px, 2 training and 2 edit steps; `defaults` adds lines to [defaults], and
    `extra(n)` to job n."""
    path.write_text(
        '[defaults]\nmodel = "tiny"\nprepare = { frames = 4, size = 64, crop = "square" }\n'
        "train = { steps = 2 }\nedit = { steps = 2 }\n"
        + defaults
        + "".join(
            f'[[jobs]]\nname = "job{n}"\nclip = "clip.mp4"\nimage = "ref.png"\n'
            'prompt = "a jeep car is moving on the road"\nobject = "car"\nreplace = ["car=<tok>"]\n' + extra(n)
            for n in range(1, count + 1)
        )
    )
    return path
