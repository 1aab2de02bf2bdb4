"""`live run` (pipeline.py): every stage in order, each skipped when up to date; its checks and its flags."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from helpers import RUN_ARGS, table_rows, tree_digest

PROJECT = Path("clip.live")
EVAL_OUTPUTS = {"metrics.json", "report.md", "contact_sheet.png", "record.toml"}


def test_run_makes_every_stage_and_again_redoes_nothing(cli, clip, image):
    ran = cli("run", clip, image, *RUN_ARGS)
    assert ran.code == 0, ran.err
    for stage in ("prepare", "train", "invert", "edit", "eval"):
        assert f"{stage}: " in ran.err
    assert "CLIP score n/a (random CLIP)" in ran.err  # never a random CLIP's 0.0
    assert EVAL_OUTPUTS == {p.name for p in (PROJECT / "eval" / "car-tok").iterdir()}
    assert (PROJECT / "edits" / "car-tok" / "edit.mp4").is_file()
    for line in (
        "video: clip.live/edits/car-tok/edit.mp4",
        "metrics: clip.live/eval/car-tok/metrics.json",
        "contact_sheet: clip.live/eval/car-tok/contact_sheet.png",
    ):
        assert line in ran.out
    summary = {row[0]: row[1] for row in table_rows(ran.out)}
    assert summary == dict.fromkeys(("prepare", "train", "invert", "edit", "eval"), "ran")

    before = tree_digest(PROJECT)
    again = cli("run", clip, image, *RUN_ARGS, "--json")
    assert again.code == 0, again.err
    outcome = json.loads(again.out)
    assert outcome["status"] == "up to date" and all(s["skipped"] for s in outcome["stages"])
    assert [s["stage"] for s in outcome["stages"]] == ["prepare", "train", "invert", "edit", "eval"]
    assert outcome["metrics"]["edit"]["reference_similarity"] is not None
    assert tree_digest(PROJECT) == before

    changed = cli("run", clip, image, *RUN_ARGS, "--guidance", "5", "--name", "soft", "--json")
    stages = {s["stage"]: s["skipped"] for s in json.loads(changed.out)["stages"]}
    assert stages == {"prepare": True, "train": True, "invert": True, "edit": False, "eval": False}


def test_run_checks_the_replacement_before_training(cli, clip, image):
    args = [a if a != "car=<tok>" else "bus=<tok>" for a in RUN_ARGS]
    result = cli("run", clip, image, *args)
    assert result.code == 1 and "'bus' is not a word of the prompt" in result.error_lines[0]
    assert not PROJECT.exists()
    overlap = cli("run", clip, image, *RUN_ARGS, "--overlap", "9")  # the edit's windows, against the training's
    assert (
        overlap.code == 1
        and overlap.error_lines[0] == "error: --overlap must be 0 or more and less than --window 8, got 9"
    )
    assert not PROJECT.exists()


def test_run_errors_name_its_own_flags(cli, clip, image):
    """`run` spells the train and edit step counts --train-steps and --edit-steps: its errors too."""
    train = cli("run", clip, image, *RUN_ARGS, "--train-steps", "0")
    assert train.error_lines[0] == "error: --train-steps must be at least 1, got 0"
    edit = cli("run", clip, image, *RUN_ARGS, "--edit-steps", "5000")
    assert edit.error_lines[0].startswith("error: --edit-steps must be between 1 and 1000")
    assert not PROJECT.exists()


def test_run_refuses_to_overwrite_an_edit_unless_forced(cli, clip, image, ran):
    refused = cli("run", clip, image, *RUN_ARGS, "--guidance", "5")
    assert (
        refused.code == 1
        and "edit 'car-tok' exists with other settings (guidance 12.5 -> 5.0)" in refused.error_lines[0]
    )
    forced = cli("run", clip, image, *RUN_ARGS, "--guidance", "5", "--force", "--json")
    assert forced.code == 0, forced.err
    stages = {s["stage"]: s["skipped"] for s in json.loads(forced.out)["stages"]}
    assert stages == {"prepare": True, "train": True, "invert": True, "edit": False, "eval": False}
    assert (
        json.loads((PROJECT / "eval" / "car-tok" / "metrics.json").read_text())["settings"]["edit"]["guidance"] == 5.0
    )


def test_a_v_prediction_model_shaped_as_sd2_runs_every_stage(cli, clip, image, tiny_sd, tmp_path):
    """Stable Diffusion 2.x: v-prediction, and the transformers' projections linear, not 1×1
    convolutions. The tiny model so configured goes through train, invert, edit and eval."""
    from diffusers import DDIMScheduler, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(tiny_sd.unet.config, use_linear_projection=True)
    scheduler = DDIMScheduler.from_config(tiny_sd.scheduler.config, prediction_type="v_prediction")
    folder = tmp_path / "sd2"
    type(tiny_sd)(**{**tiny_sd.components, "unet": unet, "scheduler": scheduler}).save_pretrained(folder)
    assert any(isinstance(module, torch.nn.Linear) for name, module in unet.named_modules() if name.endswith("proj_in"))
    args = list(RUN_ARGS)
    args[args.index("--model") + 1] = str(folder)
    result = cli("run", clip, image, *args, "--clip-model", "tiny")
    assert result.code == 0, result.err
    project = Path("clip.live")
    assert (project / "edits" / "car-tok" / "edit.mp4").is_file()
    assert json.loads((project / "eval" / "car-tok" / "metrics.json").read_text())
    assert json.loads((folder / "scheduler" / "scheduler_config.json").read_text())["prediction_type"] == "v_prediction"
