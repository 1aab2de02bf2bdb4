"""How much disk `--source-branch inversion` stores for Stable Diffusion v1.4, computed by
the same estimate the inversion checks the disk against (`stored_bytes`, equal to what the
recorder writes: tests/test_invert.py), on SD v1.4's UNet built on the meta device.

One row per frame count for each set of replaced layers: the paper's (word swap and
temporal attention at every layer, frame attention below the top resolution) and the
compact store's (word swap and temporal attention below the top resolution, no frame
attention: `COMPACT_LAYERS`). The aims (docs/performance.md): 96 frames at 512 px and 50
steps in 10 GB, 8 frames in 1 GB.

    python bench/attention_store_size.py            # 8 and 96 frames at 512 px, 50 steps
    python bench/attention_store_size.py --frames 24 --size 768 --words 20
"""

from __future__ import annotations

import argparse
import dataclasses

import torch
from diffusers import UNet2DConditionModel

from bench.sd_shapes import SD_UNET
from livecli.config import COMPACT_LAYERS, DEFAULT_OVERLAP, DEFAULT_WINDOW, EditConfig
from livecli.control.source_attention import AttentionPlan, attention_layers, stored_bytes
from livecli.models.video_unet import inflate
from livecli.resources import amount
from livecli.sampling import replaced_layers
from livecli.windows import plan_windows

AIMS = {8: 2**30, 96: 10 * 2**30}
"""The most bytes the store may take at 512 px and 50 steps (1 GB and 10 GB, as `amount` counts them)."""


def plan_of(edit: EditConfig, side: int, words: int) -> AttentionPlan:
    """What an edit with `edit`'s settings stores for latents of `side`×`side` (the blend's
    layers at a quarter of the side: 16×16 at 512 px)."""
    cross, self_steps = int(edit.cross_replace * edit.steps), int(edit.self_replace * edit.steps)
    return AttentionPlan(cross, self_steps, words, (side // 4) ** 2, **replaced_layers(edit, (side, side)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 96])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--words", type=int, default=12, help="the start token and the source prompt's tokens")
    args = parser.parse_args()
    with torch.device("meta"):
        video_unet = inflate(UNet2DConditionModel(**SD_UNET))
    side = args.size // 8
    layers = attention_layers(video_unet, (side, side))
    paper = EditConfig(replace=("a=b",), steps=args.steps, preset="paper")
    stores = {"paper's layers": paper, "compact": dataclasses.replace(paper, preset=None, **COMPACT_LAYERS)}
    print(f"SD v1.4, {args.size} px, {args.steps} steps, {args.words} token columns, window {DEFAULT_WINDOW}")
    for label, edit in stores.items():
        plan = plan_of(edit, side, args.words)
        for frames in args.frames:
            windows = plan_windows(frames, DEFAULT_WINDOW, DEFAULT_OVERLAP)
            batches = [len(w.frames) + 1 for w in windows]
            total = stored_bytes(plan, layers, batches, args.steps)
            by_kind = {
                kind: stored_bytes(plan, [layer for layer in layers if layer.kind == kind], batches, args.steps)
                for kind in ("cross", "frame", "temporal")
            }
            kinds = ", ".join(f"{kind} {amount(size)}" for kind, size in by_kind.items())
            aim = AIMS.get(frames) if args.size == 512 and args.steps == 50 else None
            verdict = "" if aim is None else f"  aim {amount(int(aim))}: {'met' if total <= aim else 'missed'}"
            print(f"{label:>15} {frames:4d} frames ({len(windows)} windows): {amount(total)} ({kinds}){verdict}")


if __name__ == "__main__":
    main()
