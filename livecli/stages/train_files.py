"""What `live train` writes and what its checkpoint holds: the files, written whole and
read back whole or refused.

`train/` holds the deltas, the token, the latent prompt and the loss log
(`write_trained`); `checkpoints/train/` the same with AdamW's state, the noise
generator's, the best step's tensors under `--steps auto`, and `state.toml` (the run's
key, its step, the digest of every file), written last (`save_checkpoint`). A checkpoint
is resumed only when it is the same run's and its parts agree (`find_checkpoint`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from livecli import progress
from livecli.errors import ProjectError, reason
from livecli.models import deltas as attention_deltas
from livecli.models import text as text_model
from livecli.objectives import LiveTrainer, StepLosses
from livecli.stages import TRAIN
from livecli.stopping import EarlyStopping
from livecli.store import (
    CHECKPOINT_STATE,
    CHECKPOINTS,
    UNREADABLE_TOML,
    DamagedFile,
    Project,
    atomic_write_bytes,
    hash_outputs,
    read_toml,
    sha256_file,
    write_toml,
)
from livecli.tensor_files import save_tensors

DELTAS = "attention_deltas.safetensors"
TOKEN = "token.safetensors"
LATENT_PROMPT = "latent_prompt.safetensors"
LOSSES = "losses.csv"
OPTIMIZER = "optimizer.safetensors"
RNG = "rng.safetensors"
STATE = CHECKPOINT_STATE
BEST = "best.safetensors"
"""`--steps auto`: the trained tensors at the best step so far, in the checkpoint."""
LOSS_COLUMNS = ("step", "video_loss", "text_loss", "loss", "lr", "ti_lr", "seconds")


@dataclass
class Checkpoint:
    step: int
    folder: Path
    losses: list[dict] = field(default_factory=list)
    scaler: dict | None = None
    before: dict | None = None
    """The losses on fixed draws before the run's first step."""
    stopping: dict | None = None
    """`--steps auto`: the rule's observations so far (the best step's tensors are in BEST)."""


def read_losses(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def losses_csv(rows: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, LOSS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def find_checkpoint(project: Project, run_key: str, steps: int) -> Checkpoint | None:
    """The checkpoint to continue from, if it belongs to this run and is not past `steps`.

    A checkpoint whose parts disagree (a state file that cannot be read, a tensor file
    that differs from the digest the state recorded, fewer loss rows than steps) is
    refused: resuming from it would silently restart or shorten the run.
    """
    folder = project.checkpoint_dir(TRAIN.name)
    if not (folder / STATE).is_file():
        return None
    hint = f"run `live train --force` to train from step 0 (it replaces the checkpoint), or move {folder} away"
    try:
        state = read_toml(folder / STATE)
        step, run, files = state["step"], state.get("run"), state.get("files", {})
        if not isinstance(step, int) or not isinstance(files, dict) or not isinstance(state.get("before"), dict):
            raise TypeError("`step`, `files` or `before` is missing or has the wrong type")
    except (*UNREADABLE_TOML, KeyError, TypeError) as exc:
        raise DamagedFile(folder / STATE, reason(exc), hint) from None
    if run != run_key:
        progress.say("train: the settings or inputs changed since the last checkpoint; training from step 0")
        return None
    if step > steps:
        progress.say(f"train: the checkpoint is at step {step}, past --steps {steps}; training from step 0")
        return None
    for name in {*files, DELTAS, TOKEN, OPTIMIZER, RNG, LOSSES}:
        file = folder / name
        if not file.is_file():
            raise DamagedFile(file, "missing from the checkpoint", hint)
        if name in files and sha256_file(file) != files[name]:
            raise DamagedFile(file, f"differs from the digest in {STATE} (changed or truncated)", hint)
    try:
        losses = read_losses(folder / LOSSES)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DamagedFile(folder / LOSSES, reason(exc), hint) from None
    if [row.get("step") for row in losses] != [str(number) for number in range(1, step + 1)]:
        raise DamagedFile(folder / LOSSES, f"holds {len(losses)} steps' losses for a checkpoint at step {step}", hint)
    taken = optimizer_steps(folder / OPTIMIZER)
    if taken - {step} and (state.get("scaler") is None or max(taken) > step):  # fp16's scaler may skip a step
        counts = ", ".join(str(count) for count in sorted(taken))
        raise DamagedFile(folder / OPTIMIZER, f"counts {counts} AdamW steps for a checkpoint at step {step}", hint)
    return Checkpoint(step, folder, losses, state.get("scaler"), state.get("before"), state.get("stopping"))


def optimizer_steps(path: Path) -> set[int]:
    """The step counts AdamW's state holds (one per trained tensor)."""
    try:
        with safe_open(path, "pt") as handle:
            return {int(handle.get_tensor(key).item()) for key in handle.keys() if key.endswith(".step")}
    except (OSError, SafetensorError, RuntimeError, ValueError) as exc:
        raise DamagedFile(path, reason(exc), "run `live train --force` to train from step 0") from None


def write_trained(folder: Path, trainer: LiveTrainer, base: dict[str, torch.Tensor], rows: list[dict]) -> None:
    """The artefacts of training so far, into `folder`: deltas, token, latent prompt, losses."""
    attention_deltas.save_deltas(folder / DELTAS, attention_deltas.extract_deltas(trainer.video_unet, base))
    text_model.save_token(folder / TOKEN, trainer.placeholder.token, trainer.token_vector)
    if trainer.latent_prompt is not None:  # trained without one (--no-latent-prompt), there is no file
        latent_prompt = trainer.latent_prompt.detach().float().cpu().contiguous()
        save_tensors(folder / LATENT_PROMPT, {"latent_prompt": latent_prompt})
    atomic_write_bytes(folder / LOSSES, losses_csv(rows))


def save_checkpoint(
    project: Project,
    trainer: LiveTrainer,
    base: dict[str, torch.Tensor],
    rows: list[dict],
    step: int,
    steps: int,
    run_key: str,
    before: StepLosses,
    stopping: EarlyStopping | None = None,
    best: dict[str, torch.Tensor] | None = None,
) -> None:
    with project.staging(f"{CHECKPOINTS}/{TRAIN.name}", last=STATE) as folder:
        write_trained(folder, trainer, base, rows)
        save_tensors(folder / OPTIMIZER, trainer.optimizer_state())
        save_tensors(folder / RNG, {"generator": trainer.generator.get_state()})
        if best is not None:
            save_tensors(folder / BEST, best)
        scaler = trainer.precision.scaler
        state = {
            "run": run_key,
            "step": step,
            "steps": steps,
            "files": hash_outputs(folder),
            "before": asdict(before),
            "scaler": scaler.state_dict() if scaler is not None else None,
        }
        if stopping is not None:
            state["stopping"] = stopping.state()
        write_toml(folder / STATE, state)


@contextmanager
def damaged_checkpoint(checkpoint: Checkpoint) -> Iterator[None]:
    """Turn a checkpoint that cannot be read back into one clear error."""
    try:
        yield
    except (OSError, KeyError, ValueError, RuntimeError, SafetensorError) as exc:
        raise ProjectError(
            f"the training checkpoint in {checkpoint.folder} is damaged: {reason(exc)}",
            hint="run `live train` with --force to train from step 0",
        ) from None


def restore(trainer: LiveTrainer, checkpoint: Checkpoint) -> None:
    """Bring the trainer to the checkpoint's state (the deltas are applied before it is built)."""
    folder = checkpoint.folder
    with torch.no_grad():
        if trainer.latent_prompt is not None:
            trainer.latent_prompt.copy_(load_file(folder / LATENT_PROMPT)["latent_prompt"])
        trainer.token_vector.copy_(text_model.load_token(folder / TOKEN)[1])
    trainer.load_optimizer_state(load_file(folder / OPTIMIZER))
    trainer.generator.set_state(load_file(folder / RNG)["generator"])
    if checkpoint.scaler and trainer.precision.scaler is not None:
        trainer.precision.scaler.load_state_dict(checkpoint.scaler)
