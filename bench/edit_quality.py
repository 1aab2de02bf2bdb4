"""Benchmark (not a test): edits of drawn clips scored against the true edit, per variant.

K held-out clip pairs (livecli/shapes/scenes.py), each edited by every variant through the
real pipeline on `--model shapes` (64 px, 8 frames), scored by bench/shapes/benchmark.py:
object accuracy (the judge reads the reference object's shape and colour), PSNR against
the true edit inside and outside the true objects, motion error, and `live eval`'s
background PSNR. Writes a markdown table, JSON and a PNG grid (per case: reference, then
source / truth / each variant) to bench/results/.

    python bench/edit_quality.py --quick                # K=2, short training: minutes
    python bench/edit_quality.py                        # K=8, the docs' table
    python bench/edit_quality.py --variants live tav    # some variants only
    python bench/edit_quality.py --long                 # 48-frame clips in windows: live, no-latent-prompt

The projects stay in --work (default bench/work/), so a run that stops can be run again
and skips what is done.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

COLUMNS = [
    ("object_accuracy", "object acc.", "{:.0%}"),
    ("shape_accuracy", "shape", "{:.0%}"),
    ("colour_accuracy", "colour", "{:.0%}"),
    ("psnr_object", "PSNR object (dB)", "{:.1f}"),
    ("psnr_background", "PSNR background (dB)", "{:.1f}"),
    ("motion_error", "motion error", "{:.4f}"),
    ("motion_error_borders", "at window borders", "{:.4f}"),
    ("motion_error_inside", "inside windows", "{:.4f}"),
    ("eval_background_psnr", "eval bg PSNR (dB)", "{:.1f}"),
    ("seconds", "s per case", "{:.0f}"),
]


def table(rows: dict[str, dict], descriptions: dict[str, str]) -> str:
    header = "| variant | " + " | ".join(label for _, label, _ in COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 1)]
    for name, scores in rows.items():
        cells = [form.format(scores[key]) if scores.get(key) is not None else "–" for key, _, form in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"- **{name}**: {text}" for name, text in descriptions.items()]
    return "\n".join(lines)


def grid(work: Path, cases: list[dict], names: tuple[str, ...]):
    """One contact sheet per case (reference; source, truth, each variant), stacked."""
    from PIL import Image

    from livecli.contact_sheet import contact_sheet
    from livecli.video import read_pngs

    sheets = []
    for case in cases:
        folder = work / f"case{case['index']}"
        rows = {"source": read_pngs(folder / "clip"), "truth": read_pngs(folder / "truth")}
        for name in names:
            projects = sorted(folder.glob(f"*.live/edits/{name}/frames"))
            if projects:
                rows[name] = read_pngs(projects[0])
        title = [f"case {case['index']}: {case['source_prompt']}", f"reference: {case['target_object']}"]
        sheets.append(contact_sheet(Image.open(folder / "reference.png").convert("RGB"), rows, title))
    width = max(sheet.width for sheet in sheets)
    stacked = Image.new("RGB", (width, sum(sheet.height for sheet in sheets)), "white")
    top = 0
    for sheet in sheets:
        stacked.paste(sheet, (0, top))
        top += sheet.height
    return stacked


def main() -> None:
    from bench.shapes import benchmark

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="K=2 cases, 100 training and 20 edit steps: minutes on a CPU"
    )
    parser.add_argument(
        "--long", action="store_true", help="K=4 clips of 48 frames, edited in windows; live and no-latent-prompt"
    )
    parser.add_argument("--frames", type=int, help="frames per clip (default 8; 48 with --long)")
    parser.add_argument("--cases", type=int, help="number of clip pairs K")
    parser.add_argument("--train-steps", type=int)
    parser.add_argument("--variants", nargs="+", choices=benchmark.VARIANT_NAMES)
    parser.add_argument("--model", help="the model to edit with (default: shapes)")
    parser.add_argument(
        "--seed", type=int, help="seed of the cases (default 0; tune on another seed than the one you report)"
    )
    parser.add_argument("--guidance", type=float, help="classifier-free guidance of the edits (default 5)")
    parser.add_argument(
        "--results",
        type=Path,
        default=HERE / "results",
        help="where the table, JSON and grid go (default: bench/results)",
    )
    parser.add_argument(
        "--work", type=Path, help="folder for the cases' projects (default: bench/work/edit_quality[-quick])"
    )
    args = parser.parse_args()

    os.environ.setdefault("LIVE_QUIET", "1")
    from livecli.shapes.judge import load_judge
    from livecli.shapes.model import JUDGE_FILE

    settings = benchmark.QUICK if args.quick else benchmark.LONG if args.long else benchmark.Settings()
    overrides = {
        "frames": args.frames,
        "cases": args.cases,
        "train_steps": args.train_steps,
        "model": args.model,
        "seed": args.seed,
        "guidance": args.guidance,
    }
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    chosen = args.variants or (benchmark.LONG_VARIANTS if args.long else benchmark.VARIANT_NAMES)
    variants = tuple(v for v in benchmark.VARIANTS if v.name in chosen)
    suffix = "-quick" if args.quick else f"-long{settings.frames}" if settings.frames != benchmark.FRAMES else ""
    work = args.work or HERE / "work" / f"edit_quality{suffix}-{settings.key()}"
    judge = load_judge(JUDGE_FILE)

    started = time.perf_counter()
    cases = []
    for index in range(settings.cases):
        tick = time.perf_counter()
        cases.append(benchmark.run_case(work / f"case{index}", index, settings, variants, judge))
        scores = cases[-1]["variants"]
        print(
            f"case {index + 1}/{settings.cases} ({time.perf_counter() - tick:.0f} s): "
            + ", ".join(f"{name} {s['object_accuracy']:.0%}" for name, s in scores.items()),
            file=sys.stderr,
        )
    names = tuple(v.name for v in variants)
    rows = benchmark.summarise(cases, names)
    descriptions = {
        "source": "the clip unedited (a floor)",
        "truth": "the true edit (a ceiling)",
        **{v.name: v.description for v in variants},
    }
    markdown = table(rows, descriptions)
    print(markdown)

    results = args.results
    results.mkdir(parents=True, exist_ok=True)
    stem = results / f"edit_quality{suffix}"
    report = {
        "settings": settings.__dict__,
        "seconds": round(time.perf_counter() - started),
        "rows": rows,
        "cases": cases,
    }
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    steps = f"{settings.train_steps} training steps, {settings.edit_steps} edit steps"
    title = f"# Edit quality on drawn clips ({settings.cases} cases of {settings.frames} frames, {steps})\n\n"
    stem.with_suffix(".md").write_text(title + markdown + "\n")
    # Drawn scenes need no more than 256 colours: a palette PNG is a quarter of the size.
    grid(work, cases, names).quantize(colors=256).save(stem.with_suffix(".png"), optimize=True)
    print(f"wrote {stem}.md, .json and .png in {time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
