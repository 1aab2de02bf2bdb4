"""Tooling of the `shapes` model, outside the package: its training script (`train.py`),
the sampling and judging of its quality (`quality.py`) and the edit benchmark's cases
and scores (`benchmark.py`)."""
