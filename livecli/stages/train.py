"""`live train`: fine-tune the video UNet, the latent prompt and the learned token.

Reads `prepare/latents.safetensors` and the base model; writes `train/`:

    attention_deltas.safetensors   trained-minus-base query weights (float64) and the
                                   temporal attentions in full (see models/deltas.py)
    token.safetensors              {token: embedding}, diffusers' textual-inversion format
    latent_prompt.safetensors      `latent_prompt` [1, 4, h, w] (none with --no-latent-prompt)
    losses.csv                     step, video_loss, text_loss, loss, lr, ti_lr, seconds
    reference_masks/0000.png …     where the model found the object in each reference that
                                   had no mask (--reference-mask auto; stages/reference_masks.py),
                                   L 0/255 at the prepared picture's size, named by reference
    record.toml

Resumable: `checkpoints/train/` holds the deltas, token, latent prompt, AdamW state,
the noise generator's state and the loss log of the last checkpoint, saved every
`--checkpoint-every` steps, on Ctrl-C and at the end. A run with the same settings and
inputs continues from it; more `--steps` than a finished run continue that run. Any
other change of settings or inputs trains afresh under a new fingerprint (the old
`train/` stays until the new one is complete). Those files, written and read back:
stages/train_files.py.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass

import torch
from safetensors.torch import load_file

from livecli import progress, resources
from livecli.config import ModelConfig, TrainConfig
from livecli.control.prompts import check_prompt_fits
from livecli.errors import ConfigError, Interrupted, ProjectError
from livecli.fields import SettingError
from livecli.interrupt import stop_at_safe_point
from livecli.models import deltas as attention_deltas
from livecli.models import text as text_model
from livecli.models.loading import DenoiserParts, ModelSource, load_denoiser, resolve_device, resolve_model
from livecli.models.trained import TrainedFiles
from livecli.models.video_unet import compile_blocks, enable_checkpointing, inflate, trainable_names
from livecli.objectives import (
    LiveTrainer,
    MixedPrecision,
    NonFiniteStep,
    StepLosses,
    TrainingData,
    resolve_mixed_precision,
)
from livecli.stages import PREPARE, TRAIN, reference_masks
from livecli.stages import prepare as prepare_stage
from livecli.stages.train_files import (
    BEST,
    DELTAS,
    LATENT_PROMPT,
    TOKEN,
    Checkpoint,
    damaged_checkpoint,
    find_checkpoint,
    restore,
    save_checkpoint,
    write_trained,
)
from livecli.stopping import AUTO, EarlyStopping
from livecli.store import (
    Project,
    Record,
    StageResult,
    fingerprint,
)
from livecli.windows import training_batch, window_settings
from livecli.words import DEFAULT_TOKEN, TOKEN_ALIAS, replace_word

WINDOW_DRAW = "even"
"""Recorded by a training of a clip longer than its window: every frame equally often in
the loss, the run's previous frame as context (windows.draw_training_window)."""


def check_token_not_in_prompt(token: str, prompt: str) -> None:
    """The source prompt must read the same before and after the token joins the tokenizer."""
    if token.lower() in prompt.lower():  # anywhere, not only as a word: added tokens split words
        raise ConfigError(
            f"--token {token!r} occurs in the prompt {prompt!r}, so the prompt would change meaning",
            hint=f"pick a rare string that is not in the prompt, e.g. --token '{DEFAULT_TOKEN}'",
        )


def reference_captions(config: TrainConfig, prompt: str, object_word: str, references: int) -> tuple[str, ...]:
    """The image objective's prompt for each of the `references` images: --reference-prompt
    (one for all, or one per reference; else the source prompt) with the token where the new
    object is: written as <tok> or the token, or in the object word's place."""
    given = config.reference_captions or (prompt,)
    if len(given) not in (1, references):
        raise SettingError(
            TrainConfig,
            "{reference_prompt} was given {given} times for {references} reference images",
            "give it once (for every reference) or once per reference, in their order",
            given=len(given),
            references=references,
        )
    return tuple(_with_token(caption, config.token, object_word) for caption in given) * (references // len(given))


def _with_token(caption: str, token: str, object_word: str) -> str:
    caption = caption.replace(TOKEN_ALIAS, token)
    if token in caption:
        return caption
    replaced = replace_word(caption, object_word, token)
    if replaced == caption:
        raise SettingError(
            TrainConfig,
            "{reference_prompt} {caption!r} names neither <tok> nor the object word {object_word!r}",
            "write <tok> where the new object is, e.g. {reference_prompt:'a <tok> on a beach'}",
            caption=caption,
            object_word=object_word,
        )
    return replaced


def check_precision(config: TrainConfig, device: torch.device) -> None:
    if config.mixed_precision == "fp16" and device.type == "cpu":
        raise ConfigError("--mixed-precision fp16 needs a GPU", hint="on the CPU use --mixed-precision no (or bf16)")


def artefacts(settings: dict) -> tuple[str, ...]:
    """The files a finished training leaves (no latent prompt when trained without one)."""
    return (DELTAS, TOKEN) if settings.get("no_latent_prompt") else (DELTAS, TOKEN, LATENT_PROMPT)


def trained_files(project: Project, record: Record) -> TrainedFiles:
    """The artefacts of the training that `record` describes, for `load_trained`, each
    checked against the record (`Project.verified`)."""
    latent_prompt = None if record.settings.get("no_latent_prompt") else project.verified(TRAIN, LATENT_PROMPT)
    return TrainedFiles(
        deltas=project.verified(TRAIN, DELTAS), token=project.verified(TRAIN, TOKEN), latent_prompt=latent_prompt
    )


def require(project: Project) -> Record:
    """The train record of a project whose training matches its prepared frames, or the error that says what to run."""
    prepared = prepare_stage.require(project)
    record = project.record(TRAIN)
    if record is None or not all((project.stage_dir(TRAIN) / name).is_file() for name in artefacts(record.settings)):
        raise ProjectError(
            f"{project.root} is not trained yet", hint="run `live train` first (see `live train --help`)"
        )
    if record.inputs.get("prepare") != prepared.fingerprint:
        raise ProjectError(
            f"the training in {project.stage_dir(TRAIN)} is stale: the frames were prepared again since",
            hint="run `live train` again",
        )
    return record


# --------------------------------------------------------------------------- the stage


def start_stopping(
    stopping: EarlyStopping, trainer: LiveTrainer, checkpoint: Checkpoint | None, before: StepLosses, first: int
) -> dict[str, torch.Tensor]:
    """The rule as the checkpoint left it, else observing the start; the best step's tensors."""
    if checkpoint is not None and checkpoint.stopping:
        with damaged_checkpoint(checkpoint):
            stopping.resume(checkpoint.stopping)
            return load_file(checkpoint.folder / BEST)
    current = before if first == 0 else trainer.evaluate()  # a checkpoint of a run with a step count
    stopping.observe(first, current.total(trainer.config.text_weight))
    return trainer.snapshot()


def _mean(rows: list[dict], column: str) -> float:
    return sum(float(r[column]) for r in rows) / max(len(rows), 1)


def build_trainer(
    source,
    config: TrainConfig,
    precision: MixedPrecision,
    manifest: dict,
    latents: dict[str, torch.Tensor],
    checkpoint: Checkpoint | None,
    compile_unet: bool = False,
    models: DenoiserParts | None = None,
) -> tuple[LiveTrainer, dict[str, torch.Tensor]]:
    """The trainer at step 0 or at the checkpoint, and the base query weights the deltas
    subtract; `models`: the base model's parts, when the caller has loaded them already."""
    prompt, object_word = manifest["prompt"], manifest["object"]
    models = models or load_base(source, precision)
    placeholder = text_model.add_placeholder(
        models.tokenizer, models.text_encoder, config.token, config.init_word or object_word
    )
    captions = reference_captions(config, prompt, object_word, latents["reference"].shape[0])
    check_prompt_fits(models.tokenizer, prompt, object_word)
    for caption in dict.fromkeys(captions):
        check_prompt_fits(models.tokenizer, caption, config.token, "the image objective's prompt")
    torch.manual_seed(config.seed)  # the temporal attentions' initial weights
    video_unet = inflate(models.unet)
    trainable = set(trainable_names(video_unet))
    base = attention_deltas.base_queries(video_unet, sorted(trainable))
    if checkpoint is not None:
        with damaged_checkpoint(checkpoint):
            attention_deltas.apply_deltas(video_unet, attention_deltas.load_deltas(checkpoint.folder / DELTAS))
    compute_dtype = precision.dtype
    if compute_dtype != torch.float32:  # frozen weights in the compute precision; trained ones stay fp32
        models.text_encoder.to(compute_dtype)
        for name, param in video_unet.unet.named_parameters():
            if name not in trainable:
                param.data = param.data.to(compute_dtype)
    config = dataclasses.replace(
        config, gradient_checkpointing=checkpointing_mode(config, video_unet, trainable, latents["frames"], precision)
    )
    if config.gradient_checkpointing != "off":
        enable_checkpointing(video_unet, everywhere=config.gradient_checkpointing == "all")
    if compile_unet:
        compile_blocks(video_unet)
    weights = latents.get("reference_weights")
    data = TrainingData(
        latents["frames"].float(),
        latents["reference"].float(),
        prompt,
        captions,
        None if weights is None else weights.float(),
    )
    trainer = LiveTrainer(
        video_unet, models.tokenizer, models.text_encoder, models.noise_scheduler, placeholder, data, config, precision
    )
    if checkpoint is not None:
        with damaged_checkpoint(checkpoint):
            restore(trainer, checkpoint)
    return trainer, base


def load_base(source, precision: MixedPrecision) -> DenoiserParts:
    progress.say(f"train: loading {source.id}")
    return load_denoiser(source, precision.device, torch.float32)


def checkpointing_mode(
    config: TrainConfig, video_unet, trainable: set[str], frames: torch.Tensor, precision: MixedPrecision
) -> str:
    """--gradient-checkpointing, with `auto` chosen from the estimate of a step's memory
    against the memory free now (the weights are loaded by then)."""
    if config.gradient_checkpointing != "auto":
        return config.gradient_checkpointing
    count, _, height, width = frames.shape
    window = training_batch(count, config.window) + 1  # + the latent prompt
    trained = sum(p.numel() for name, p in video_unet.unet.named_parameters() if name in trainable)
    needed = resources.training_bytes(
        window,
        height * width,
        video_unet.unet.config.block_out_channels[0],
        torch.finfo(precision.dtype).bits // 8,
        trained + frames[0].numel(),
    )
    mode = resources.choose_checkpointing(needed, precision.device)
    if mode != "off":
        progress.say(
            f"train: gradient checkpointing {mode} (a step needs about {resources.amount(needed['off'])} beyond the "
            f"weights without it; {resources.amount(resources.free_bytes(precision.device))} is free)"
        )
    return mode


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def loss_row(step: int, losses: StepLosses, config: TrainConfig, seconds: float) -> dict:
    return {
        "step": step,
        "video_loss": f"{losses.video:.6g}",
        "text_loss": f"{losses.text:.6g}",
        "loss": f"{losses.total(config.text_weight):.6g}",
        "lr": f"{config.lr:g}",
        "ti_lr": f"{config.ti_lr:g}",
        "seconds": f"{seconds:.3f}",
    }


def diverged(config: TrainConfig, step: int, what: str) -> SettingError:
    """Training met a loss or gradient that is not finite: nothing is recorded as done and
    the last checkpoint stays as it was (a resume would meet the same step again)."""
    return SettingError(
        TrainConfig,
        "training diverged at step {step}: {what} is not finite; nothing was recorded as done",
        "lower {lr} (now {lr_value:g}) or {ti_lr} (now {ti_lr_value:g}), then run again"
        + (" (or train without {mixed_precision:fp16})" if config.mixed_precision == "fp16" else ""),
        step=step,
        what=what,
        lr_value=config.lr,
        ti_lr_value=config.ti_lr,
    )


@dataclass(frozen=True)
class TrainPlan:
    """What a training reads and how, all checked before anything is loaded or written."""

    config: TrainConfig
    """With --mixed-precision resolved for the device (the record keeps what ran)."""
    prepared: Record
    manifest: dict
    source: ModelSource
    device: torch.device
    settings: dict
    inputs: dict
    finding: list[int]
    """The references whose object the model finds (--reference-mask auto)."""


def run(project: Project, config: TrainConfig, model: ModelConfig, force: bool = False) -> StageResult:
    """Train the project's video UNet, latent prompt and token, unless up to date."""
    project.check_writable()
    with project.lock():
        plan = plan_training(project, config, model)
        config = plan.config
        work = project.run_stage(TRAIN, plan.settings, plan.inputs, force=force, reads=(PREPARE,))
        if work.skipped:
            return work.result
        run_key = fingerprint(TRAIN.name, {k: v for k, v in plan.settings.items() if k != "steps"}, plan.inputs)
        stopping = EarlyStopping() if config.steps == AUTO else None
        limit = stopping.max_steps if stopping else config.steps
        checkpoint = None if force else find_checkpoint(project, run_key, limit)
        precision = MixedPrecision(config.mixed_precision, plan.device)
        latents, found, models = training_latents(project, plan, precision)
        trainer, base = build_trainer(
            plan.source, config, precision, plan.manifest, latents, checkpoint, model.compile, models=models
        )
        if checkpoint is not None:
            rows, first, before = checkpoint.losses[: checkpoint.step], checkpoint.step, StepLosses(**checkpoint.before)
            progress.say(f"train: resuming at step {first} of {'at most ' if stopping else ''}{limit}")
        else:
            rows, first, before = [], 0, trainer.evaluate()
        best, last = None, limit
        if stopping is not None:
            best = start_stopping(stopping, trainer, checkpoint, before, first)
            last = first if first and stopping.done(first) else limit  # its checkpoint is where the rule stopped
        saving = Saving(project, base, run_key, before, stopping, limit)
        best = train_steps(trainer, config, rows, first, last, saving, best)
        if stopping is not None:
            trainer.restore_snapshot(best)
            kept, at = stopping.best[0], stopping.history[-1][0]
            progress.say(f"train: auto stopped at step {at}; keeping step {kept}, the lowest loss on fixed draws")
        after = trainer.evaluate()
        with work.staging() as folder:
            write_trained(folder, trainer, base, rows)
            reference_masks.write(found, folder)
            work.facts = trained_facts(trainer, config, latents, rows, before, after, first, plan, stopping, found)
        project.update_manifest(token=config.token)
    return work.result


def plan_training(project: Project, config: TrainConfig, model: ModelConfig) -> TrainPlan:
    """The checks of the words and the precision, and the record's settings and inputs."""
    prepared, manifest = prepare_stage.require(project), project.manifest()
    check_token_not_in_prompt(config.token, manifest["prompt"])
    references = len(prepare_stage.recorded_references(manifest).images)
    reference_captions(config, manifest["prompt"], manifest["object"], references)
    source = resolve_model(model.model, config=model.model_config)
    device = resolve_device(model.device)
    # The record keeps the precision that ran: `auto` on the CPU is "no", as before it existed.
    config = dataclasses.replace(config, mixed_precision=resolve_mixed_precision(config.mixed_precision, device))
    check_precision(config, device)
    # The window only where the clip needs several (windows.py), with how they are drawn:
    # trainings drawn the earlier way are stale.
    windowed = window_settings(int(prepared.facts["frames_shape"][0]), config.window)
    settings = {name: value for name, value in config.settings().items() if name != "window"} | windowed
    if windowed:
        settings["window_draw"] = WINDOW_DRAW
    finding = reference_masks.unmasked(prepared, config)
    if finding:  # where it finds masks (trainings made before it existed learnt every picture whole)
        settings["reference_mask"] = "auto"
    if (finding or any(prepare_stage.masked_references(prepared))) and not config.show_object:
        settings["hide_object"] = True  # where a mask weights the loss (before, the object was shown)
    inputs = {PREPARE.folder: prepared.fingerprint, "model": source.key}
    return TrainPlan(config, prepared, manifest, source, device, settings, inputs, finding)


def training_latents(
    project: Project, plan: TrainPlan, precision: MixedPrecision
) -> tuple[dict[str, torch.Tensor], dict, DenoiserParts | None]:
    """The prepared latents with the references' loss weights as training uses them (from
    the masks given, or found now by the base model, which is then handed on)."""
    latents = prepare_stage.latents(project)
    models, found = None, {}
    if plan.finding:
        models = load_base(plan.source, precision)
        found = reference_masks.find(project, models, plan.config, plan.manifest, latents, plan.finding)
    if found or "reference_weights" in latents:
        weights = reference_masks.weights(project, found, latents)
        latents = {name: tensor for name, tensor in latents.items() if name != "reference_weights"}
        latents |= {} if weights is None else {"reference_weights": weights}
    return latents, found, models


@dataclass(frozen=True)
class Saving:
    """What a checkpoint is saved with, beside the trainer and its losses."""

    project: Project
    base: dict[str, torch.Tensor]
    run_key: str
    before: StepLosses
    stopping: EarlyStopping | None
    limit: int


def train_steps(
    trainer: LiveTrainer,
    config: TrainConfig,
    rows: list[dict],
    first: int,
    last: int,
    saving: Saving,
    best: dict[str, torch.Tensor] | None,
) -> dict[str, torch.Tensor] | None:
    """Steps first+1 … last (or until `--steps auto` stops), a checkpoint every
    --checkpoint-every steps, at the end and on Ctrl-C; the losses appended to `rows`; the
    best step's tensors under `--steps auto`."""
    stopping, limit = saving.stopping, saving.limit
    stopped = "train: stopping after this step to save a checkpoint"
    with stop_at_safe_point(stopped) as stop, progress.bar("training", limit, completed=first) as advance:
        for step in range(first + 1, last + 1):
            tick = time.perf_counter()
            try:
                losses = trainer.step()
            except NonFiniteStep as exc:
                raise diverged(config, step, str(exc)) from None
            rows.append(loss_row(step, losses, config, time.perf_counter() - tick))
            finished = step == limit
            if stopping is not None and stopping.due(step):
                if stopping.observe(step, trainer.evaluate().total(config.text_weight)):
                    best = trainer.snapshot()
                finished = stopping.done(step)
            advance(description=f"training (video {losses.video:.4f}, image {losses.text:.4f})")
            if stop.requested or step % config.checkpoint_every == 0 or finished:
                save_checkpoint(
                    saving.project,
                    trainer,
                    saving.base,
                    rows,
                    step,
                    limit,
                    saving.run_key,
                    saving.before,
                    stopping,
                    best,
                )
            if stop.requested:
                raise Interrupted(
                    f"checkpoint saved at step {step} of {limit}; run the same command again to resume",
                    exit_code=stop.exit_code,
                )
            if finished:
                break
    return best


def trained_facts(
    trainer: LiveTrainer,
    config: TrainConfig,
    latents: dict[str, torch.Tensor],
    rows: list[dict],
    before: StepLosses,
    after: StepLosses,
    first: int,
    plan: TrainPlan,
    stopping: EarlyStopping | None,
    found: dict,
) -> dict:
    """What the training record says: the token, the losses before and after, the time."""
    head, tail = rows[:10], rows[-10:]
    facts = {
        "token": config.token,
        "token_prompt": trainer.token_prompts[0],
        "token_prompts": list(trainer.token_prompts) if len(set(trainer.token_prompts)) > 1 else None,
        "frames": int(latents["frames"].shape[0]),
        "latent_prompt_shape": list(trainer.latent_prompt.shape) if trainer.latent_prompt is not None else None,
        "latent_prompt_moved": _rounded(trainer.latent_prompt_moved()),
        "trainable_parameters": sum(p.numel() for p in trainer.video_params) + trainer.token_vector.numel(),
        "fixed_draw_loss_before": asdict(before),
        "fixed_draw_loss_after": asdict(after),
        "video_loss_first10": _mean(head, "video_loss"),
        "video_loss_last10": _mean(tail, "video_loss"),
        "text_loss_first10": _mean(head, "text_loss"),
        "text_loss_last10": _mean(tail, "text_loss"),
        "resumed_from": first or None,
        "device": str(plan.device),
        "gradient_checkpointing": trainer.config.gradient_checkpointing,
        **({"auto_steps": stopping.facts()} if stopping is not None else {}),
        "train_seconds": round(sum(float(r["seconds"]) for r in rows), 3),
    }
    if found:  # per reference number (from 1): the share of its picture the found mask covers, or 0
        facts["found_reference_masks"] = {
            str(index + 1): round(result.coverage, 4) if result.mask is not None else 0.0
            for index, result in found.items()
        }
    return facts
