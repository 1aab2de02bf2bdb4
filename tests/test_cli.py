"""What users see: help, version, status, demo, errors and the debug switch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import PREPARE_ARGS, unwrapped
from livecli import __version__


def test_version_from_the_console_script_and_python_m():
    console_script = Path(sys.executable).with_name("live")  # installed beside this Python
    for command in ([str(console_script), "--version"], [sys.executable, "-m", "livecli", "--version"]):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"live {__version__}"


def test_top_level_help_lists_the_commands(cli):
    result = cli("--help")
    assert result.code == 0
    for command in ("prepare", "train", "invert", "edit", "eval", "status", "run", "batch", "demo"):
        assert command in result.out


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (
            "prepare",
            [
                "--prompt",
                "--object",
                "--project",
                "--model",
                "--frames",
                "--size",
                "--stride",
                "--start",
                "--duration",
                "--max-frames",
                "--crop",
                "--device",
                "--dtype",
                "--force",
                "Examples:",
                "model's multiple (64 px for SD)",
                "[default: all]",
                "[default: 240]",
                "[default: CompVis/stable-diffusion-v1-4]",
                "[default: auto]",
            ],
        ),
        (
            "train",
            [
                "--prompt",
                "--object",
                "--project",
                "--model",
                "--steps",
                "--lr",
                "--ti-lr",
                "--lambda",
                "--token",
                "--seed",
                "--checkpoint-every",
                "--mixed-precision",
                "--gradient-checkpointing",
                "--window",
                "--force",
                "Examples:",
                "[default: 500]",
                "[default: 3e-05]",
                "[default: 0.005]",
                "[default: <@#$>]",
                "[default: 33]",
                "resumes",
            ],
        ),
        ("status", ["--project", "--json", "Examples:"]),
        ("demo", ["--out", "--model", "--train-steps", "shapes", "truth/", "Examples:"]),
        ("batch", ["JOBS.toml", "[defaults]", "[[jobs]]", "--shard", "--keep-going", "--json", "SLURM", "Examples:"]),
    ],
)
def test_command_help_shows_every_flag_and_examples(cli, command, expected):
    result = cli(command, "--help")
    assert result.code == 0
    words = unwrapped(result.out)
    for text in expected:
        assert text in words, text


def test_a_usage_error_exits_2_without_traceback(cli, clip, image):
    result = cli("prepare", clip, image)
    assert result.code == 2
    assert "--prompt" in result.err and "Traceback" not in result.err


def test_status_table_and_json(cli, clip, image):
    assert cli("prepare", clip, image, *PREPARE_ARGS).code == 0
    table = cli("status")
    assert table.code == 0
    assert "prepare" in table.out and "done" in table.out
    header = next(line for line in table.out.splitlines() if "stage" in line)
    assert [cell.strip() for cell in header.strip("┃ ").split("┃")] == [
        "stage",
        "state",
        "size",
        "took",
        "finished",
    ]  # no empty note column

    result = cli("status", "--json")
    data = json.loads(result.out)
    assert data["project"].endswith("clip.live")
    stage, train, invert, edit, evaluation = data["stages"]
    assert train["stage"] == "train" and train["state"] == "missing"
    assert (invert["stage"], invert["state"], edit["stage"], edit["state"]) == ("invert", "missing", "edit", "missing")
    assert (evaluation["stage"], evaluation["state"]) == ("eval", "missing")
    assert stage["stage"] == "prepare" and stage["state"] == "done" and stage["bytes"] > 0

    clip.write_bytes(clip.read_bytes() + b"\0")  # the source changed under the project
    stage, *_ = json.loads(cli("status", "--json", "-p", "clip.live").out)["stages"]
    assert stage["state"] == "stale" and "clip.mp4 changed" in stage["reason"]


def test_status_without_a_project_names_the_fix(cli, tmp_path):
    result = cli("status")
    assert result.code == 1
    assert result.error_lines == ["error: no live project in the current directory"]
    assert "live prepare" in result.err
    Path("a.live").mkdir()
    Path("a.live/live.toml").write_text("schema = 1\n")
    Path("b.live").mkdir()
    Path("b.live/live.toml").write_text("schema = 1\n")
    assert cli("status").error_lines == ["error: several live projects here: a.live, b.live"]
    assert cli("status", "-p", tmp_path / "c.live").error_lines[0].startswith("error: no live project at")


def test_live_debug_shows_the_traceback(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("LIVE_DEBUG", "1")
    result = cli("status", "-p", tmp_path / "none.live")
    assert result.code == 1 and "Traceback" in result.err and "error: no live project" in result.err


def test_user_config_supplies_the_default_model(cli, clip, image, monkeypatch, tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    (config / "config.toml").write_text('model = "tiny"\ndevice = "cpu"\n')
    monkeypatch.setenv("LIVE_CONFIG_DIR", str(config))
    args = [a for a in PREPARE_ARGS]
    del args[args.index("--model") : args.index("--model") + 2]
    result = cli("prepare", clip, image, *args)
    assert result.code == 0, result.err
    (config / "config.toml").write_text("model = [broken")
    result = cli("prepare", clip, image, *args)
    assert result.code == 1 and "config.toml cannot be read" in result.error_lines[0]


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


def test_shell_completion_offers_commands_and_the_projects_edits(ran, tmp_path):
    import os
    import shlex
    import subprocess
    import sys

    live = str(Path(sys.executable).with_name("live"))
    # Typed in a bash prompt: Typer finds the shell among the command's parents (shellingham),
    # so the test has a bash above `live` (`; exit` keeps bash from exec-ing it away).
    script = subprocess.run(
        ["bash", "-c", f"{shlex.quote(live)} --show-completion; exit $?"], capture_output=True, text=True
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


def test_completing_and_asking_for_help_do_not_wait_for_torch(ran):
    """A tab press or `--help` imports no torch (seconds on a CPU): only the catalogue and the store."""
    import subprocess
    import sys

    probe = (
        "import contextlib, io, sys\n"
        "from livecli.cli import _edit_names, main\n"
        "names = _edit_names()\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['run', '--help'])\n"
        "print(names, 'torch' in sys.modules)\n"
    )
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=Path.cwd())
    assert found.stdout.split() == ["['car-tok']", "False"], found.stderr
