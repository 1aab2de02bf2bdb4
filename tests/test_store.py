"""The project store: fingerprints, staleness, atomic writes, crash recovery, the lock."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

from livecli import __version__, stages
from livecli.errors import ProjectError
from livecli.store import (
    MANIFEST,
    RECORD,
    SCHEMA,
    Project,
    Record,
    Stage,
    atomic_write_bytes,
    find_project,
    fingerprint,
    read_toml,
    sha256_path,
    write_toml,
)

PREPARE, MASKS, TRAIN, INVERT, EDIT, EVAL = STAGES = tuple(replace(stage, facts={}) for stage in stages.STAGES)
"""The stages as the store knows them, without what their facts must be: these tests write
records with made-up facts (what facts must be is tested on its own, below)."""

MANIFEST_VALUES = {"prompt": "a car on a road", "object": "car", "model": {"id": "tiny", "kind": "tiny"}, "sources": {}}
"""What every manifest holds (`live prepare` writes them at once)."""


def write_stage(project: Project, stage: Stage, content: bytes, inputs: dict[str, str] | None = None) -> Record:
    with project.staging(stage.folder) as folder:
        (folder / "out.bin").write_bytes(content)
        return Project.write_record(
            folder, Record(stage.name, fingerprint(stage.name, {"x": 1}, inputs or {}), {"x": 1}, inputs or {})
        )


def test_fingerprint_follows_settings_and_inputs_not_key_order():
    base = fingerprint("prepare", {"a": 1, "b": 2}, {"clip": "aa"})
    assert base == fingerprint("prepare", {"b": 2, "a": 1}, {"clip": "aa"})
    assert base != fingerprint("prepare", {"a": 1, "b": 3}, {"clip": "aa"})
    assert base != fingerprint("prepare", {"a": 1, "b": 2}, {"clip": "ab"})
    assert base != fingerprint("train", {"a": 1, "b": 2}, {"clip": "aa"})


def test_sha256_of_a_folder_depends_on_names_and_contents(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "1.jpg").write_bytes(b"one")
    (folder / "2.jpg").write_bytes(b"two")
    first = sha256_path(folder)
    (folder / "2.jpg").write_bytes(b"TWO")
    second = sha256_path(folder)
    (folder / "2.jpg").rename(folder / "3.jpg")
    assert len({first, second, sha256_path(folder)}) == 3


def test_atomic_write_keeps_the_old_file_when_the_rename_fails(tmp_path, monkeypatch):
    target = tmp_path / "live.toml"
    target.write_bytes(b"old")

    def crash(*args):
        raise OSError("disk pulled out")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["live.toml"]


def test_toml_round_trip_drops_none(tmp_path):
    write_toml(tmp_path / "a.toml", {"schema": 1, "model": {"id": "tiny", "revision": None}, "path": tmp_path})
    assert read_toml(tmp_path / "a.toml") == {"schema": 1, "model": {"id": "tiny"}, "path": str(tmp_path)}


def test_staging_swaps_in_a_whole_stage_and_records_output_hashes(tmp_path):
    project = Project(tmp_path / "p.live")
    write_stage(project, PREPARE, b"first")
    record = write_stage(project, PREPARE, b"second")
    assert (project.stage_dir(PREPARE) / "out.bin").read_bytes() == b"second"
    assert set(record.outputs) == {"out.bin"}
    assert project.record(PREPARE).outputs == record.outputs
    assert sorted(p.name for p in project.root.iterdir()) == ["prepare"]


def test_an_exception_inside_staging_leaves_the_last_complete_state(tmp_path):
    project = Project(tmp_path / "p.live")
    write_stage(project, PREPARE, b"good")
    before = project.record(PREPARE)
    with pytest.raises(KeyboardInterrupt):
        with project.staging(PREPARE.folder) as folder:
            (folder / "out.bin").write_bytes(b"half")
            raise KeyboardInterrupt
    assert (project.stage_dir(PREPARE) / "out.bin").read_bytes() == b"good"
    assert project.record(PREPARE) == before
    assert not list(project.root.glob(".*"))


def test_staging_refuses_a_stage_that_wrote_no_record(tmp_path):
    project = Project(tmp_path / "p.live")
    with pytest.raises(RuntimeError, match=RECORD):
        with project.staging(PREPARE.folder) as folder:
            (folder / "out.bin").write_bytes(b"no record")
    assert not project.stage_dir(PREPARE).exists()


def test_a_crash_between_the_two_renames_is_undone_on_the_next_lock(tmp_path):
    project = Project(tmp_path / "p.live")
    write_stage(project, PREPARE, b"good")
    # The state a crash leaves after `prepare` moved aside and before the new one moved in.
    os.replace(project.stage_dir(PREPARE), project.root / ".prepare.old")
    (project.root / ".prepare.incomplete").mkdir()
    with project.lock():
        pass
    assert (project.stage_dir(PREPARE) / "out.bin").read_bytes() == b"good"
    assert not list(project.root.glob(".prepare.*"))


def test_up_to_date_needs_the_same_key_and_intact_outputs(tmp_path):
    project = Project(tmp_path / "p.live")
    record = write_stage(project, PREPARE, b"data")
    assert project.up_to_date(PREPARE, record.fingerprint) == record
    assert project.up_to_date(PREPARE, "another key") is None
    (project.stage_dir(PREPARE) / "out.bin").write_bytes(b"tampered")
    assert project.up_to_date(PREPARE, record.fingerprint) is None


def test_status_marks_a_stage_stale_when_its_source_changes(tmp_path):
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"v1")
    project = Project(tmp_path / "p.live")
    sources = {"clip": {"path": str(source), "sha256": sha256_path(source)}}
    project.update_manifest(**{**MANIFEST_VALUES, "sources": sources})
    prepared = write_stage(project, PREPARE, b"frames", {"clip": sha256_path(source)})
    write_stage(project, TRAIN, b"weights", {"prepare": prepared.fingerprint})
    assert [s.state for s in project.status((PREPARE, TRAIN))] == ["done", "done"]
    assert project.status((PREPARE, TRAIN))[0].bytes > 0

    source.write_bytes(b"v2")
    first, second = project.status((PREPARE, TRAIN))
    assert (first.state, second.state) == ("stale", "done")
    assert "clip.mp4 changed" in first.reason


def test_status_marks_downstream_stale_when_upstream_is_redone(tmp_path):
    project = Project(tmp_path / "p.live")
    project.update_manifest(**MANIFEST_VALUES)
    prepared = write_stage(project, PREPARE, b"frames")
    trained = write_stage(project, TRAIN, b"weights", {"prepare": prepared.fingerprint})
    inverted = write_stage(project, INVERT.run("ddim5-abc"), b"trajectory", {"train": trained.fingerprint})
    edited = write_stage(
        project, EDIT.run("dog"), b"video", {"train": trained.fingerprint, "invert/ddim5-abc": inverted.fingerprint}
    )
    evaluated = {"edits/dog": edited.fingerprint, "prepare": prepared.fingerprint}
    write_stage(project, EVAL.run("dog"), b"metrics", evaluated)
    states = {s.stage: s.state for s in project.status(STAGES)}
    assert states == {
        "prepare": "done",
        "train": "done",
        "invert ddim5-abc": "done",
        "edit dog": "done",
        "eval dog": "done",
    }

    with project.staging(PREPARE.folder) as folder:
        (folder / "out.bin").write_bytes(b"other frames")
        Project.write_record(folder, Record("prepare", "a new key", {"x": 2}, {}))
    states = {s.stage: (s.state, s.reason) for s in project.status(STAGES)}
    assert states["prepare"] == ("done", "") and states["train"] == ("stale", "prepare changed since train ran")
    with project.staging(INVERT.run("ddim5-abc").folder) as folder:
        (folder / "out.bin").write_bytes(b"another trajectory")
        Project.write_record(folder, Record("invert", "a new key", {"x": 2}, {"train": trained.fingerprint}))
    states = {s.stage: (s.state, s.reason) for s in project.status(STAGES)}
    assert states["edit dog"] == ("stale", "invert/ddim5-abc changed since edits/dog ran")
    assert states["eval dog"] == ("stale", "prepare changed since eval/dog ran")
    with project.staging(EDIT.run("dog").folder) as folder:
        (folder / "out.bin").write_bytes(b"another video")
        Project.write_record(folder, Record("edit", "a new key", {"x": 2}, {}))
    assert project.stale_reason(EVAL.run("dog"), STAGES) == "edits/dog changed since eval/dog ran"


def test_status_of_a_missing_stage(tmp_path):
    project = Project(tmp_path / "p.live")
    project.update_manifest(**MANIFEST_VALUES)
    assert [(s.stage, s.state) for s in project.status(STAGES)] == [
        ("prepare", "missing"),
        ("train", "missing"),
        ("invert", "missing"),
        ("edit", "missing"),
        ("eval", "missing"),
    ]


def test_a_newer_schema_is_refused_naming_both_versions(tmp_path):
    project = Project(tmp_path / "p.live")
    project.root.mkdir()
    write_toml(project.root / MANIFEST, {"schema": SCHEMA + 1, "live_version": "9.0.0"})
    with pytest.raises(ProjectError) as error:
        project.manifest()
    assert f"schema {SCHEMA + 1}" in error.value.message
    assert f"reads schema {SCHEMA}" in error.value.message
    assert "9.0.0" in error.value.message and __version__ in error.value.message
    assert "upgrade" in error.value.hint


def test_a_folder_that_is_not_a_project_is_not_written(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "cat.jpg").write_bytes(b"x")
    with pytest.raises(ProjectError, match="not a live project"):
        Project(folder).check_writable()


LOCK_HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from livecli.store import Project
    with Project(Path(sys.argv[1])).lock():
        print("locked", flush=True)
        time.sleep(30)
    """
)


def test_a_second_writer_fails_at_once_while_another_process_holds_the_lock(tmp_path):
    project = Project(tmp_path / "p.live")
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(project.root)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(ProjectError) as error:
            with project.lock():
                pass
        assert time.monotonic() - started < 1
        assert f"pid {holder.pid}" in error.value.message
    finally:
        holder.kill()
        holder.wait()
    with project.lock():  # the dead holder's lock is gone with it
        pass


def test_a_refused_writer_leaves_the_holders_new_folder_and_lock_alone(tmp_path):
    """The holder made the folder and holds its lock; writers refused as busy remove
    nothing of it (before, the first one removed the folder and the lock with it, and the
    next one took the project while the holder was still writing)."""
    project = Project(tmp_path / "p.live")
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(project.root)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        for _ in range(2):
            with pytest.raises(ProjectError, match=f"pid {holder.pid}\\)"):
                with project.lock():
                    pass
            assert (project.root / ".lock").read_text().split()[0] == str(holder.pid)
    finally:
        holder.kill()
        holder.wait()


def test_a_writer_holding_a_lock_file_removed_since_it_opened_it_takes_the_new_one(tmp_path, monkeypatch):
    """A process that opened `.lock` just before its holder removed it (with the folder the
    holder made and left empty) must not count a lock on that unseen file as the project's."""
    from livecli import store

    project = Project(tmp_path / "p.live")
    project.root.mkdir()
    opened = []

    def opened_then_removed(path):
        fd = os.open(path, os.O_RDWR | os.O_CREAT)
        if not opened:  # the holder removes the file between this open and the lock
            os.unlink(path)
        opened.append(fd)
        return fd

    monkeypatch.setattr(store, "open_lock_file", opened_then_removed)
    with project.lock():
        assert len(opened) == 2
        held = os.fstat(opened[-1])
        now = os.stat(project.root / ".lock")
        assert (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)


def test_a_failed_first_command_removes_its_folder_lock_last(tmp_path):
    project = Project(tmp_path / "p.live")
    with pytest.raises(RuntimeError):
        with project.lock():
            assert (project.root / ".lock").read_text().startswith(f"{os.getpid()} ")
            raise RuntimeError("before the manifest")
    assert not project.root.exists()


@pytest.mark.parametrize("link", ["edits", "checkpoints", "train", "prepare/frames/0000.png"])
def test_a_symbolic_link_in_the_project_is_refused_before_anything_is_written(tmp_path, link):
    project = Project(tmp_path / "p.live")
    project.update_manifest(**MANIFEST_VALUES)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("mine\n")
    (project.root / link).parent.mkdir(parents=True, exist_ok=True)
    (project.root / link).symlink_to(elsewhere / ("precious.txt" if link.endswith(".png") else ""))
    (elsewhere / ".edit.incomplete").mkdir()  # what the clean-up would remove through the link
    with pytest.raises(ProjectError, match=f"{link} is a symbolic link") as error:
        with project.lock():
            raise AssertionError("the lock was given")
    assert "-p DIR" in error.value.hint
    assert sorted(p.name for p in elsewhere.iterdir()) == [".edit.incomplete", "precious.txt"]
    assert (elsewhere / "precious.txt").read_text() == "mine\n"


def test_find_project_needs_exactly_one_project_here(tmp_path):
    with pytest.raises(ProjectError, match="no live project"):
        find_project(None)
    Project(tmp_path / "a.live").update_manifest(**MANIFEST_VALUES)
    assert find_project(None).root.name == "a.live"
    Project(tmp_path / "b.live").update_manifest(**MANIFEST_VALUES)
    with pytest.raises(ProjectError, match="a.live, b.live"):
        find_project(None)
    assert find_project(Path("b.live")).root == Path("b.live")


def test_the_store_runs_any_stage_it_is_told_of(tmp_path):
    """The store knows no stage: a stage it is told of gets the protocol (up to date, a
    staged folder, the record written last), its status and its remake command in hints."""
    shoot = Stage("shoot", "takes", remake="`live shoot --take {run}`", runs=True, missing="run `live shoot`")
    project = Project(tmp_path / "p.live")
    project.update_manifest(**MANIFEST_VALUES)
    assert [(s.stage, s.state, s.reason) for s in project.status([shoot])] == [("shoot", "missing", "run `live shoot`")]
    take = shoot.run("one")
    with project.lock():
        work = project.run_stage(take, {"light": 1}, {})
        assert not work.skipped
        with work.staging() as folder:
            (folder / "take.bin").write_bytes(b"action")
            work.facts = {"frames": 3}
        assert work.record.facts == {"frames": 3} and work.record.outputs.keys() == {"take.bin"}
        assert project.run_stage(take, {"light": 1}, {}).skipped
        assert not project.run_stage(take, {"light": 2}, {}).skipped
        assert not project.run_stage(take, {"light": 1}, {}, force=True).skipped
        assert not project.run_stage(take, {"light": 1}, {}, reusable=lambda record: False).skipped
    assert work.result.folder == project.root / "takes" / "one" and work.result.stage == "shoot"
    assert [(s.stage, s.state) for s in project.status([shoot])] == [("shoot one", "done")]
    (project.root / "takes" / "one" / "take.bin").write_bytes(b"cut")
    with pytest.raises(ProjectError) as changed:
        project.verified(take, "take.bin")
    assert changed.value.hint == "make it again: `live shoot --take one`"


def test_a_stage_that_fails_leaves_the_last_complete_state_and_no_record(tmp_path):
    project = Project(tmp_path / "p.live")
    work = project.run_stage(PREPARE, {"x": 1}, {})
    with pytest.raises(KeyboardInterrupt), work.staging() as folder:
        (folder / "out.bin").write_bytes(b"half")
        raise KeyboardInterrupt
    assert work.record is None and not project.stage_dir(PREPARE).exists()


def test_a_record_whose_facts_are_not_what_they_must_be_is_damaged_not_a_traceback(tmp_path):
    from livecli.store import COUNT, SHAPE, DamagedFile, table_of

    shoot = Stage(
        "shoot", "takes", remake="`live shoot`", facts={"shape": SHAPE, "span": table_of(stride=COUNT).or_absent}
    )
    project = Project(tmp_path / "p.live")
    project.update_manifest(**MANIFEST_VALUES)
    for facts, why in [
        ({"shape": [4, 4, 8, 8]}, ""),
        ({"shape": [4, 4, 8, 8], "span": {"stride": 2}}, ""),
        ({"shape": [-4, 4, 8, 8]}, "`facts.shape` is [-4, 4, 8, 8], not a list of whole numbers of 1 or more"),
        ({"shape": "big"}, "`facts.shape` is 'big', not a list of whole numbers of 1 or more"),
        ({}, "`facts.shape` is missing, not a list"),
        ({"shape": [1], "span": {"stride": "x"}}, "`facts.span` is {'stride': 'x'}, not a table with `stride` a whole"),
    ]:
        with project.lock():
            work = project.run_stage(shoot, {"n": len(why)}, {}, force=True)
            with work.staging() as folder:
                (folder / "take.bin").write_bytes(b"x")
                work.facts = facts
        if not why:
            assert project.record(shoot).facts == facts
            continue
        with pytest.raises(DamagedFile) as damaged:
            project.record(shoot)
        assert why in damaged.value.message and damaged.value.hint == "make the stage again: `live shoot`"
        assert [(s.state, s.reason.startswith("record.toml is damaged")) for s in project.status([shoot])] == [
            ("stale", True)
        ]
    write_toml(
        project.root / "takes" / "record.toml", {**read_toml(project.root / "takes" / "record.toml"), "seconds": "x"}
    )
    with pytest.raises(DamagedFile, match="`seconds` is 'x', not a finite number"):
        project.record(shoot)
