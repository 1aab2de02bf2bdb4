"""Where the new object is in a reference image, found by the model itself (`--reference-mask
auto`): no segmenter, no weights beyond the model's.

Two signals of the base model on the reference's latents, noised at a few timesteps with
seeded noise, under a caption that names the object alone ("a dog"), each scaled to [0, 1]
over the picture and then summed:

- the cross-attention of the word that names the object (the token's init word), over
  every layer and head, upsampled to the latents: its distance
  from the picture's median, since a model trained from scratch may attend to its object
  by *avoiding* it (`shapes` does so for a diamond);
- DiffEdit's noise difference (Couairon et al. 2022), |ε(x_t, caption) − ε(x_t, "")|
  averaged over channels: where the caption changes the prediction.

GrabCut (OpenCV; Rother et al. 2004) then cuts the picture along the sum: definitely
background where the sum is under `BACKGROUND` of its range, probably the object above
`OBJECT`, probably background between. On the `shapes` benchmark's references this finds
the drawn object with IoU 0.94 on average, at least 0.86 (docs/shapes.md). A caption that
also names a background the picture does not have moves the search there (IoU 0.77, a
fifth of the pictures under 0.5, with one caption for four pictures): the object's word
alone does not.

A mask that covers almost nothing or almost everything is no mask: `find_object` says so
and the picture is then learnt whole, as without a mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from PIL import Image

from livecli.control.prompts import word_spans
from livecli.models import text as text_model

TIMESTEPS = (0.2, 0.5)
"""Where in the noise schedule the reference is noised: enough noise for the text to matter,
not so much that the picture is gone."""
DRAWS = 2
"""Noise draws per timestep."""
BACKGROUND, OBJECT = 0.1, 0.5
"""GrabCut's start: definitely background under BACKGROUND of the signal's range, probably
the object above OBJECT."""
SMALLEST, LARGEST = 0.005, 0.95
"""A found mask covering less or more of the picture than this is no mask."""


class WordAttention(AttnProcessor2_0):
    """A cross-attention processor that also adds the attention of some text positions to a
    running sum, [batch, 1, h, w] at the latents' size (each layer's maps upsampled)."""

    def __init__(self, columns: list[int], latent_size: tuple[int, int], total: dict):
        super().__init__()
        self.columns, self.latent_size, self.total = columns, latent_size, total

    def __call__(self, attn: Attention, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None):
        query = attn.to_q(hidden_states).unflatten(-1, (attn.heads, -1)).transpose(1, 2)
        key = attn.to_k(encoder_hidden_states).unflatten(-1, (attn.heads, -1)).transpose(1, 2)
        maps = (query @ key.transpose(-1, -2) * attn.scale).softmax(dim=-1, dtype=torch.float32)
        word = maps[..., self.columns].sum(dim=-1).mean(dim=1)  # [batch, queries]
        height, width = self.latent_size
        factor = round((height * width / word.shape[1]) ** 0.5)
        side = (-(-height // factor), -(-width // factor))
        upsampled = F.interpolate(word.view(-1, 1, *side), size=self.latent_size, mode="bilinear", align_corners=False)
        self.total["sum"] = self.total.get("sum", 0) + upsampled
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


@dataclass(frozen=True)
class FoundObject:
    mask: Image.Image | None
    """L 0/255 at the picture's size; None when nothing usable was found."""
    coverage: float
    """The share of the picture the mask covers (before it was refused, if it was)."""


def word_columns(tokenizer, caption: str, word: str) -> list[int]:
    """The text positions of `word` in `caption` (several for a word the tokenizer splits)."""
    wanted = word.lower()
    return [
        position
        for span in word_spans(tokenizer, caption)
        if wanted in span.words
        for position in range(span.start, span.stop)
    ]


def scaled(signal: torch.Tensor) -> torch.Tensor:
    low, high = signal.min(), signal.max()
    return (signal - low) / (high - low).clamp_min(torch.finfo(signal.dtype).tiny)


@torch.inference_mode()
def object_signal(
    unet, tokenizer, text_encoder, scheduler, latents: torch.Tensor, caption: str, word: str
) -> torch.Tensor:
    """[h, w] in [0, 2]: the two signals, summed, at the latents' size (`latents` [1, 4, h, w])."""
    device, dtype = latents.device, unet.dtype
    latent_size = tuple(latents.shape[-2:])
    columns = word_columns(tokenizer, caption, word)
    texts = text_model.encode(text_encoder, text_model.tokenize(tokenizer, [caption, ""]).to(device)).to(dtype)
    total: dict = {}
    original = unet.attn_processors
    recording = {
        name: WordAttention(columns, latent_size, total) if name.endswith("attn2.processor") and columns else processor
        for name, processor in original.items()
    }
    generator = torch.Generator().manual_seed(0)
    difference = torch.zeros(latent_size, device=device)
    steps = scheduler.config.num_train_timesteps
    unet.set_attn_processor(recording)
    try:
        for fraction in TIMESTEPS:
            timestep = torch.tensor([int(fraction * steps)], device=device)
            for _ in range(DRAWS):
                noise = torch.randn(latents.shape, generator=generator).to(device)
                noisy = scheduler.add_noise(latents, noise, timestep).to(dtype)
                predicted = unet(noisy.expand(2, -1, -1, -1), timestep, texts).sample.float()
                difference += (predicted[0] - predicted[1]).abs().mean(dim=0)
    finally:
        unet.set_attn_processor(dict(original))
    signal = scaled(difference)
    if "sum" in total:
        attention = total["sum"][0, 0].float()  # the caption's half of the batch
        signal = signal + scaled((attention - attention.median()).abs())
    return signal


def cut(picture: Image.Image, signal: torch.Tensor) -> np.ndarray:
    """[H, W] bool: GrabCut of `picture` started from `signal` [h, w] (upsampled to it)."""
    pixels = np.ascontiguousarray(np.asarray(picture.convert("RGB"))[:, :, ::-1])
    size = (picture.height, picture.width)
    level = scaled(
        F.interpolate(signal[None, None].float().cpu(), size=size, mode="bilinear", align_corners=False)[0, 0]
    ).numpy()
    labels = np.full(size, cv2.GC_PR_BGD, np.uint8)
    labels[level < BACKGROUND] = cv2.GC_BGD
    labels[level > OBJECT] = cv2.GC_PR_FGD
    if not (labels == cv2.GC_BGD).any():  # GrabCut needs some background to model
        labels[level <= np.quantile(level, 0.05)] = cv2.GC_BGD
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)
    cv2.grabCut(pixels, labels, None, background, foreground, 5, cv2.GC_INIT_WITH_MASK)
    return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)


def find_object(
    unet, tokenizer, text_encoder, scheduler, latents: torch.Tensor, picture: Image.Image, caption: str, word: str
) -> FoundObject:
    """The object `word` names in `picture` (whose latents are `latents` [1, 4, h, w]),
    described by `caption`, which holds the word."""
    found = cut(picture, object_signal(unet, tokenizer, text_encoder, scheduler, latents, caption, word))
    coverage = float(found.mean())
    if not SMALLEST <= coverage <= LARGEST:
        return FoundObject(None, coverage)
    return FoundObject(Image.fromarray(np.where(found, 255, 0).astype(np.uint8)), coverage)
