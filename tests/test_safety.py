"""Nothing lost, nothing misread: the lock, recovery from kills, verified reads, the
machine's faults in one line, resource checks, several batch workers, identical bytes."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import SMALL, live_at_once, tiny_jobs, tree_digest
from livecli.store import write_toml
from livecli.tensor_files import save_tensors

PROJECT = Path("clip.live")


# --------------------------------------------------------------------------- the lock


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "folder", "foreign"])
def test_a_lock_file_that_is_not_lives_is_refused_and_left_alone(cli, clip, image, tmp_path, kind):
    assert cli("prepare", clip, image, *SMALL).code == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    lock = PROJECT / ".lock"
    lock.unlink(missing_ok=True)
    if kind == "symlink":
        lock.symlink_to(Path("..") / victim.name)
    elif kind == "hardlink":
        os.link(victim, lock)
    elif kind == "folder":
        lock.mkdir()
    else:
        lock.write_text("my notes\n")
    result = cli("prepare", clip, image, *SMALL)
    assert (
        result.code == 1
        and "is not live's lock file" in result.error_lines[0]
        or ("is a symbolic link" in result.error_lines[0] or "is a folder" in result.error_lines[0])
    ), result.err
    assert "move it away" in result.err and "Traceback" not in result.err
    assert victim.read_text() == "precious\n"


def test_a_lock_left_by_a_killed_process_is_taken_over_with_a_message(cli, clip, image, monkeypatch):
    monkeypatch.setenv("LIVE_QUIET", "0")
    assert cli("prepare", clip, image, *SMALL).code == 0
    (PROJECT / ".lock").write_text("999999999\n")  # a pid no process has: SIGKILL leaves its pid behind
    result = cli("prepare", clip, image, *SMALL)
    assert result.code == 0, result.err
    assert "taking over the lock of process 999999999" in result.err
    assert (PROJECT / ".lock").read_text() == ""  # released cleanly this time


def test_a_killed_first_prepare_is_recovered_not_refused_forever(cli, clip, image, monkeypatch):
    monkeypatch.setenv("LIVE_QUIET", "0")
    PROJECT.mkdir()
    (PROJECT / ".lock").write_text("999999999\n")
    (PROJECT / ".prepare.incomplete" / "frames").mkdir(parents=True)
    (PROJECT / ".prepare.incomplete" / "frames" / "0000.png").write_bytes(b"half a png")
    result = cli("run", clip, image, *SMALL, "--replace", "car=<tok>", "--train-steps", "1", "--edit-steps", "2")
    assert result.code == 0, result.err
    assert "recovering what a killed first `live prepare` left behind" in result.err
    assert not (PROJECT / ".prepare.incomplete").exists()
    assert (PROJECT / "live.toml").is_file() and (PROJECT / "edits" / "car-tok" / "edit.mp4").is_file()


def test_a_foreign_folder_is_still_refused(cli, clip, image):
    PROJECT.mkdir()
    (PROJECT / "thesis.tex").write_text("mine")
    result = cli("prepare", clip, image, *SMALL)
    assert result.code == 1 and "exists and is not a live project" in result.error_lines[0]
    assert not (PROJECT / ".lock").exists()


def test_the_loser_of_two_first_runs_is_told_who_holds_the_folder(cli, clip, image):
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(PROJECT.resolve())], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        (PROJECT / ".prepare.incomplete").mkdir()  # as the winner's first prepare would have
        result = cli("prepare", clip, image, *SMALL)
        assert result.code == 1 and f"in use by another live process (pid {holder.pid})" in result.error_lines[0]
    finally:
        holder.kill()
        holder.wait()


def test_three_prepares_at_once_one_writes_and_the_others_refuse_in_one_line(cli, clip, image):
    command = ["prepare", str(clip), str(image), *SMALL]
    ended = live_at_once(command, command, command)
    made = [out for code, out, _ in ended if code == 0 and "up to date" not in out]
    busy = [err for code, _, err in ended if code == 1]
    assert len(made) == 1 and len(made) + len(busy) + sum("up to date" in out for _, out, _ in ended) == 3, ended
    for err in busy:
        assert "is in use by another live process" in err and "Traceback" not in err
        assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1
    assert stages_of(cli)["prepare"]["state"] == "done"
    again = cli(*command)
    assert again.code == 0 and "up to date" in again.out + again.err


@pytest.mark.parametrize("folder, command", [("edits", "edit"), ("checkpoints", "train")])
def test_a_symlinked_folder_of_the_project_is_refused_and_nothing_outside_changes(
    cli, edited, tmp_path, folder, command
):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / ".car-tok.incomplete").mkdir(parents=True)
    (elsewhere / "precious.txt").write_text("mine\n")
    if (PROJECT / folder).exists():
        shutil.rmtree(PROJECT / folder)
    (PROJECT / folder).symlink_to(elsewhere)
    before = tree_digest(elsewhere)
    args = ["--replace", "car=<tok>", "--force"] if command == "edit" else ["--steps", "3"]
    result = cli(command, *args)
    assert result.code == 1 and f"{folder} is a symbolic link" in result.error_lines[0], result.err
    assert "Traceback" not in result.err and (elsewhere / ".car-tok.incomplete").is_dir()
    assert tree_digest(elsewhere) == before


LOCK_HOLDER = """
import sys, time
from pathlib import Path
from livecli.store import Project
with Project(Path(sys.argv[1])).lock():
    print("locked", flush=True)
    time.sleep(60)
"""


# --------------------------------------------------------------------------- verified reads


def stages_of(cli) -> dict[str, dict]:
    return {s["stage"]: s for s in json.loads(cli("status", "--json").out)["stages"]}


def test_a_same_key_wrong_values_token_is_refused_by_edit_and_shown_stale(cli, edited):
    token_file = edited / "train" / "token.safetensors"
    from safetensors.torch import load_file

    ((key, vector),) = load_file(token_file).items()
    save_tensors(token_file, {key: torch.full_like(vector, 7.0)}, metadata={"format": "diffusers textual inversion"})
    before = tree_digest(edited / "edits")
    result = cli("edit", "--replace", "car=<tok>", "--name", "new")
    assert result.code == 1, result.err
    assert "train/token.safetensors differs from what its record says it wrote" in result.error_lines[0]
    assert "live train" in result.err and "Traceback" not in result.err
    assert tree_digest(edited / "edits") == before
    stages = stages_of(cli)
    assert stages["train"]["state"] == "stale" and "token.safetensors" in stages["train"]["reason"]
    assert stages["edit car-tok"]["state"] == "stale"
    remade = cli("train", "--steps", "2")  # the training's own settings: made again, and up to date after
    assert remade.code == 0, remade.err
    assert stages_of(cli)["train"]["state"] == "done"
    assert cli("edit", "--replace", "car=<tok>", "--steps", "3").code == 0


def test_a_truncated_latents_file_is_refused_in_one_line(cli, edited):
    latents = edited / "prepare" / "latents.safetensors"
    latents.write_bytes(latents.read_bytes()[:100])
    result = cli("edit", "--replace", "car=<tok>", "--name", "again", "--steps", "4")
    assert result.code == 1 and "prepare/latents.safetensors differs from" in result.error_lines[0], result.err
    assert "live prepare CLIP IMAGE" in result.err and "Traceback" not in result.err
    status = {s["stage"]: s for s in json.loads(cli("status", "--json").out)["stages"]}
    assert status["prepare"]["state"] == "stale" and "latents.safetensors" in status["prepare"]["reason"]


def _replace_output(folder: Path, name: str | None, content: bytes = b"", **facts) -> None:
    """Replace one output of a stage (`name`) and write its new digest, or `facts`, into the
    record, as a careful hand would: the record still vouches for what it lists."""
    from livecli.store import read_toml, sha256_file

    record = read_toml(folder / "record.toml")
    if name is not None:
        (folder / name).write_bytes(content)
        record["outputs"][name] = sha256_file(folder / name)
    record["facts"].update(facts)
    write_toml(folder / "record.toml", record)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda folder: _replace_output(folder, "latents.safetensors", (2**60).to_bytes(8, "little") + b"{}"),
            "prepare/latents.safetensors is damaged",
        ),
        (
            lambda folder: (
                save_tensors(folder.parent / "x.safetensors", {"frames": torch.zeros(4, 4, 8, 8)})
                or _replace_output(folder, "latents.safetensors", (folder.parent / "x.safetensors").read_bytes())
            ),
            "it holds no `reference`",
        ),
        (
            lambda folder: _replace_output(folder, None, frames_shape=[5, 4, 8, 8]),
            "`frames` is [4, 4, 8, 8] where its record says [5, 4, 8, 8]",
        ),
        (lambda folder: _replace_output(folder, None, frames_shape=[-4, 4, 8, 8]), "`facts.frames_shape` is"),
        (lambda folder: _replace_output(folder, None, fps="fast"), "`facts.fps` is 'fast', not a number"),
    ],
    ids=["huge-header", "missing-tensor", "wrong-shape", "negative-frames", "fps-text"],
)
def test_records_and_tensors_are_checked_by_meaning_in_one_line(cli, edited, change, message):
    change(edited / "prepare")
    result = cli("edit", "--replace", "car=<tok>", "--name", "again", "--steps", "4", "--force")
    assert result.code == 1 and message in result.error_lines[0], result.err
    assert "Traceback" not in result.err and "live prepare CLIP IMAGE" in result.err
    assert not (edited / "edits" / "again").exists()


def test_a_damaged_record_is_named_not_taken_for_a_missing_stage(cli, edited):
    (edited / "prepare" / "record.toml").write_text('stage = "prep')
    status = {s["stage"]: s for s in json.loads(cli("status", "--json").out)["stages"]}
    assert status["prepare"]["state"] == "stale" and "record.toml is damaged" in status["prepare"]["reason"]
    result = cli("train", "--steps", "3")
    assert result.code == 1 and "prepare/record.toml is damaged" in result.error_lines[0], result.err


# --------------------------------------------------------------------------- the manifest


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda data: data.pop("prompt"), "`prompt` is missing"),
        (lambda data: data.update(schema=-3), "`schema` is -3"),
        (lambda data: data["sources"]["clip"].update(path=5), "`sources` is {'clip': {'path': 5"),
        (lambda data: data["model"].pop("kind"), "`model` is {'id': 'tiny'"),
        (lambda data: data.update(token=7), "`token` is 7, not text (or absent)"),
    ],
    ids=["no-prompt", "negative-schema", "source-path-number", "model-without-kind", "token-number"],
)
def test_a_damaged_manifest_is_one_line_whose_hint_works(cli, clip, image, change, message):
    assert cli("prepare", clip, image, *SMALL).code == 0
    from livecli.store import read_toml

    data = read_toml(PROJECT / "live.toml")
    change(data)
    write_toml(PROJECT / "live.toml", data)
    result = cli("train", "--steps", "1")
    assert result.code == 1 and message in result.error_lines[0] and "Traceback" not in result.err
    assert "--force" in result.err
    repaired = cli("prepare", clip, image, *SMALL, "-p", PROJECT, "--force")  # what the hint says
    assert repaired.code == 0, repaired.err
    assert read_toml(PROJECT / "live.toml")["prompt"] == "a jeep car is moving on the road"


# --------------------------------------------------------------------------- the machine's faults


def test_a_read_only_project_is_one_line(cli, edited, monkeypatch):
    real_open = os.open

    def read_only(path, flags, *args):
        if str(path).endswith(".lock") and flags & (os.O_RDWR | os.O_WRONLY | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    for command in (("edit", "--replace", "car=<tok>"), ("eval",)):
        result = cli(*command)
        assert result.code == 1 and "read-only file system" in result.error_lines[0], result.err
        assert "copy the project to a writable folder" in result.err and "Traceback" not in result.err
    assert cli("status").code == 0


def test_a_full_disk_during_training_is_one_line_and_keeps_the_old_training(cli, edited, monkeypatch):
    before = tree_digest(edited / "train")
    import livecli.tensor_files

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "attention_deltas.safetensors")

    monkeypatch.setattr(livecli.tensor_files, "sort_header", full)
    result = cli("train", "--steps", "3", "--checkpoint-every", "100")
    assert result.code == 1 and "the disk is full" in result.error_lines[0], result.err
    assert "free some space" in result.err and "Traceback" not in result.err
    assert tree_digest(edited / "train") == before
    assert not list(edited.rglob("*.incomplete")) and not list(edited.rglob("*.tmp"))


def test_debug_still_shows_the_traceback_of_a_machine_fault(cli, edited, monkeypatch):
    monkeypatch.setenv("LIVE_DEBUG", "1")
    import livecli.tensor_files

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(livecli.tensor_files, "sort_header", full)
    result = cli("train", "--steps", "3")
    assert result.code == 1 and "Traceback" in result.err


# --------------------------------------------------------------------------- resources


@pytest.mark.parametrize(
    ("size", "message"),
    [("1048576", "larger than this model can take"), ("16", "smaller than this model can take")],
)
def test_a_size_the_model_cannot_take_is_refused_before_any_work(cli, clip, image, size, message):
    result = cli("prepare", clip, image, *SMALL[:-4], "--size", size)
    assert result.code == 1 and message in result.error_lines[0], result.err
    assert not PROJECT.exists()


def test_a_negative_size_is_refused_without_odd_suggestions(cli, clip, image):
    result = cli("prepare", clip, image, *SMALL[:-4], "--size=-64")
    assert result.code != 0 and "try --size 8" not in result.err


def test_a_clip_that_would_not_fit_in_memory_is_refused_in_one_line(cli, clip, image, monkeypatch):
    import livecli.resources

    monkeypatch.setattr(livecli.resources, "free_bytes", lambda device: 10_000)
    result = cli("prepare", clip, image, *SMALL)
    assert result.code == 1 and "needs about" in result.error_lines[0] and "; 0 MB is free" in result.error_lines[0]
    assert "about 0.0 GB" not in result.err  # small amounts in MB
    assert "--size" in result.err and "LIVE_NO_MEMORY_CHECK" in result.err and not PROJECT.exists()
    monkeypatch.setenv("LIVE_NO_MEMORY_CHECK", "1")
    assert cli("prepare", clip, image, *SMALL).code == 0


# --------------------------------------------------------------------------- many workers


def test_three_batch_workers_on_one_jobs_file_finish_every_job_once(cli, clip, image, tmp_path):
    jobs = tiny_jobs(tmp_path / "jobs.toml", 3, defaults="eval = false\n")
    ended = live_at_once(*[["batch", jobs, "--json"]] * 3)
    assert [code for code, _, _ in ended] == [0, 0, 0], [err for _, _, err in ended]
    reports = [json.loads(line) for _, out, _ in ended for line in out.splitlines() if line.strip()]
    done = sorted(r["name"] for r in reports if r["status"] == "done")
    assert done == ["job1", "job2", "job3"]  # each job made once, by one worker
    assert all(r["status"] in ("done", "busy", "up to date") for r in reports)
    for n in range(1, 4):
        assert (tmp_path / f"job{n}.live" / "edits" / "car-tok" / "edit.mp4").is_file()
        status = json.loads(cli("status", "-p", tmp_path / f"job{n}.live", "--json").out)["stages"]
        states = [(s["stage"].split()[0], s["state"]) for s in status]  # every project whole (the jobs skip eval)
        assert states == [
            ("prepare", "done"),
            ("train", "done"),
            ("invert", "done"),
            ("edit", "done"),
            ("eval", "missing"),
        ]
    again = [json.loads(line) for line in cli("batch", jobs, "--json").out.splitlines() if line.strip()]
    assert [r["status"] for r in again] == ["up to date"] * 3


def test_a_missing_clip_of_any_job_is_found_before_the_first_job_runs(cli, clip, image, tmp_path):
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(
        '[defaults]\nmodel = "tiny"\n'
        + "".join(
            f'[[jobs]]\nname = "{name}"\nclip = "{source}"\nimage = "ref.png"\n'
            'prompt = "a jeep car is moving on the road"\nobject = "car"\nreplace = ["car=<tok>"]\n'
            for name, source in (("first", "clip.mp4"), ("second", "gone.mp4"))
        )
    )
    result = cli("batch", jobs)
    assert result.code == 1 and "job 2 (second): clip" in result.error_lines[0] and "does not exist" in result.err
    assert not (tmp_path / "first.live").exists()


# --------------------------------------------------------------------------- identical runs


def test_identical_runs_give_byte_identical_artefacts_with_the_umasks_mode(cli, clip, image):
    old_umask = os.umask(0o022)
    try:
        for name in ("a.live", "b.live"):
            result = cli("train", clip, image, *SMALL, "-p", name, "--steps", "2")
            assert result.code == 0, result.err
    finally:
        os.umask(old_umask)
    for stage in ("prepare", "train"):
        first, second = tree_digest(Path("a.live") / stage), tree_digest(Path("b.live") / stage)
        compared = [name for name in first if name not in ("record.toml", "losses.csv")]  # times differ
        assert compared and all(first[name] == second[name] for name in compared), stage
    for file in [*Path("a.live").rglob("*.toml"), *Path("a.live").rglob("*.safetensors")]:
        if file.name != ".lock":
            assert stat.S_IMODE(file.stat().st_mode) == 0o644, file
