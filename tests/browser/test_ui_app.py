"""`live ui --model tiny` in headless Chromium: fill the form, train and edit a few steps,
watch the progress and the edited video, and find the project the shell would make."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from browsers import free_port, wait_for_port

from clips import write_clip, write_image
from livecli.ui import OPTIONS, shown_default

pytestmark = pytest.mark.browser

SETTINGS = {"train-frames": "4", "train-size": "64", "train-steps": "2", "edit-steps": "2"}
SHOWN = {item.key.replace(".", "-"): shown_default(item, "tiny") for item in OPTIONS}
"""What the app's option fields show before anything is typed."""
PROMPT = "a jeep car is moving on the road"


@pytest.fixture
def app(tmp_path):
    """`live ui` on the tiny model over an empty folder holding a clip and an image."""
    write_clip(tmp_path / "clip.mp4", frames=12)
    write_image(tmp_path / "ref.png")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "livecli", "ui", "--folder", str(tmp_path), "--model", "tiny", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "LIVE_QUIET": "0"},  # its messages, as a user sees them
        # As from a terminal, where Ctrl-C is heard: a suite started in the background by a
        # script (`cmd &`) passes SIGINT on ignored, and Python then never raises KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    wait_for_port(port, server, 90)
    yield server, f"http://127.0.0.1:{port}/", tmp_path
    if server.poll() is None:
        server.kill()
        server.wait()


def fill(page, element: str, value: str) -> None:
    """Typed as a user types it, then Tab: key events and the blur the app reacts to, not
    only a value set at once (once, on a slow machine, a form so filled ran with a default)."""
    box = page.locator(f"#{element} textarea, #{element} input").first
    box.fill("")
    box.press_sequentially(value)
    box.press("Tab")
    assert box.input_value() == value, f"{element}: typed {value!r}, the field holds {box.input_value()!r}"


def fill_form(page, url: str, folder, settings: dict[str, str]) -> None:
    """The app opened, its form given the folder's clip and image, the prompt, and `settings`."""
    from playwright.sync_api import expect  # the browser extra: the plain test session only collects this

    page.goto(url)
    # The whole app loaded, not only its first field: a user types into a page that is ready.
    page.wait_for_load_state("networkidle")
    page.wait_for_selector("#clip textarea, #clip input")
    fill(page, "clip", str(folder / "clip.mp4"))
    fill(page, "images", str(folder / "ref.png"))
    fill(page, "train-prompt", PROMPT)
    fill(page, "train-object", "car")
    page.locator("button.label-wrap", has_text="options").click()
    page.locator("#train-steps textarea, #train-steps input").first.wait_for(state="visible")
    for element, value in settings.items():
        # A field the accordion has just shown gets its default a moment after it appears
        # (once, its `all` came after the field was cleared: `all4`): type once it has it.
        expect(page.locator(f"#{element} textarea, #{element} input").first).to_have_value(SHOWN[element])
        fill(page, element, value)


def finished(page, timeout_s: float = 240) -> str:
    """The status line once the run has ended ("done", an error, or how it stopped)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        text = page.locator("#status").inner_text().strip()
        if text.startswith(("done", "error", "stopped")):
            return text
        page.wait_for_timeout(200)
    raise AssertionError(f"still running after {timeout_s} s: {page.locator('#status').inner_text()}")


def test_the_app_trains_and_edits_the_project_the_shell_would_make(page, app, cli):
    server, url, folder = app
    fill_form(page, url, folder, SETTINGS)
    assert page.locator("#train-model textarea, #train-model input").first.input_value() == "tiny"

    started = time.perf_counter()
    page.click("#train")
    assert finished(page) == "done"
    log = page.locator("#log textarea, #log input").first.input_value()
    assert log.startswith("$ live train ") and "--frames 4 --size 64 --steps 2 " in log.splitlines()[0], log
    progress = page.locator("#progress textarea, #progress input").first.input_value()
    assert progress.startswith("training") and "2/2 (100 %" in progress
    fill(page, "edit-replace", "car=<tok>")
    page.click("#edit")
    assert finished(page) == "done"
    in_app = time.perf_counter() - started

    video = page.locator("#video video")
    video.wait_for()
    assert video.get_attribute("src").endswith("compare.mp4")
    page.wait_for_function("document.querySelector('#video video').currentTime > 0", timeout=15000)
    assert "car-tok" in page.locator("#edits").inner_text()  # the folder's edits, listed

    project = folder / "clip.live"
    ran = cli(
        "run", folder / "clip.mp4", folder / "ref.png", "--prompt", PROMPT, "--object", "car", "--model", "tiny",
        "--frames", "4", "--size", "64", "--train-steps", "2", "--edit-steps", "2", "--replace", "car=<tok>",
        "--no-eval", "-p", project, "--json",
    )  # fmt: skip
    assert ran.code == 0, ran.err
    outcome = json.loads(ran.out)
    assert outcome["status"] == "up to date" and all(stage["skipped"] for stage in outcome["stages"])

    shell = folder / "shell"  # the same train and edit from the shell: what the app adds to them
    shell.mkdir()
    live = [sys.executable, "-m", "livecli"]
    started = time.perf_counter()
    for args in (
        ["train", folder / "clip.mp4", folder / "ref.png", "--prompt", PROMPT, "--object", "car", "--model", "tiny",
         "--frames", "4", "--size", "64", "--steps", "2", "-p", shell / "clip.live"],
        ["edit", "--replace", "car=<tok>", "--steps", "2", "-p", shell / "clip.live"],
    ):  # fmt: skip
        subprocess.run([*live, *map(str, args)], check=True, capture_output=True)
    from_shell = time.perf_counter() - started
    print(f"\ntrain + edit: app {in_app:.1f} s, shell {from_shell:.1f} s, ratio {in_app / from_shell:.2f}")

    server.send_signal(signal.SIGINT)  # Ctrl-C
    assert server.wait(timeout=30) is not None


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_on_the_app_stops_its_training_as_the_cli_does(page, app, signum):
    """The training started from the page gets one Ctrl-C when `live ui` gets Ctrl-C or SIGTERM:
    it finishes its step, saves a checkpoint and ends; the app ends after it, and nothing is
    left running."""
    import psutil

    server, url, folder = app
    fill_form(page, url, folder, {**SETTINGS, "train-steps": "5000"})
    page.click("#train")
    page.wait_for_function(
        "(document.querySelector('#progress textarea, #progress input') || {}).value?.startsWith('training')",
        timeout=120000,
    )
    server.send_signal(signum)
    output, _ = server.communicate(timeout=120)
    assert "stopping `live train" in output
    checkpoint = folder / "clip.live" / "checkpoints" / "train" / "state.toml"
    assert checkpoint.is_file() and not (folder / "clip.live" / "train" / "record.toml").exists()
    left = [
        p for p in psutil.process_iter(["cmdline"]) if str(folder / "clip.live") in " ".join(p.info["cmdline"] or [])
    ]
    assert left == []
