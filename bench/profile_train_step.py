"""Profile (not a test): where a training step's time goes, by operator, for the floor and for `live`.

Builds the same SD-v1.4-shaped setting as bench/train_step.py, runs one warm-up step,
then one step under `torch.profiler`, and prints the operators with the most self CPU
time (forward and backward together). Each part runs in a fresh process.

    python bench/profile_train_step.py --size 256 --frames 8 --parts floor video
    python bench/profile_train_step.py --size 128 --frames 8 --parts video --rows 25
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

PARTS = ("floor", "video", "full")


def profile(size: int, frames: int, part: str, rows: int) -> dict:
    import train_step
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    steps: list = []
    original = train_step.timed

    def capture(step, count, device):  # the bench's timing loop hands over the step it runs
        steps.append(step)
        return [0.0, 0.0]

    train_step.timed = capture
    try:
        train_step.one(size, frames, 1, "off", train_step.TRAIN_WINDOW, part)
    finally:
        train_step.timed = original
    (step,) = steps
    step()  # warm-up
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:rows]
    return {
        "part": part,
        "size": size,
        "frames": frames,
        "total_self_cpu_s": round(total / 1e6, 2),
        "top": [
            {
                "op": e.key,
                "self_cpu_s": round(e.self_cpu_time_total / 1e6, 3),
                "share": round(e.self_cpu_time_total / total, 4),
                "calls": e.count,
            }
            for e in top
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=["floor", "video"])
    parser.add_argument("--rows", type=int, default=15)
    parser.add_argument("--json", default="bench/profile_train_step.json")
    parser.add_argument("--one", choices=PARTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(profile(args.size, args.frames, args.one, args.rows)))
        return
    results = []
    for part in args.parts:
        command = [sys.executable, __file__, "--one", part, "--size", str(args.size), "--frames", str(args.frames)]
        done = subprocess.run([*command, "--rows", str(args.rows)], capture_output=True, text=True, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        results.append(result)
        print(f"\n{part}: {result['total_self_cpu_s']} s of self CPU time in one step")
        print(f"{'op':<48} {'self s':>8} {'share':>7} {'calls':>7}")
        for row in result["top"]:
            print(f"{row['op'][:48]:<48} {row['self_cpu_s']:>8} {row['share']:>7.1%} {row['calls']:>7}")
    with open(args.json, "w") as handle:
        json.dump({"results": results}, handle, indent=2)
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
