"""`live gallery` over a batch of four tiny projects, in headless Chromium: from `file://`
and from a static server, its cards, its table sorting and filtering, and every card's
video playing (and the check noticing when one does not)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from browsers import free_port, wait_for_port

from clips import write_clip, write_image
from helpers import tiny_jobs

pytestmark = pytest.mark.browser

JOBS = 4


@pytest.fixture(scope="module")
def gallery(tmp_path_factory) -> Path:
    """`live batch --gallery` over four tiny jobs, two of them with other settings."""
    from livecli.cli import main

    root = tmp_path_factory.mktemp("batch")
    write_clip(root / "clip.mp4", frames=12)
    write_image(root / "ref.png")
    guided = lambda n: f"edit = {{ steps = 2, guidance = {n + 2} }}\n" if n % 2 else ""  # noqa: E731
    jobs = tiny_jobs(root / "jobs.toml", JOBS, guided)
    assert main(["batch", str(jobs), "--gallery", str(root / "gallery")]) == 0
    return root / "gallery"


@pytest.fixture(scope="module")
def served(gallery):
    """The gallery behind `python -m http.server`, on a free port of 127.0.0.1."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(gallery)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, server, 20)
    yield f"http://127.0.0.1:{port}/index.html"
    server.terminate()
    server.wait()


def videos_playing(page, timeout_s: float = 15.0) -> dict[str, bool]:
    """Each card's video, scrolled into view: whether it loaded and its time advanced."""
    playing = {}
    for card in page.locator("article.card").all():
        card.scroll_into_view_if_needed()
        video = card.locator("video.compare")
        started = time.monotonic()
        advanced = False
        while time.monotonic() - started < timeout_s:
            state = video.evaluate("v => [v.readyState, v.currentTime, v.error ? v.error.code : 0]")
            if state[2]:
                break
            if state[0] >= 2 and state[1] > 0:
                advanced = True
                break
            page.wait_for_timeout(100)
        playing[card.get_attribute("data-key")] = advanced
    return playing


def table_values(page, column: str) -> list[float]:
    index = page.locator("#edits thead th").all_inner_texts().index(column)
    values = page.eval_on_selector_all(
        "#edits tbody tr:not(.hidden)", f"rows => rows.map(r => r.children[{index}].dataset.value)"
    )
    return [float(v) for v in values]


@pytest.mark.parametrize("where", ["file", "server"])
def test_the_gallery_page_shows_sorts_filters_and_plays_every_edit(page, gallery, served, where):
    url = gallery.joinpath("index.html").as_uri() if where == "file" else served
    page.goto(url)
    assert page.locator("article.card").count() == JOBS and page.locator("#edits tbody tr").count() == JOBS
    assert page.title().startswith(f"live gallery: {JOBS} edits of {JOBS} projects")

    header = page.locator("#edits th", has_text="warp error (source flow)")
    header.click()
    values = table_values(page, "warp error (source flow)")
    assert values == sorted(values, reverse=True) and len(set(values)) > 1
    header.click()
    assert table_values(page, "warp error (source flow)") == sorted(values)

    page.fill("#filter", "job3")
    assert page.locator("#edits tbody tr:not(.hidden)").count() == 1
    assert page.locator("article.card:not(.hidden)").count() == 1
    assert page.locator("article.card:not(.hidden) h2").inner_text().startswith("job3.live")
    page.fill("#filter", "guidance")  # the settings off their defaults are searched too
    assert page.locator("#edits tbody tr:not(.hidden)").count() == JOBS // 2
    page.fill("#filter", "")

    playing = videos_playing(page)
    assert len(playing) == JOBS and all(playing.values()), playing
    assert page.problems == []


def test_the_video_check_sees_a_card_whose_video_does_not_load(page, gallery, tmp_path):
    """The check above can fail: a copy of the gallery with one video damaged."""
    import shutil

    broken = Path(shutil.copytree(gallery, tmp_path / "broken"))
    first = json.loads((broken / "gallery.json").read_text())["edits"][0]
    (broken / first["video"]).write_bytes(b"not a video")
    page.goto((broken / "index.html").as_uri())
    playing = videos_playing(page, timeout_s=5)
    assert playing[first["key"]] is False and sum(playing.values()) == JOBS - 1
