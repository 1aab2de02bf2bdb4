"""Pixels to latents and back with the model's VAE, in batches, without gradients."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image


def images_to_tensor(images: Sequence[Image.Image]) -> torch.Tensor:
    """[N, 3, H, W] in [-1, 1], the range the SD VAE was trained on."""
    array = np.stack([np.asarray(image.convert("RGB"), dtype=np.float32) for image in images])
    return torch.from_numpy(array).permute(0, 3, 1, 2) / 127.5 - 1.0


@torch.inference_mode()
def encode_images(
    vae,
    images: Sequence[Image.Image],
    batch_size: int,
    advance: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Latents (posterior mean × scaling factor) as fp32 on the CPU, [N, 4, H/8, W/8]."""
    device, dtype = vae.device, vae.dtype
    scale = vae.config.scaling_factor
    chunks = []
    for first in range(0, len(images), batch_size):
        batch = images[first : first + batch_size]
        pixels = images_to_tensor(batch).to(device=device, dtype=dtype)
        posterior = vae.encode(pixels).latent_dist
        chunks.append((posterior.mean * scale).float().cpu())
        if advance:
            advance(len(batch))
    return torch.cat(chunks)


def latents_to_image(vae, latents: torch.Tensor) -> Image.Image:
    """One frame's latents [4, h, w] (× the scaling factor) to an RGB image."""
    pixels = vae.decode(latents.unsqueeze(0).to(device=vae.device, dtype=vae.dtype) / vae.config.scaling_factor).sample
    array = ((pixels[0].float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array)


@torch.inference_mode()
def decode_latents(vae, latents: torch.Tensor, advance: Callable[[int], None] | None = None) -> list[Image.Image]:
    """Frames from latents [F, 4, h, w], decoded one at a time: memory bounded by one frame."""
    images = []
    for frame in latents:
        images.append(latents_to_image(vae, frame))
        if advance:
            advance(1)
    return images
