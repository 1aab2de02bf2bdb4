"""The project directory: manifest, stage records, fingerprints, atomic writes, lock, and
the protocol every stage runs by (`Project.run_stage`).

Layout (see docs/project-format.md):

    clip.live/
      live.toml            the manifest: schema, live version, model, sources, prompt, object
      .lock                held by the one process writing the project
      <stage>/             a stage's output, `record.toml` written last
      <stage>/<run>/       or one folder a run, for a stage with runs (an edit per name)

A stage's fingerprint is the SHA-256 of its settings and the digests of what it read; a
record whose fingerprint matches and whose outputs are intact means "up to date". A stage
is written into a hidden `.<folder>.incomplete/` folder and swapped in whole with
`os.replace` once its record is written, so a crash or Ctrl-C at any point leaves the
last complete state. Which stages there are, their folders and the commands that make
them, the stages say (`Stage`, declared in livecli/stages/); the store knows none of them.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import shutil
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import tomli_w

from livecli import __version__
from livecli.errors import ProjectBusy, ProjectError, reason
from livecli.progress import say
from livecli.words import has_control_character

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
MANIFEST_KEYS = {"prompt": str, "object": str, "model": dict, "sources": dict}
"""What every manifest holds (`live prepare` writes them all at once), with their types."""
LEFTOVERS = re.compile(r"^(\.lock|\..+\.incomplete|\..+\.old|\.live\.toml\..+\.tmp)$")
"""Names a `live` process leaves in a folder when it is killed before the manifest exists."""


@dataclass(frozen=True)
class Fact:
    """What one fact of a record must be (`means`, as an error says it): a record is checked
    by meaning when read, so that a hand-edited value is one error naming it, not a
    traceback (or a wrong result) in the stage that reads it."""

    means: str
    test: Callable[[Any], bool]
    optional: bool = False

    def __call__(self, value: Any) -> bool:
        return (self.optional and value is None) or (value is not None and self.test(value))

    @property
    def or_absent(self) -> Fact:
        return replace(self, optional=True, means=f"{self.means} (or absent)")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_count(value: Any, least: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


NUMBER = Fact("a finite number", _is_number)
POSITIVE = Fact("a number above 0", lambda value: _is_number(value) and value > 0)
FRACTION = Fact("a number from 0 to 1", lambda value: _is_number(value) and 0 <= value <= 1)
COUNT = Fact("a whole number of 0 or more", _is_count)
SHAPE = Fact(
    "a list of whole numbers of 1 or more",
    lambda value: isinstance(value, list) and bool(value) and all(_is_count(size, 1) for size in value),
)
TEXT = Fact("text", lambda value: isinstance(value, str))
TEXTS = Fact("a list of texts", lambda value: isinstance(value, list) and all(isinstance(v, str) for v in value))
FLAG = Fact("true or false", lambda value: isinstance(value, bool))
TABLE = Fact("a table", lambda value: isinstance(value, dict))


def table_of(**facts: Fact) -> Fact:
    """A table whose entries are `facts`."""
    means = ", ".join(f"`{name}` {fact.means}" for name, fact in facts.items())
    return Fact(
        f"a table with {means}",
        lambda value: isinstance(value, dict) and all(fact(value.get(name)) for name, fact in facts.items()),
    )


SOURCE = table_of(path=TEXT, sha256=TEXT)
MANIFEST_FACTS = {
    "model": table_of(id=TEXT, kind=TEXT),
    "sources": Fact(
        "a table of sources, each with `path` and `sha256` text",
        lambda value: isinstance(value, dict) and all(SOURCE(source) for source in value.values()),
    ),
    "token": TEXT.or_absent,
    "references": Fact(
        "a list of reference images, each with `path` and `sha256` text (and a `mask` path)",
        lambda value: (
            isinstance(value, list) and all(SOURCE(entry) and isinstance(entry.get("mask", ""), str) for entry in value)
        ),
    ).or_absent,
}
"""What the manifest's entries must be, beyond their types (`MANIFEST_KEYS`)."""


@dataclass(frozen=True)
class Stage:
    """What the store needs to know of a stage, as the stage's module declares it: the name
    its records carry, the folder its output goes to, and the command that makes that
    output again. A stage with runs keeps one folder a run under its own (an edit per
    name); `stage.run(name)` is the stage at one run's folder."""

    name: str
    folder: str
    remake: str
    """The command that makes the output again, `{run}` standing for the run's name."""
    runs: bool = False
    optional: bool = False
    """A stage only some projects have (the clip's object masks): `live status` lists it
    where it ran, and no stage waits for it."""
    missing: str = ""
    """What `live status` says of a stage with runs before its first, once the stage before it has run."""
    run_name: str = ""
    facts: Mapping[str, Fact] = field(default_factory=dict)
    """What its records' facts must be, for those later stages and `live status` read."""
    config: type | None = None
    """Its settings' dataclass (config.py); None for a stage without settings of its own."""
    table: str = ""
    """Its table in a jobs file (`edit = { guidance = 7.5 }`); "" when a job cannot set it."""
    outputs: Mapping[str, str] = field(default_factory=dict)
    """Its files that people open, by role (`video`: `edit.mp4`), inside its folder."""
    summary: Callable[[Record], str] | None = None
    """The line it finishes with, from its record."""
    timed: bool = False
    """Whether the gallery shows the time it took."""

    def run(self, name: str) -> Stage:
        return replace(self, folder=f"{self.folder}/{name}", runs=False, run_name=name)

    @property
    def remake_command(self) -> str:
        return self.remake.format(run=self.run_name)

    @property
    def label(self) -> str:
        """How `live status` names it: `train`, `edit dog`."""
        return f"{self.name} {self.run_name}" if self.run_name else self.name


@dataclass
class StageResult:
    stage: str
    folder: Path
    record: Record
    skipped: bool
    """True when the stage was up to date and nothing was redone."""


# --------------------------------------------------------------------------- hashing


_digests: dict[tuple, str] = {}
"""SHA-256 of files this process has read, by (path, device, inode, size, mtime): checking a
stage's outputs and then reading them hashes each file once."""


def sha256_file(path: Path) -> str:
    stat = os.stat(path)
    known = (str(path), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if known not in _digests:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _digests[known] = digest.hexdigest()
    return _digests[known]


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


def temporary_path(path: Path) -> Path:
    """A fresh name beside `path` to write it under before `fsync_replace` renames it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    return Path(tmp)


def file_mode() -> int:
    """The mode a plain `open()` gives a new file: 0o666 less the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def fsync_replace(tmp: Path, path: Path) -> None:
    """Flush `tmp` to disk, give it the umask's mode (mkstemp makes it 0600) and rename it to `path`."""
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.chmod(tmp, file_mode())
    os.replace(tmp, path)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path`."""
    tmp = temporary_path(path)
    try:
        tmp.write_bytes(data)
        fsync_replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


UNREADABLE_TOML = (tomllib.TOMLDecodeError, UnicodeDecodeError)
"""What reading a TOML file that is not valid TOML raises."""


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
        """The record at `path`; a file that cannot be read as one is a `DamagedFile` error."""
        try:
            data = read_toml(path)
            known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
            record = cls(**known)
        except (*UNREADABLE_TOML, TypeError) as exc:
            raise DamagedFile(path, reason(exc)) from None
        wrong = [
            name
            for name, kind in (("fingerprint", str), ("settings", dict), ("inputs", dict), ("outputs", dict))
            if not isinstance(getattr(record, name), kind)
        ]
        if wrong:
            raise DamagedFile(path, f"`{wrong[0]}` has the wrong type")
        for name, table in (("inputs", record.inputs), ("outputs", record.outputs)):
            if not all(isinstance(value, str) for value in table.values()):
                raise DamagedFile(path, f"`{name}` holds a value that is not a digest")
        outside = next((name for name in record.outputs if not _inside(name)), None)
        if outside is not None:  # a record must never lead a reader out of its folder
            raise DamagedFile(path, f"`outputs` names {outside[:60]!r}, which is not a file inside its folder")
        for name, fact in (("seconds", NUMBER), ("finished", TEXT), ("facts", TABLE)):
            if not fact(getattr(record, name)) or (name == "seconds" and record.seconds < 0):
                raise DamagedFile(path, f"`{name}` is {getattr(record, name)!r}, not {fact.means}")
        return record

    def check_facts(self, path: Path, facts: Mapping[str, Fact]) -> None:
        """Each of `facts` in the record is what it must be; `DamagedFile` naming the first that is not."""
        for name, fact in facts.items():
            value = self.facts.get(name)
            if not fact(value):
                shown = "missing" if value is None else f"{value!r}"[:60]
                raise DamagedFile(path, f"`facts.{name}` is {shown}, not {fact.means}")


def _inside(name: str) -> bool:
    """`name` is a relative path that stays inside the folder it is joined to."""
    parts = PurePosixPath(name).parts
    return bool(parts) and not PurePosixPath(name).is_absolute() and ".." not in parts and "\\" not in name


class DamagedFile(ProjectError):
    """A project file that exists but is not what `live` wrote: truncated, edited or unreadable."""

    def __init__(self, path: Path, why: str, hint: str | None = None):
        super().__init__(f"{path} is damaged: {why}", hint=hint)
        self.path = path
        self.why = why


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
        if not self.exists() or self.manifest_damaged():
            return {}  # a damaged manifest: only `live prepare --force` goes on, and writes it anew
        return self.manifest().get("model", {})

    def manifest(self) -> dict[str, Any]:
        """The manifest, refused when a newer `live` wrote it."""
        if not self.exists():
            raise ProjectError(
                f"no live project at {self.root}",
                hint="create one with: live prepare CLIP IMAGE --prompt TEXT --object WORD",
            )
        hint = (
            f"restore it, or write it anew with `live prepare CLIP IMAGE --prompt TEXT --object WORD -p {self.root} "
            "--force` (or move the folder away)"
        )
        try:
            data = read_toml(self.manifest_path)
        except (*UNREADABLE_TOML, OSError) as exc:
            raise DamagedFile(self.manifest_path, reason(exc), hint) from None
        schema = data.get("schema")
        if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
            raise DamagedFile(self.manifest_path, f"`schema` is {schema!r}, not a version number ≥ 1", hint)
        if schema <= SCHEMA:
            for key, kind in MANIFEST_KEYS.items():
                if not isinstance(data.get(key), kind):
                    raise DamagedFile(self.manifest_path, f"`{key}` is missing or has the wrong type", hint)
            for key, fact in MANIFEST_FACTS.items():
                value = data[key] if key in data else None
                if not fact(value):
                    raise DamagedFile(self.manifest_path, f"`{key}` is {value!r}"[:80] + f", not {fact.means}", hint)
        if schema > SCHEMA:
            writer = data.get("live_version", "a newer version")
            raise ProjectError(
                f"{self.root} has project schema {schema} (written by live {writer}); "
                f"this live {__version__} reads schema {SCHEMA}",
                hint="upgrade live: pip install --upgrade live",
            )
        return data

    def manifest_damaged(self) -> str:
        """Why the manifest cannot be read ("" when it can, or when there is none)."""
        if not self.exists():
            return ""
        try:
            self.manifest()
        except DamagedFile as exc:
            return exc.why
        return ""

    def check_writable(self, repair: bool = False) -> None:
        """Refuse a folder that is neither empty, a project, nor what a killed first
        `live prepare` left (`leftovers`); and a too-new or damaged project, unless
        `repair` (prepare --force, which writes the manifest anew)."""
        if self.root.exists() and not self.root.is_dir():
            raise ProjectError(f"{self.root} is a file, not a project folder", hint="pass a folder with -p")
        if not self.root.exists() and (
            has_control_character(str(self.root)) or self.root.name != self.root.name.strip()
        ):
            raise ProjectError(
                f"the project folder {str(self.root)!r} would have a name no one can type (a control character, "
                "or space at an end)",
                hint="pass a plain folder name with -p",
            )
        if self.exists():
            try:
                self.manifest()
            except DamagedFile:
                if not repair:
                    raise
        elif self.root.is_dir() and not self.only_leftovers():
            raise ProjectError(
                f"{self.root} exists and is not a live project (it has no {MANIFEST})",
                hint="pass another folder with -p/--project",
            )

    def only_leftovers(self) -> bool:
        """True when the folder holds nothing but what a `live` process killed before the
        manifest was written leaves: the lock, unfinished stages, a finished `prepare/`."""
        return all(LEFTOVERS.match(p.name) or (p.name == "prepare" and p.is_dir()) for p in self.root.iterdir())

    def update_manifest(self, anew: bool = False, **values: Any) -> None:
        """Merge `values` into the manifest (`anew`: replace it); an unchanged manifest is not rewritten."""
        old = self.manifest() if self.exists() and not anew else {}
        new = _drop_none({**old, **values, "schema": SCHEMA, "live_version": __version__})
        if new != old:
            write_toml(self.manifest_path, new)

    # -- stages

    def stage_dir(self, stage: Stage) -> Path:
        return self.root / stage.folder

    def record(self, stage: Stage) -> Record | None:
        """The stage's record; None when it has none; `DamagedFile` when it cannot be read."""
        path = self.stage_dir(stage) / RECORD
        if not path.is_file():
            return None
        try:
            record = Record.load(path)
            record.check_facts(path, stage.facts)
        except DamagedFile as exc:
            raise DamagedFile(path, exc.why, hint=f"make the stage again: {stage.remake_command}") from None
        return record

    def up_to_date(self, stage: Stage, key: str) -> Record | None:
        """The stage's record when its fingerprint is `key` and its outputs are intact."""
        try:
            record = self.record(stage)
        except DamagedFile:
            return None  # made again, like a missing one
        if record is None or record.fingerprint != key:
            return None
        return record if not self.changed_output(stage, record) else None

    def changed_output(self, stage: Stage, record: Record) -> str:
        """The first of the stage's outputs that is missing or differs from its record ("" when none)."""
        folder = self.stage_dir(stage)
        for name, digest in record.outputs.items():
            file = folder / name
            if not file.is_file() or sha256_file(file) != digest:
                return name
        return ""

    def verified(self, stage: Stage, name: str = "") -> Path:
        """`stage/name` after checking it (or, for a folder, every file the record lists in
        it) against the stage's record: a file changed, truncated or gone since the stage
        wrote it is an error naming it and the command that makes it again."""
        record = self.record(stage)
        if record is None:
            raise ProjectError(f"{self.stage_dir(stage)} has no {RECORD}", hint=f"make it: {stage.remake_command}")
        folder, prefix = self.stage_dir(stage), f"{name}/" if name else ""
        listed = {n: d for n, d in record.outputs.items() if n == name or n.startswith(prefix)}
        if not listed:
            raise ProjectError(
                f"{stage.folder}/{name} is not among the outputs of its record",
                hint=f"make it again: {stage.remake_command}",
            )
        for file_name, digest in listed.items():
            file = folder / file_name
            if not file.is_file():
                problem = "is missing"
            elif sha256_file(file) != digest:
                problem = "differs from what its record says it wrote (changed, truncated or damaged)"
            else:
                continue
            where = file.relative_to(self.root).as_posix()
            raise ProjectError(f"{where} {problem}", hint=f"make it again: {stage.remake_command}")
        return folder / name

    def run_stage(
        self,
        stage: Stage,
        settings: dict[str, Any],
        inputs: dict[str, str],
        force: bool = False,
        reusable: Callable[[Record], bool] | None = None,
        reads: Sequence[Stage] = (),
    ) -> StageRun:
        """One run of `stage` with these settings and inputs (the caller holds the lock):
        up to date, or to be made (`StageRun`). `reusable` may refuse an up-to-date record
        that lacks something this run needs; `force` refuses every one. `reads` are the
        stages whose outputs the run reads: one of them changed since it was written is
        not up to date (the run's verified read then names the file, as `live status` does)."""
        return StageRun(self, stage, settings, inputs, force, reusable, reads)

    def intact(self, stage: Stage) -> bool:
        """Whether the stage has a readable record and every output it lists is as written."""
        try:
            record = self.record(stage)
        except DamagedFile:
            return False
        return record is not None and not self.changed_output(stage, record)

    @contextmanager
    def staging(self, folder: str, last: str = RECORD) -> Iterator[Path]:
        """A fresh folder to write the folder `folder` (relative to the project) into;
        swapped in whole when the block succeeds.

        The caller writes the outputs and then the record (`write_record`), last; `last`
        names that final file (a checkpoint ends with its own state file).
        On any exception, Ctrl-C included, the folder is removed and the stage's
        previous complete state is left as it was.
        """
        final = self.root / folder
        tmp = final.with_name(f".{final.name}.incomplete")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            yield tmp
            if not (tmp / last).is_file():
                raise RuntimeError(f"stage {folder} wrote no {last}")
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT) and not exc.filename:  # a writer that named no file
                raise OSError(exc.errno, exc.strerror, str(final)) from None
            raise
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

    def status(self, stages: Sequence[Stage]) -> list[StageStatus]:
        """Each of `stages` (in pipeline order) done, stale (an input changed since it ran) or
        missing; a stage with runs, each of its runs."""
        sources = self.manifest().get("sources", {})
        statuses: list[StageStatus] = []
        before = ""  # the state of the last stage without runs
        for stage in stages:
            if stage.runs:
                runs = self.runs(stage)
                if not runs:
                    statuses.append(StageStatus(stage.name, "missing", stage.missing if before != "missing" else ""))
                for run, record in runs:
                    statuses.append(self._done_or_stale(run, record, sources, stages))
                continue
            try:
                record = self.record(stage)
            except DamagedFile as exc:
                statuses.append(StageStatus(stage.name, "stale", f"{RECORD} is damaged ({exc.why}): {exc.hint}"))
            else:
                if record is None:
                    if stage.optional:
                        continue
                    statuses.append(StageStatus(stage.name, "missing", self._checkpoint_note(stage)))
                else:
                    statuses.append(self._done_or_stale(stage, record, sources, stages))
            before = statuses[-1].state
        return statuses

    def runs(self, stage: Stage) -> list[tuple[Stage, Record]]:
        """The complete runs of a stage with runs (`invert`, `edits`), by name."""
        folder = self.stage_dir(stage)
        if not folder.is_dir():
            return []
        found = []
        for child in sorted(folder.iterdir()):
            if not child.is_dir() or child.name.startswith("."):
                continue
            run = stage.run(child.name)
            try:
                record = self.record(run)
            except DamagedFile:
                continue  # as if unfinished: the stage that needs it makes it again
            if record is not None:
                found.append((run, record))
        return found

    def stale_reason(self, stage: Stage, stages: Sequence[Stage]) -> str:
        """Why a finished stage (or run, e.g. an edit) is stale; "" when it is not. `stages`
        are every stage, to find the ones it read."""
        try:
            record = self.record(stage)
        except DamagedFile as exc:
            return f"its {RECORD} is damaged ({exc.why})"
        if record is None:
            return f"{stage.folder} is missing"
        return self._stale_reason(stage, record, self.manifest().get("sources", {}), stages)

    def _done_or_stale(
        self, stage: Stage, record: Record, sources: dict[str, Any], stages: Sequence[Stage]
    ) -> StageStatus:
        reason = self._stale_reason(stage, record, sources, stages)
        return StageStatus(
            stage.label,
            "stale" if reason else "done",
            reason,
            bytes=folder_bytes(self.stage_dir(stage)),
            seconds=record.seconds,
            finished=record.finished,
        )

    def checkpoint_dir(self, stage: str) -> Path:
        return self.root / CHECKPOINTS / stage

    def _checkpoint_note(self, stage: Stage) -> str:
        state = self.checkpoint_dir(stage.name) / CHECKPOINT_STATE
        if not state.is_file():
            return ""
        try:
            data = read_toml(state)
            return f"stopped at step {data['step']} of {data['steps']}: run `live {stage.name}` again to resume"
        except (*UNREADABLE_TOML, KeyError):
            return ""

    def _stale_reason(self, stage: Stage, record: Record, sources: dict[str, Any], stages: Sequence[Stage]) -> str:
        for name, digest in record.inputs.items():
            upstream = stage_at(name, stages)
            if upstream is not None:  # a stage, or one run of a stage with runs
                try:
                    read = self.record(upstream)
                except DamagedFile:
                    return f"the {RECORD} of {name} is damaged"
                if read is None:
                    return f"{name} is missing"
                if read.fingerprint != digest:
                    return f"{name} changed since {stage.folder} ran"
                changed = self.changed_output(upstream, read)
                if changed:
                    return f"{name}/{changed} differs from its record: run {upstream.remake_command}"
            elif name in sources:
                path = Path(sources[name]["path"])
                if path.exists() and sha256_path(path) != digest:
                    return f"{path.name} changed since {stage.folder} ran"
        changed = self.changed_output(stage, record)
        if changed:
            return f"{changed} was changed or removed: run {stage.remake_command}"
        return ""

    # -- lock

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the project's lock file; a second writer fails at once (`ProjectBusy`).

        Re-entrant within a process (a batch job holds it across its stages). The lock is
        the kernel's (`flock`), so it ends with its holder, however that ends; a lock file
        naming a process that ended is taken over with a message. Only the holder removes
        anything: a folder made for a command that failed before writing the manifest (or
        that held only a killed first prepare's leftovers) is removed by that command,
        lock file last, while it still holds the lock; a command refused as busy leaves
        everything as it was. A project holding a symbolic link is refused before anything
        is written (`check_contained`).
        """
        key = self.root.resolve()
        if key in _held:
            yield
            return
        created = not self.root.exists()
        leftovers = not created and not self.exists() and self.root.is_dir() and any(self.root.iterdir())
        fd = _acquire(self.root)
        try:
            previous = _lock_holder(fd)  # a clean release leaves the file empty
            _claim(fd)
            if previous:
                say(f"{self.root}: taking over the lock of process {previous}, which ended without releasing it")
            self.check_contained()
            if leftovers:
                say(f"{self.root}: recovering what a killed first `live prepare` left behind")
            _held.add(key)
            try:
                self.recover()
                yield
            finally:
                _held.discard(key)
        finally:
            try:
                if (created or leftovers) and not self.exists() and [p.name for p in self.root.iterdir()] == [LOCK]:
                    (self.root / LOCK).unlink()  # a waiter that opened it retries on a new one (`_acquire`)
                    self.root.rmdir()
                else:
                    os.ftruncate(fd, 0)
            finally:
                _unlock(fd)
                os.close(fd)

    def lock_holder(self) -> str | None:
        """Who holds the project's lock now ("4242", or "4242 on node7"), or None: a look
        that takes nothing, so that it never makes a writer busy. A lock file is emptied
        when its holder lets go; one naming a process of this machine that ended is free."""
        try:
            pid, host = _holder((self.root / LOCK).read_bytes())
        except OSError:
            return None
        if not pid.isdigit():
            return None
        if host:
            return f"{pid} on {host}"
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return None
        except PermissionError:  # alive, another user's
            pass
        return pid

    def check_contained(self) -> None:
        """Refuse a project holding a symbolic link (to a folder or a file): stages write,
        replace and clean up inside the project alone, and a link would take them elsewhere."""
        for path in _entries(self.root):
            if path.is_symlink():
                where = path.relative_to(self.root).as_posix()
                raise ProjectError(
                    f"{self.root}: {where} is a symbolic link, and live writes only inside the project folder",
                    hint="put the folder or file itself in its place, or give the whole project another home "
                    "with -p DIR; no stage was run",
                )


_held: set[Path] = set()
"""Projects whose lock this process holds."""


def stage_at(folder: str, stages: Sequence[Stage]) -> Stage | None:
    """The stage (or run of a stage) whose output is `folder` (`train`, `edits/dog`); None for another name."""
    parent, _, run = folder.partition("/")
    for stage in stages:
        if stage.folder == parent and bool(run) == stage.runs:
            return stage.run(run) if run else stage
    return None


class StageRun:
    """One run of a stage, from its fingerprint to its record: the protocol every stage
    runs by (`Project.run_stage`).

        work = project.run_stage(TRAIN, settings, inputs, force)
        if work.skipped:
            return work.result                 # up to date: nothing to do
        ...                                   # the work
        with work.staging() as folder:         # a fresh folder, swapped in whole at the end
            ...                               # write the outputs
            work.facts = {...}                 # what later stages and `live status` read
        return work.result                     # the record is written last, with the time taken
    """

    def __init__(
        self,
        project: Project,
        stage: Stage,
        settings: dict[str, Any],
        inputs: dict[str, str],
        force: bool = False,
        reusable: Callable[[Record], bool] | None = None,
        reads: Sequence[Stage] = (),
    ):
        self.project, self.stage, self.settings, self.inputs = project, stage, settings, inputs
        self.key = fingerprint(stage.name, settings, inputs)
        record = None if force else project.up_to_date(stage, self.key)
        if record is not None and reusable is not None and not reusable(record):
            record = None
        if record is not None and not all(project.intact(read) for read in reads):
            record = None
        self.record: Record | None = record
        self.skipped = record is not None
        """Up to date: the stage's record is this run's."""
        self.facts: dict[str, Any] = {}
        self._started = time.perf_counter()

    @property
    def result(self) -> StageResult:
        return StageResult(self.stage.name, self.project.stage_dir(self.stage), self.record, self.skipped)

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh folder for the stage's outputs; when the block ends, the record (settings,
        inputs, `facts`, the time since the run began, the outputs' hashes) is written last
        and the folder swapped in whole."""
        with self.project.staging(self.stage.folder) as folder:
            yield folder
            seconds = round(time.perf_counter() - self._started, 3)
            record = Record(self.stage.name, self.key, self.settings, self.inputs, facts=self.facts, seconds=seconds)
            self.record = Project.write_record(folder, record)


LOCK_CONTENT = re.compile(rb"^(\d+( [^\s]+)?)?\n?$")
"""What live writes in a lock file: the holder's pid and host, or nothing once released."""


def open_lock_file(path: Path) -> int:
    """Open (or create) the lock file without following a symlink; refuse anything that is
    not a lock file of live's (a link, a folder, a file with other content or other names),
    since taking the lock truncates it."""
    hint = f"move it away (mv {path} {path}.moved) and run the command again"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as exc:
        if path.is_symlink():
            raise ProjectError(f"{path} is a symbolic link, not live's lock file", hint=hint) from None
        if path.is_dir():
            raise ProjectError(f"{path} is a folder, not live's lock file", hint=hint) from None
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise ProjectError(
                f"cannot take the lock of {path.parent}: {exc.strerror.lower()}",
                hint="copy the project to a writable folder to run stages on it; `live status` reads it as it is",
            ) from None
        raise
    info = os.fstat(fd)
    why = ""
    if not stat.S_ISREG(info.st_mode):
        why = "not a plain file"
    elif info.st_nlink != 1:
        why = f"a file with {info.st_nlink} names (a hard link)"
    elif not LOCK_CONTENT.match(os.pread(fd, 64, 0)):
        why = "it holds something other than a process id"
    if why:
        os.close(fd)
        raise ProjectError(f"{path} is not live's lock file: {why}", hint=hint)
    return fd


@contextmanager
def held_lock(path: Path, busy: Callable[[str], Exception]) -> Iterator[None]:
    """Hold the lock file at `path` (the kernel's lock on live's own file, `open_lock_file`),
    with this process's id in it; `busy(holder)` is raised at once when another holds it.
    The one lock of every folder live writes but a project (a gallery's); a project's adds
    recovery and clean-up around the same calls (`Project.lock`)."""
    fd = open_lock_file(path)
    try:
        if not _try_lock(fd):
            raise busy(_lock_holder(fd) or "unknown")
        try:
            _claim(fd)
            yield
        finally:
            os.ftruncate(fd, 0)  # a clean release leaves the file empty
            _unlock(fd)
    finally:
        os.close(fd)


def _acquire(root: Path) -> int:
    """The project's lock, held: an open lock file that is still the one at `root/.lock`.

    The holder of a lock removes the lock file when it removes the folder it made; a
    process that opened the file before then holds a lock on a file nobody else sees, so
    it lets it go and takes the new one."""
    for _ in range(100):
        root.mkdir(parents=True, exist_ok=True)
        fd = open_lock_file(root / LOCK)
        if not _try_lock(fd):
            holder = _lock_holder(fd) or "unknown"
            os.close(fd)
            raise ProjectBusy(root, holder)
        try:
            current = os.stat(root / LOCK, follow_symlinks=False)
        except FileNotFoundError:
            current = None
        opened = os.fstat(fd)
        if current is not None and (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
            return fd
        _unlock(fd)
        os.close(fd)
    raise ProjectBusy(root, "unknown")


def _entries(folder: Path) -> Iterator[Path]:
    """Every path under `folder`, links not followed."""
    with os.scandir(folder) as entries:
        for entry in entries:
            yield Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                yield from _entries(Path(entry.path))


def _lock_holder(fd: int) -> str:
    """Who holds (or last held) the lock: its pid, and its host when that is another machine."""
    pid, host = _holder(os.pread(fd, 256, 0))
    return f"{pid} on {host}" if host else pid


def _holder(content: bytes) -> tuple[str, str]:
    """(pid, host) of a lock file's content; host "" for this machine (or none written)."""
    pid, _, host = content[:256].decode(errors="replace").strip().partition(" ")
    return pid, "" if host == _HOST else host


def _claim(fd: int) -> None:
    """Write this process's id and host into a lock file it has just taken."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {_HOST}\n".encode(), 0)


_HOST = re.sub(r"\s", "", socket.gethostname()) or "localhost"
"""This machine's name, beside the pid in a lock file: a pid means something on its own host only."""


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
