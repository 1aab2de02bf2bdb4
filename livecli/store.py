"""The project directory: manifest, stage records, fingerprints, atomic writes, lock.

Layout (see docs/project-format.md):

    clip.live/
      live.toml            the manifest: schema, live version, model, sources, prompt, object
      .lock                held by the one process writing the project
      prepare/             one folder a stage, `record.toml` written last
        record.toml

A stage is written into a hidden `.<stage>.incomplete/` folder and swapped in whole
with `os.replace` once its record is written, so a crash or Ctrl-C at any point leaves
the last complete state. A stage's fingerprint is the SHA-256 of its settings and the
digests of what it read; a record whose fingerprint matches and whose outputs are intact
means "up to date".
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import tomli_w

from livecli import __version__
from livecli.errors import ProjectError

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

SCHEMA = 1
"""Version of the project-directory format; bumped on an incompatible change."""

MANIFEST = "live.toml"
RECORD = "record.toml"
LOCK = ".lock"
CHECKPOINTS = "checkpoints"
"""Resumable state of unfinished (and the last finished) runs: `checkpoints/<stage>/`."""
CHECKPOINT_STATE = "state.toml"
"""A checkpoint's last-written file: its step, its run and the state beside the tensors."""
PROJECT_SUFFIX = ".live"

STAGES = ("prepare", "train")
"""Stages with one folder each, in pipeline order; each later one reads the ones before it."""
RUN_FOLDERS = {"invert": "invert", "edit": "edits", "eval": "eval"}
"""Stages with one subfolder per run (an inversion per fingerprint, an edit or its evaluation per name)."""
MISSING_NOTES = {"invert": "`live edit` runs it", "edit": "run `live edit --replace A=B`", "eval": "run `live eval`"}


# --------------------------------------------------------------------------- hashing


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_path(path: Path) -> str:
    """Digest of a file, or of a folder's files (names and contents, in sorted order)."""
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode())
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()


def fingerprint(stage: str, settings: dict[str, Any], inputs: dict[str, str]) -> str:
    """The key of a stage's output: its settings and the digests of what it read."""
    payload = {"stage": stage, "schema": SCHEMA, "settings": settings, "inputs": inputs}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


# --------------------------------------------------------------------------- atomic writes


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_toml(path: Path) -> dict[str, Any]:
    with open(path, "rb") as handle:
        return tomllib.load(handle)


def write_toml(path: Path, data: dict[str, Any]) -> None:
    atomic_write_bytes(path, tomli_w.dumps(_drop_none(data)).encode())


def _drop_none(value: Any) -> Any:
    """TOML has no null: leave unset values out."""
    if isinstance(value, dict):
        return {str(k): _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_drop_none(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


# --------------------------------------------------------------------------- records


@dataclass
class Record:
    """What a finished stage read, how, and what it wrote; `record.toml` in its folder."""

    stage: str
    fingerprint: str
    settings: dict[str, Any]
    inputs: dict[str, str]
    outputs: dict[str, str] = field(default_factory=dict)
    """Path relative to the stage folder -> SHA-256."""
    facts: dict[str, Any] = field(default_factory=dict)
    """Stage-specific facts later stages read (shapes, frame rate, ...)."""
    seconds: float = 0.0
    finished: str = ""
    live_version: str = __version__

    @classmethod
    def load(cls, path: Path) -> Record:
        data = read_toml(path)
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


def hash_outputs(folder: Path) -> dict[str, str]:
    return {
        file.relative_to(folder).as_posix(): sha256_file(file)
        for file in sorted(folder.rglob("*"))
        if file.is_file() and file.name != RECORD
    }


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


@dataclass
class StageStatus:
    stage: str
    state: str  # "done" | "stale" | "missing"
    reason: str = ""
    bytes: int = 0
    seconds: float | None = None
    finished: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- the project


class Project:
    """One project directory. Reading needs no lock; writing happens under `lock()`."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    # -- manifest

    def model_entry(self) -> dict[str, Any]:
        """The manifest's `model` entry, the model the project was made with; {} before the project exists."""
        return self.manifest().get("model", {}) if self.exists() else {}

    def manifest(self) -> dict[str, Any]:
        """The manifest, refused when a newer `live` wrote it."""
        if not self.exists():
            raise ProjectError(
                f"no live project at {self.root}",
                hint="create one with: live prepare CLIP IMAGE --prompt TEXT --object WORD",
            )
        try:
            data = read_toml(self.manifest_path)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ProjectError(
                f"{self.manifest_path} is damaged: {exc}",
                hint="restore it, or run `live prepare` again with --force",
            ) from None
        schema = data.get("schema")
        if not isinstance(schema, int):
            raise ProjectError(
                f"{self.manifest_path} has no integer `schema`",
                hint="restore it, or run `live prepare` again with --force",
            )
        if schema > SCHEMA:
            writer = data.get("live_version", "a newer version")
            raise ProjectError(
                f"{self.root} has project schema {schema} (written by live {writer}); "
                f"this live {__version__} reads schema {SCHEMA}",
                hint="upgrade live: pip install --upgrade live",
            )
        return data

    def check_writable(self) -> None:
        """Refuse a folder that is neither empty nor a project, and a too-new project."""
        if self.exists():
            self.manifest()
        elif self.root.is_dir() and any(self.root.iterdir()):
            raise ProjectError(
                f"{self.root} exists and is not a live project (it has no {MANIFEST})",
                hint="pass another folder with -p/--project",
            )
        elif self.root.exists() and not self.root.is_dir():
            raise ProjectError(f"{self.root} is a file, not a project folder", hint="pass a folder with -p")

    def update_manifest(self, **values: Any) -> None:
        """Merge `values` into the manifest; an unchanged manifest is not rewritten."""
        old = self.manifest() if self.exists() else {}
        new = _drop_none({**old, **values, "schema": SCHEMA, "live_version": __version__})
        if new != old:
            write_toml(self.manifest_path, new)

    # -- stages

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    def record(self, stage: str) -> Record | None:
        path = self.stage_dir(stage) / RECORD
        if not path.is_file():
            return None
        try:
            return Record.load(path)
        except (tomllib.TOMLDecodeError, TypeError, UnicodeDecodeError):
            return None

    def up_to_date(self, stage: str, key: str) -> Record | None:
        """The stage's record when its fingerprint is `key` and its outputs are intact."""
        record = self.record(stage)
        if record is None or record.fingerprint != key:
            return None
        return record if self.outputs_intact(stage, record) else None

    def outputs_intact(self, stage: str, record: Record) -> bool:
        folder = self.stage_dir(stage)
        for name, digest in record.outputs.items():
            file = folder / name
            if not file.is_file() or sha256_file(file) != digest:
                return False
        return True

    @contextmanager
    def staging(self, stage: str, last: str = RECORD) -> Iterator[Path]:
        """A fresh folder to write a stage into; swapped in whole when the block succeeds.

        The caller writes the outputs and then the record (`write_record`), last; `last`
        names that final file (a checkpoint ends with its own state file).
        On any exception, Ctrl-C included, the folder is removed and the stage's
        previous complete state is left as it was.
        """
        final = self.stage_dir(stage)
        tmp = final.with_name(f".{final.name}.incomplete")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            yield tmp
            if not (tmp / last).is_file():
                raise RuntimeError(f"stage {stage} wrote no {last}")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)

    def recover(self) -> None:
        """Finish or undo a swap that a crash cut short (called under the lock)."""
        if not self.root.is_dir():
            return
        for old in self.root.rglob(".*.old"):
            final = old.with_name(old.name[1 : -len(".old")])
            if final.exists():
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(old, final)
        for tmp in self.root.rglob(".*.incomplete"):
            shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def write_record(folder: Path, record: Record) -> Record:
        """Hash the folder's outputs into `record` and write it: the stage's last write."""
        record.outputs = hash_outputs(folder)
        record.finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
        record.live_version = __version__
        write_toml(folder / RECORD, asdict(record))
        return record

    # -- status

    def status(self) -> list[StageStatus]:
        """Each stage done, stale (an input changed since it ran) or missing."""
        manifest = self.manifest()
        sources = manifest.get("sources", {})
        statuses: list[StageStatus] = []
        for stage in STAGES:
            record = self.record(stage)
            if record is None:
                statuses.append(StageStatus(stage, "missing", self._checkpoint_note(stage)))
                continue
            statuses.append(self._done_or_stale(stage, stage, record, sources))
        for stage, parent in RUN_FOLDERS.items():
            runs = self.runs(parent)
            if not runs:
                trained = "train" in {s.stage for s in statuses if s.state != "missing"}
                statuses.append(StageStatus(stage, "missing", MISSING_NOTES[stage] if trained else ""))
            for folder, record in runs:
                where = folder.relative_to(self.root).as_posix()
                statuses.append(self._done_or_stale(f"{stage} {folder.name}", where, record, sources))
        return statuses

    def runs(self, parent: str) -> list[tuple[Path, Record]]:
        """The complete runs under a per-run stage folder (`invert`, `edits`), by name."""
        folder = self.root / parent
        if not folder.is_dir():
            return []
        found = []
        for child in sorted(folder.iterdir()):
            record = (
                self.record(f"{parent}/{child.name}") if child.is_dir() and not child.name.startswith(".") else None
            )
            if record is not None:
                found.append((child, record))
        return found

    def stale_reason(self, stage: str) -> str:
        """Why a finished stage (or run, e.g. `edits/car-tok`) is stale; "" when it is not."""
        record = self.record(stage)
        if record is None:
            return f"{stage} is missing"
        return self._stale_reason(stage, record, self.manifest().get("sources", {}))

    def _done_or_stale(self, label: str, stage: str, record: Record, sources: dict[str, Any]) -> StageStatus:
        reason = self._stale_reason(stage, record, sources)
        return StageStatus(
            label,
            "stale" if reason else "done",
            reason,
            bytes=folder_bytes(self.stage_dir(stage)),
            seconds=record.seconds,
            finished=record.finished,
        )

    def checkpoint_dir(self, stage: str) -> Path:
        return self.root / CHECKPOINTS / stage

    def _checkpoint_note(self, stage: str) -> str:
        state = self.checkpoint_dir(stage) / CHECKPOINT_STATE
        if not state.is_file():
            return ""
        try:
            data = read_toml(state)
            return f"stopped at step {data['step']} of {data['steps']}: run `live {stage}` again to resume"
        except (tomllib.TOMLDecodeError, KeyError, UnicodeDecodeError):
            return ""

    def _stale_reason(self, stage: str, record: Record, sources: dict[str, Any]) -> str:
        for name, digest in record.inputs.items():
            if name in STAGES or "/" in name:  # a stage, or one run of a per-run stage
                upstream = self.record(name)
                if upstream is None:
                    return f"{name} is missing"
                if upstream.fingerprint != digest:
                    return f"{name} changed since {stage} ran"
            elif name in sources:
                path = Path(sources[name]["path"])
                if path.exists() and sha256_path(path) != digest:
                    return f"{path.name} changed since {stage} ran"
        if not self.outputs_intact(stage, record):
            return "its outputs were changed or removed"
        return ""

    # -- lock

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the project's lock file; a second writer fails at once.

        A project folder that this call created and that stayed empty is removed, so a
        command that failed early leaves nothing behind.
        """
        created = not self.root.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _try_lock(fd):
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                raise ProjectError(
                    f"{self.root} is in use by another live process (pid {holder})",
                    hint="wait for it to finish; one project takes one writer at a time",
                )
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            try:
                self.recover()
                yield
            finally:
                os.ftruncate(fd, 0)
                _unlock(fd)
        finally:
            os.close(fd)
            if created and [p.name for p in self.root.iterdir()] == [LOCK]:
                shutil.rmtree(self.root, ignore_errors=True)


if os.name == "nt":
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- finding a project


def default_project_dir(clip: Path) -> Path:
    """`./<clip stem>.live` in the current directory."""
    return Path.cwd() / f"{clip.stem if clip.is_file() else clip.name}{PROJECT_SUFFIX}"


def find_project(explicit: Path | None) -> Project:
    """The project named by -p, else the current directory when it is one, else the only
    `*.live` folder in it."""
    if explicit is not None:
        return Project(explicit)
    if (Path.cwd() / MANIFEST).is_file():
        return Project(Path.cwd())
    found = sorted(p for p in Path.cwd().glob(f"*{PROJECT_SUFFIX}") if (p / MANIFEST).is_file())
    if not found:
        raise ProjectError(
            "no live project in the current directory",
            hint="pass one with -p DIR, or create one with: live prepare CLIP IMAGE --prompt TEXT --object WORD",
        )
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ProjectError(f"several live projects here: {names}", hint="pick one with -p DIR")
    return Project(found[0])
