"""`live gallery`: one static page over the edits of many projects, made from their folders
(which it only reads), refreshed from where it was made from, refused where it could harm.
How the page behaves in a browser is tests/browser/."""

from __future__ import annotations

import fcntl
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import av
from PIL import Image

from helpers import tiny_jobs, tree_digest

GALLERY = Path("gallery")


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href", "data-src", "poster") and value:
                self.links.append(value)


def links_of(page: Path) -> list[str]:
    parser = _Links()
    parser.feed(page.read_text())
    return parser.links


def cards() -> dict[str, dict]:
    return {
        f"{card['project']}/{card['edit']}": card
        for card in json.loads((GALLERY / "gallery.json").read_text())["edits"]
    }


def test_the_gallery_shows_every_edit_of_every_project_found_and_only_reads_them(cli, ran):
    """Two projects (one a folder down) and three edits: each card's media are copies in the
    gallery that decode, every link is relative and inside it, the scores are metrics.json's."""
    other = Path("batch") / "other #2.live"  # a name that must be quoted in a link
    shutil.copytree(ran, other)
    assert cli("edit", "--replace", "car=<tok>", "--guidance", "3", "--name", "soft").code == 0  # not scored
    (other / "eval" / "car-tok" / "metrics.json").write_text("{ damaged")  # shown without scores
    before = {name: tree_digest(Path(name)) for name in ("clip.live", "batch")}

    result = cli("gallery", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out) == {"index": "gallery/index.html", "projects": 2, "edits": 3}
    assert "gallery: 3 edits of 2 projects -> gallery/index.html" in result.err
    assert {name: tree_digest(Path(name)) for name in ("clip.live", "batch")} == before

    shown = cards()
    assert set(shown) == {"clip.live/car-tok", "clip.live/soft", "other #2.live/car-tok"}
    metrics = json.loads((ran / "eval" / "car-tok" / "metrics.json").read_text())["rows"]
    scored = shown["clip.live/car-tok"]
    assert scored["status"] == "done" and scored["scores"]["warp_error"] == [
        metrics["edit"]["warp_error"],
        metrics["source"]["warp_error"],
    ]
    assert (
        shown["clip.live/soft"]["status"] == "not scored"
        and "live eval --edit soft" in shown["clip.live/soft"]["reason"]
    )
    assert shown["clip.live/soft"]["settings"]["guidance"] == "3.0" and "guidance" not in scored["settings"]
    assert shown["other #2.live/car-tok"]["scores"] == {}
    assert set(scored["seconds"]) == {"prepare", "train", "invert", "edit", "eval"}

    with av.open(str(GALLERY / scored["video"])) as container:
        frames = list(container.decode(video=0))
    edited = sorted((ran / "edits" / "car-tok" / "frames").glob("*.png"))
    assert len(frames) == len(edited)
    width, height = Image.open(edited[0]).size
    assert (frames[0].width, frames[0].height) == (2 * width, height)  # the source and the edit, side by side
    assert Image.open(GALLERY / scored["poster"]).size == (2 * width, height)
    assert (
        Image.open(GALLERY / scored["sheet"]).tobytes() == Image.open(ran / "eval/car-tok/contact_sheet.png").tobytes()
    )
    assert (
        Image.open(GALLERY / scored["references"][0]).tobytes() == Image.open(ran / "prepare/reference.png").tobytes()
    )

    page = GALLERY / "index.html"
    links = links_of(page)
    assert len(links) >= 3 * 3
    for link in links:
        if link.startswith("#") or link == "data:,":  # an anchor; the empty icon (no favicon request)
            continue
        assert not link.startswith(("/", "http:", "https:", "file:")) and " " not in link and "#" not in link, link
        path = GALLERY / unquote(link)
        assert path.resolve().is_relative_to(GALLERY.resolve()) and path.is_file(), link
    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # no script, font or picture from the network
    assert "a jeep &lt;@#$&gt; is moving on the road" in text  # text is escaped


def test_a_gallery_refreshes_from_the_paths_it_was_made_from(cli, ran):
    shutil.copytree(ran, "other.live")
    assert cli("gallery", "clip.live", "other.live", "--out", GALLERY).code == 0
    other = cards()["other.live/car-tok"]
    media = (GALLERY / other["video"]).parent
    assert media.is_dir()

    shutil.rmtree(Path("other.live") / "edits" / "car-tok")  # the user removes an edit
    again = cli("gallery", "--out", GALLERY)  # no paths: the ones it was made from
    assert again.code == 0, again.err
    assert set(cards()) == {"clip.live/car-tok"}
    assert not media.exists() and (GALLERY / cards()["clip.live/car-tok"]["video"]).is_file()
    assert "other.live" not in (GALLERY / "index.html").read_text()


def test_a_batch_and_an_evaluation_write_the_gallery_they_are_given(cli, clip, image):
    jobs = tiny_jobs(Path("jobs.toml"), 2)
    result = cli("batch", jobs, "--gallery", "batch-gallery")
    assert result.code == 0, result.err
    assert "gallery: 2 edits of 2 projects" in result.err
    made = json.loads(Path("batch-gallery/gallery.json").read_text())["edits"]
    assert [(card["project"], card["status"]) for card in made] == [("job1.live", "done"), ("job2.live", "done")]

    for project, count in (("job1.live", 1), ("job2.live", 2)):  # each evaluation adds its project
        scored = cli("eval", "-p", project, "--gallery", GALLERY)
        assert scored.code == 0, scored.err
        assert len(cards()) == count
    assert cli("gallery", jobs, "--out", "from-jobs").code == 0  # a jobs file: its projects
    assert len(json.loads(Path("from-jobs/gallery.json").read_text())["edits"]) == 2


def test_a_gallery_is_never_written_where_it_could_harm(cli, ran, tmp_path):
    foreign = Path("notes")
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep\n")
    Path("real").mkdir()
    Path("linked").symlink_to("real")
    Path("empty").mkdir()
    Path("plain.txt").write_text("text\n")
    before = tree_digest(tmp_path)
    cases = [
        (["gone"], "error: gone does not exist"),
        (["clip.live", "--out", "notes"], "error: --out notes is not empty and is not a gallery (no gallery.json)"),
        (["clip.live", "--out", "clip.live/gallery"], "error: --out clip.live/gallery is inside the project"),
        (["clip.live", "--out", "linked"], "error: --out linked is a symbolic link"),
        (["clip.live", "--out", "plain.txt"], "error: --out plain.txt is a file"),
        (["empty"], "error: no projects found under empty"),
        (["plain.txt"], "error: plain.txt is a file but not a jobs file"),
    ]
    for args, expected in cases:
        result = cli("gallery", *args)
        assert result.code == 1 and "Traceback" not in result.err, (args, result.err)
        assert len(result.error_lines) == 1 and result.error_lines[0].startswith(expected), (args, result.err)
    assert tree_digest(tmp_path) == before and not GALLERY.exists()


def test_a_symbolic_link_planted_in_the_gallery_is_not_written_through(cli, ran, tmp_path):
    assert cli("gallery", "clip.live").code == 0
    (media,) = (GALLERY / "media").iterdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(media)
    media.symlink_to(elsewhere)
    result = cli("gallery", "clip.live")
    assert result.code == 1 and len(result.error_lines) == 1 and "(a symbolic link)" in result.error_lines[0]
    assert list(elsewhere.iterdir()) == []


def test_a_second_writer_of_one_gallery_is_refused_in_one_line(cli, ran):
    assert cli("gallery", "clip.live").code == 0
    before = tree_digest(GALLERY)
    with open(GALLERY / ".gallery.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = cli("gallery", "clip.live")
    assert result.code == 1
    assert result.error_lines == ["error: gallery gallery is being written by another live process"]
    assert tree_digest(GALLERY) == before
    (GALLERY / "gallery.json").write_text("{ damaged")
    again = cli("gallery", "--out", GALLERY)  # nothing to read again: says so
    assert again.error_lines == [
        "error: the gallery in gallery names no paths to read again (its gallery.json is damaged, or they are gone)"
    ]
