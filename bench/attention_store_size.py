"""How much disk `--source-branch inversion` stores for Stable Diffusion v1.4, computed by
the same estimate the inversion checks the disk against (`stored_bytes`, equal to what the
recorder writes: tests/test_invert.py), on SD v1.4's UNet built on the meta device.

    python bench/attention_store_size.py            # 8 and 96 frames at 512 px, 50 steps
    python bench/attention_store_size.py --frames 24 --size 768 --words 20
"""

from __future__ import annotations

import argparse

import torch
from diffusers import UNet2DConditionModel

from bench.sd_shapes import SD_UNET
from livecli.config import DEFAULT_OVERLAP, DEFAULT_WINDOW, EditConfig
from livecli.control.source_attention import AttentionPlan, attention_layers, stored_bytes
from livecli.models.video_unet import inflate
from livecli.resources import amount
from livecli.windows import plan_windows


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
    edit = EditConfig(replace=("a=b",), steps=args.steps)
    blend_side = side // 4  # the blend's layers: 16×16 at 512 px
    plan = AttentionPlan(
        int(edit.cross_replace * args.steps), int(edit.self_replace * args.steps), args.words, blend_side**2
    )
    print(f"SD v1.4, {args.size} px, {args.steps} steps, {args.words} token columns, window {DEFAULT_WINDOW}")
    for frames in args.frames:
        windows = plan_windows(frames, DEFAULT_WINDOW, DEFAULT_OVERLAP)
        total = stored_bytes(plan, layers, [len(w.frames) + 1 for w in windows], args.steps)
        by_kind = {
            kind: stored_bytes(
                plan,
                [layer for layer in layers if layer.kind == kind],
                [len(w.frames) + 1 for w in windows],
                args.steps,
            )
            for kind in ("cross", "frame", "temporal")
        }
        kinds = ", ".join(f"{kind} {amount(size)}" for kind, size in by_kind.items())
        print(f"{frames:4d} frames ({len(windows)} windows): {amount(total)} ({kinds})")


if __name__ == "__main__":
    main()
