"""The judge: a small classifier that reads a 64×64 scene's shape, colours and pattern.

It is trained on generated scenes (every combination, held-out ones included: it scores,
it is never edited with), lightly blurred and noised so that VAE reconstructions and
samples read as well as drawings. The benchmark and the caption-following test ask it
what an image shows and compare with what the caption or the true edit says.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from livecli.shapes.scenes import COLOUR_NAMES, PATTERNS, SHAPES

QUESTIONS = {"shape": SHAPES, "colour": COLOUR_NAMES, "pattern": PATTERNS, "background": COLOUR_NAMES}
"""What the judge names, and the names of its answers in class order."""


class Judge(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        widths = [3, 32, 64, 96, 128, 128]
        layers: list[nn.Module] = []
        for k, (inputs, outputs) in enumerate(zip(widths, widths[1:], strict=False)):
            layers += [
                nn.Conv2d(inputs, outputs, 3, stride=1 if k == 0 else 2, padding=1),
                nn.GroupNorm(8, outputs),
                nn.SiLU(),
            ]
        self.features = nn.Sequential(*layers, nn.Flatten(), nn.Linear(128 * 4 * 4, 256), nn.SiLU())
        self.heads = nn.ModuleDict({name: nn.Linear(256, len(answers)) for name, answers in QUESTIONS.items()})

    def forward(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits per question for pixels [N, 3, 64, 64] in [-1, 1]."""
        features = self.features(pixels)
        return {name: head(features) for name, head in self.heads.items()}

    @torch.inference_mode()
    def read(self, images: Sequence[Image.Image] | torch.Tensor, batch_size: int = 256) -> dict[str, np.ndarray]:
        """Class indices per question for each image (PIL images are resized to 64×64)."""
        pixels = images if isinstance(images, torch.Tensor) else to_pixels(images)
        answers: dict[str, list[torch.Tensor]] = {name: [] for name in QUESTIONS}
        for first in range(0, len(pixels), batch_size):
            for name, logits in self(pixels[first : first + batch_size]).items():
                answers[name].append(logits.argmax(dim=1))
        return {name: torch.cat(parts).numpy() for name, parts in answers.items()}


def to_pixels(images: Sequence[Image.Image]) -> torch.Tensor:
    array = np.stack(
        [np.asarray(image.convert("RGB").resize((64, 64), Image.Resampling.BILINEAR), np.float32) for image in images]
    )
    return torch.from_numpy(array).permute(0, 3, 1, 2) / 127.5 - 1.0


def roughen(pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Blur some images a little and add noise to all: what a reconstruction or a sample looks like."""
    n = len(pixels)
    blurred = F.avg_pool2d(F.pad(pixels, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    amount = torch.rand(n, 1, 1, 1, generator=generator) * (torch.rand(n, 1, 1, 1, generator=generator) < 0.5)
    noise = torch.randn(pixels.shape, generator=generator) * torch.rand(n, 1, 1, 1, generator=generator) * 0.06
    return pixels + amount * (blurred - pixels) + noise


def load_judge(path: Path) -> Judge:
    from safetensors.torch import load_file

    judge = Judge()
    judge.load_state_dict(load_file(path))
    return judge.eval().requires_grad_(False)


def accuracy(answers: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> dict[str, float]:
    """Fraction right per question, and `all` for images where every answer is right."""
    right = {name: answers[name] == truth[name] for name in truth}
    scores = {name: float(hits.mean()) for name, hits in right.items()}
    scores["all"] = float(np.logical_and.reduce(list(right.values())).mean())
    return scores
