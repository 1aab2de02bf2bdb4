"""The benchmark's eight clip kinds, drawn: bench/results/clip_kinds.png for docs/shapes.md.

    python bench/clip_kinds.py [--seed 0]

One row pair per kind (livecli/shapes/scenes.py): the source clip, then its true edit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))


def main() -> None:
    from PIL import Image, ImageDraw

    from livecli.shapes.scenes import KINDS, clip_pair

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "clip_kinds.png")
    args = parser.parse_args()

    side, gap, label = 64, 2, 80
    sheet = Image.new("RGB", (label + 16 * (side + gap) + gap, len(KINDS) * (side + gap) + gap), "white")
    draw = ImageDraw.Draw(sheet)
    for row, kind in enumerate(KINDS):
        pair = clip_pair(args.seed, frames=8, kind=kind)
        top = gap + row * (side + gap)
        draw.text((4, top + side // 2 - 6), kind, fill="black")
        for k, frame in enumerate(pair.source + pair.truth):
            sheet.paste(frame, (label + gap + k * (side + gap) + (gap * 3 if k >= 8 else 0), top))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.quantize(colors=256).save(args.out, optimize=True)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
