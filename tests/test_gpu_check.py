"""bench/gpu_check.py, the check that a lent GPU runs first, kept working on the CPU at a
tiny size: every field of its JSON filled from the real stages, and a spent budget
stopping it cleanly with what it has written."""

from __future__ import annotations

import json

from bench import gpu_check


def test_the_gpu_check_writes_every_field_at_a_tiny_size(tmp_path):
    """One clip of 10 frames (two windows of 8): prepare, train, invert and edit run, and the
    JSON holds each stage's seconds, per-step seconds, the store, and the projection."""
    out = tmp_path / "check.json"
    args = ["--device", "cpu", "--tiny", "--frames", "10", "--train-steps", "2", "--long-steps", "2", "--steps", "4"]
    args += ["--source-branch", "inversion"]
    report = gpu_check.main([*args, "--json", str(out), "--work", str(tmp_path / "work"), "--budget-s", "120"])
    assert json.loads(out.read_text()) == report and report["stopped"] is None
    (run,) = report["runs"]
    assert (run["frames"], run["size"], run["ddim_steps"], run["train_steps"]) == (10, 64, 2, 2)
    stages = run["stages"]
    assert set(stages) == {"prepare", "train", "invert", "edit", "invert+edit"}
    for name in ("prepare", "train", "invert", "edit"):
        assert stages[name]["seconds"] > 0
    for name in ("train", "invert", "edit"):
        assert 0 < stages[name]["seconds_per_step"] < stages[name]["seconds"]
    assert stages["train"]["mixed_precision"] == "no" and stages["train"]["gradient_checkpointing"] in ("on", "off")
    assert stages["edit"]["source_branch"] == "inversion"
    assert run["store_bytes"] > 0 and stages["invert+edit"]["peak_gpu_mb"] is None  # no GPU here
    # 500 training steps and 4 DDIM steps cost more than the 2 and 2 run here.
    spent = sum(stages[name]["seconds"] for name in ("prepare", "train", "invert", "edit"))
    assert run["projected_first_edit_seconds"] > spent
    assert report["environment"]["device"].startswith("cpu") and report["seconds"] > 0


def test_a_spent_budget_stops_it_cleanly_with_what_it_has(tmp_path):
    out = tmp_path / "check.json"
    args = ["--device", "cpu", "--tiny", "--frames", "10", "--budget-s", "0.2", "--work", str(tmp_path / "work")]
    report = gpu_check.main([*args, "--json", str(out)])
    assert report["stopped"].startswith("--budget-s 0.2 spent") and report["seconds"] < 5
    assert json.loads(out.read_text())["stopped"] == report["stopped"]
