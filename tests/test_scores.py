"""The score catalogue: one entry makes a score that every view shows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from helpers import SMALL, copied_here
from livecli import scores


def brightness(frames, source) -> float:
    """The mean grey level of the frames, in [0, 1]: a score any test can compute itself."""
    return float(np.mean([np.asarray(frame.convert("L"), dtype=np.float64) for frame in frames]) / 255)


def test_a_score_added_to_the_catalogue_is_in_metrics_the_report_json_and_the_gallery(cli, made, monkeypatch):
    run = ("run", "clip.mp4", "ref.png", *SMALL, "--replace", "car=<tok>", "--train-steps", "2", "--edit-steps", "3")
    project = copied_here(made(*run, "--no-eval"))
    added = scores.Score("brightness", "mean brightness", "bright", measure=brightness)
    monkeypatch.setattr(scores, "SCORES", (*scores.SCORES, added))

    shown = cli("eval", "--json")
    assert shown.code == 0, shown.err
    folder = project / "eval" / "car-tok"
    metrics = json.loads((folder / "metrics.json").read_text())
    from PIL import Image

    frames = [Image.open(path) for path in sorted((project / "edits" / "car-tok" / "frames").glob("*.png"))]
    source = [Image.open(path) for path in sorted((project / "prepare" / "frames").glob("*.png"))]
    assert metrics["rows"]["edit"]["brightness"] == round(brightness(frames, source), 4)
    assert metrics["rows"]["source"]["brightness"] == round(brightness(source, source), 4)
    assert "| mean brightness |" in (folder / "report.md").read_text()
    assert json.loads(shown.out)["evaluations"][0]["metrics"]["rows"]["edit"]["brightness"] is not None
    assert "bright" in cli("eval").out  # the table's column: up to date, read back

    assert cli("gallery", ".", "--out", "site").code == 0
    page = Path("site/index.html").read_text()
    assert 'data-sort="brightness"' in page and "mean brightness" in page
