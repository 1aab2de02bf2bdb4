"""`live invert`: DDIM inversion of the prepared video through the trained video UNet.

Inverts `prepare/latents.safetensors` with the trained latent prompt and the source
prompt (or `--prompt`), no guidance (paper §3.1, "DDIM inversion"), and writes

    invert/ddim<steps>-<key>/
      latents.safetensors   `trajectory` [steps + 1, F, 4, h, w] in sampling order:
                            element 0 is x_T, element k the latents sampling step k
                            starts from, the last the prepared latents
      attention/0000-000.safetensors …   when an edit from the inversion asked for it:
                            the source's attention of each controlled step and
                            window, fp16 (control/source_attention.py)
      record.toml

One folder per fingerprint (the training's, the prompt, the steps, the precision), so
edits with different settings share an inversion and none is computed twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from livecli import ddim, progress
from livecli.config import InvertConfig, ModelConfig
from livecli.control.source_attention import (
    AttentionPlan,
    CachedSource,
    SourceRecorder,
    recording,
    store_bytes,
)
from livecli.errors import ProjectError, reason
from livecli.models.loading import dtype_name
from livecli.models.trained import TrainedModel
from livecli.resources import amount, check_disk
from livecli.stages import INVERT, PREPARE, TRAIN
from livecli.stages import prepare as prepare_stage
from livecli.stages import train as train_stage
from livecli.stages.runtime import Runtime, Windows, frame_count
from livecli.store import DamagedFile, Project, Record, Stage, StageResult, fingerprint
from livecli.tensor_files import load_tensors, save_tensors
from livecli.windows import Window, windowed_noise
from livecli.words import TOKEN_ALIAS

LATENTS = "latents.safetensors"
ATTENTION = "attention"


def inversion_prompt(project: Project, config: InvertConfig, token: str) -> str:
    prompt = config.prompt or project.manifest()["prompt"]
    return prompt.replace(TOKEN_ALIAS, token)


def folder(key: str, config: InvertConfig) -> Stage:
    """The inversion's run: `invert/ddim50-<key>` (`ddim50r3-…` refined)."""
    refined = f"r{config.refine}" if config.refine else ""
    return INVERT.run(f"ddim{config.steps}{refined}-{key[:12]}")


def invert_latents(
    model: TrainedModel,
    frames: torch.Tensor,
    prompt: str,
    steps: int,
    refine: int = 0,
    advance: Callable[[Window], None] | None = None,
    windows: list[Window] | None = None,
    recorder: SourceRecorder | None = None,
) -> torch.Tensor:
    """The DDIM trajectory [steps + 1, F, 4, h, w] of the video latents under `prompt`,
    unguided, window by window (default: the whole clip as one); `advance` after each window.
    `recorder` stores the source's attention that an edit from the inversion needs."""
    schedule = ddim.ddim_schedule(model.scheduler_config, steps)
    text = model.encode([prompt])
    latent_prompt = model.latent_prompt.unsqueeze(0) if model.latent_prompt is not None else None
    evaluations = Counter()  # of each step so far: ddim.invert evaluates a step refine + 1 times

    def predict(latents, timestep, index):
        def window_noise(batch, links):
            return model.noise(batch, timestep, schedule.alphas[index], text, latent_prompt, links)

        if recorder is None:
            return windowed_noise(window_noise, latents, windows, after_window=advance)
        evaluations[index] += 1
        recorder.begin_step(index, final=evaluations[index] > refine)
        return windowed_noise(window_noise, latents, windows, recorder.focus, advance)

    start = frames.unsqueeze(0).to(model.device, torch.float32)
    if recorder is None:
        trajectory = ddim.invert(predict, start, schedule, refine)
    else:
        with recording(model.video_unet, recorder):
            trajectory = ddim.invert(predict, start, schedule, refine)
        recorder.flush()
    return torch.stack([latents[0].cpu() for latents in trajectory])


@dataclass
class Inversion:
    """An inversion on disk: its result, and what an edit reads of it, each file checked
    against its record."""

    project: Project
    stage: Stage
    result: StageResult

    @property
    def stored_plan(self) -> AttentionPlan | None:
        """What it stored of the source's attention (None: nothing; made before it could)."""
        return AttentionPlan.from_facts(self.result.record.facts.get("attention"))

    def stored_attention(self, device: torch.device, dtype: torch.dtype) -> CachedSource:
        """The source's attention it stored, read step by step by an edit from the inversion."""
        names = [name for name in self.result.record.outputs if name.startswith(f"{ATTENTION}/")]
        paths = [self.project.verified(self.stage, name) for name in names]
        return CachedSource.of(self.stored_plan, paths, device, dtype)

    def trajectory(self) -> torch.Tensor:
        """The whole trajectory [steps + 1, F, 4, h, w]."""
        shapes = {"trajectory": self.result.record.facts["trajectory_shape"]}
        return load_tensors(self.project.verified(self.stage, LATENTS), shapes, self._remake)["trajectory"]

    def start(self) -> torch.Tensor:
        """x_T alone [F, 4, h, w], without reading the rest of the trajectory."""
        path = self.project.verified(self.stage, LATENTS)
        try:
            with safe_open(path, framework="pt") as handle:
                trajectory = handle.get_slice("trajectory")
                if list(trajectory.get_shape()) != self.result.record.facts["trajectory_shape"]:
                    raise ValueError(f"`trajectory` is {trajectory.get_shape()} where its record says otherwise")
                start = trajectory[0]
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise DamagedFile(path, reason(exc), self._remake) from None
        if not torch.isfinite(start).all():
            raise DamagedFile(path, "`trajectory` holds values that are not finite", self._remake)
        return start

    @property
    def _remake(self) -> str:
        return f"make it again: {self.stage.remake_command}"


def ensure(
    project: Project,
    config: InvertConfig,
    runtime: Runtime,
    force: bool = False,
    attention: Callable[[TrainedModel], AttentionPlan] | None = None,
    windows: Windows | None = None,
) -> Inversion:
    """The inversion for `config`, computed unless up to date (the caller holds the lock).

    `attention` (given the model: what to store) asks for the source's attention too; an
    up-to-date inversion that lacks it is run again, storing it, under the same key.
    `windows`: as the edit that asks for it planned them (else from `config`)."""
    trained = train_stage.require(project)
    runtime.check_model(trained)
    token = trained.facts["token"]
    windows = windows or Windows.of(config, frame_count(project), trained.settings.get("window"))
    settings = {
        "steps": config.steps,
        "prompt": inversion_prompt(project, config, token),
        "refine": config.refine,
        "dtype": dtype_name(runtime.dtype),
        **windows.settings,
    }
    inputs = {TRAIN.folder: trained.fingerprint}
    stage = folder(fingerprint(INVERT.name, settings, inputs), config)
    plan = attention(runtime.trained()) if attention is not None else None

    def stores_enough(record: Record) -> bool:
        stored = AttentionPlan.from_facts(record.facts.get("attention"))
        if plan is None or (stored is not None and stored.covers(plan)):
            return True
        progress.say(
            f"invert: {stage.folder} holds no stored source attention for this edit: inverting again to store it"
        )
        return False

    work = project.run_stage(stage, settings, inputs, force=force, reusable=stores_enough, reads=(PREPARE, TRAIN))
    if work.skipped:
        return Inversion(project, stage, work.result)

    with work.staging() as staged:
        work.facts = invert_into(staged, project, config, runtime, windows, settings["prompt"], plan)
    return Inversion(project, stage, work.result)


def run(project: Project, config: InvertConfig, model: ModelConfig, force: bool = False) -> StageResult:
    """Invert the project's video with its trained model, unless up to date."""
    project.manifest()
    with project.lock():
        return ensure(project, config, Runtime.resolve(project, model), force).result


def invert_into(
    staged: Path,
    project: Project,
    config: InvertConfig,
    runtime: Runtime,
    windows: Windows,
    prompt: str,
    plan: AttentionPlan | None,
) -> dict:
    """The DDIM trajectory (and, with `plan`, the source's attention) into `staged`; the
    record's facts. The store's size is checked against the free disk first."""
    model = runtime.trained()
    frames = prepare_stage.latents(project)["frames"]
    count = frames.shape[0]
    passes = config.steps * (config.refine + 1)
    if plan is not None:
        needed = store_bytes(model.video_unet, plan, tuple(frames.shape[-2:]), windows.planned, config.steps)
        check_disk(
            project.root,
            needed,
            "storing the source's attention for the edit",
            "free some space, or edit with --source-branch sample, which stores nothing",
        )
        progress.say(f"invert: storing the source's attention for the edit: about {amount(needed)}")
    recorder = None
    if plan is not None:
        (staged / ATTENTION).mkdir()
        recorder = SourceRecorder(plan, staged / ATTENTION)
    with progress.window_bar("inverting (DDIM)", count, passes, len(windows.planned)) as advance:
        trajectory = invert_latents(
            model, frames, prompt, config.steps, config.refine, advance, windows.planned, recorder
        )
    if not torch.isfinite(trajectory).all():
        raise ProjectError(
            "the inversion's latents are not finite: the trained weights (or a half-precision pass) "
            "overflowed; nothing was recorded",
            hint="train again (`live train --force`, with a lower --lr)"
            + (", or run in full precision (--dtype fp32)" if runtime.dtype != torch.float32 else ""),
        )
    save_tensors(staged / LATENTS, {"trajectory": trajectory.contiguous()})
    facts = {
        "trajectory_shape": list(trajectory.shape),
        "noise_std": round(float(trajectory[0].std()), 4),
        "device": str(runtime.device),
    }
    if recorder is not None:
        facts["attention"] = {**plan.as_facts(), "bytes": recorder.bytes, "estimated_bytes": needed}
    return facts
