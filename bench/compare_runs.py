"""One table from several edit_quality runs: a sweep (of --lp-lr, --train-steps, …) side by side.

Each JSON that bench/edit_quality.py wrote is a row per variant, labelled by the settings
that differ between the runs; every cell is the mean [95 % bootstrap interval] over the
cases. Paired differences between runs (same cases) are given against the first run.

    python bench/compare_runs.py bench/results/lp-lr/*.json --variants live paper
    python bench/compare_runs.py bench/results/steps/*.json --out bench/results/steps/table.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

SCORES = (
    "object_accuracy",
    "psnr_object",
    "psnr_background",
    "motion_error",
    "flicker",
    "latent_prompt_moved",
    "train_steps_run",
    "kept_step",
)


def order(value) -> tuple:
    """Unset (None: the default) first, then numbers by size, then the rest as text."""
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, (int, float)):
        return (1, float(value), "")
    return (2, 0.0, json.dumps(value))


def label(settings: dict, varying: list[str]) -> str:
    return ", ".join(f"{name} {settings.get(name)}" for name in varying) or "run"


def paired_with_first(runs: list[dict], variant: str, score: str) -> dict | None:
    """Run k − run 0 of `variant`'s `score`, case by case (the runs share their cases)."""
    from bench.shapes.benchmark import bootstrap

    first = {case["index"]: case["variants"].get(variant, {}).get(score) for case in runs[0]["cases"]}
    results = []
    for run in runs[1:]:
        values = [
            value - first[case["index"]]
            for case in run["cases"]
            if (value := case["variants"].get(variant, {}).get(score)) is not None
            and first.get(case["index"]) is not None
        ]
        results.append(dict(zip(("mean", "low", "high"), bootstrap(values), strict=True)) if values else None)
    return results


def main() -> None:
    from bench.edit_quality import FORMS, cell

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="edit_quality JSON files")
    parser.add_argument("--variants", nargs="+", default=["live"])
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args()

    runs = [json.loads(path.read_text()) for path in args.runs]
    names = sorted({name for run in runs for name in run["settings"]})
    varying = [n for n in names if len({json.dumps(run["settings"].get(n)) for run in runs}) > 1]
    runs.sort(key=lambda run: [order(run["settings"].get(n)) for n in varying])
    lines = []
    for variant in args.variants:
        scores = [s for s in SCORES if any((run["rows"].get(variant) or {}).get(s) for run in runs)]
        lines += [
            f"**{variant}** ({len(runs[0]['cases'])} cases)",
            "",
            "| run | " + " | ".join(FORMS[s][0] for s in scores) + " |",
            "|" + "---|" * (len(scores) + 1),
        ]
        for run in runs:
            row = run["rows"].get(variant, {})
            cells = [cell(row.get(s), FORMS[s][1]) for s in scores]
            lines.append(f"| {label(run['settings'], varying)} | " + " | ".join(cells) + " |")
        lines += ["", f"Paired with the first run ({label(runs[0]['settings'], varying)}), case by case:", ""]
        lines += ["| run | " + " | ".join(FORMS[s][0] for s in scores) + " |", "|" + "---|" * (len(scores) + 1)]
        differences = {s: paired_with_first(runs, variant, s) for s in scores}
        for k, run in enumerate(runs[1:]):
            cells = []
            for s in scores:
                found = differences[s][k]
                mark = " ▲" if found and found["low"] > 0 else " ▼" if found and found["high"] < 0 else ""
                cells.append(cell({**found, "n": 2}, FORMS[s][1], signed=True) + mark if found else "–")
            lines.append(f"| {label(run['settings'], varying)} | " + " | ".join(cells) + " |")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
