"""`vsm demo`: the real pipeline against a simulated Pet Clinic team served on 127.0.0.1."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from collector import config as config_module
from collector.pipeline import collect, run_map
from collector.report import build_report, last_complete_week, write_report
from collector.store import Store

log = logging.getLogger(__name__)

CONFIG_TEMPLATE = """\
# Written by `vsm demo`: a config pointing at the simulated Pet Clinic world.
# The simulated GitHub below answers only while `vsm demo --serve` runs; the database works any time.

[database]
path = "{db}"

[github]
base_url = "{base_url}"
repos = [{repos}]
since = "{since}"
production_environments = ["production"]
bots = ["petclinic-ci"]

[calendar]
# the Pet Clinic team works in London, Monday to Friday
timezone = "Europe/London"
workdays = ["mon", "tue", "wed", "thu", "fri"]
hours = "09:00-17:30"
holidays = ["2026-08-31", "2026-12-25", "2026-12-28"]
"""


def write_config(path: Path, base_url: str, db: Path, repos: list[str], since: str) -> Path:
    """Write a ready-to-use config for the simulated servers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db_text = db.resolve().as_posix()
    path.write_text(
        CONFIG_TEMPLATE.format(db=db_text, base_url=base_url, repos=", ".join(f'"{r}"' for r in repos),
                               since=since),
        encoding="utf-8",
    )
    return path


def _fresh(db: Path) -> None:
    """Remove an earlier demo database: each demo run simulates a new history ending now."""
    for file in (db, db.with_name(db.name + ".wal")):
        file.unlink(missing_ok=True)


def run(db: Path, seed: int = 7, on_result: Callable[[str], None] = log.info) -> Path:
    """Generate the world, serve it, collect it over HTTP, map it; returns the config path written."""
    from collector.demo.github_server import GitHubSimulator
    from collector.demo.world import generate_world

    world = generate_world(seed=seed)
    repos = [repo.full_name for repo in world.repos]
    since = world.start.date().isoformat()
    _fresh(db)
    with GitHubSimulator(world) as sim:
        log.info("simulated GitHub for %s at %s", ", ".join(repos), sim.base_url)
        config_path = write_config(db.parent / "vsm.toml", sim.base_url, db, repos, since)
        config = config_module.load(config_path)
        with Store(config.db_path) as store:
            results = collect(config, store)
            for result in results:
                state = "ok" if result.ok else "FAILED: " + "; ".join(result.errors)
                on_result(f"collected {result.source}: {result.items} rows with {result.requests} HTTP requests "
                          f"in {result.seconds:.1f}s - {state}")
            pulls = store.query("SELECT count(*) FROM pull_requests")[1][0][0]
            if pulls:
                on_result(f"{pulls} pull requests, {sum(r.requests for r in results) / pulls:.2f} requests per PR")
            mapped = run_map(config, store)
            on_result(f"mapped {mapped.changes} merged changes, {mapped.deployed} deployed to production")
            report = build_report(store.con, last_complete_week(world.end), config.report)
            path = write_report(report, config.report_folder)
            on_result(f"weekly flow report for {report.label} (the last complete simulated week): {path}")
    return config_path


def serve(folder: Path, seed: int = 7) -> int:
    """Keep the simulated servers up and write folder/vsm.toml until Ctrl-C or SIGTERM."""
    from collector.demo.github_server import GitHubSimulator
    from collector.demo.world import generate_world

    world = generate_world(seed=seed)
    repos = [repo.full_name for repo in world.repos]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with GitHubSimulator(world) as sim:
        config_path = write_config(folder / "vsm.toml", sim.base_url, folder / "vsm.duckdb", repos,
                                   world.start.date().isoformat())
        log.info("simulated GitHub at %s; config written to %s", sim.base_url, config_path)
        log.info("try: vsm collect --config %s && vsm map --config %s   (Ctrl-C stops the servers)",
                 config_path, config_path)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    log.info("simulated servers stopped")
    return 0
