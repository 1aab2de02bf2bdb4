"""ui.py without a browser: the commands the form makes, the worker's one run at a time and
its events, and `live ui` without Gradio. The app in a browser is tests/browser/test_ui_app.py."""

from __future__ import annotations

import sys
from pathlib import Path

from livecli import ui

FORM = {
    "train.prompt": "a jeep car is moving on the road",
    "train.object": "car",
    "train.model": "tiny",
    "train.preset": "",
    "train.frames": "4",
    "train.size": "64",
    "train.steps": "500",  # the default: left to the command
    "edit.keep": "",
    "edit.guidance": "7.5",
    "edit.steps": "50",
    "eval.text": "",
}


def test_the_form_gives_the_command_the_flags_it_changed_and_nothing_else():
    project = Path("here/clip.live")
    assert ui.train_argv(project, "clip.mp4", ["a.png", "b.png"], "", FORM) == [
        "train", "clip.mp4", "a.png", "b.png", "--prompt", "a jeep car is moving on the road", "--object", "car",
        "--model", "tiny", "--frames", "4", "--size", "64", "-p", "here/clip.live",
    ]  # fmt: skip
    with_mask = ui.train_argv(project, "clip.mp4", ["a.png"], "mask.png", {**FORM, "train.preset": "paper"})
    assert with_mask[with_mask.index("--mask") + 1] == "mask.png" and "--preset" in with_mask
    assert ui.edit_argv(project, "car=<tok>\nroad=snow", "", FORM) == [
        "edit", "--replace", "car=<tok>", "--replace", "road=snow", "--guidance", "7.5", "-p", "here/clip.live",
    ]  # fmt: skip
    assert ui.edit_argv(project, "car=<tok>", "soft", FORM)[3:5] == ["--name", "soft"]
    assert ui.eval_argv(project, "soft", {**FORM, "eval.text": "a red car"}) == [
        "eval", "-p", "here/clip.live", "--edit", "soft", "--text", "a red car",
    ]  # fmt: skip


def test_the_project_is_a_plain_name_in_the_folder(tmp_path):
    import pytest

    from livecli.errors import InputError

    assert ui.project_path(tmp_path, "clip") == ui.project_path(tmp_path, "clip.live") == tmp_path / "clip.live"
    for hostile in ("../x", "a/b", "", ".live", ".hidden", "a\nb", "/etc/passwd"):
        with pytest.raises(InputError, match="is not a plain folder name"):
            ui.project_path(tmp_path, hostile)


def test_every_form_field_is_a_config_field_with_its_help_and_default():
    from livecli.config import TrainConfig

    for item in (*ui.REQUIRED, *ui.OPTIONS, ui.REPLACE):
        assert item.help and item.flag.startswith("--")
    steps = next(item for item in ui.OPTIONS if item.key == "train.steps")
    assert steps.default == TrainConfig.steps and ui.shown_default(steps) == str(TrainConfig.steps)
    assert next(item for item in ui.OPTIONS if item.key == "train.preset").choices == ("paper",)


def test_the_steering_settings_reach_the_commands_the_form_runs(tmp_path):
    """The reference's mask (auto or none), the masks' region and its growth are in the form,
    and a value off its default becomes the command's flag."""
    keys = {item.key for item in ui.OPTIONS}
    assert {"train.reference_mask", "edit.mask_region", "edit.mask_grow"} <= keys
    values = {"train.reference_mask": "none", "edit.mask_region": "hull", "edit.mask_grow": "0.5"}
    train = ui.train_argv(tmp_path / "p.live", "clip.mp4", ["ref.png"], "", values)
    assert train[train.index("--reference-mask") + 1] == "none"
    edit = ui.edit_argv(tmp_path / "p.live", "car=<tok>", "", values)
    assert edit[edit.index("--mask-region") + 1] == "hull" and edit[edit.index("--mask-grow") + 1] == "0.5"
    defaults = {"train.reference_mask": "auto", "edit.mask_region": "box", "edit.mask_grow": "0.25"}
    assert "--reference-mask" not in ui.train_argv(tmp_path / "p.live", "clip.mp4", ["ref.png"], "", defaults)


def test_the_worker_runs_live_and_reads_its_lines_and_exit_code(tmp_path):
    worker = ui.Worker(tmp_path)
    events = list(worker.run(["status", "-p", "nowhere.live"]))
    assert events[-1] == {"exit": 1}
    assert any(event.get("line", "").startswith("error: ") for event in events), events


def test_a_second_run_while_one_is_going_is_refused_in_one_line(tmp_path):
    worker = ui.Worker(tmp_path)
    going = worker.run([sys.executable, "--version"])  # never started: holds the worker below
    worker._one.acquire()
    worker.what = "train clip.live"
    try:
        assert list(worker.run(["status"])) == [
            {"refused": "error: `live train clip.live` is running; wait for it to finish"}
        ]
    finally:
        worker._one.release()
        going.close()


def test_the_log_starts_with_the_command_as_a_shell_would_take_it():
    argv = ui.train_argv(Path("my clips/clip.live"), "clip.mp4", ["ref.png"], "", {**FORM, "train.steps": "2"})
    line = ui.command_line(argv)
    assert line.startswith("live train clip.mp4 ref.png --prompt 'a jeep car is moving on the road' ")
    assert line.endswith("--steps 2 -p 'my clips/clip.live'")


def test_progress_events_read_as_a_bar_with_the_time_left():
    event = ui._event('{"bar": "training", "completed": 3, "total": 12, "elapsed": 30.0, "eta": 90.0}')
    assert ui.progress_text(event) == "training: 3/12 (25 %, 1.5 min left)"
    assert ui._event("train: loading tiny") == {"line": "train: loading tiny"}
    assert ui._event("{not json") == {"line": "{not json"}


def test_live_ui_without_gradio_says_how_to_install_it(cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio raises ImportError
    result = cli("ui")
    assert result.code == 1 and "Traceback" not in result.err
    assert result.error_lines == ["error: `live ui` needs Gradio, which is not installed"]
    assert "pip install 'live[ui]'" in result.err
