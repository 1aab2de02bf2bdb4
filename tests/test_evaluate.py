"""`live eval` as users run it (stages/evaluate.py): metrics, report, contact sheet, reuse, bad input."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from helpers import RUN_ARGS
from livecli.contact_sheet import GAP, NUMBER_BAND

PROJECT = Path("clip.live")

EVAL_OUTPUTS = {"metrics.json", "report.md", "contact_sheet.png", "record.toml"}


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
        "warp_error",
        "object_match",
    }
    assert set(metrics["rows"]) == {"edit", "source"} and set(metrics["rows"]["edit"]) == fields
    assert metrics["rows"]["edit"]["object_match"] is None  # the judge reads only the shapes model's projects
    assert len(metrics["per_frame"]["edit"]["reference_similarity"]) == 4 and "clip_score" not in metrics["per_frame"]
    # Warp error along the source's own flow: the source's is the flow's residual, the baseline.
    assert len(metrics["per_frame"]["edit"]["warp_error"]) == 3
    assert 0 <= metrics["rows"]["source"]["warp_error"] < metrics["rows"]["edit"]["warp_error"]
    # The tiny model's blend mask covers every pixel at 64 px: no background to score.
    assert metrics["background_share"] == 0.0 and metrics["rows"]["edit"]["background_psnr"] is None

    report = (folder / "report.md").read_text()
    assert "| CLIP score | n/a (random CLIP) | n/a (random CLIP) |" in report
    assert "![contact sheet](contact_sheet.png)" in report and "| warp error (source flow) |" in report
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
