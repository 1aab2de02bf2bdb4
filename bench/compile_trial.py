"""Benchmark (not a test): does `--compile` pay back its compile time on this machine?

The demo's job (the shipped `shapes` model, 64 px, 300 training steps, a 50-step edit) on
the demo's drawn clip of 8 frames and on the same scene drawn over 48 frames (an edit in
windows of 8), each run eager and with `--compile` (torch.compile, inductor, of the UNet's
ResNet blocks and feed-forwards), each in a fresh process with an empty inductor cache:
what a user's first compiled run pays. Reports each stage's seconds as its record has
them, the training's median step, and the compiled run's time as a ratio to the eager
run's of the same clip, measured in the same run of this script.

    python bench/compile_trial.py                       # 8 and 48 frames
    python bench/compile_trial.py --frames 8 --json /tmp/compile.json
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from isolated import run_isolated  # noqa: E402  (after the path: run as a script from anywhere)


def one(frames: int, compiled: bool, work: Path) -> dict:
    """The demo's job on a drawn clip of `frames` frames, eager or compiled: its stages' seconds."""
    from livecli import demo
    from livecli.config import ModelConfig
    from livecli.pipeline import run_job
    from livecli.shapes.scenes import clip_pair
    from livecli.stages import TRAIN
    from livecli.video import write_pngs

    pair = clip_pair(demo.DEMO_SEED, frames=frames)
    clip, image = work / f"clip{frames}", work / "reference.png"
    if not clip.is_dir():
        write_pngs(pair.source, clip)
    pair.reference.save(image)
    job = demo.demo_job(work, clip, image)
    job = dataclasses.replace(
        job,
        project=work / f"{frames}-{'compiled' if compiled else 'eager'}.live",
        model=ModelConfig(model="shapes", device="cpu", compile=compiled),
        prepare=dataclasses.replace(job.prepare, frames=frames),
        eval=None,
    )
    outcome = run_job(job)
    seconds = {stage.result.stage: round(stage.seconds, 1) for stage in outcome.stages}
    with open(outcome.project.stage_dir(TRAIN) / "losses.csv") as handle:
        steps = [float(row["seconds"]) for row in csv.DictReader(handle)]
    return {
        "frames": frames,
        "compiled": compiled,
        "seconds": seconds,
        "train_first_step": round(steps[0], 3),
        "train_median_step": round(statistics.median(steps), 4),
        "total": round(sum(seconds.values()), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 48])
    parser.add_argument("--json", type=Path, default=HERE / "results" / "compile_trial-cpu-2core.json")
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        frames, compiled, work = args.one
        print(json.dumps(one(int(frames), compiled == "1", Path(work))))
        return
    results = []
    with tempfile.TemporaryDirectory() as work:
        for frames in args.frames:
            runs = {}
            for compiled in (False, True):
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(dir=work)  # a first compiled run
                runs[compiled] = run_isolated(__file__, ["--one", str(frames), str(int(compiled)), work])
                print(json.dumps(runs[compiled]), flush=True)
            eager, compiled_run = runs[False], runs[True]
            row = {"frames": frames, "eager": eager, "compiled": compiled_run}
            if "error" not in eager and "error" not in compiled_run:
                row["ratio"] = {
                    stage: round(compiled_run["seconds"][stage] / eager["seconds"][stage], 3)
                    for stage in eager["seconds"]
                    if eager["seconds"][stage] > 0
                }
                row["ratio"]["train_median_step"] = round(
                    compiled_run["train_median_step"] / eager["train_median_step"], 3
                )
                row["ratio"]["total"] = round(compiled_run["total"] / eager["total"], 3)
                print(f"{frames} frames, compiled ÷ eager: {row['ratio']}", flush=True)
            results.append(row)
    args.json.write_text(json.dumps({"results": results}, indent=2) + "\n")
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
