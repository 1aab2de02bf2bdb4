"""Benchmark (not a test): how fast `live gallery` writes, and Chromium opens, a page of many edits.

One tiny project is made with `live run` (or given with --project), copied N times (200 by
default) into a work folder, and `live gallery` writes the page over them; headless
Chromium (Debian's, driven by Playwright) then opens it from `file://` and from
`python -m http.server`, three times each. Reported: the time to write the gallery (the
first time, and again when nothing changed), the page's DOMContentLoaded and load times,
how many videos the page loaded before any scrolling (lazy loading: only those in view;
the table of every edit comes first), and the time from scrolling to the first card until
its video plays.

    python bench/gallery_load.py                 # 200 edits
    python bench/gallery_load.py --edits 50 --project some/clip.live
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]  # fmt: skip


def tiny_project(folder: Path) -> Path:
    sys.path.insert(0, str(HERE.parent / "tests"))
    from clips import write_clip, write_image
    from livecli.cli import main

    folder.mkdir(parents=True)
    clip, image = write_clip(folder / "clip.mp4", frames=12), write_image(folder / "ref.png")
    args = [
        "run", str(clip), str(image), "--prompt", "a jeep car is moving on the road", "--object", "car",
        "--replace", "car=<tok>", "--model", "tiny", "--frames", "8", "--size", "64", "--train-steps", "2",
        "--edit-steps", "4", "-p", str(folder / "clip.live"),
    ]  # fmt: skip
    assert main(args) == 0
    return folder / "clip.live"


def open_page(browser, url: str) -> dict:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    started = time.perf_counter()
    page.goto(url, wait_until="load")
    loaded = time.perf_counter() - started
    loaded_videos = page.evaluate("[...document.querySelectorAll('video.compare')].filter(v => v.src).length")
    scrolled = time.perf_counter()
    page.locator("article.card").first.scroll_into_view_if_needed()
    page.wait_for_function("document.querySelector('video.compare').currentTime > 0", timeout=30000)
    playing = time.perf_counter() - scrolled
    timing = page.evaluate(
        "(() => { const t = performance.getEntriesByType('navigation')[0];"
        " return [t.domContentLoadedEventEnd, t.loadEventEnd]; })()"
    )
    page.close()
    return {
        "dom_content_loaded_s": timing[0] / 1000,
        "load_event_s": timing[1] / 1000,
        "goto_s": loaded,
        "first_video_playing_after_scroll_s": playing,
        "videos_loaded_unscrolled": loaded_videos,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=200)
    parser.add_argument("--project", type=Path, help="a project to copy (default: a tiny one made here)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--results", type=Path, default=HERE / "results" / "gallery_load.json")
    args = parser.parse_args()
    os.environ.setdefault("LIVE_QUIET", "1")
    from playwright.sync_api import sync_playwright

    from livecli.gallery import write_gallery

    work = Path(tempfile.mkdtemp(prefix="gallery-load-"))
    source = args.project or tiny_project(work / "source")
    projects = work / "projects"
    for index in range(args.edits):
        shutil.copytree(source, projects / f"p{index:03d}.live", ignore=shutil.ignore_patterns("checkpoints"))
    started = time.perf_counter()
    written = write_gallery([projects], work / "gallery", add_earlier=False)
    first_write = time.perf_counter() - started
    started = time.perf_counter()
    write_gallery([projects], work / "gallery", add_earlier=False)
    rewrite = time.perf_counter() - started
    size = sum(p.stat().st_size for p in (work / "gallery").rglob("*") if p.is_file())

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(work / "gallery")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    runs: dict[str, list[dict]] = {"file": [], "server": []}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, args=FLAGS)
            for _ in range(3):
                runs["file"].append(open_page(browser, (work / "gallery" / "index.html").as_uri()))
                runs["server"].append(open_page(browser, f"http://127.0.0.1:{port}/index.html"))
            browser.close()
    finally:
        server.terminate()
        server.wait()
    summary = {
        where: {key: statistics.median(run[key] for run in found) for key in found[0]} for where, found in runs.items()
    }
    result = {
        "edits": len(written.cards),
        "gallery_bytes": size,
        "index_bytes": (work / "gallery" / "index.html").stat().st_size,
        "write_s": round(first_write, 3),
        "rewrite_unchanged_s": round(rewrite, 3),
        "median_of_3": summary,
        "machine": f"{os.cpu_count()} CPUs",
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
