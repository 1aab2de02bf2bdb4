"""The inversion (stages/invert.py): the trajectory from the prepared latents to noise
through the trained video UNet, and the stage's one folder per fingerprint."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from edits import PROMPT, relative_error
from helpers import PREPARE_ARGS, copied_here
from livecli import ddim
from livecli.config import ModelConfig
from livecli.resources import amount
from livecli.sampling import guided_sample
from livecli.stages import invert as invert_stage
from livecli.stages.invert import invert_latents
from livecli.store import Project, read_toml


def test_inversion_then_sampling_reconstructs_the_prepared_latents(trained):
    """Through the trained video UNet, guidance 1, no control, on 3 frames (the video
    UNet's frame and temporal attention at work; 8 cost 1.6× the time for the same
    finding). The tiny model's UNet is random, no denoiser, so plain DDIM's first-order
    error is large on it (relative error 9.4 at 50 steps); fixed-point refinement removes
    it: with 6 iterations the error is 19 % at 25 steps and 3.8 % at 50 (on 8 frames 25 %
    and 3.2 %, and 0.24 % at 100 steps)."""
    project, model, frames = trained
    frames = frames[:3]
    text, null = model.encode([PROMPT]), model.encode([""])
    errors = {}
    for steps in (25, 50):
        trajectory = invert_latents(model, frames, PROMPT, steps, refine=6)
        schedule = ddim.ddim_schedule(model.scheduler_config, steps)
        errors[steps] = relative_error(guided_sample(model, trajectory[0], schedule, text, null, guidance=1.0), frames)
    assert errors[50] < 0.06
    assert errors[25] > 2 * errors[50]
    plain = {
        steps: relative_error(
            guided_sample(
                model,
                invert_latents(model, frames, PROMPT, steps)[0],
                ddim.ddim_schedule(model.scheduler_config, steps),
                text,
                null,
                1.0,
            ),
            frames,
        )
        for steps in (10, 25)
    }
    assert plain[10] > plain[25]


def test_the_trajectory_runs_from_noise_to_the_prepared_latents(trained):
    project, model, frames = trained
    trajectory = invert_latents(model, frames, PROMPT, 10)
    assert trajectory.shape == (11, *frames.shape)
    assert torch.equal(trajectory[-1], frames)
    assert trajectory[0].std() > 3 * frames.std()


def test_shared_copy_of_project_is_untouched(trained, tmp_path):
    """Inverting through the stage writes one folder per fingerprint and reuses it."""
    project, model, frames = trained
    copy = Project(tmp_path / "copy.live")
    shutil.copytree(project.root, copy.root)
    from livecli.config import InvertConfig

    first = invert_stage.run(copy, InvertConfig(steps=5), ModelConfig(model="tiny", device="cpu"))
    again = invert_stage.run(copy, InvertConfig(steps=5), ModelConfig(model="tiny", device="cpu"))
    other = invert_stage.run(copy, InvertConfig(steps=6), ModelConfig(model="tiny", device="cpu"))
    assert not first.skipped and again.skipped and not other.skipped
    assert first.folder == again.folder != other.folder
    assert first.folder.name.startswith("ddim5-") and other.folder.name.startswith("ddim6-")
    trajectory = load_file(first.folder / invert_stage.LATENTS)["trajectory"]
    assert trajectory.shape == (6, *frames.shape)
    assert torch.equal(trajectory, invert_latents(model, frames, PROMPT, 5))


COMPACT = ("--cross-replace-layers", "coarse", "--temporal-replace-layers", "coarse", "--self-replace-layers", "none")


@pytest.mark.parametrize(("window", "layers"), [(None, ()), (3, ()), (3, COMPACT)], ids=["whole", "windows", "compact"])
def test_the_attention_store_is_sized_exactly_before_it_is_written(cli, made, window, layers, monkeypatch):
    """The estimate said before an inversion stores the source's attention is the size the
    recorder then writes, windowed or not, with the paper's layers or the compact store's;
    a disk with less free refuses in one line."""
    monkeypatch.setenv("LIVE_QUIET", "0")
    copied_here(made("train", "clip.mp4", "ref.png", *PREPARE_ARGS, "--frames", "6", "--size", "64", "--steps", "2"))
    extra = (["--window", str(window), "--overlap", "1"] if window else []) + list(layers)
    result = cli("edit", "--replace", "car=<tok>", "--steps", "5", "--source-branch", "inversion", *extra)
    assert result.code == 0, result.err
    (record,) = Path("clip.live").glob("invert/*/record.toml")
    attention = read_toml(record)["facts"]["attention"]
    files = list(record.parent.glob("attention/*.safetensors"))
    written = sum(t.numel() * t.element_size() for f in files for t in load_file(f).values())
    assert attention["estimated_bytes"] == attention["bytes"] == written > 0
    if layers:  # 8×8 latents: the layers below the top have 4×4 positions; no frame attention
        assert (attention["cross_tokens"], attention["temporal_tokens"], attention["self_tokens"]) == (16, 16, 0)
    assert f"storing the source's attention for the edit: about {amount(written)}" in result.err

    monkeypatch.setattr("shutil.disk_usage", lambda path: type("Usage", (), {"free": written // 2})())
    args = ("edit", "--replace", "car=<tok>", "--steps", "4", "--source-branch", "inversion", "--name", "b", *extra)
    refused = cli(*args)
    assert refused.code == 1 and "of disk in" in refused.error_lines[0] and "is free" in refused.error_lines[0]
    assert "--source-branch sample" in refused.err and not Path("clip.live/edits/b").exists()
