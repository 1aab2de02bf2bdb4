"""Benchmark (not a test): edits of drawn clips scored against the true edit, per variant.

K clip pairs (livecli/shapes/scenes.py) cycling through eight kinds of motion (glide,
bounce, rotation, growth, occlusion, pan, distractor, fast), each edited by every variant
through the real pipeline on `--model shapes` (64 px, 8 frames) and scored by
bench/shapes/benchmark.py: object accuracy (the judge reads the reference object's shape
and colour), PSNR against the true edit inside and outside the true objects, motion error,
flicker, and `live eval`'s background PSNR. Every score comes with a 95 % bootstrap interval
over the cases, overall and per kind, and as a paired difference from `live`. Writes a
markdown report, JSON and a PNG grid (the first case of each kind) to bench/results/.

    python bench/edit_quality.py --quick                # 2 cases, short training: ≤ 3 min
    python bench/edit_quality.py                        # 24 reported cases (seed 0), the docs' tables
    python bench/edit_quality.py --set tuning           # 24 tuning cases (seed 1): tune here, never report
    python bench/edit_quality.py --shard 1/3            # a third of the cases (then 2/3, 3/3, then no --shard)
    python bench/edit_quality.py --variants live tav    # some variants only
    python bench/edit_quality.py --long                 # 48-frame clips in windows: live, no-latent-prompt
    python bench/edit_quality.py --variants live from-inversion compact-inversion --paired-with live from-inversion

The projects and each variant's scores stay in --work (default bench/work/), so a run that
stops can be run again and skips what is done, and shards (in turn, or on machines sharing
the folder) add up: a run without --shard assembles the report from what they left.
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

from livecli.scores import catalogue  # noqa: E402  (after the path: run as a script from anywhere)

EVAL_SCORES = {score.name: score for score in catalogue()}
"""`live eval`'s scores, which the benchmark reports beside its truth scores under their labels."""

COLUMNS = [
    ("object_accuracy", "object acc.", "{:.0%}"),
    ("shape_accuracy", "shape", "{:.0%}"),
    ("colour_accuracy", "colour", "{:.0%}"),
    ("psnr_object", "PSNR object (dB)", "{:.1f}"),
    ("psnr_background", "PSNR background (dB)", "{:.1f}"),
    ("motion_error", "motion error", "{:.4f}"),
    ("flicker", "flicker", "{:.4f}"),
    ("warp_error", EVAL_SCORES["warp_error"].label, "{:.4f}"),
    ("psnr_kept", "PSNR kept (dB)", "{:.1f}"),
    ("motion_error_borders", "at window borders", "{:.4f}"),
    ("motion_error_inside", "inside windows", "{:.4f}"),
    ("eval_background_psnr", f"eval {EVAL_SCORES['background_psnr'].titled}", "{:.1f}"),
    ("latent_prompt_moved", "latent prompt moved", "{:.1%}"),
    ("train_steps_run", "steps trained", "{:.0f}"),
    ("kept_step", "step kept", "{:.0f}"),
    ("seconds", "s per case", "{:.0f}"),
]
KIND_COLUMNS = ("object_accuracy", "psnr_object", "psnr_background", "motion_error", "flicker", "warp_error")
"""The scores the per-kind tables show (the JSON has every one)."""
FORMS = {key: (label, form) for key, label, form in COLUMNS}


def cell(summary: dict | None, form: str, interval: bool = True, signed: bool = False) -> str:
    """'mean [low, high]' in the score's format; a '–' where it has none."""
    if not summary:
        return "–"
    if signed:
        form = form.replace("{:", "{:+")
    text = form.format(summary["mean"])
    if interval and summary["n"] > 1 and summary["low"] != summary["high"]:
        text += f" [{form.format(summary['low'])}, {form.format(summary['high'])}]"
    return text


def table(rows: dict[str, dict], descriptions: dict[str, str]) -> str:
    """Every score per variant, with intervals; a column no row has is left out."""
    columns = [c for c in COLUMNS if any(row.get(c[0]) for row in rows.values())]
    lines = ["| variant | " + " | ".join(label for _, label, _ in columns) + " |", "|" + "---|" * (len(columns) + 1)]
    for name, scores in rows.items():
        lines.append(f"| {name} | " + " | ".join(cell(scores.get(k), f) for k, _, f in columns) + " |")
    lines.append("")
    lines += [f"- **{name}**: {text}" for name, text in descriptions.items()]
    return "\n".join(lines)


def kind_tables(kinds: dict[str, dict]) -> str:
    """Per score, a table of variants × kinds."""
    parts = []
    for key in KIND_COLUMNS:
        label, form = FORMS[key]
        names = list(next(iter(kinds.values())))
        lines = [f"**{label}** by kind", "", "| variant | " + " | ".join(kinds) + " |", "|" + "---|" * (len(kinds) + 1)]
        for name in names:
            lines.append(
                f"| {name} | " + " | ".join(cell(rows.get(name, {}).get(key), form) for rows in kinds.values()) + " |"
            )
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def paired_table(differences: dict[str, dict], against: str = "live") -> str:
    """Each variant − `against`, case by case, with the interval; ▲/▼ where it leaves out 0."""
    keys = [
        k
        for k in ("object_accuracy", "psnr_object", "psnr_background", "motion_error", "flicker", "warp_error")
        if any(k in d for d in differences.values())
    ]
    header = f"| variant − {against} | " + " | ".join(FORMS[k][0] for k in keys) + " |"
    lines = [header, "|" + "---|" * (len(keys) + 1)]
    for name, scores in differences.items():
        cells = []
        for key in keys:
            summary = scores.get(key)
            mark = ""
            if summary and (summary["low"] > 0 or summary["high"] < 0):
                mark = " ▲" if summary["mean"] > 0 else " ▼"
            cells.append(cell(summary, FORMS[key][1], signed=True) + mark)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def grid(work: Path, cases: list[dict], names: tuple[str, ...]):
    """One contact sheet per kind's first case (reference; source, truth, each variant), stacked."""
    from PIL import Image

    from livecli.contact_sheet import contact_sheet
    from livecli.video import read_pngs

    shown, sheets = set(), []
    for case in cases:
        if case.get("kind") in shown:
            continue
        shown.add(case.get("kind"))
        folder = work / f"case{case['index']}"
        rows = {"source": read_pngs(folder / "clip"), "truth": read_pngs(folder / "truth")}
        for name in names:
            projects = sorted(folder.glob(f"*.live/edits/{name}/frames"))
            if projects:
                rows[name] = read_pngs(projects[0])
        title = [
            f"case {case['index']} ({case.get('kind', 'glide')}): {case['source_prompt']}",
            f"reference: {case['target_object']}",
        ]
        sheets.append(contact_sheet(Image.open(folder / "reference.png").convert("RGB"), rows, title))
    return stacked(sheets)


def stacked(sheets: list):
    """Images one under another, left-aligned on white, as wide as the widest."""
    from PIL import Image

    picture = Image.new("RGB", (max(sheet.width for sheet in sheets), sum(sheet.height for sheet in sheets)), "white")
    top = 0
    for sheet in sheets:
        picture.paste(sheet, (0, top))
        top += sheet.height
    return picture


def shard(text: str) -> tuple[int, int]:
    """'I/N' → (I, N), 1 ≤ I ≤ N."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes I/N, e.g. 2/3, not {text!r}") from None
    if not 1 <= index <= count:
        raise argparse.ArgumentTypeError(f"--shard {text}: I must be between 1 and N")
    return index, count


def main() -> None:
    from bench.shapes import benchmark
    from livecli.shapes.scenes import KINDS

    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2 cases (glide, bounce), 100 training and 12 edit steps; live, paper, no-latent-prompt, tav",
    )
    parser.add_argument(
        "--long", action="store_true", help="4 glide clips of 48 frames, edited in windows; live and no-latent-prompt"
    )
    parser.add_argument(
        "--set",
        choices=("reported", "tuning"),
        default="reported",
        help="the cases: reported (seed 0, the docs' tables) or tuning (seed 1: choose settings here, never report)",
    )
    parser.add_argument("--seed", type=int, help="seed of the cases, instead of --set's")
    parser.add_argument("--frames", type=int, help="frames per clip (default 8; 48 with --long)")
    parser.add_argument("--cases", type=int, help="number of clip pairs K (default 24: three of each kind)")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, help="the kinds of clip the cases cycle through")
    parser.add_argument(
        "--train-steps", type=lambda text: text if text == "auto" else int(text), help="a number, or auto"
    )
    parser.add_argument(
        "--lp-lr", type=float, help="the latent prompt's learning rate (default: the demo's 0.1; 1e-4 is --lr's)"
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=benchmark.VARIANT_NAMES,
        help=f"default: {' '.join(benchmark.DEFAULT_VARIANTS)}",
    )
    parser.add_argument("--model", help="the model to edit with (default: shapes)")
    parser.add_argument("--guidance", type=float, help="classifier-free guidance of the edits (default 5)")
    parser.add_argument("--shard", type=shard, metavar="I/N", help="run only cases I, I+N, I+2N, … (counting from 1)")
    parser.add_argument(
        "--results",
        type=Path,
        default=HERE / "results",
        help="where the report, JSON and grid go (default: bench/results)",
    )
    parser.add_argument("--work", type=Path, help="folder for the cases' projects (default: bench/work/edit_quality…)")
    parser.add_argument(
        "--paired-with",
        nargs="+",
        default=["live"],
        metavar="VARIANT",
        help="a table of each variant's differences from these, case by case (default: live)",
    )
    args = parser.parse_args()

    os.environ.setdefault("LIVE_QUIET", "1")
    from livecli.shapes.judge import load_judge
    from livecli.shapes.model import JUDGE_FILE

    base = benchmark.QUICK if args.quick else benchmark.LONG if args.long else benchmark.Settings()
    seed = args.seed if args.seed is not None else benchmark.TUNING_SEED if args.set == "tuning" else None
    overrides = {
        "frames": args.frames,
        "cases": args.cases,
        "kinds": tuple(args.kinds) if args.kinds else None,
        "train_steps": args.train_steps,
        "lp_lr": args.lp_lr,
        "model": args.model,
        "seed": seed,
        "guidance": args.guidance,
    }
    settings = replace(base, **{k: v for k, v in overrides.items() if v is not None})
    defaults = benchmark.QUICK_VARIANTS if args.quick else benchmark.LONG_VARIANTS if args.long else None
    chosen = args.variants or defaults or benchmark.DEFAULT_VARIANTS
    variants = tuple(v for v in benchmark.VARIANTS if v.name in chosen)
    suffix = "-quick" if args.quick else f"-long{settings.frames}" if settings.frames != benchmark.FRAMES else ""
    suffix += "-tuning" if settings.seed == benchmark.TUNING_SEED else ""
    suffix += f"-lplr{settings.lp_lr:g}" if settings.lp_lr != base.lp_lr else ""
    suffix += f"-steps{settings.train_steps}" if settings.train_steps != base.train_steps else ""
    work = args.work or HERE / "work" / f"edit_quality{suffix}-{settings.key()}"
    judge = load_judge(JUDGE_FILE)

    started = time.perf_counter()
    indices = range(settings.cases)
    if args.shard:
        indices = [i for i in indices if i % args.shard[1] == args.shard[0] - 1]
    cases = []
    for count, index in enumerate(indices, 1):
        tick = time.perf_counter()
        cases.append(benchmark.run_case(work / f"case{index}", index, settings, variants, judge))
        scores = cases[-1]["variants"]
        print(
            f"case {index} ({cases[-1]['kind']}, {count}/{len(indices)}, {time.perf_counter() - tick:.0f} s): "
            + ", ".join(f"{name} {s['object_accuracy']:.0%}" for name, s in scores.items()),
            file=sys.stderr,
        )
    if args.shard:
        print(
            f"shard {args.shard[0]}/{args.shard[1]} done in {time.perf_counter() - started:.0f} s; its scores are in "
            f"{work}. Run without --shard (same settings) to write the report.",
            file=sys.stderr,
        )
        return
    names = tuple(v.name for v in variants)
    rows = benchmark.summarise(cases, names)
    kinds = benchmark.by_kind(cases, names)
    pairs = {against: benchmark.paired(cases, names, against) for against in args.paired_with if against in names}
    descriptions = {
        "source": "the clip unedited (a floor)",
        "truth": "the true edit (a ceiling)",
        **{v.name: v.description for v in variants},
    }
    steps = f"{settings.train_steps} training steps, {settings.edit_steps} edit steps"
    which = "tuning" if settings.seed == benchmark.TUNING_SEED else f"seed {settings.seed}"
    lp = f", --lp-lr {settings.lp_lr:g}" if settings.lp_lr is not None else ", --lp-lr = --lr"
    markdown = "\n\n".join(
        [
            f"# Edit quality on drawn clips ({settings.cases} cases, {which}, of {settings.frames} frames, "
            f"{steps}{lp})",
            "Mean over the cases [95 % bootstrap interval, 10,000 resamples of the cases].",
            table(rows, descriptions),
            *(
                part
                for against, differences in pairs.items()
                for part in (
                    f"## Paired with `{against}` (variant − {against}, case by case; ▲▼: the interval leaves out 0)",
                    paired_table(differences, against),
                )
            ),
            "## By kind of clip",
            kind_tables(kinds),
        ]
    )
    print(markdown)

    results = args.results
    results.mkdir(parents=True, exist_ok=True)
    stem = results / f"edit_quality{suffix}"
    report = {
        "settings": {**settings.__dict__, "kinds": list(settings.kinds)},
        "seconds": round(time.perf_counter() - started),
        "rows": rows,
        "paired_with_live": pairs.get("live", {}),
        "paired_with": pairs,
        "by_kind": kinds,
        "cases": cases,
    }
    stem.with_name(stem.name + ".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_name(stem.name + ".md").write_text(markdown + "\n")
    # Drawn scenes need no more than 256 colours: a palette PNG is a quarter of the size.
    grid(work, cases, names).quantize(colors=256).save(stem.with_name(stem.name + ".png"), optimize=True)
    print(f"wrote {stem}.md, .json and .png in {time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
