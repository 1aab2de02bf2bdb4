"""Will it fit? Memory a stage needs, estimated before any work, against what is free.

A stage that runs out of memory is killed by the kernel without a word, after minutes,
leaving a half-made stage to recover; an estimate checked first turns that into one line
naming the flag to change. The estimates are deliberately rough (they err low, so that a
run that fits is never refused) and are calibrated on bench/prepare_vae.py's figures.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import psutil
import torch

from livecli import environment
from livecli.errors import ConfigError, ProjectError

GB = 1024**3
MAX_SIZE_FACTOR = 4
"""Frames' sides up to 4× the model's own size (2048 px for SD v1.x): past that a UNet
trained at one size makes repeated, broken pictures, and the memory grows past any GPU."""
VAE_ACTIVATION_COPIES = 5
"""Peak live activations of a VAE encoder pass, in full-resolution maps of its first
block's width: bench/prepare_vae.py measures ~0.66 GB an image at 512 px for SD's 128
channels in fp32 (512² × 128 × 4 B × 5 = 0.67 GB)."""
TRAIN_ACTIVATION_VALUES = 500
"""Activations a training step keeps for the backward pass, in values per latent position,
per frame and per channel of the UNet's first block: bench/train_step.py measures ~5.9 GB
for SD (320 channels) at 256 px (32×32 latents) and 9 frames in fp32, 500 × 4 B each."""
CHECKPOINTED_SHARE = {"off": 1.0, "on": 0.47, "all": 0.32}
"""What gradient checkpointing leaves of those activations (bench/train_step.py, SD at 256
px, 8 frames: 11.2 GB peak without, 8.1 GB checkpointing the two highest resolutions,
7.2 GB every block, over ~5.3 GB of weights)."""
SKIP = environment.NO_MEMORY_CHECK
"""Set to 1 to skip the check (an estimate can be wrong)."""


def free_bytes(device: torch.device) -> int:
    """Memory free for new work on `device` (the host's available memory for the CPU)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return int(psutil.virtual_memory().available)


def prepare_bytes(frames: int, width: int, height: int, vae_width: int, batch: int, dtype: torch.dtype) -> dict:
    """What `live prepare` holds at its peak: the decoded frames (host) and one VAE batch's
    activations (on the device)."""
    pixels = width * height
    element = torch.finfo(dtype).bits // 8
    return {
        "frames": frames * pixels * 3,  # RGB, 8 bits a channel, all kept until encoded
        "vae": batch * pixels * vae_width * element * VAE_ACTIVATION_COPIES,
    }


def training_bytes(frames: int, positions: int, channels: int, element: int, trainable: int) -> dict[str, int]:
    """A training step's memory beyond the loaded weights, per checkpointing mode: the kept
    activations of `frames` (latent prompt included) at `positions` latent positions, and
    the trained tensors' gradients and AdamW moments (fp32)."""
    activations = frames * positions * channels * TRAIN_ACTIVATION_VALUES * element
    return {mode: round(activations * share) + trainable * 4 * 3 for mode, share in CHECKPOINTED_SHARE.items()}


def choose_checkpointing(needed: dict[str, int], device: torch.device) -> str:
    """`--gradient-checkpointing auto`: none when the step fits in 90 % of the memory free
    now, else the two highest resolutions' blocks, else every block."""
    free = free_bytes(device)
    for mode in ("off", "on"):
        if needed[mode] <= 0.9 * free:
            return mode
    return "all"


def amount(size: int) -> str:
    """Bytes for a message: GB to one decimal, MB below a gigabyte."""
    return f"{size / GB:.1f} GB" if size >= GB else f"{size / 2**20:.0f} MB"


def check_fits(needed: dict[str, int], device: torch.device, what: str, hint: str) -> None:
    """Refuse work whose estimate is over the memory free now, in one line."""
    if environment.flag(SKIP):
        return
    host = needed["frames"] + (needed["vae"] if device.type == "cpu" else 0)
    checks = [("memory", host, free_bytes(torch.device("cpu")))]
    if device.type != "cpu":
        checks.append((f"{device.type.upper()} memory", needed["vae"], free_bytes(device)))
    for kind, wanted, free in checks:
        if wanted > free:
            raise ConfigError(
                f"{what} needs about {amount(wanted)} of {kind}; {amount(free)} is free",
                hint=f"{hint} (or set {SKIP}=1 to try anyway)",
            )


def disk_room(folder: Path, needed: int) -> tuple[bool, int]:
    """Whether `needed` bytes (and a tenth more, for the rest of the stage) fit on the disk
    of `folder`, and the bytes free there."""
    free = shutil.disk_usage(folder).free
    return needed * 1.1 <= free, free


def check_disk(folder: Path, needed: int, what: str, hint: str) -> None:
    """Refuse to write `needed` bytes into `folder` when its disk has not room for them
    (`disk_room`), in one line, before anything is written."""
    fits, free = disk_room(folder, needed)
    if not fits:
        raise ProjectError(
            f"{what} needs about {amount(needed)} of disk in {folder}; {amount(free)} is free",
            hint=hint,
        )
