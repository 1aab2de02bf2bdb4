"""`live gallery`: one static page over the edits of any number of projects.

The page shows, per edit, the reference image(s), the source and the edit playing in step
(`compare.mp4`, the two side by side), the contact sheet, the scores beside the source's,
the settings that differ from the defaults, each stage's time and whether the edit is up
to date; above the cards, a table of every edit that sorts by any score and filters by
text. What the page shows is copied into the gallery folder (`media/`), and every link is
relative, so the folder can be copied elsewhere or served by any static server; nothing
comes from the network. Videos load only when they scroll into view, over a poster.

The gallery folder holds `index.html`, `media/` and `gallery.json` (the paths it was made
from and what each card shows): `live gallery --out DIR` again refreshes it from those
paths, and `live batch --gallery DIR` and `live eval --gallery DIR` add their projects.
Only a folder that is empty, new, or a gallery already is written; project folders are
only read.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup

from livecli import __version__
from livecli.config import EditConfig, TrainConfig
from livecli.errors import InputError, ProjectError
from livecli.fields import default_of
from livecli.scores import catalogue
from livecli.stages import EDIT, EVAL, INVERT, PREPARE, STAGES, TRAIN
from livecli.store import MANIFEST, DamagedFile, Project, atomic_write_bytes, held_lock

INDEX, DATA, MEDIA, LOCK = "index.html", "gallery.json", "media", ".gallery.lock"
SCHEMA = 1
SEARCH_DEPTH = 4
"""How deep below a given folder projects are looked for (a batch's folder, a folder of batches)."""

TIMED_STAGES = tuple(stage.name for stage in STAGES if stage.timed)


@dataclass
class Card:
    """One edit as the page shows it; paths are relative to the gallery folder."""

    key: str
    project: str
    location: str
    edit: str
    prompt: str
    target: str
    status: str
    reason: str = ""
    video: str | None = None
    edited: str | None = None
    poster: str | None = None
    sheet: str | None = None
    references: list[str] = field(default_factory=list)
    scores: dict[str, list[float | None]] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    finished: str = ""


@dataclass
class Written:
    folder: Path
    cards: list[Card]
    projects: int
    sources: list[str]

    @property
    def index(self) -> Path:
        return self.folder / INDEX


# --------------------------------------------------------------------------- finding projects


def find_projects(paths: Iterable[Path]) -> list[Path]:
    """The project folders given or found under `paths` (a project, a folder holding projects
    at most SEARCH_DEPTH levels down, or a jobs file: its jobs' projects), each once, in order."""
    found: list[Path] = []
    for path in paths:
        _check_given(path)
        if path.is_file():
            found += _jobs_projects(path)
        elif (path / MANIFEST).is_file():
            found.append(path)
        else:
            found += sorted(_projects_under(path, SEARCH_DEPTH))
    unique: dict[Path, Path] = {}
    for project in found:
        unique.setdefault(project.resolve(), project)
    return list(unique.values())


def _check_given(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path} does not exist", hint="give projects, folders of projects, or a jobs file")
    if path.is_file() and path.suffix != ".toml":
        raise InputError(
            f"{path} is a file but not a jobs file", hint="give projects, folders of projects, or a jobs file"
        )


def _projects_under(folder: Path, depth: int) -> Iterator[Path]:
    if depth == 0:
        return
    try:
        children = sorted(folder.iterdir())
    except OSError:
        return  # a folder we may not read holds no project of ours
    for child in children:
        if child.name.startswith(".") or child.is_symlink() or not child.is_dir():
            continue
        if (child / MANIFEST).is_file():
            yield child
        else:
            yield from _projects_under(child, depth - 1)


def _jobs_projects(path: Path) -> list[Path]:
    from livecli.batch import load_jobs

    return [job.project for job in load_jobs(path) if (job.project / MANIFEST).is_file()]


# --------------------------------------------------------------------------- reading a project


def display_names(projects: list[Path]) -> dict[Path, str]:
    """Each project's name on the page: its folder's name, with as many folders above it as
    tell it from the others (`case0/live.live`, `case2/live.live`)."""
    parts = {root: root.resolve().parts for root in projects}
    names = {}
    for root, path in parts.items():
        depth = 1
        while depth < len(path) and any(
            other[-depth:] == path[-depth:] for key, other in parts.items() if key is not root
        ):
            depth += 1
        names[root] = "/".join(path[-depth:])
    return names


def project_cards(root: Path, media: Path, folder: Path, shown_as: str | None = None) -> list[Card]:
    """A card for each edit of the project at `root` (shown as `shown_as`), its pictures and
    videos copied under `media` (inside the gallery `folder`)."""
    project = Project(root)
    manifest = project.manifest()
    slug = _slug(root)
    shown = shown_as or root.name
    prepared, train = _record(project, PREPARE), _record(project, TRAIN)
    seconds = {stage: record.seconds for stage, record in (("prepare", prepared), ("train", train)) if record}
    trained = _differing(TrainConfig, train.settings if train else {}, prefix="train.")
    references = _copy_references(project, media / slug, folder)
    cards = []
    for stage, record in project.runs(EDIT):
        name = stage.run_name
        target = media / slug / name
        edit_folder = project.stage_dir(stage)
        reason = project.stale_reason(stage, STAGES)
        evaluation = EVAL.run(name)
        scored = _record(project, evaluation)
        status = "stale" if reason else "done"
        if not reason and scored is None:
            status, reason = "not scored", f"run `live eval --edit {name}`"
        elif not reason:
            stale_scores = project.stale_reason(evaluation, STAGES)
            if stale_scores:
                status, reason = "stale scores", stale_scores
        card = Card(
            key=f"{slug}/{name}",
            project=shown,
            location=str(root.resolve()),
            edit=name,
            prompt=str(record.settings.get("source_prompt", manifest.get("prompt", ""))),
            target=str(record.settings.get("target_prompt", "")),
            status=status,
            reason=reason,
            references=references,
            settings={**trained, **_differing(EditConfig, record.settings)},
            seconds={**seconds, **_invert_seconds(project, record), "edit": record.seconds},
            finished=record.finished or "",
        )
        video, compare = EDIT.outputs["video"], EDIT.outputs["compare"]
        card.video = _copy(edit_folder / compare, target / compare, folder)
        card.edited = _copy(edit_folder / video, target / video, folder)
        if card.video is not None:
            card.poster = _poster(folder / card.video, target / "poster.jpg", folder)
        if scored is not None:
            card.seconds["eval"] = scored.seconds
            eval_folder = project.stage_dir(evaluation)
            sheet = EVAL.outputs["contact_sheet"]
            card.sheet = _copy(eval_folder / sheet, target / sheet, folder)
            card.scores = _scores(eval_folder / EVAL.outputs["metrics"])
        cards.append(card)
    return cards


def _record(project: Project, stage):
    try:
        return project.record(stage)
    except DamagedFile:
        return None


def _invert_seconds(project: Project, edit_record) -> dict[str, float]:
    for name in edit_record.inputs:
        if name.startswith("invert/"):
            record = _record(project, INVERT.run(name.split("/", 1)[1]))
            if record is not None:
                return {"invert": record.seconds}
    return {}


def _differing(config: type, settings: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """The settings of a record that are not the config's defaults, as text."""
    shown = {}
    names = {item.name for item in fields(config)}
    for name, value in settings.items():
        if name not in names:
            continue  # derived from the settings (the edit's prompts), not one of them
        default = default_of(config, name)
        if isinstance(default, tuple):
            default = list(default)
        if value != default:
            shown[prefix + name] = value if isinstance(value, str) else json.dumps(value)
    return shown


def _scores(path: Path) -> dict[str, list[float | None]]:
    """Each score of metrics.json: [edit, source]; a damaged file gives none."""
    try:
        rows = json.loads(path.read_text())["rows"]
        edit, source = rows["edit"], rows["source"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {score.name: [_finite(edit.get(score.name)), _finite(source.get(score.name))] for score in catalogue()}


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _copy_references(project: Project, target: Path, folder: Path) -> list[str]:
    prepared = project.stage_dir(PREPARE)
    several = sorted((prepared / "references").glob("*.png")) if (prepared / "references").is_dir() else []
    pictures = several or [prepared / "reference.png"]
    copied = [_copy(picture, target / "references" / picture.name, folder) for picture in pictures]
    return [path for path in copied if path is not None]


# --------------------------------------------------------------------------- copying media


def _inside(target: Path, folder: Path) -> None:
    """Media are written inside the gallery: never through a symbolic link placed in it
    (checked before any folder is made on the way)."""
    here = target.parent
    linked = False
    while here != folder and here != here.parent:
        linked = linked or here.is_symlink()
        here = here.parent
    if linked or here != folder:
        raise InputError(
            f"{target.parent} leads out of the gallery {folder} (a symbolic link)",
            hint="remove the link, or write the gallery to a new folder",
        )


def _copy(source: Path, target: Path, folder: Path) -> str | None:
    """`source` copied to `target` unless it is there already (same size and time); the path
    relative to the gallery folder, or None when there is no such file to show."""
    if source.is_symlink() or not source.is_file():
        return None
    _inside(target, folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    stat = source.stat()
    if target.is_file():
        have = target.stat()
        if have.st_size == stat.st_size and have.st_mtime_ns == stat.st_mtime_ns:
            return target.relative_to(folder).as_posix()
    partial = target.with_name(f".{target.name}.partial")
    shutil.copy2(source, partial)
    os.replace(partial, target)
    return target.relative_to(folder).as_posix()


def _poster(video: Path, target: Path, folder: Path) -> str | None:
    """The video's first frame as a JPEG, shown until the video loads."""
    _inside(target, folder)
    if target.is_file() and target.stat().st_mtime_ns >= video.stat().st_mtime_ns:
        return target.relative_to(folder).as_posix()
    import av

    try:
        with av.open(str(video)) as container:
            frame = next(container.decode(video=0))
            picture = frame.to_image()
    except (av.FFmpegError, StopIteration, OSError):
        return None
    partial = target.with_name(f".{target.name}.partial")
    picture.save(partial, format="JPEG", quality=85)
    os.replace(partial, target)
    return target.relative_to(folder).as_posix()


def _slug(root: Path) -> str:
    """The project's media folder: its name and a hash of where it is (two `clip.live`
    folders of different batches stay apart)."""
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]
    return f"{root.name}-{digest}"


# --------------------------------------------------------------------------- the gallery folder


def check_folder(folder: Path, projects: list[Path]) -> None:
    """A gallery is written only into a new or empty folder or a gallery, outside every project."""
    if folder.is_symlink():
        raise InputError(f"--out {folder} is a symbolic link", hint="give the real folder")
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--out {folder} is a file", hint="give a folder for the gallery")
    if folder.is_dir() and any(p.name != LOCK for p in folder.iterdir()) and not (folder / DATA).is_file():
        raise InputError(
            f"--out {folder} is not empty and is not a gallery (no {DATA})",
            hint="give a new or empty folder, or one a `live gallery` wrote",
        )
    where = folder.resolve()
    for parent in (where, *where.parents):
        if (parent / MANIFEST).is_file():
            raise InputError(
                f"--out {folder} is inside the project {parent}", hint="write the gallery outside projects"
            )


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """One writer of a gallery folder at a time; a second one fails at once."""
    folder.mkdir(parents=True, exist_ok=True)

    def busy(holder: str) -> ProjectError:
        return ProjectError(
            f"gallery {folder} is being written by another live process",
            hint="wait for it to finish and run this again",
        )

    with held_lock(folder / LOCK, busy):
        yield


def earlier_sources(folder: Path) -> list[Path]:
    """The paths an earlier `live gallery` into `folder` was made from (none when unreadable)."""
    try:
        data = json.loads((folder / DATA).read_text())
        return [Path(path) for path in data["sources"] if isinstance(path, str)]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def write_gallery(paths: list[Path], folder: Path, add_earlier: bool = True, on_project=None) -> Written:
    """The gallery of every edit of the projects under `paths` (and, with `add_earlier`, under
    the paths the gallery in `folder` was made from before), written into `folder`."""
    for path in paths:
        _check_given(path)
    earlier = [path for path in earlier_sources(folder) if path.exists()] if add_earlier else []
    sources = list(dict.fromkeys([*(p.resolve() for p in paths), *earlier]))
    if not sources:
        raise InputError(
            f"the gallery in {folder} names no paths to read again (its {DATA} is damaged, or they are gone)",
            hint=f"give them: live gallery PATHS… --out {folder}",
        )
    projects = find_projects(sources)
    if not projects:
        raise InputError(
            "no projects found under " + ", ".join(str(p) for p in paths or sources),
            hint="give project folders (with live.toml), folders holding them, or a jobs file",
        )
    check_folder(folder, projects)
    with locked(folder):
        media = folder / MEDIA
        cards: list[Card] = []
        names = display_names(projects)
        for root in projects:
            try:
                cards += project_cards(root, media, folder, names[root])
            except (DamagedFile, ProjectError, OSError) as exc:
                cards.append(_unreadable(root, names[root], exc))
            if on_project is not None:
                on_project(root)
        _remove_unused(media, cards)
        data = {"schema": SCHEMA, "live_version": __version__, "sources": [str(s) for s in sources]}
        data["edits"] = [asdict(card) for card in cards]
        atomic_write_bytes(folder / DATA, json.dumps(data, indent=1).encode())
        atomic_write_bytes(folder / INDEX, page(cards).encode())
    return Written(folder, cards, len(projects), [str(s) for s in sources])


def _unreadable(root: Path, name: str, exc: Exception) -> Card:
    return Card(
        key=f"{_slug(root)}/-", project=name, location=str(root.resolve()), edit="—", prompt="", target="",
        status="unreadable", reason=str(exc),
    )  # fmt: skip


def _remove_unused(media: Path, cards: list[Card]) -> None:
    """Media folders of edits no longer shown (removed from their projects), inside `media` only."""
    if not media.is_dir():
        return
    used = {card.key.split("/")[0] for card in cards}
    shown = {card.key for card in cards}
    for project in media.iterdir():
        if project.is_symlink() or not project.is_dir():
            continue
        if project.name not in used:
            shutil.rmtree(project)
            continue
        for edit in project.iterdir():
            if edit.is_dir() and not edit.is_symlink() and edit.name != "references":
                if f"{project.name}/{edit.name}" not in shown:
                    shutil.rmtree(edit)


# --------------------------------------------------------------------------- the page


def page(cards: list[Card]) -> str:
    """index.html: the table of edits, then a card per edit; no script or font from the
    network. The markup is templates/gallery.html (autoescaped: every value from a project
    is text), its style and script the files beside it."""
    columns = [
        score for score in catalogue() if any(card.scores.get(score.name, [None])[0] is not None for card in cards)
    ]
    projects = len({card.location for card in cards})
    summary = f"{len(cards)} edit{'s' if len(cards) != 1 else ''} of {projects} project{'s' if projects != 1 else ''}"
    return _template().render(
        version=__version__,
        summary=summary,
        columns=columns,
        cards=[_view(card, columns) for card in cards],
        style=Markup(_packaged("gallery.css")),  # our own files: not escaped
        script=Markup(_packaged("gallery.js")),
    )


def _view(card: Card, columns: list) -> dict[str, Any]:
    """What the template shows of one card: its text as it is (escaped there), links quoted."""
    cells = []
    for score in columns:
        edit, source = (card.scores.get(score.name) or [None, None])[:2]
        cells.append(
            {
                "value": "" if edit is None else f"{edit:g}",
                "edit": None if edit is None else f"{edit:.4g}",
                "source": None if source is None else f"{source:.4g}",
            }
        )
    scores = [
        {
            "label": score.titled,
            "edit": _number(card.scores[score.name][0]),
            "source": _number(card.scores[score.name][1]),
        }
        for score in catalogue()
        if score.name in card.scores and any(value is not None for value in card.scores[score.name])
    ]
    links = [
        (name, _href(path))
        for name, path in (
            (EDIT.outputs["compare"], card.video),
            (EDIT.outputs["video"], card.edited),
            ("contact sheet", card.sheet),
        )
        if path
    ]
    return {
        "key": card.key,
        "anchor": _anchor(card),
        "search": " ".join([card.project, card.edit, card.prompt, card.target, card.status, *card.settings]).lower(),
        "project": card.project,
        "edit": card.edit,
        "status": card.status,
        "status_class": _status_class(card),
        "reason": card.reason,
        "prompt": card.prompt,
        "target": card.target,
        "location": card.location,
        "cells": cells,
        "references": [_href(path) for path in card.references],
        "video": _href(card.video) if card.video else None,
        "poster": _href(card.poster or ""),
        "sheet": _href(card.sheet) if card.sheet else None,
        "scores": scores,
        "settings": sorted(card.settings.items()),
        "times": " · ".join(f"{stage} {card.seconds[stage]:.1f} s" for stage in TIMED_STAGES if stage in card.seconds),
        "links": links,
    }


@functools.cache
def _template():
    environment = jinja2.Environment(loader=jinja2.PackageLoader("livecli", "templates"), autoescape=True)
    return environment.get_template("gallery.html")


def _packaged(name: str) -> str:
    return (files("livecli") / "templates" / name).read_text(encoding="utf-8")


def _href(path: str) -> str:
    """A media path as a link: quoted (a `#` or a space in a project's name); the template escapes it."""
    return quote(path, safe="/")


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _anchor(card: Card) -> str:
    return "edit-" + hashlib.sha256(card.key.encode()).hexdigest()[:12]


def _status_class(card: Card) -> str:
    return "ok" if card.status == "done" else "warn"
