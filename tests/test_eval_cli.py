"""`live run`, `live eval` and `live demo` as users run them: outputs, reuse, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from helpers import table_rows, tree_digest
from livecli.contact_sheet import GAP, NUMBER_BAND

PROJECT = Path("clip.live")
RUN_ARGS = (
    "--prompt", "a jeep car is moving on the road", "--object", "car", "--replace", "car=<tok>",
    "--model", "tiny", "--frames", "4", "--size", "64", "--crop", "square", "--train-steps", "2", "--edit-steps", "4",
)  # fmt: skip
EVAL_OUTPUTS = {"metrics.json", "report.md", "contact_sheet.png", "record.toml"}


@pytest.fixture
def ran(cli, clip, image):
    result = cli("run", clip, image, *RUN_ARGS)
    assert result.code == 0, result.err
    return result


def test_run_makes_every_stage_and_again_redoes_nothing(cli, clip, image, ran):
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


def test_metrics_json_report_and_contact_sheet(ran):
    folder = PROJECT / "eval" / "car-tok"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["schema"] == 2 and metrics["edit"] == "car-tok" and metrics["frames"] == 4
    # Nothing names the reference's object (no --init-word, no --reference-prompt), and the source's word would
    # score a failed edit as a success: no text, and the tiny CLIP is random anyway.
    assert metrics["text"] is None and "pass --text" in metrics["text_from"]
    assert metrics["clip_score_note"] == "n/a (random CLIP)"
    assert metrics["rows"]["edit"]["clip_score"] is None and metrics["rows"]["source"]["clip_score"] is None
    assert (
        metrics["settings"]["eval"]["clip_model"].startswith("tiny@")
        and metrics["settings"]["edit"]["guidance"] == 12.5
    )
    fields = {
        "clip_score",
        "consistency_consecutive",
        "consistency_all_pairs",
        "reference_similarity",
        "reference_similarity_crop",
        "background_psnr",
        "background_ssim",
        "object_match",
    }
    assert set(metrics["rows"]) == {"edit", "source"} and set(metrics["rows"]["edit"]) == fields
    assert metrics["rows"]["edit"]["object_match"] is None  # the judge reads only the shapes model's projects
    assert len(metrics["per_frame"]["edit"]["reference_similarity"]) == 4 and "clip_score" not in metrics["per_frame"]
    # The tiny model's blend mask covers every pixel at 64 px: no background to score.
    assert metrics["background_share"] == 0.0 and metrics["rows"]["edit"]["background_psnr"] is None

    report = (folder / "report.md").read_text()
    assert "| CLIP score | n/a (random CLIP) | n/a (random CLIP) |" in report
    assert "![contact sheet](contact_sheet.png)" in report
    with Image.open(folder / "contact_sheet.png") as sheet:
        assert sheet.height == (GAP + 64 + GAP) + NUMBER_BAND + 3 * (64 + GAP)  # source, edit, mask rows
        source_frame = Image.open(PROJECT / "prepare" / "frames" / "0002.png").convert("RGB")
        x, y = 64 + 2 * (64 + GAP), GAP + 64 + GAP + NUMBER_BAND
        assert sheet.convert("RGB").crop((x, y, x + 64, y + 64)).tobytes() == source_frame.tobytes()


def test_eval_picks_edits_compares_them_and_prints_json(cli, ran):
    assert cli("edit", "--replace", "car=<tok>", "--steps", "4", "--no-blend", "--name", "plain").code == 0
    several = cli("eval")
    assert several.code == 1
    assert several.error_lines == ["error: the project has several edits: car-tok, plain"] and "--all" in several.err
    missing = cli("eval", "--edit", "nope")
    assert missing.code == 1 and "no edit named 'nope'; the project has: car-tok, plain" in missing.error_lines[0]

    both = cli("eval", "--all")
    assert both.code == 0, both.err
    assert "eval: up to date" in both.err  # car-tok was scored by `live run`
    lines = both.out.splitlines()
    body = lines[next(i for i, line in enumerate(lines) if "──" in line) + 1 :]  # under the header's rule
    *rows, caption = [line for line in body if line.strip()]
    assert [line.split()[0] for line in rows] == ["car-tok", "source", "plain", "source"]
    assert caption.strip() == "CLIP n/a (random CLIP)" and all(line.split()[1] == "n/a" for line in rows)

    data = json.loads(cli("eval", "--edit", "plain", "--json").out)
    (plain,) = data["evaluations"]
    assert plain["skipped"] is True and plain["metrics"]["background_share"] is None
    with Image.open(PROJECT / "eval" / "plain" / "contact_sheet.png") as sheet:
        assert sheet.height == (GAP + 64 + GAP) + NUMBER_BAND + 2 * (64 + GAP)  # no mask row

    texted = cli("eval", "--edit", "plain", "--text", "a jeep bus", "--json")
    assert json.loads(texted.out)["evaluations"][0]["skipped"] is False
    assert json.loads((PROJECT / "eval" / "plain" / "metrics.json").read_text())["text"] == "a jeep bus"

    status = {s["stage"]: s["state"] for s in json.loads(cli("status", "--json").out)["stages"]}
    assert status["eval car-tok"] == status["eval plain"] == "done"


def test_eval_with_an_unreachable_clip_model_says_so_in_one_line(cli, ran):
    result = cli("eval", "--clip-model", "openai/clip-vit-large-patch14")
    assert result.code == 1 and "Traceback" not in result.err
    assert "CLIP model 'openai/clip-vit-large-patch14' is not in the Hugging Face cache" in result.error_lines[0]
    assert "--clip-model /path/to/clip-vit-large-patch14" in result.err
    folder = cli("eval", "--clip-model", "./no/such/clip")
    assert folder.code == 1 and "CLIP model ./no/such/clip not found" in folder.error_lines[0]


def test_eval_bad_input(cli, clip, image, tmp_path):
    assert "no live project" in cli("eval").error_lines[0]
    assert cli("prepare", clip, image, *RUN_ARGS[:4], "--model", "tiny", "--size", "64").code == 0
    nothing = cli("eval")
    assert nothing.code == 1 and "has no edit to evaluate" in nothing.error_lines[0] and "live edit" in nothing.err
    both = cli("eval", "--all", "--edit", "x")
    assert both.code == 1 and "--edit and --all contradict" in both.error_lines[0]
    assert "--mask-margin must be between 0 and 64" in cli("eval", "--mask-margin", "-1").error_lines[0]


def test_run_checks_the_replacement_before_training(cli, clip, image):
    args = [a if a != "car=<tok>" else "bus=<tok>" for a in RUN_ARGS]
    result = cli("run", clip, image, *args)
    assert result.code == 1 and "'bus' is not a word of the prompt" in result.error_lines[0]
    assert not PROJECT.exists()


def test_run_errors_name_its_own_flags(cli, clip, image):
    """`run` spells the train and edit step counts --train-steps and --edit-steps: its errors too."""
    train = cli("run", clip, image, *RUN_ARGS, "--train-steps", "0")
    assert train.error_lines[0] == "error: --train-steps must be at least 1, got 0"
    edit = cli("run", clip, image, *RUN_ARGS, "--edit-steps", "5000")
    assert edit.error_lines[0].startswith("error: --edit-steps must be between 1 and 1000")
    assert not PROJECT.exists()


def test_run_and_eval_help(cli):
    run = cli("run", "--help").out
    for flag in (
        "--replace",
        "--train-steps",
        "--edit-steps",
        "--lr",
        "--guidance",
        "--keep",
        "--blend",
        "--clip-model",
        "--no-eval",
        "--json",
        "Examples:",
    ):
        assert flag in run, flag
    evaluation = cli("eval", "--help").out
    for flag in (
        "--edit",
        "--all",
        "--clip-model",
        "--text",
        "--mask-margin",
        "--json",
        "openai/clip-vit-large-patch14",
        "Examples:",
    ):
        assert flag in evaluation, flag


def test_demo_runs_every_stage_and_a_second_run_redoes_nothing(cli, tmp_path):
    """On the tiny model (the suite's): the shapes demo's clip, reference, truth and every stage."""
    result = cli("demo", "--out", tmp_path / "demo", "--model", "tiny", "--train-steps", "20")
    assert result.code == 0, result.err
    project = tmp_path / "demo" / "demo.live"
    assert len(list((tmp_path / "demo" / "clip").iterdir())) == len(list((tmp_path / "demo" / "truth").iterdir())) == 8
    assert (project / "edits" / "cross-tok" / "edit.mp4").is_file()
    assert (project / "eval" / "cross-tok" / "metrics.json").is_file() and (
        project / "eval" / "cross-tok" / "contact_sheet.png"
    ).is_file()
    assert "train: 20 steps" in result.err and "edit: 'a <@#$> on a dotted red background'" in result.err
    assert "metrics: " in result.out and "tiny model is random" in result.err and "green star" in result.err
    before = tree_digest(project)
    again = cli("demo", "--out", tmp_path / "demo", "--model", "tiny", "--train-steps", "20")
    assert again.code == 0
    for stage in ("prepare", "train", "invert", "edit", "eval"):
        assert f"{stage}: up to date" in again.err
    assert tree_digest(project) == before
    assert cli("demo", "--model", "sd").error_lines == ["error: --model 'sd': the demo runs on tiny or shapes"]
    contradicted = cli("demo", "--model", "tiny", "--preset", "paper", "--train-steps", "5", "--out", tmp_path / "p")
    assert contradicted.error_lines == ["error: --train-steps 5 contradicts --preset paper (the paper's: 500)"]
    assert not (tmp_path / "p").exists()  # checked before anything is written


def test_shell_completion_offers_commands_and_the_projects_edits(ran, tmp_path):
    import os
    import subprocess
    import sys

    live = str(Path(sys.executable).with_name("live"))
    script = subprocess.run(
        [live, "--show-completion", "bash"], capture_output=True, text=True, env={**os.environ, "SHELL": "/bin/bash"}
    )
    assert script.returncode == 0 and "_live_completion" in script.stdout

    def complete(words: str) -> list[str]:
        env = {
            **os.environ,
            "_LIVE_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
        }
        return subprocess.run([live], capture_output=True, text=True, env=env, cwd=tmp_path).stdout.split()

    assert complete("live ba") == ["batch"]
    assert complete("live eval --edit ") == ["car-tok"]


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


def test_an_edit_of_other_frames_than_the_prepared_ones_is_refused(cli, clip, image, ran):
    assert (
        cli(
            "prepare",
            clip,
            image,
            *RUN_ARGS[:4],
            "--model",
            "tiny",
            "--size",
            "64",
            "--crop",
            "square",
            "--frames",
            "3",
        ).code
        == 0
    )
    result = cli("eval", "--force")
    assert result.code == 1
    assert result.error_lines == ["error: edit 'car-tok' has 4 frames of 64 px, the prepared clip 3 of 64 px"]
    assert "live edit --name car-tok --force" in result.err
