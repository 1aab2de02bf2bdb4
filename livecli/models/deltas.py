"""What training changed in the UNet, as a file that turns a base UNet into the trained one.

`attention_deltas.safetensors` holds, under the base UNet's parameter names:

- for every trained query projection (`attn1.to_q`, `attn2.to_q`): trained minus base, in
  float64. The difference of two float32 numbers is exact in float64 (unless they differ
  by more than 2^29 in magnitude), so `base + delta`, rounded back, is the trained weight
  bit for bit; a float32 difference is not (a weight moving near zero loses its low bits);
- every temporal attention (norm and attention) in full: the base UNet has none.

`apply_deltas` on a freshly inflated base UNet reproduces the trained video UNet exactly.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from livecli.models.video_unet import VideoUNet
from livecli.tensor_files import save_tensors

FORMAT = "live-attention-deltas"
VERSION = "1"


def base_name(name: str) -> str:
    """A video UNet parameter's name in the base UNet (the wrapped block drops `.block`)."""
    return name.replace(".block.", ".")


def is_temporal(name: str) -> bool:
    return ".temporal." in name


def base_queries(video_unet: VideoUNet, trainable: list[str]) -> dict[str, torch.Tensor]:
    """Copies of the trainable query weights before training: the base the deltas subtract."""
    params = dict(video_unet.unet.named_parameters())
    return {name: params[name].detach().clone() for name in trainable if not is_temporal(name)}


def extract_deltas(video_unet: VideoUNet, base: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Trained-minus-base for the queries in `base`, and the temporal attentions in full."""
    params = dict(video_unet.unet.named_parameters())
    deltas = {
        base_name(name): (params[name].detach().double() - weight.double()).cpu() for name, weight in base.items()
    }
    for name, tensor in video_unet.unet.state_dict().items():
        if is_temporal(name):
            deltas[base_name(name)] = tensor.detach().float().cpu().clone()
    return deltas


@torch.no_grad()
def apply_deltas(video_unet: VideoUNet, deltas: dict[str, torch.Tensor]) -> None:
    """Make a freshly inflated base UNet the trained one (in place)."""
    state = {base_name(name): tensor for name, tensor in video_unet.unet.state_dict().items()}
    missing = [name for name in deltas if name not in state]
    if missing:
        raise KeyError(f"the UNet has no parameter {missing[0]} (and {len(missing) - 1} more)")
    for name, delta in deltas.items():
        target = state[name]
        if is_temporal(name):
            target.copy_(delta)
        else:
            target.copy_((target.double() + delta.to(target.device)).to(target.dtype))


def save_deltas(path: Path, deltas: dict[str, torch.Tensor]) -> None:
    tensors = {name: tensor.contiguous() for name, tensor in deltas.items()}
    save_tensors(path, tensors, metadata={"format": FORMAT, "version": VERSION})


def load_deltas(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path)
