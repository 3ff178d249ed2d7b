"""GitHub collection cost at organisation scale, against the simulated GitHub (not a timed test).

Generates a world of about 20k pull requests in 20 repos, serves it on 127.0.0.1, collects it once into a
fresh DuckDB file and again unchanged, and reports what GitHub would bill: requests per merged PR, GraphQL
points, the unchanged re-collect's counted requests per repo (a 304 costs nothing), collect time and peak
RSS. The demo-sized world is measured too. Run: python bench/api_bench.py [--repos 20] [--weeks 104] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collector import config as cfg
from collector.demo.github_server import GitHubSimulator
from collector.demo.world import World, generate_world
from collector.pipeline import collect
from collector.store import Store

RESULTS = Path(__file__).with_name("results.json")
END = dt.datetime(2026, 11, 18, 12, tzinfo=dt.UTC)
# (figure, target, whether lower is better): the targets, checked on every run
TARGETS = {"requests_per_merged_pr": 0.05, "unchanged_counted_per_repo": 2.0, "collect_s": 180.0,
           "peak_rss_mb": 1024.0, "demo_requests_per_merged_pr": 0.2}


def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _config(folder: Path, sim: GitHubSimulator, world: World, api: str) -> cfg.Config:
    path = folder / "vsm.toml"
    repos = ", ".join(f'"{r.full_name}"' for r in world.repos)
    path.write_text(f'[database]\npath = "vsm.duckdb"\n\n[github]\nbase_url = "{sim.base_url}"\nrepos = [{repos}]\n'
                    f'since = "2020-01-01"\napi = "{api}"\n', encoding="utf-8")
    return cfg.load(path)


def measure(world: World, api: str) -> dict[str, Any]:
    """Collect the world twice (first sync, unchanged re-sync) and return the figures."""
    pulls = sum(len(r.pulls) for r in world.repos)
    merged = sum(1 for r in world.repos for p in r.pulls if p.merged_at is not None)
    with GitHubSimulator(world) as sim, tempfile.TemporaryDirectory() as tmp:
        config = _config(Path(tmp), sim, world, api)
        with Store(config.db_path) as store:
            started = time.monotonic()
            (first,) = collect(config, store)
            seconds = time.monotonic() - started
            stored = store.query("SELECT count(*) FROM pull_requests")[1][0][0]
            log_first = list(sim.request_log)
            assert sim.graphql is not None
            points = sum(b.used for b in sim.graphql._budgets.values())
            queries = sim.graphql.queries
            (again,) = collect(config, store)
            second = sim.request_log[len(log_first):]
    if not first.ok or not again.ok:
        raise SystemExit(f"collect failed: {first.errors or again.errors}")
    if stored != pulls:
        raise SystemExit(f"stored {stored} pull requests of {pulls}")
    counted = [s for _, _, s in second if s != 304]
    return {
        "api": api, "repos": len(world.repos), "pull_requests": pulls, "merged": merged,
        "requests": first.requests, "requests_served": len(log_first),
        "graphql_queries": queries, "graphql_points": points,
        "rest_requests": sum(1 for m, p, _ in log_first if not (m == "POST" and p == "/graphql")),
        "requests_per_merged_pr": round(first.requests / merged, 4), "collect_s": round(seconds, 1),
        "unchanged_requests": len(second), "unchanged_counted": len(counted),
        "unchanged_counted_per_repo": round(len(counted) / len(world.repos), 2),
        "peak_rss_mb": round(_peak_rss_mb()),
    }


def _row(name: str, value: float, target: float) -> str:
    verdict = "PASS" if value <= target else "MISS"
    return f"{name:34} {value:>10} {'<= ' + str(target):>10}  {verdict}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=20)
    parser.add_argument("--weeks", type=int, default=104, help="weeks of history per repo (104: about 20k PRs in 20 repos)")
    parser.add_argument("--api", choices=("graphql", "rest"), default="graphql")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--no-save", action="store_true", help="leave bench/results.json alone")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    started = time.monotonic()
    names = tuple(f"petclinic/petclinic-svc-{i:02d}" for i in range(1, args.repos + 1))
    world = generate_world(seed=7, end=END, weeks=args.weeks, repos=names)
    generated_s = time.monotonic() - started
    big = measure(world, args.api)
    big["world_generation_s"] = round(generated_s, 1)
    demo = measure(generate_world(seed=7, end=END), args.api)
    figures = {"org": big, "demo": demo, "demo_requests_per_merged_pr": demo["requests_per_merged_pr"]}
    if args.json:
        sys.stdout.write(json.dumps(figures, indent=2) + "\n")
    else:
        sys.stdout.write(
            f"world: {big['repos']} repos, {big['pull_requests']} PRs ({big['merged']} merged), generated in "
            f"{generated_s:.0f}s\nfirst sync over {args.api}: {big['requests']} requests ({big['graphql_queries']} "
            f"GraphQL queries, {big['graphql_points']} points; {big['rest_requests']} REST), "
            f"{big['collect_s']} s\nunchanged re-collect: {big['unchanged_requests']} requests, "
            f"{big['unchanged_counted']} counted (the rest answered 304)\n\n"
            f"{'figure':34} {'measured':>10} {'target':>10}\n")
        for name, target in TARGETS.items():
            value = figures.get(name, big.get(name))
            sys.stdout.write(_row(name, value, target) + "\n")
    if not args.no_save:
        results = json.loads(RESULTS.read_text("utf-8")) if RESULTS.exists() else {}
        results["api_bench"] = {"measured_on": dt.date.today().isoformat(), **figures}
        RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
