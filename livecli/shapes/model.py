"""Where the `shapes` model ships, and the version that names its weights in fingerprints.

The model is shaped like Stable Diffusion v1.x but small (its parts: bench/shapes/parts.py),
trained from scratch by `python -m bench.shapes.train` (in the repository, not the wheel).
The package ships the result as a diffusers folder, which `--model shapes` loads through
the same `from_pretrained` code as any model folder, and the judge that reads its scenes.
"""

from __future__ import annotations

from pathlib import Path

SHAPES_VERSION = "shapes-v1"
"""Names the shipped weights in fingerprints; bumped whenever they are retrained."""

PACKAGE_DIR = Path(__file__).parent / "weights"
MODEL_DIR = PACKAGE_DIR / "model"
"""The shipped diffusers folder."""
JUDGE_FILE = PACKAGE_DIR / "judge.safetensors"
