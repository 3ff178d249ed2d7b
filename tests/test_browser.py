"""`vsm serve` in a real headless Chromium: every page loads cleanly, the map's click path works, screenshots."""

from __future__ import annotations

import os
import shutil
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from waitress import wasyncore
from waitress.server import create_server

from collector.serve import create_app

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Response

sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright is not installed (the test extra: pip install -e '.[test]')")
expect = sync_api.expect


def _find_chromium() -> str | None:
    """The system Chromium to drive (Debian's package first): Playwright downloads no browser of its own."""
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM = _find_chromium()
if CHROMIUM is None:
    pytest.skip("no Chromium executable (/usr/bin/chromium, chromium, chromium-browser or google-chrome)",
                allow_module_level=True)

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1200, "height": 1100}
DOCS = Path(__file__).resolve().parent.parent / "docs"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LONGEST = "The changes that waited longest"


@pytest.fixture(scope="module")
def base_url(demo_db: Path) -> Iterator[str]:
    """The app over the demo database, served by waitress on a free localhost port from a background thread."""
    server = create_server(create_app(demo_db), host="127.0.0.1", port=0, threads=4)
    runner = threading.Thread(target=server.run, name="vsm-serve-browser-test", daemon=True)
    runner.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        # close every socket from inside the server's own loop (waitress is not thread-safe), so run() returns
        server.task_dispatcher.shutdown()
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map, ignore_all=True))
        runner.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless system Chromium for the whole module: a launch costs about a second."""
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def figures(base_url: str) -> dict[str, str]:
    """The map's bottleneck stage and the slowest change's id, as the JSON answers give them."""
    neck = requests.get(f"{base_url}/map.json", timeout=30).json()["totals"]["bottleneck"]
    slowest = requests.get(f"{base_url}/change.json", timeout=30).json()["change_id"]
    assert neck and slowest, "the demo has a bottleneck stage and a slowest change"
    return {"neck": neck, "slowest": slowest}


@dataclass
class Problems:
    """What went wrong while a page loaded: console errors, page errors, failed or refused requests."""

    origin: str
    seen: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        """Record the page's console errors, uncaught exceptions, failed requests and same-origin 4xx/5xx."""
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.seen.append(f"page error: {error}"))
        page.on("requestfailed", lambda req: self.seen.append(f"request failed: {req.url} ({req.failure})"))
        page.on("response", self._response)

    def _console(self, message: ConsoleMessage) -> None:
        """Keep console messages of type error, with where they came from."""
        if message.type == "error":
            self.seen.append(f"console error: {message.text} at {message.location}")

    def _response(self, response: Response) -> None:
        """Keep same-origin responses that are errors (the page's own resources, links it followed)."""
        if response.status >= 400 and response.url.startswith(self.origin + "/"):
            self.seen.append(f"HTTP {response.status}: {response.url}")


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[tuple[Page, Problems]]:
    """A fresh page at 1200x1100 in its own context, watched for problems from its first request."""
    context = browser.new_context(viewport=VIEWPORT)
    opened = context.new_page()
    problems = Problems(base_url)
    problems.watch(opened)
    try:
        yield opened, problems
    finally:
        context.close()


def _png_size(shot: Path) -> tuple[int, int]:
    """The width and height in a PNG's IHDR chunk, after checking the file is a PNG at all."""
    head = shot.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR", f"{shot} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def _screenshot(page: Page, name: str, tmp_path: Path) -> Path:
    """A full-page PNG of the page in tmp_path, also over docs/web-<name>.png when VSM_UPDATE_SCREENSHOTS=1."""
    shot = tmp_path / f"web-{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    width, height = _png_size(shot)
    assert shot.stat().st_size > 10_000, f"{shot} is nearly empty"
    assert width == VIEWPORT["width"] and height >= VIEWPORT["height"]
    if os.environ.get("VSM_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, DOCS / f"web-{name}.png")
    return shot


def _check_map(page: Page, figures: dict[str, str]) -> None:
    """The map: its chart, and the bottleneck row marked."""
    expect(page.locator("h1")).to_contain_text("Value stream: all repos")
    expect(page.locator(".chart svg").first).to_be_visible()
    expect(page.locator("tr.neck")).to_contain_text(f"{figures['neck']} (bottleneck)")


def _check_stage(page: Page, figures: dict[str, str]) -> None:
    """The stage: its histograms and the table of the changes that waited longest."""
    expect(page.locator("h1")).to_contain_text(f"Stage {figures['neck']}: all repos")
    expect(page.locator(".chart svg").first).to_be_visible()
    expect(page.locator(f"h2:text-is('{LONGEST}') + table")).to_be_visible()


def _check_change(page: Page, figures: dict[str, str]) -> None:
    """The change: the slowest change's id in the title and its stage table."""
    expect(page.locator("h1")).to_contain_text(figures["slowest"])
    expect(page.locator("table").first).to_be_visible()


def _check_trends(page: Page, figures: dict[str, str]) -> None:
    """Trends: the lead-time chart and the weekly table."""
    expect(page.locator("h1")).to_contain_text("Trends: all repos, weekly")
    expect(page.locator(".chart svg").first).to_be_visible()
    expect(page.locator("table").first).to_be_visible()


def _check_health(page: Page, figures: dict[str, str]) -> None:
    """Health: the title with its week and the sources' table."""
    expect(page.locator("h1")).to_contain_text("Data health: ")
    expect(page.locator("table").first).to_contain_text("github")


PAGES: dict[str, tuple[Callable[[dict[str, str]], str], Callable[[Page, dict[str, str]], None]]] = {
    "map": (lambda f: "/map", _check_map),
    "stage": (lambda f: f"/stage?stage={f['neck']}", _check_stage),
    "change": (lambda f: "/change", _check_change),
    "trends": (lambda f: "/trends", _check_trends),
    "health": (lambda f: "/health", _check_health),
}


@pytest.mark.parametrize("name", list(PAGES))
def test_each_page_loads_in_chromium_without_errors(name: str, page: tuple[Page, Problems], base_url: str,
                                                    figures: dict[str, str], tmp_path: Path) -> None:
    """Each page answers 200, shows its own content, logs no error and fetches nothing that fails."""
    tab, problems = page
    path, check = PAGES[name]
    response = tab.goto(base_url + path(figures), wait_until="load")
    assert response is not None and response.status == 200
    check(tab, figures)
    _screenshot(tab, name, tmp_path)
    assert problems.seen == []


def test_the_bottleneck_leads_to_the_change_that_waited_longest(page: tuple[Page, Problems], base_url: str,
                                                                figures: dict[str, str]) -> None:
    """The issue's click path: map, its bottleneck stage, that stage's longest wait, the change's own page."""
    tab, problems = page
    tab.goto(f"{base_url}/map", wait_until="load")
    tab.locator("tr.neck a").click()
    tab.wait_for_url(f"{base_url}/stage?**")
    assert parse_qs(urlsplit(tab.url).query)["stage"] == [figures["neck"]]
    expect(tab.locator(f"h2:text-is('{LONGEST}')")).to_be_visible()
    first = tab.locator(f"h2:text-is('{LONGEST}') + table a[href^='/change']").first
    change_id = first.inner_text()
    assert change_id.count("#") == 1
    first.click()
    tab.wait_for_url(f"{base_url}/change?**")
    assert parse_qs(urlsplit(tab.url).query)["id"] == [change_id]
    expect(tab.locator("h1")).to_contain_text(change_id)
    # why it waited: the bottleneck stage's row names the events its wait ran between
    neck_row = tab.locator("table").first.locator("tr", has=tab.locator(f"td:text-is('{figures['neck']}')"))
    expect(neck_row).to_contain_text("wait: ")
    assert problems.seen == []
