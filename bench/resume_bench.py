"""What a `kill -9` mid-collect costs the next run, against the simulated GitHub (not a timed test).

Collects a world once cleanly and counts the requests GitHub answered. Then, for each kill point (a share
of that count), runs `vsm collect` in a child process, kills it with SIGKILL once the simulator has answered
that many requests, resumes with a normal collect, and reports the re-fetched requests (killed run plus
resume, minus the clean run) as a share of the clean run. Every resumed database must equal the clean one,
table for table. Run: python bench/resume_bench.py [--weeks 52] [--api graphql|rest|both] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collector import config as cfg
from collector.demo.github_server import RATE_LIMIT, GitHubSimulator
from collector.demo.world import World, generate_world
from collector.pipeline import collect
from collector.store import Store

RESULTS = Path(__file__).with_name("results.json")
ROOT = Path(__file__).resolve().parents[1]
END = dt.datetime(2026, 11, 18, 12, tzinfo=dt.UTC)
KILL_AT = (0.1, 0.3, 0.5, 0.7, 0.9)
TARGET_SHARE = 0.05
# every table the GitHub source fills; the resumed file must hold exactly the clean run's rows
TABLES = ("repos", "commits", "commit_parents", "pull_requests", "pr_commits", "pr_reviews", "pr_events",
          "github_deployments", "github_deployment_statuses", "github_workflow_runs", "github_workflow_jobs",
          "ci_builds")
ACTIONS_REPO = "petclinic/petclinic-web"


def _config(folder: Path, sim: GitHubSimulator, world: World, api: str) -> Path:
    path = folder / "vsm.toml"
    repos = ", ".join(f'"{r.full_name}"' for r in world.repos)
    path.write_text(f'[database]\npath = "vsm.duckdb"\n\n[github]\nbase_url = "{sim.base_url}"\nrepos = [{repos}]\n'
                    f'since = "2020-01-01"\napi = "{api}"\n', encoding="utf-8")
    return path


def _tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the GitHub tables, sorted."""
    with Store(path) as store:
        return {t: store.query(f"SELECT * FROM {t} ORDER BY ALL")[1] for t in TABLES}


def _counted(log: list[tuple[str, str, int]]) -> int:
    """Requests GitHub would bill: every answer but a 304."""
    return sum(1 for _, _, status in log if status != 304)


def _fresh_quota(sim: GitHubSimulator) -> None:
    """A full hour's quota again, as if each run came an hour after the last (many runs exceed one hour's)."""
    sim._remaining = RATE_LIMIT
    if sim.graphql is not None:
        sim.graphql._budgets.clear()


def measure(world: World, api: str) -> dict[str, Any]:
    """The clean run's requests, then a kill and resume at every kill point."""
    points: list[dict[str, Any]] = []
    with GitHubSimulator(world) as sim, tempfile.TemporaryDirectory() as tmp:
        clean_dir = Path(tmp) / "clean"
        clean_dir.mkdir()
        config = cfg.load(_config(clean_dir, sim, world, api))
        with Store(config.db_path) as store:
            (result,) = collect(config, store)
        if not result.ok:
            raise SystemExit(f"clean collect failed: {result.errors}")
        clean = _counted(sim.request_log)
        expected = _tables(config.db_path)
        for share in KILL_AT:
            folder = Path(tmp) / f"kill-{share}"
            folder.mkdir()
            path = _config(folder, sim, world, api)
            _fresh_quota(sim)
            before = len(sim.request_log)
            child = subprocess.Popen([sys.executable, "-m", "collector.cli", "-q", "collect", "--config", str(path)],
                                     cwd=ROOT)
            deadline = time.monotonic() + 300
            while (_counted(sim.request_log[before:]) < share * clean and child.poll() is None
                   and time.monotonic() < deadline):
                time.sleep(0.001)
            child.kill()
            if child.wait() != -9:
                raise SystemExit(f"the collect finished before {share:.0%} of its requests: raise the world size")
            time.sleep(0.2)  # requests the child had sent when it died are still answered and logged
            killed = _counted(sim.request_log[before:])
            resumed_config = cfg.load(path)
            _fresh_quota(sim)
            middle = len(sim.request_log)
            with Store(resumed_config.db_path) as store:
                (again,) = collect(resumed_config, store)
            if not again.ok:
                raise SystemExit(f"resume failed: {again.errors}")
            resume = _counted(sim.request_log[middle:])
            if _tables(resumed_config.db_path) != expected:
                raise SystemExit(f"the resumed database differs from the clean one (kill at {share:.0%})")
            refetched = killed + resume - clean
            points.append({"kill_at": share, "killed_after": killed, "resume": resume, "refetched": refetched,
                           "share": round(refetched / clean, 4)})
    worst = max(p["share"] for p in points)
    return {"api": api, "clean_requests": clean, "points": points, "worst_share": worst,
            "mean_share": round(sum(p["share"] for p in points) / len(points), 4)}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (or save) its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=52, help="weeks of history in the generated world")
    parser.add_argument("--api", choices=("graphql", "rest", "both"), default="both")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--save", action="store_true", help=f"store the figures under 'resume' in {RESULTS.name}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    world = generate_world(seed=7, end=END, weeks=args.weeks, actions_repos=(ACTIONS_REPO,))
    pulls = sum(len(r.pulls) for r in world.repos)
    figures: dict[str, Any] = {"repos": len(world.repos), "pull_requests": pulls, "target_share": TARGET_SHARE,
                               "runs": [measure(world, api) for api in
                                        (("graphql", "rest") if args.api == "both" else (args.api,))]}
    if args.json:
        sys.stdout.write(json.dumps(figures, indent=2) + "\n")
    else:
        for run in figures["runs"]:
            sys.stdout.write(f"{run['api']}: clean sync {run['clean_requests']} requests ({pulls} PRs); "
                             f"re-fetched after a kill: worst {run['worst_share']:.1%}, "
                             f"mean {run['mean_share']:.1%} (target <= {TARGET_SHARE:.0%})\n")
            for point in run["points"]:
                sys.stdout.write(f"  kill at {point['kill_at']:.0%}: {point['killed_after']} before the kill, "
                                 f"{point['resume']} to resume, {point['refetched']} re-fetched "
                                 f"({point['share']:.1%})\n")
    if args.save:
        stored = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
        stored["resume"] = figures
        RESULTS.write_text(json.dumps(stored, indent=2) + "\n", encoding="utf-8")
    worst = max(run["worst_share"] for run in figures["runs"])
    return 0 if worst <= TARGET_SHARE else 1


if __name__ == "__main__":
    raise SystemExit(main())
