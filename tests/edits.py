"""What the tests of inversion and editing share: the prompt, a trained tiny project, and an
edit planned and sampled as the edit stage does it."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from clips import write_clip, write_image
from helpers import PREPARE_ARGS
from livecli.config import EditConfig, ModelConfig
from livecli.control.blend import LocalBlend
from livecli.models.loading import load_denoiser, resolve_model
from livecli.sampling import plan_edit, sample_edit
from livecli.stages import PREPARE
from livecli.stages.runtime import Runtime
from livecli.store import Project

PROMPT = "a jeep car is moving on the road"


def train_project(root: Path, size: int, cli) -> Project:
    clip, image = write_clip(root / "clip.mp4", frames=12), write_image(root / "ref.png")
    args = [a if a != "64" else str(size) for a in PREPARE_ARGS]
    result = cli("train", clip, image, *args, "--steps", "2", "-p", root / "clip.live")
    assert result.code == 0, result.err
    return Project(root / "clip.live")


def trained_project(root: Path):
    """A trained 64 px project (8 frames, 2 steps), its rebuilt model and its prepared latents."""
    from livecli.cli import main

    project = train_project(root, 64, lambda *a: _Result(main([str(x) for x in a])))
    model = Runtime.resolve(project, ModelConfig(model="tiny", device="cpu")).trained()
    frames = load_file(project.stage_dir(PREPARE) / "latents.safetensors")["frames"]
    return project, model, frames


class _Result:
    def __init__(self, code: int):
        self.code, self.err = code, ""


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def scheduler_config():
    return load_denoiser(resolve_model("tiny"), torch.device("cpu"), torch.float32).noise_scheduler.config


def run_edit(model, start, config: EditConfig, target_watch=None, trajectory=None, blend_factor=None, windows=None):
    """The edit `config` plans, sampled from x_T `start` as the edit stage samples it."""
    frames, _, height, width = start.shape
    plan = plan_edit(model, config, PROMPT, frames, (height, width), windows)
    if blend_factor is not None:
        plan.control.blend = LocalBlend(
            frames,
            (height, width),
            blend_factor,
            plan.prompts.source_blend,
            plan.prompts.target_blend,
            config.blend_threshold,
            config.blur_sigma,
        )
    return sample_edit(model, plan, start, trajectory, watch=target_watch), plan.prompts
