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

import fcntl
import hashlib
import html
import json
import math
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import quote

from livecli import __version__
from livecli.config import EditConfig, TrainConfig
from livecli.errors import InputError, ProjectError
from livecli.fields import default_of
from livecli.stages import EDIT, EVAL, INVERT, PREPARE, STAGES, TRAIN
from livecli.store import MANIFEST, DamagedFile, Project, atomic_write_bytes

INDEX, DATA, MEDIA, LOCK = "index.html", "gallery.json", "media", ".gallery.lock"
SCHEMA = 1
SEARCH_DEPTH = 4
"""How deep below a given folder projects are looked for (a batch's folder, a folder of batches)."""

SCORES = {  # metrics.json's rows: label, and whether higher is better
    "clip_score": ("CLIP score", True),
    "consistency_consecutive": ("consistency", True),
    "reference_similarity": ("CLIP-I reference", True),
    "reference_similarity_crop": ("CLIP-I crop", True),
    "background_psnr": ("background PSNR (dB)", True),
    "background_ssim": ("background SSIM", True),
    "warp_error": ("warp error", False),
    "object_match": ("object match", True),
}
TIMED_STAGES = ("prepare", "train", "invert", "edit", "eval")


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
        card.video = _copy(edit_folder / "compare.mp4", target / "compare.mp4", folder)
        card.edited = _copy(edit_folder / "edit.mp4", target / "edit.mp4", folder)
        if card.video is not None:
            card.poster = _poster(folder / card.video, target / "poster.jpg", folder)
        if scored is not None:
            card.seconds["eval"] = scored.seconds
            eval_folder = project.stage_dir(evaluation)
            card.sheet = _copy(eval_folder / "contact_sheet.png", target / "contact_sheet.png", folder)
            card.scores = _scores(eval_folder / "metrics.json")
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
    return {name: [_finite(edit.get(name)), _finite(source.get(name))] for name in SCORES}


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
    with open(folder / LOCK, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ProjectError(
                f"gallery {folder} is being written by another live process",
                hint="wait for it to finish and run this again",
            ) from None
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
    """index.html: the table of edits, then a card per edit; no script or font from the network."""
    head = "".join(
        f'<th data-sort="{name}" data-better="{"high" if higher else "low"}" title="edit (source)">{label}</th>'
        for name, (label, higher) in SCORES.items()
        if any(card.scores.get(name, [None])[0] is not None for card in cards)
    )
    shown = [name for name, _ in SCORES.items() if f'data-sort="{name}"' in head]
    rows = "\n".join(_row(card, shown) for card in cards)
    body = "\n".join(_card(card) for card in cards)
    projects = len({card.location for card in cards})
    summary = f"{len(cards)} edit{'s' if len(cards) != 1 else ''} of {projects} project{'s' if projects != 1 else ''}"
    return TEMPLATE.format(
        version=html.escape(__version__),
        summary=summary,
        head=head,
        rows=rows,
        cards=body,
        style=STYLE,
        script=SCRIPT,
    )


def _row(card: Card, shown: list[str]) -> str:
    cells = []
    for name in shown:
        edit, source = (card.scores.get(name) or [None, None])[:2]
        value = "" if edit is None else f"{edit:g}"
        text = "—" if edit is None else f"{edit:.4g}" + ("" if source is None else f" <small>({source:.4g})</small>")
        cells.append(f'<td data-value="{value}">{text}</td>')
    search = html.escape(" ".join([card.project, card.edit, card.prompt, card.target, card.status, *card.settings]))
    return (
        f'<tr data-key="{html.escape(card.key)}" data-search="{search.lower()}">'
        f'<td><a href="#{_anchor(card)}">{html.escape(card.project)}</a></td><td>{html.escape(card.edit)}</td>'
        f'<td class="status {_status_class(card)}">{html.escape(card.status)}</td>'
        f"<td>{html.escape(card.target)}</td>{''.join(cells)}</tr>"
    )


def _card(card: Card) -> str:
    references = "".join(
        f'<img class="reference" src="{_href(p)}" alt="reference" loading="lazy">' for p in card.references
    )
    video = (
        f'<video class="compare" data-src="{_href(card.video)}" poster="{_href(card.poster or "")}" '
        'muted loop playsinline preload="none" controls></video>'
        if card.video
        else '<p class="missing">no video</p>'
    )
    sheet = (
        f'<a href="{_href(card.sheet)}"><img class="sheet" src="{_href(card.sheet)}" '
        'alt="contact sheet" loading="lazy"></a>'
        if card.sheet
        else ""
    )
    scores = "".join(
        f"<tr><th>{label}</th><td>{_number(card.scores[name][0])}</td><td>{_number(card.scores[name][1])}</td></tr>"
        for name, (label, _) in SCORES.items()
        if name in card.scores and (card.scores[name][0] is not None or card.scores[name][1] is not None)
    )
    scores = f"<table class='scores'><tr><th></th><th>edit</th><th>source</th></tr>{scores}</table>" if scores else ""
    settings = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in sorted(card.settings.items())
    )
    settings = f"<table class='settings'>{settings}</table>" if settings else "<p>default settings</p>"
    times = " · ".join(f"{stage} {card.seconds[stage]:.1f} s" for stage in TIMED_STAGES if stage in card.seconds)
    links = " ".join(
        f'<a href="{_href(path)}">{name}</a>'
        for name, path in (("compare.mp4", card.video), ("edit.mp4", card.edited), ("contact sheet", card.sheet))
        if path
    )
    reason = f' <span class="reason">{html.escape(card.reason)}</span>' if card.reason else ""
    return f"""<article class="card" id="{_anchor(card)}" data-key="{html.escape(card.key)}">
<h2>{html.escape(card.project)} · {html.escape(card.edit)}
<span class="status {_status_class(card)}">{html.escape(card.status)}</span>{reason}</h2>
<p class="prompt">{html.escape(card.prompt)} → <b>{html.escape(card.target)}</b></p>
<div class="media"><div class="references">{references}</div>{video}</div>
{sheet}
<div class="facts">{scores}<div>{settings}<p class="times">{times}</p><p>{links}</p>
<p class="where" title="the project">{html.escape(card.location)}</p></div></div>
</article>"""


def _href(path: str) -> str:
    """A media path as a link: quoted (a `#` or a space in a project's name), then escaped."""
    return html.escape(quote(path, safe="/"))


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _anchor(card: Card) -> str:
    return "edit-" + hashlib.sha256(card.key.encode()).hexdigest()[:12]


def _status_class(card: Card) -> str:
    return "ok" if card.status == "done" else "warn"


STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;background:#fafafa;color:#222}
h1{font-size:1.4rem;margin:0 0 .3rem}
header p{margin:.2rem 0;color:#555}
#filter{font-size:1rem;padding:.3rem .5rem;width:22rem;max-width:100%;margin:.5rem 0}
table{border-collapse:collapse}
#edits{width:100%;background:#fff;font-size:.9rem}
#edits th,#edits td{border-bottom:1px solid #ddd;padding:.25rem .5rem;text-align:left}
#edits th[data-sort]{cursor:pointer;user-select:none}
#edits th[aria-sort=ascending]::after{content:" ▲"}
#edits th[aria-sort=descending]::after{content:" ▼"}
small{color:#777}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:1rem;margin:1rem 0}
.card h2{font-size:1.1rem;margin:0 0 .4rem}
.status{font-size:.8rem;padding:.1rem .4rem;border-radius:3px}
.status.ok{background:#dfd}.status.warn{background:#fec}
.reason{font-size:.8rem;color:#a60;font-weight:normal}
.prompt{margin:.2rem 0 .6rem;color:#333}
.media{display:flex;gap:1rem;align-items:flex-start;flex-wrap:wrap}
.references{display:flex;flex-direction:column;gap:.3rem}
.reference{width:96px;height:96px;object-fit:contain;background:#eee;border:1px solid #ccc}
video.compare{width:min(100%,640px);background:#000;image-rendering:pixelated}
img.sheet{max-width:min(100%,640px);margin:.6rem 0;border:1px solid #ddd}
.facts{display:flex;gap:2rem;flex-wrap:wrap;align-items:flex-start;font-size:.85rem}
.facts th{text-align:left;padding-right:.8rem;font-weight:normal;color:#555}
.facts td{padding-right:.8rem}
.where{color:#888;font-size:.75rem;word-break:break-all}
.missing{color:#a00}
tr.hidden,article.hidden{display:none}
"""

SCRIPT = """
(function(){
  const rows=[...document.querySelectorAll('#edits tbody tr')];
  const cards=new Map([...document.querySelectorAll('article.card')].map(c=>[c.dataset.key,c]));
  document.getElementById('filter').addEventListener('input',e=>{
    const words=e.target.value.toLowerCase().split(/\\s+/).filter(Boolean);
    let shown=0;
    for(const row of rows){
      const hit=words.every(w=>row.dataset.search.includes(w));
      row.classList.toggle('hidden',!hit);
      const card=cards.get(row.dataset.key); if(card) card.classList.toggle('hidden',!hit);
      if(hit) shown++;
    }
    document.getElementById('count').textContent=shown+' shown';
  });
  for(const th of document.querySelectorAll('#edits th[data-sort]')){
    th.addEventListener('click',()=>{
      const column=[...th.parentNode.children].indexOf(th);
      const down=th.getAttribute('aria-sort')!=='descending';
      for(const other of document.querySelectorAll('#edits th')) other.removeAttribute('aria-sort');
      th.setAttribute('aria-sort',down?'descending':'ascending');
      const value=r=>{const v=r.children[column].dataset.value;return v===''?NaN:parseFloat(v);};
      rows.sort((a,b)=>{const x=value(a),y=value(b);
        if(isNaN(x))return 1; if(isNaN(y))return -1; return down?y-x:x-y;});
      const body=document.querySelector('#edits tbody'); rows.forEach(r=>body.appendChild(r));
    });
  }
  const seen=new IntersectionObserver(entries=>{
    for(const entry of entries){
      const video=entry.target;
      if(entry.isIntersecting){
        if(!video.src){video.src=video.dataset.src;}
        video.play().catch(()=>{});
      }else if(video.src){video.pause();}
    }
  },{rootMargin:'200px'});
  document.querySelectorAll('video.compare').forEach(v=>seen.observe(v));
})();
"""

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<link rel="icon" href="data:,">
<title>live gallery: {summary}</title>
<style>{style}</style></head>
<body>
<header><h1>live gallery</h1>
<p>{summary}; written by live {version}. Each video is the source (left) and the edit (right).
Click a score's heading to sort; scores are the edit's, the source's in brackets.</p>
<input id="filter" type="search" placeholder="filter: project, edit, prompt, setting…" aria-label="filter">
<span id="count"></span></header>
<table id="edits"><thead><tr><th>project</th><th>edit</th><th>status</th><th>prompt</th>{head}</tr></thead>
<tbody>
{rows}
</tbody></table>
{cards}
<script>{script}</script>
</body></html>
"""
