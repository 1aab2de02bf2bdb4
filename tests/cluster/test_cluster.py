"""`live batch` under a real SLURM (`nox -s cluster`): the array script `live batch
--sbatch` writes (docs/guide.md shows it: tests/test_batch.py holds the two together),
submitted to a controller and a node on this machine; shards, a shared jobs file, a time
limit and a requeue, a cancelled edit."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clips import write_clip, write_image
from helpers import tiny_jobs
from livecli.store import read_toml

pytestmark = pytest.mark.cluster

NO_EVAL = "eval = false\n"


def live(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "livecli", *args], cwd=cwd, capture_output=True, text=True)


def folder_with_jobs(root: Path, count: int, extra=lambda n: "") -> Path:
    """A folder with the clip, the image and a jobs file of `count` tiny jobs: its jobs file."""
    root.mkdir(parents=True, exist_ok=True)
    write_clip(root / "clip.mp4", frames=8)
    write_image(root / "ref.png")
    return tiny_jobs(root / "jobs.toml", count, extra, defaults=NO_EVAL)


def array_script(jobs: Path, *options: str) -> Path:
    """`live batch JOBS --sbatch` as a user runs it: the script it wrote."""
    script = jobs.with_name("live.sbatch")
    made = live("batch", jobs.name, "--sbatch", script.name, *options, cwd=jobs.parent)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == f"sbatch {script.name}", made.stdout
    return script


def lines_by_job(jobs: Path) -> dict[int, list[dict]]:
    """Every JSON line the array's tasks wrote, by job number (each must parse)."""
    said: dict[int, list[dict]] = {}
    for path in sorted(jobs.with_suffix(".results").glob("task-*.jsonl")):
        for text in path.read_text().splitlines():
            line = json.loads(text)
            said.setdefault(line["job"], []).append(line)
    return said


def status_of(jobs: Path) -> dict[str, str]:
    shown = live("batch", jobs.name, "--status", "--json", cwd=jobs.parent)
    assert shown.returncode == 0, shown.stderr
    return {line["name"]: line["state"] for line in map(json.loads, shown.stdout.splitlines())}


def project_states(project: Path) -> set[str]:
    shown = live("status", "-p", str(project), "--json", cwd=project.parent)
    assert shown.returncode == 0, shown.stderr
    return {row["state"] for row in json.loads(shown.stdout)["stages"] if row["stage"] != "eval"}


def test_an_array_of_three_shards_does_every_job_exactly_once(cluster, tmp_path):
    jobs = folder_with_jobs(tmp_path / "sharded", 6)
    script = array_script(jobs, "--tasks", "3")
    assert "#SBATCH --array=1-3" in script.read_text()
    states = cluster.wait(cluster.sbatch(script), timeout=240)
    assert states == ["COMPLETED"] * 3, states
    said = lines_by_job(jobs)
    assert sorted(said) == [1, 2, 3, 4, 5, 6]
    assert all([line["status"] for line in lines] == ["done"] for lines in said.values()), said
    assert status_of(jobs) == {f"job{n}": "done" for n in range(1, 7)}
    for n in range(1, 7):
        assert project_states(jobs.parent / f"job{n}.live") == {"done"}


def test_three_tasks_sharing_one_file_do_each_job_once(cluster, tmp_path):
    """Without --shard (the shared-file mode): every task walks the whole file; a job is
    done by one, and the others find it held (busy) or up to date."""
    jobs = folder_with_jobs(tmp_path / "shared", 4)
    script = array_script(jobs, "--tasks", "3")
    text = script.read_text()
    shared = script.with_name("shared.sbatch")
    shared.write_text(text.replace(' --shard "${SLURM_ARRAY_TASK_ID}/3"', ""))
    assert shared.read_text() != text
    states = cluster.wait(cluster.sbatch(shared), timeout=240)
    assert states == ["COMPLETED"] * 3, states
    said = lines_by_job(jobs)
    assert sorted(said) == [1, 2, 3, 4]
    for number, lines in said.items():
        statuses = [line["status"] for line in lines]
        assert statuses.count("done") == 1 and set(statuses) <= {"done", "up to date", "busy"}, (number, statuses)
    assert status_of(jobs) == {f"job{n}": "done" for n in range(1, 5)}


def test_a_time_limit_in_training_saves_a_checkpoint_and_a_requeue_finishes_it_bit_exact(cluster, tmp_path):
    # 1300 steps: 90–125 s of training at this machine's 0.07–0.095 s a step, past the
    # minute's limit and the up to 30 s the controller takes to enforce it.
    long = lambda n: "train = { steps = 1300 }\n"  # noqa: E731
    jobs = folder_with_jobs(tmp_path / "limited", 1, long)
    reference = folder_with_jobs(tmp_path / "reference", 1, long)
    uninterrupted = subprocess.Popen([sys.executable, "-m", "livecli", "batch", "jobs.toml"], cwd=reference.parent)
    # The time limit itself (a minute, SLURM's least; the controller enforces it within
    # 30 s), not the early signal: SIGTERM at the limit, SIGKILL KillWait later.
    script = array_script(jobs, "--sbatch-option=--time=1", "--sbatch-signal", "0")
    assert "--signal" not in script.read_text()
    job = cluster.sbatch(script)
    states = cluster.wait(job, timeout=150)
    assert states == ["TIMEOUT"], states
    checkpoint = tmp_path / "limited" / "job1.live" / "checkpoints" / "train" / "state.toml"
    assert checkpoint.is_file(), cluster.log("slurmd")[-1500:]
    stopped = lines_by_job(jobs)[1][-1]
    assert stopped["status"] == "stopped" and "checkpoint saved at step" in stopped["error"], stopped
    assert status_of(jobs)["job1"] == "stopped"
    step = int(stopped["error"].split("step ")[1].split()[0])
    assert 0 < step < 1300

    cluster.run("scontrol", "requeue", str(job))
    # The rest fits now, and it starts at once (a requeued job waits two minutes by default).
    cluster.run("scontrol", "update", f"JobId={job}", "TimeLimit=10", "StartTime=now")
    states = cluster.wait(job, timeout=180, until=lambda s: s == ["COMPLETED"])
    assert lines_by_job(jobs)[1][-1]["status"] == "done"
    assert uninterrupted.wait(timeout=180) == 0
    resumed, whole = tmp_path / "limited" / "job1.live" / "train", tmp_path / "reference" / "job1.live" / "train"
    for name in ("attention_deltas.safetensors", "token.safetensors", "latent_prompt.safetensors"):
        assert (resumed / name).read_bytes() == (whole / name).read_bytes(), name
    assert read_toml(resumed / "record.toml")["facts"]["resumed_from"] == step  # not trained afresh
    log = (jobs.with_suffix(".logs") / "task-1.log").read_text()  # appended: both runs' lines
    assert "DUE TO TIME LIMIT" in log and f"checkpoint saved at step {step} of 1300" in log, log[-2000:]


def test_a_cancelled_edit_leaves_nothing_half_written_and_a_rerun_finishes_it(cluster, tmp_path):
    jobs = folder_with_jobs(tmp_path / "cancelled", 1, lambda n: "edit = { steps = 60 }\n")  # about 6 s
    script = array_script(jobs)
    job = cluster.sbatch(script)
    project = tmp_path / "cancelled" / "job1.live"
    deadline = time.monotonic() + 120
    while not list((project / "invert").glob("*/record.toml")) and time.monotonic() < deadline:
        time.sleep(0.1)  # the edit samples right after its inversion is recorded
    time.sleep(0.5)
    assert cluster.states(job) == ["RUNNING"]
    cluster.run("scancel", str(job))
    cluster.wait(job, timeout=60)
    assert not (project / "edits" / "car-tok" / "record.toml").exists()
    assert status_of(jobs)["job1"] != "done"
    stopped = lines_by_job(jobs)[1][-1]
    assert stopped["status"] == "stopped", stopped  # SIGTERM: the edit stopped, said so, wrote nothing

    again = cluster.sbatch(script)
    assert cluster.wait(again, timeout=180) == ["COMPLETED"]
    assert status_of(jobs)["job1"] == "done"
    assert project_states(project) == {"done"}  # every output checked against its record
    shutil.rmtree(project / "edits" / "car-tok" / "frames")
    assert status_of(jobs)["job1"] != "done"  # the check can fail
