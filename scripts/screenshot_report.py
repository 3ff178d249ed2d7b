"""Render the demo's weekly report in headless Chromium to docs/report.png: the README shows what Brenda sees.

Not part of the test run (a fresh machine has no browser). On Debian: `apt-get install chromium`, then
`python scripts/screenshot_report.py [--out docs/report.png]`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

from collector import demo
from collector.present.weeks import last_complete_week
from collector.store import Store
from collector.weekly_report import build_report, write_report

log = logging.getLogger("screenshot_report")

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--force-device-scale-factor=1")
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_browser(name: str | None) -> str:
    """The Chromium binary to use: the one named, or the first found on PATH."""
    for candidate in ([name] if name else BROWSERS):
        found = shutil.which(candidate)
        if found:
            return found
    raise SystemExit("no Chromium found: install Debian's `chromium` package or pass --browser")


def demo_report(folder: Path, seed: int, db: Path | None = None) -> Path:
    """Run the demo into folder (or reuse a demo database) and write the report of its last complete week."""
    if db is None:
        db = folder / "vsm.duckdb"
        demo.run(db, seed=seed)
    with Store(db, read_only=True) as store:
        report = build_report(store.con, last_complete_week(dt.datetime.now(dt.UTC)))
    return write_report(report, folder / f"{report.label}.html")


def trim(png: Path, out: Path, margin: int = 16) -> None:
    """Cut the empty page background below the report, keeping a small margin."""
    with Image.open(png) as image:
        rgb = image.convert("RGB")
        background = rgb.getpixel((rgb.width - 1, rgb.height - 1))
        bottom = rgb.height
        while bottom > 1 and all(rgb.getpixel((x, bottom - 1)) == background for x in range(0, rgb.width, 4)):
            bottom -= 1
        out.parent.mkdir(parents=True, exist_ok=True)
        rgb.crop((0, 0, rgb.width, min(rgb.height, bottom + margin))).save(out, optimize=True)


def screenshot(html: Path, out: Path, browser: str, width: int, height: int) -> None:
    """Load the HTML file in headless Chromium and save a trimmed full-page PNG."""
    with tempfile.TemporaryDirectory(prefix="vsm-chromium-") as profile:
        raw = Path(profile) / "raw.png"
        command = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                   f"--screenshot={raw}", html.resolve().as_uri()]
        result = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
        if result.returncode != 0 or not raw.exists():
            raise SystemExit(f"chromium failed ({result.returncode}): {result.stderr.strip()[-500:]}")
        trim(raw, out)


def main(argv: list[str] | None = None) -> int:
    """Build the demo report and screenshot it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/report.png", help="PNG to write (default: docs/report.png)")
    parser.add_argument("--browser", help="Chromium binary (default: chromium on PATH)")
    parser.add_argument("--seed", type=int, default=7, help="demo seed (default: 7)")
    parser.add_argument("--width", type=int, default=820, help="viewport width in pixels (default: 820)")
    parser.add_argument("--height", type=int, default=5000,
                        help="viewport height before trimming (default: 5000)")
    parser.add_argument("--db", type=Path, help="reuse this demo database instead of running the demo")
    parser.add_argument("--keep-html", help="also copy the rendered HTML here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    browser = find_browser(args.browser)
    with tempfile.TemporaryDirectory(prefix="vsm-report-") as folder:
        html = demo_report(Path(folder), args.seed, args.db)
        if args.keep_html:
            Path(args.keep_html).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(html, args.keep_html)
        screenshot(html, Path(args.out), browser, args.width, args.height)
    log.info("wrote %s from the demo report %s", args.out, html.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
