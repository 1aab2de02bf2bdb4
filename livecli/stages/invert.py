"""`live invert`: DDIM inversion of the prepared video through the trained video UNet.

Inverts `prepare/latents.safetensors` with the trained latent prompt and the source
prompt (or `--prompt`), no guidance (paper §3.1, "DDIM inversion"), and writes

    invert/ddim<steps>-<key>/
      latents.safetensors   `trajectory` [steps + 1, F, 4, h, w] in sampling order:
                            element 0 is x_T, element k the latents sampling step k
                            starts from, the last the prepared latents
      attention/0000.safetensors …   when an edit from the inversion asked for it: the
                            source's attention of each controlled step, fp16
                            (control/source_attention.py)
      record.toml

One folder per fingerprint (the training's, the prompt, the steps, the precision), so
edits with different settings share an inversion and none is computed twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from livecli import ddim, progress
from livecli.config import DEFAULT_WINDOW, EditConfig, InvertConfig, ModelConfig, check_overlap
from livecli.control.attention import cross_attention_factors
from livecli.control.blend import downsampled, pick_factor
from livecli.control.source_attention import AttentionPlan, SourceRecorder, recording
from livecli.errors import ProjectError
from livecli.models.loading import ModelSource, dtype_name, resolve_device, resolve_dtype, resolve_model
from livecli.models.trained import TrainedModel, load_trained
from livecli.stages import StageResult
from livecli.stages import prepare as prepare_stage
from livecli.stages import train as train_stage
from livecli.store import Project, Record, fingerprint
from livecli.tensor_files import save_tensors
from livecli.windows import Window, plan_windows, window_settings, windowed_noise
from livecli.words import TOKEN_ALIAS

STAGE = "invert"
LATENTS = "latents.safetensors"
ATTENTION = "attention"


@dataclass
class Runtime:
    """The model, device and precision that a run of invert (and edit) works with.

    The trained model is loaded on first use only: an up-to-date stage never loads it,
    and edit hands its copy to the inversion it needs.
    """

    project: Project
    source: ModelSource
    device: torch.device
    dtype: torch.dtype
    compile_unet: bool = False
    _trained: TrainedModel | None = None

    @classmethod
    def resolve(cls, project: Project, model: ModelConfig) -> Runtime:
        source = resolve_model(model.model, config=model.model_config)
        device = resolve_device(model.device)
        return cls(project, source, device, resolve_dtype(model.dtype, device), model.compile)

    def release(self) -> None:
        """Drop the trained model (before decoding, so that the VAE has the memory)."""
        self._trained = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def trained(self) -> TrainedModel:
        if self._trained is None:
            latents = load_file(self.project.verified(prepare_stage.STAGE, prepare_stage.LATENTS))
            files = train_stage.trained_files(self.project, self.project.record(train_stage.STAGE))
            self._trained = load_trained(
                files, latents["reference"], self.source, self.device, self.dtype, self.compile_unet
            )
        return self._trained


def check_model(runtime: Runtime, trained: Record) -> None:
    if trained.inputs.get("model") != runtime.source.key:
        raise ProjectError(
            f"the project was trained on another model than {runtime.source.id} (or the model's files changed)",
            hint="pass the model it was trained on with --model, or run `live train` again",
        )


def frame_count(project: Project) -> int:
    """The number of prepared frames, from the prepare record."""
    return int(project.record(prepare_stage.STAGE).facts["frames_shape"][0])


def inversion_prompt(project: Project, config: InvertConfig, token: str) -> str:
    prompt = config.prompt or project.manifest()["prompt"]
    return prompt.replace(TOKEN_ALIAS, token)


def folder(key: str, config: InvertConfig) -> str:
    """The inversion's folder, relative to the project: `invert/ddim50-<key>` (`ddim50r3-…` refined)."""
    refined = f"r{config.refine}" if config.refine else ""
    return f"{STAGE}/ddim{config.steps}{refined}-{key[:12]}"


def resolve_windows(config: InvertConfig | EditConfig, trained: Record) -> tuple[int, int]:
    """(window, overlap): --window, else the training's; an overlap that does not fit it is an error."""
    window = config.window or trained.settings.get("window", DEFAULT_WINDOW)
    check_overlap(type(config), config.overlap, window)
    return window, config.overlap


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

    def predict(latents, timestep, index):
        def window_noise(batch, links):
            return model.noise(batch, timestep, schedule.alphas[index], text, latent_prompt, links)

        if recorder is None:
            return windowed_noise(window_noise, latents, windows, after_window=advance)
        recorder.begin_step(index)
        return windowed_noise(window_noise, latents, windows, recorder.focus, advance)

    start = frames.unsqueeze(0).to(model.device, torch.float32)
    if recorder is None:
        trajectory = ddim.invert(predict, start, schedule, refine)
    else:
        with recording(model.video_unet, recorder):
            trajectory = ddim.invert(predict, start, schedule, refine)
        recorder.flush()
    return torch.stack([latents[0].cpu() for latents in trajectory])


def attention_plan(model: TrainedModel, prompt: str, config: EditConfig, latent_size: tuple[int, int]) -> AttentionPlan:
    """What an edit with `config`'s word-swap and self-replace steps needs the inversion to store."""
    words = len(model.tokenizer(prompt).input_ids) - 1  # the start token and the words, not the end token
    factor = pick_factor(cross_attention_factors(model.video_unet), max(latent_size))
    height, width = (downsampled(side, factor) for side in latent_size)
    steps = config.steps
    return AttentionPlan(int(config.cross_replace * steps), int(config.self_replace * steps), words, height * width)


def stored_plan(record: Record) -> AttentionPlan | None:
    """What an inversion stored of the source's attention (None: nothing; made before it could)."""
    return AttentionPlan.from_facts(record.facts.get("attention"))


def attention_files(project: Project, result: StageResult) -> dict[int, Path]:
    """The inversion's stored attention, step -> file, each checked against its record."""
    where = result.folder.relative_to(project.root).as_posix()
    names = [name for name in result.record.outputs if name.startswith(f"{ATTENTION}/")]
    return {int(Path(name).stem): project.verified(where, name) for name in names}


def ensure(
    project: Project,
    config: InvertConfig,
    runtime: Runtime,
    force: bool = False,
    attention: Callable[[TrainedModel], AttentionPlan] | None = None,
) -> StageResult:
    """The inversion for `config`, computed unless up to date (the caller holds the lock).

    `attention` (given the model: what to store) asks for the source's attention too; an
    up-to-date inversion that lacks it is run again, storing it, under the same key."""
    trained = train_stage.require(project)
    check_model(runtime, trained)
    token = trained.facts["token"]
    count = frame_count(project)
    window, overlap = resolve_windows(config, trained)
    settings = {
        "steps": config.steps,
        "prompt": inversion_prompt(project, config, token),
        "refine": config.refine,
        "dtype": dtype_name(runtime.dtype),
        **window_settings(count, window, overlap),
    }
    inputs = {train_stage.STAGE: trained.fingerprint}
    key = fingerprint(STAGE, settings, inputs)
    where = folder(key, config)
    record = None if force else project.up_to_date(where, key)
    plan = None
    if attention is not None:
        plan = attention(runtime.trained())
        stored = stored_plan(record) if record is not None else None
        if record is not None and (stored is None or not stored.covers(plan)):
            progress.say(f"invert: {where} holds no stored source attention for this edit: inverting again to store it")
            record = None
    if record is not None:
        return StageResult(STAGE, project.stage_dir(where), record, skipped=True)

    started = time.perf_counter()
    model = runtime.trained()
    frames = load_file(project.verified(prepare_stage.STAGE, prepare_stage.LATENTS))["frames"]
    windows = plan_windows(count, window, overlap)
    passes = config.steps * (config.refine + 1)
    with project.staging(where) as staged:
        recorder = None
        if plan is not None:
            (staged / ATTENTION).mkdir()
            recorder = SourceRecorder(plan, staged / ATTENTION)
        with progress.window_bar("inverting (DDIM)", count, passes, len(windows)) as advance:
            trajectory = invert_latents(
                model, frames, settings["prompt"], config.steps, config.refine, advance, windows, recorder
            )
        save_tensors(staged / LATENTS, {"trajectory": trajectory.contiguous()})
        facts = {
            "trajectory_shape": list(trajectory.shape),
            "noise_std": round(float(trajectory[0].std()), 4),
            "device": str(runtime.device),
        }
        if recorder is not None:
            facts["attention"] = {**plan.as_facts(), "bytes": recorder.bytes}
        record = Project.write_record(
            staged, Record(STAGE, key, settings, inputs, facts=facts, seconds=round(time.perf_counter() - started, 3))
        )
    return StageResult(STAGE, project.stage_dir(where), record, skipped=False)


def run(project: Project, config: InvertConfig, model: ModelConfig, force: bool = False) -> StageResult:
    """Invert the project's video with its trained model, unless up to date."""
    project.manifest()
    with project.lock():
        return ensure(project, config, Runtime.resolve(project, model), force)


def trajectory_file(project: Project, result: StageResult) -> Path:
    """The inversion's latents file, checked against its record."""
    return project.verified(result.folder.relative_to(project.root).as_posix(), LATENTS)


def load_trajectory(project: Project, result: StageResult) -> torch.Tensor:
    """The whole trajectory [steps + 1, F, 4, h, w]."""
    return load_file(trajectory_file(project, result))["trajectory"]


def load_start(project: Project, result: StageResult) -> torch.Tensor:
    """x_T alone [F, 4, h, w], without reading the rest of the trajectory."""
    with safe_open(trajectory_file(project, result), framework="pt") as handle:
        return handle.get_slice("trajectory")[0]
