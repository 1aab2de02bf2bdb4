"""A project an earlier `live` made stays up to date: the same command finds every stage
done and redoes nothing, so fingerprints and records keep their meaning across versions.

`data/made-by-0.1.0/` was made by live 0.1.0 (before the stage engine and the options made
from the configs) with the tiny model, on its four-frame clip and reference image:

    live run clip ref.png --prompt "a red car on the grass" --object car --model tiny -p project \\
        --size 64 --crop square --frames 3 --train-steps 2 --edit-steps 2 --replace 'car=<tok>' --keep grass
    live edit -p project --replace 'car=<tok>' --steps 2 --source-branch inversion --name fast
    live eval -p project --edit fast

(its training checkpoint left out, which a finished training does not need).

Since 0.1.0 a reference without a mask is masked automatically (`--reference-mask auto`, the
default): 0.1.0's training learnt the whole picture, which is `--reference-mask none` now, so
the same command names it; with the new default the training would be redone, and rightly.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from helpers import tree_digest
from livecli.store import read_toml, write_toml

MADE_BY_0_1_0 = Path(__file__).parent / "data" / "made-by-0.1.0"
RUN_ARGS = (
    "--prompt", "a red car on the grass", "--object", "car", "--model", "tiny", "--size", "64", "--crop", "square",
    "--frames", "3", "--train-steps", "2", "--edit-steps", "2", "--replace", "car=<tok>", "--keep", "grass",
    "--reference-mask", "none",
)  # fmt: skip


def test_a_project_made_by_live_0_1_0_is_up_to_date(cli, tmp_path):
    folder = Path(shutil.copytree(MADE_BY_0_1_0, tmp_path / "earlier"))
    project = folder / "project"
    manifest = read_toml(project / "live.toml")  # the sources where the user keeps them now
    manifest["sources"]["clip"]["path"] = str(folder / "clip")
    manifest["sources"]["image"]["path"] = str(folder / "ref.png")
    write_toml(project / "live.toml", manifest)
    before = tree_digest(project)

    ran = cli("run", folder / "clip", folder / "ref.png", *RUN_ARGS, "-p", project, "--json")
    assert ran.code == 0, ran.err
    stages = json.loads(ran.out)["stages"]
    assert [(s["stage"], s["skipped"]) for s in stages] == [
        ("prepare", True),
        ("train", True),
        ("invert", True),
        ("edit", True),
        ("eval", True),
    ]
    edited = cli("edit", "-p", project, "--replace", "car=<tok>", "--steps", "2", "--source-branch", "inversion")
    assert edited.code == 1 and "edit 'car-tok' exists with other settings" in edited.err  # the name is taken
    fast = cli(
        "edit",
        "-p",
        project,
        "--replace",
        "car=<tok>",
        "--steps",
        "2",
        "--source-branch",
        "inversion",
        "--name",
        "fast",
    )
    assert fast.code == 0 and "edit: up to date" in fast.err and "invert: up to date" in fast.err, fast.err
    scored = cli("eval", "-p", project, "--all", "--json")
    assert [e["skipped"] for e in json.loads(scored.out)["evaluations"]] == [True, True]
    status = json.loads(cli("status", "-p", project, "--json").out)
    assert {s["state"] for s in status["stages"]} == {"done"} and len(status["stages"]) == 7
    assert tree_digest(project) == before

    # Its store of the source's attention (every layer's) holds what an edit of fewer layers reads.
    args = ("--source-branch", "inversion", "--cross-replace-layers", "coarse", "--temporal-replace-layers", "coarse")
    compact = cli("edit", "-p", project, "--replace", "car=<tok>", "--steps", "2", *args, "--name", "compact")
    assert compact.code == 0 and "invert: up to date" in compact.err, compact.err
    assert read_toml(project / "edits/compact/record.toml")["settings"]["cross_replace_layers"] == "coarse"
