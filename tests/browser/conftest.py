"""The browser tests (`nox -s browser`): each file is marked `browser`, which `nox -s tests` leaves out."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def browser():
    from browsers import FLAGS, chromium
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium()), args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    """A fresh page that records what went wrong in it: console errors and failed requests."""
    opened = browser.new_page(viewport={"width": 1280, "height": 900})
    opened.problems = []
    opened.on("console", lambda message: opened.problems.append(message.text) if message.type == "error" else None)
    opened.on("requestfailed", lambda request: opened.problems.append(f"failed: {request.url}"))
    opened.on("pageerror", lambda error: opened.problems.append(str(error)))
    yield opened
    opened.close()
