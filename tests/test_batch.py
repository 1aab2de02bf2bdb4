"""`live batch`: jobs from a TOML file, failures, --keep-going, shards, and a bad file."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from helpers import interrupt_after, tree_digest
from livecli.batch import Shard, load_jobs
from livecli.errors import ConfigError

JOB = """
[[jobs]]
name = "{name}"
clip = "{clip}"
image = "ref.png"
prompt = "a jeep car is moving on the road"
object = "car"
replace = ["{replace}"]
"""
DEFAULTS = """
[defaults]
model = "tiny"
prepare = { frames = 4, size = 64 }
train = { steps = 2 }
edit = { steps = 3 }
"""


@pytest.fixture
def jobs_file(clip, image, tmp_path) -> Path:
    """Three jobs on the tiny model; the second one's clip is not a video."""
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    path = tmp_path / "jobs.toml"
    path.write_text(
        DEFAULTS
        + JOB.format(name="first", clip="clip.mp4", replace="car=<tok>")
        + JOB.format(name="broken", clip="broken.mp4", replace="car=<tok>")
        + JOB.format(name="third", clip="clip.mp4", replace="car=<tok>")
    )
    return path


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_keep_going_finishes_the_other_jobs_and_exits_non_zero(cli, jobs_file, tmp_path):
    result = cli("batch", jobs_file, "--keep-going", "--json")
    assert result.code == 1
    reports = json_lines(result.out)
    assert [(r["job"], r["name"], r["status"]) for r in reports] == [
        (1, "first", "done"),
        (2, "broken", "failed"),
        (3, "third", "done"),
    ]
    assert "broken.mp4 is not a video" in reports[1]["error"] and reports[1]["hint"]
    assert "error: job 2 (broken) failed" in result.err
    for report in (reports[0], reports[2]):
        assert Path(report["paths"]["video"]).is_file() and Path(report["paths"]["metrics"]).is_file()
        assert (
            set(report["metrics"]) == {"edit", "source"}
            and report["metrics"]["edit"]["reference_similarity"] is not None
        )
    assert Path(reports[0]["paths"]["project"]) == tmp_path / "first.live"
    assert not (tmp_path / "broken.live").exists()  # a failed first stage leaves no project behind

    before = tree_digest(tmp_path / "first.live")
    again = cli("batch", jobs_file, "--keep-going", "--json")
    assert [r["status"] for r in json_lines(again.out)] == ["up to date", "failed", "up to date"]
    assert tree_digest(tmp_path / "first.live") == before


def test_without_keep_going_the_batch_stops_at_the_failure(cli, jobs_file, tmp_path):
    result = cli("batch", jobs_file)
    assert result.code == 1
    assert "1 job not run after a failure (pass --keep-going to go on)" in result.err
    assert (tmp_path / "first.live").is_dir() and not (tmp_path / "third.live").exists()
    assert "first" in result.out and "failed" in result.out  # the summary table


def test_shards_cover_every_job_exactly_once(cli, jobs_file):
    seen = []
    for shard in ("1/2", "2/2"):
        result = cli("batch", jobs_file, "--shard", shard, "--keep-going", "--json")
        seen += [r["job"] for r in json_lines(result.out)]
    assert sorted(seen) == [1, 2, 3]
    assert [p for p in range(1, 8) if Shard(2, 3).takes(p)] == [2, 5]


def test_a_dry_run_lists_the_shards_jobs_and_runs_nothing(cli, jobs_file, tmp_path):
    listed = json_lines(cli("batch", jobs_file, "--shard", "1/2", "--dry-run", "--json").out)
    assert [(j["job"], j["name"]) for j in listed] == [(1, "first"), (3, "third")]
    assert listed[0]["project"] == str(tmp_path / "first.live")
    table = cli("batch", jobs_file, "--dry-run")
    assert table.code == 0 and "broken.live" in table.out
    assert not any(tmp_path.glob("*.live"))


@pytest.mark.parametrize(
    ("shard", "message"),
    [
        ("2", "is not I/N"),
        ("a/b", "is not I/N"),
        ("0/2", "between 1 and N"),
        ("3/2", "between 1 and N"),
        ("1/0", "between 1 and N"),
    ],
)
def test_a_malformed_shard_is_refused(cli, jobs_file, shard, message):
    result = cli("batch", jobs_file, "--shard", shard)
    assert result.code == 1 and message in result.error_lines[0] and "count from 1" in result.err


def test_a_missing_field_is_reported_before_any_job_runs(cli, jobs_file, tmp_path):
    text = (
        jobs_file.read_text()
        + '\n[[jobs]]\nname = "fourth"\nclip = "clip.mp4"\nimage = "ref.png"\nobject = "car"\nreplace = "car=<tok>"\n'
    )
    jobs_file.write_text(text)
    result = cli("batch", jobs_file, "--keep-going")
    assert result.code == 1
    assert result.error_lines == ["error: job 4 (fourth) has no `prompt`"]
    assert not (tmp_path / "first.live").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("train = { stepz = 3 }", "job 1 (first): `train` has no setting `stepz`"),
        ('train = { lr = "3" }', "job 1 (first): `train.lr` has the wrong type ('3')"),
        ('train = { steps = "many" }', "job 1 (first): `train.steps` must be a number or 'auto', got 'many'"),
        ("edit = { guidance = -1.0 }", "job 1 (first): `edit.guidance` must be 0 or more"),
        ("edit = { guidance = inf }", "job 1 (first): `edit.guidance = inf` is not a finite number"),
        ("train = { lr = nan }", "job 1 (first): `train.lr = nan` is not a finite number"),
        ("edit = { seed = -9223372036854775808 }", "job 1 (first): `edit.seed` is out of range"),
        ('prepare = { crop = "round" }', "job 1 (first): `prepare.crop = 'round'` is not one of none, square"),
        ('device = "tpu"', "job 1 (first): `device = 'tpu'` is not one of auto, cpu, cuda, mps"),
        ('colour = "red"', "job 1 (first): unknown key `colour`"),
        ('prepare = { prompt = "x" }', "job 1 (first): `prepare.prompt` belongs at the job's top level"),
        ('edit = { keep = "bus" }', "job 1 (first): `edit.keep`: 'bus' not in the source prompt"),
        ('project = "a\\u0000b.live"', "job 1 (first): `project` 'a\\x00b.live' holds a control character"),
        ('model = "tiny\\n"', "job 1 (first): `model` 'tiny\\n' holds a control character"),
    ],
)
def test_bad_settings_name_the_job_and_the_setting_in_the_files_words(tmp_path, clip, image, extra, message):
    path = tmp_path / "jobs.toml"
    path.write_text(JOB.format(name="first", clip="clip.mp4", replace="car=<tok>") + extra + "\n")
    with pytest.raises(ConfigError) as caught:
        load_jobs(path)
    assert message in caught.value.message


def test_jobs_read_defaults_aliases_and_paths_relative_to_the_file(tmp_path, clip, image, monkeypatch):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    path = tmp_path / "jobs.toml"
    path.write_text(
        DEFAULTS
        + JOB.format(name="first", clip="clip.mp4", replace="car=<tok>").replace("replace =", "replacements =")
        + 'train = { lambda = 0.5, "ti-lr" = 0.01 }\neval = false\n'
    )
    (job,) = load_jobs(path)
    assert job.clip == tmp_path / "clip.mp4" and job.project == tmp_path / "first.live"
    (tmp_path / "models" / "clip").mkdir(parents=True)
    path.write_text(path.read_text().replace("eval = false", 'eval = { clip_model = "models/clip" }'))
    (local,) = load_jobs(path)
    assert local.eval.clip_model == str(tmp_path / "models" / "clip")
    assert job.model.model == "tiny" and job.prepare.frames == 4 and job.train.steps == 2
    assert job.train.text_weight == 0.5 and job.train.ti_lr == 0.01 and job.edit.replace == ("car=<tok>",)
    assert job.eval is None


def test_a_replacement_of_a_word_not_in_the_prompt_is_refused_before_any_job_runs(cli, tmp_path, clip, image):
    path = tmp_path / "jobs.toml"
    path.write_text(
        DEFAULTS
        + JOB.format(name="first", clip="clip.mp4", replace="car=<tok>")
        + JOB.format(name="second", clip="clip.mp4", replace="dog=<tok>")
    )
    result = cli("batch", path)
    assert result.code == 1 and result.error_lines == [
        "error: job 2 (second): `replace = \"dog=<tok>\"`: 'dog' is not a word of the prompt 'a jeep car is moving on "
        "the road'"
    ]
    assert not (tmp_path / "first.live").exists()


def test_two_jobs_writing_one_project_are_refused(tmp_path, clip, image):
    path = tmp_path / "jobs.toml"
    path.write_text(JOB.format(name="same", clip="clip.mp4", replace="car=<tok>") * 2)
    with pytest.raises(ConfigError, match="jobs 1 and 2 both write"):
        load_jobs(path)


def test_a_missing_or_broken_jobs_file(cli, tmp_path):
    assert "jobs file nothere.toml does not exist" in cli("batch", "nothere.toml").error_lines[0]
    (tmp_path / "bad.toml").write_text("[[jobs]\n")
    assert "is not valid TOML" in cli("batch", tmp_path / "bad.toml").error_lines[0]
    (tmp_path / "empty.toml").write_text("")
    assert "has no jobs" in cli("batch", tmp_path / "empty.toml").error_lines[0]


def test_ctrl_c_stops_the_whole_batch(cli, jobs_file, monkeypatch, tmp_path):
    jobs_file.write_text(jobs_file.read_text().replace("train = { steps = 2 }", "train = { steps = 6 }"))
    interrupt_after(monkeypatch, 3)
    result = cli("batch", jobs_file, "--keep-going", "--json")
    assert result.code == 130 and "interrupted" in result.err
    (stopped,) = json_lines(result.out)  # the stopped job says so (a script reads why); none was reported failed
    assert stopped["job"] == 1 and stopped["status"] == "stopped" and stopped["metrics"] is None
    assert "checkpoint saved at step 3" in stopped["error"]
    assert not (tmp_path / "third.live").exists()
    again = cli("batch", jobs_file, "--keep-going", "--json")  # resumes the first job's training
    assert [r["status"] for r in json_lines(again.out)] == ["done", "failed", "done"]


@pytest.mark.parametrize(
    ("name", "shown"),
    [("a\\u0000b", "'a\\x00b'"), ("dog\\n", "'dog\\n'"), ("d" * 300, f"'{'d' * 40}…'"), ("dog ", "'dog '")],
)
def test_a_job_name_no_one_could_type_is_refused_even_in_a_dry_run(cli, tmp_path, clip, image, name, shown):
    path = tmp_path / "jobs.toml"
    path.write_text(DEFAULTS + JOB.format(name=name, clip="clip.mp4", replace="car=<tok>"))
    result = cli("batch", path, "--dry-run")
    assert result.code == 1 and "Traceback" not in result.err
    assert result.error_lines == [f"error: job 1 ({shown}): `name` {shown} is not a plain folder name"], result.err
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".live"] == []


def test_the_guides_array_script_is_what_sbatch_writes(cli, tmp_path, clip, image, monkeypatch):
    """docs/guide.md shows the script `live batch --sbatch` writes for 8 jobs in /home/me/edits:
    the same script, so that the two cannot drift (the cluster tests submit such scripts)."""
    import shutil

    from helpers import tiny_jobs
    from livecli import __version__

    monkeypatch.setattr(shutil, "which", lambda name: "/home/me/venv/bin/live" if name == "live" else None)
    jobs = tiny_jobs(tmp_path / "jobs.toml", 8)
    options = ["--gres=gpu:1", "--cpus-per-task=4", "--mem=32G", "--time=12:00:00"]
    made = cli("batch", jobs, "--sbatch", tmp_path / "live.sbatch", *(f"--sbatch-option={o}" for o in options))
    assert made.code == 0, made.err
    assert made.out.strip() == f"sbatch {tmp_path / 'live.sbatch'}"
    written = (tmp_path / "live.sbatch").read_text().replace(str(tmp_path.resolve()), "/home/me/edits")
    written = written.replace(f"(live {__version__})", "(live 0.1.0)")
    guide = (Path(__file__).parent.parent / "docs" / "guide.md").read_text()
    shown = guide.split("For a jobs file of 8 jobs in `/home/me/edits`, `live.sbatch` is:\n\n```bash\n")[1]
    assert written == shown.split("```")[0]
    assert (tmp_path / "jobs.logs").is_dir() and os.access(tmp_path / "live.sbatch", os.X_OK)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--tasks", "3"), "--tasks, --sbatch-option and --sbatch-signal go with --sbatch"),
        (("--sbatch", "s.sh", "--shard", "1/2"), "--sbatch writes a script for every shard"),
        (("--sbatch", "s.sh", "--tasks", "9"), "--tasks 9: the file has 3 jobs"),
        (("--sbatch", "s.sh", "--sbatch-option=--time 1"), "is not one sbatch option"),
        (("--sbatch", "s.sh", "--sbatch-signal", "-1"), "is not a number of seconds"),
    ],
)
def test_bad_sbatch_flags_are_one_line_and_write_nothing(cli, jobs_file, tmp_path, args, message):
    result = cli("batch", jobs_file, *args)
    assert result.code == 1 and message in result.error_lines[0], result.err
    assert not (tmp_path / "s.sh").exists()


def test_status_says_what_each_job_is_across_tasks(cli, tmp_path, clip, image):
    from helpers import tiny_jobs

    jobs = tiny_jobs(tmp_path / "jobs.toml", 2, defaults="eval = false\n")
    before = {line["name"]: line["state"] for line in json_lines(cli("batch", jobs, "--status", "--json").out)}
    assert before == {"job1": "to do", "job2": "to do"}
    assert cli("batch", jobs, "--shard", "1/2").code == 0
    results = tmp_path / "jobs.results"
    results.mkdir()
    (results / "task-2.jsonl").write_text('{"job": 2, "status": "failed", "error": "the disk is full"}\n{"job": 2')
    after = {line["name"]: line for line in json_lines(cli("batch", jobs, "--status", "--json").out)}
    assert after["job1"]["state"] == "done" and after["job2"]["state"] == "failed"
    assert after["job2"]["note"] == "the disk is full"  # the cut last line is passed over
    (tmp_path / "job2.live").mkdir()
    (tmp_path / "job2.live" / ".lock").write_text(f"{os.getpid()} {socket.gethostname()}\n")
    assert {line["name"]: line["state"] for line in json_lines(cli("batch", jobs, "--status", "--json").out)}[
        "job2"
    ] == "running"
