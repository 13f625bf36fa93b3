"""Fixtures of the browser tests: each add-on served once per module, a fresh page per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.harness import CHROMIUM_FLAGS, Served, chromium_path, serve

playwright_api = pytest.importorskip("playwright.sync_api")


# Module scope, not session: Playwright's sync API runs an event loop on this thread while
# it is open, and the asyncio tests that follow need the thread without one.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        reason = "Chromium is not installed (apt-get install chromium, or set CHROMIUM_PATH)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI runs the browser tests")
        pytest.skip(reason)
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module", params=["api-studio", "universal-webhook"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    app_name = str(request.param)
    with serve(app_name, Path(tmp_path_factory.mktemp(app_name))) as running:
        yield running


class Console:
    """What the page (and its frames) reported as errors."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def record(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} ({message.location.get('url', '')})")


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(chromium: Any, console: Console) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1100, "height": 800})
    tab = context.new_page()
    tab.on("console", console.record)
    tab.on("pageerror", lambda error: console.errors.append(f"uncaught: {error}"))
    tab.set_default_timeout(15_000)
    yield tab
    context.close()
