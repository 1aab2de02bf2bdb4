"""options.py: a command's options are made from the config fields, so that a new setting
is one field in config.py: `edit`, `run` and a jobs file get it with its help and default."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import pytest
import typer

import livecli.batch
import livecli.cli
import livecli.config
from helpers import unwrapped
from livecli.fields import setting


class Reached(Exception):
    """Raised by a stand-in for a stage: the command got this far, with these settings."""


def reached(seen: list, what):
    seen.append(what)
    raise Reached


@pytest.fixture
def edit_config_with_sharpness(monkeypatch):
    """EditConfig as if config.py gave it one more field, `sharpness`, and the modules that
    read the configs loaded again; as it was after the test."""

    @dataclass(frozen=True)
    class EditConfig(livecli.config.EditConfig):
        sharpness: float = field(default=0.5, metadata=setting("How sharp the edit is.", omit_default=True))

    monkeypatch.setattr(livecli.config, "EditConfig", EditConfig)
    for module in (livecli.batch, livecli.cli):
        importlib.reload(module)
    yield EditConfig
    monkeypatch.undo()
    for module in (livecli.batch, livecli.cli):
        importlib.reload(module)


def test_a_new_edit_field_reaches_edit_run_and_jobs_files(
    edit_config_with_sharpness, monkeypatch, tmp_path, clip, image
):
    from livecli import pipeline
    from livecli.stages import edit as edit_stage

    seen = []
    monkeypatch.setattr(edit_stage, "run", lambda project, config, *args, **kwargs: reached(seen, config))
    monkeypatch.setattr(pipeline, "run_job", lambda job, *args, **kwargs: reached(seen, job.edit))
    main = livecli.cli.main
    (tmp_path / "p.live").mkdir()
    (tmp_path / "p.live" / "live.toml").write_text('schema = 1\nprompt = "a car"\nobject = "car"\n[model]\n[sources]\n')

    with pytest.raises(Reached):
        main(["edit", "-p", str(tmp_path / "p.live"), "--replace", "car=<tok>", "--sharpness", "0.7"])
    run_args = [str(clip), str(image), "--prompt", "a car", "--object", "car", "--replace", "car=<tok>"]
    with pytest.raises(Reached):
        main(["run", *run_args, "--model", "tiny", "--sharpness", "0.8"])
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(
        '[[jobs]]\nclip = "clip.mp4"\nimage = "ref.png"\nprompt = "a car"\nobject = "car"\nreplace = "car=<tok>"\n'
        "edit = { sharpness = 0.9 }\n"
    )
    (job,) = livecli.batch.load_jobs(jobs)
    assert [config.sharpness for config in (*seen, job.edit)] == [0.7, 0.8, 0.9]
    assert all(isinstance(config, edit_config_with_sharpness) for config in (*seen, job.edit))
    assert seen[0].settings()["sharpness"] == 0.7  # and it is in the edit's fingerprint
    group = typer.main.get_command(livecli.cli.app)
    for command in ("edit", "run"):
        help_text = next(p.help for p in group.commands[command].params if p.name == "sharpness")
        assert unwrapped(help_text) == "How sharp the edit is. \\[default: 0.5]"


def test_run_names_the_two_step_counts_apart_and_shares_the_preset(monkeypatch, clip, image):
    from livecli import pipeline

    jobs = []
    monkeypatch.setattr(pipeline, "run_job", lambda job, *args, **kwargs: reached(jobs, job))
    args = [str(clip), str(image), "--prompt", "a car", "--object", "car", "--replace", "car=<tok>", "--model", "tiny"]
    with pytest.raises(Reached):
        livecli.cli.main(["run", *args, "--train-steps", "7", "--edit-steps", "9", "--edit-seed", "3"])
    assert (jobs[0].train.steps, jobs[0].edit.steps, jobs[0].edit.seed, jobs[0].train.seed) == (7, 9, 3, 33)
    with pytest.raises(Reached):
        livecli.cli.main(["run", *args, "--preset", "paper"])
    assert jobs[1].train.preset == jobs[1].edit.preset == "paper" and jobs[1].edit.blend_scale == "max"
    assert jobs[1].edit.window is None  # the edit follows the training's window
