"""The benchmark's failing cases, one picture each: the reference and its learnt mask, then
rows source, truth, the variant's edit and its blend masks, with the judge's reading of
every frame, so that what goes wrong (token, colour, blend, motion, judge) can be seen.

    python bench/failures.py bench/results/hold-24/edit_quality.json --work bench/work/edit_quality-… \\
        --variant live --below 0.5 --out bench/results/hold-24/failures

Writes `case<N>.png` per case under the bar and `failures.md`: a table of the cases with
their kind, objects, the variant's object, shape and colour accuracy, and the picture.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))


def strip(folder: Path, variant: str, judge, pair) -> Image.Image:
    """The case's picture: reference (and learnt mask), then source, truth, edit, masks; the judge's
    reading of each edited frame under it."""
    from PIL import Image, ImageDraw

    from bench.shapes.benchmark import judged
    from livecli.shapes.scenes import COLOUR_NAMES, SHAPES
    from livecli.video import read_pngs

    edits = sorted(folder.glob(f"*.live/edits/{variant}"))
    edit = edits[0]
    rows = [read_pngs(folder / "clip"), read_pngs(folder / "truth"), read_pngs(edit / "frames")]
    if (edit / "masks").is_dir():
        rows.append(read_pngs(edit / "masks"))
    side = rows[0][0].width
    scale = 2
    cell = side * scale
    band = 14
    picture = Image.new("RGB", ((len(rows[0]) + 1) * cell, len(rows) * cell + band), "white")
    picture.paste(Image.open(folder / "reference.png").convert("RGB").resize((cell, cell), Image.NEAREST), (0, 0))
    learnt = sorted(edit.parent.parent.glob("train/reference_masks/0000.png"))
    if learnt:
        mask = Image.open(learnt[0]).convert("RGB").resize((cell, cell), Image.NEAREST)
        picture.paste(mask, (0, cell))
    for row, frames in enumerate(rows):
        for index, frame in enumerate(frames):
            shown = frame.convert("RGB").resize((cell, cell), Image.NEAREST)
            picture.paste(shown, ((index + 1) * cell, row * cell))
    answers = judge.read(judged(rows[2], pair))
    draw = ImageDraw.Draw(picture)
    for index, (shape, colour) in enumerate(zip(answers["shape"], answers["colour"], strict=True)):
        text = f"{COLOUR_NAMES[colour]} {SHAPES[shape]}"
        draw.text(((index + 1) * cell + 2, len(rows) * cell + 1), text, fill=(20, 20, 20))
    return picture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="the benchmark's JSON report")
    parser.add_argument("--work", type=Path, required=True, help="the benchmark's work folder")
    parser.add_argument("--variant", default="live")
    parser.add_argument("--below", type=float, default=0.5, help="object accuracy under which a case is shown")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    from bench.shapes import benchmark
    from livecli.shapes.judge import load_judge
    from livecli.shapes.model import JUDGE_FILE

    report = json.loads(args.report.read_text())
    settings = benchmark.Settings(**{**report["settings"], "kinds": tuple(report["settings"]["kinds"])})
    judge = load_judge(JUDGE_FILE)
    args.out.mkdir(parents=True, exist_ok=True)
    lines = [
        f"| case | kind | source → reference object | {args.variant} object | shape | colour | picture |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in report["cases"]:
        scores = case["variants"].get(args.variant)
        if scores is None or scores["object_accuracy"] >= args.below:
            continue
        index = case["index"]
        pair = benchmark.case_pair(settings, index)
        name = f"case{index}.png"
        strip(args.work / f"case{index}", args.variant, judge, pair).save(args.out / name)
        source = " ".join(pair.source_object[::-1])
        lines.append(
            f"| {index} | {case['kind']} | {source} → {case['target_object']} | {scores['object_accuracy']:.0%} | "
            f"{scores['shape_accuracy']:.0%} | {scores['colour_accuracy']:.0%} | [{name}]({name}) |"
        )
    (args.out / "failures.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
