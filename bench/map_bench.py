"""Benchmark of `vsm map` on a large synthetic history: full map, then incremental after one new week
(and a full map of the same data for comparison).

Run: python bench/map_bench.py [--repos 20] [--prs-per-repo 5000] [--out bench/results.json]

The history is generated set-based inside DuckDB (range() and arithmetic, no Python row loops), in the
same typed tables the GitHub connector fills. Each phase runs in a fresh subprocess so its wall time and
peak resident memory (ru_maxrss) are its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

from models.mapper import MapSettings, run_mapper
from models.migrations import migrate

EPOCH = "TIMESTAMPTZ '2024-11-25 09:00:00+00'"
PR_SPACING_S = 6 * 3600  # one PR every six hours per repo: 5,000 PRs span about 3.4 years

# Every synthetic table as (table, SELECT producing its rows for PR numbers in [lo, hi)); PR i of repo r
# gets main-line commit m(r,i) = its merge commit. Merge methods rotate: i % 3 = 0 merge commit (the PR's
# three commits hang off the main line as a side branch), 1 squash, 2 rebase. Every tenth PR is deployed
# to production, every third to staging; one production deployment in 25 fails first.
TABLES: tuple[tuple[str, str], ...] = (
    ("commits", """
        SELECT repo, sha, 'dev' || (i % 40), 'Developer ' || (i % 40), ts, ts, 'Change ' || i FROM (
            SELECT repo, md5(repo || ':m:' || i) AS sha, i, t0 + INTERVAL (i * {spacing} + 86400) SECOND AS ts
            FROM prs
            UNION ALL
            SELECT repo, md5(repo || ':f:' || i || ':' || j), i, t0 + INTERVAL (i * {spacing} + j * 1800) SECOND
            FROM prs, range(3) AS f(j) WHERE i % 3 = 0)"""),
    ("commit_parents", """
        SELECT repo, md5(repo || ':m:' || i), 0, md5(repo || ':m:' || (i - 1)) FROM prs WHERE i > 0
        UNION ALL
        SELECT repo, md5(repo || ':m:' || i), 1, md5(repo || ':f:' || i || ':2') FROM prs WHERE i % 3 = 0
        UNION ALL
        SELECT repo, md5(repo || ':f:' || i || ':' || j), 0,
               CASE WHEN j = 0 THEN md5(repo || ':m:' || greatest(i - 5, 0)) ELSE md5(repo || ':f:' || i || ':' || (j - 1)) END
        FROM prs, range(3) AS f(j) WHERE i % 3 = 0"""),
    ("pull_requests", """
        SELECT repo, i + 1, r * 1000000 + i, 'Change ' || i, 'dev' || (i % 40),
               CASE WHEN i % 17 = 0 THEN 'Bot' ELSE 'User' END, 'closed', false,
               t0 + INTERVAL (i * {spacing} + 5400) SECOND, t0 + INTERVAL (i * {spacing} + 86400) SECOND,
               t0 + INTERVAL (i * {spacing} + 86400) SECOND, t0 + INTERVAL (i * {spacing} + 86400) SECOND,
               md5(repo || ':m:' || i), 'feature-' || i, md5(repo || ':f:' || i || ':2'), 'main', NULL
        FROM prs"""),
    ("pr_commits", """
        SELECT repo, i + 1, md5(repo || ':f:' || i || ':' || j), 'dev' || (i % 40),
               t0 + INTERVAL (i * {spacing} + j * 1800) SECOND, t0 + INTERVAL (i * {spacing} + j * 1800) SECOND,
               'Work ' || j
        FROM prs, range(3) AS f(j)"""),
    ("pr_reviews", """
        SELECT repo, i + 1, (r * 1000000 + i) * 4 + k, 'dev' || ((i + k + 1) % 40), 'User',
               CASE WHEN k = 0 AND i % 4 = 0 THEN 'CHANGES_REQUESTED' WHEN k = 0 THEN 'COMMENTED'
                    ELSE 'APPROVED' END,
               t0 + INTERVAL (i * {spacing} + 14400 + k * 7200) SECOND, md5(repo || ':f:' || i || ':2')
        FROM prs, range(3) AS v(k)"""),
    ("pr_events", """
        SELECT repo, i + 1, repo || ':' || i || ':' || e, ev, 'dev' || (i % 40), 'User',
               t0 + INTERVAL (i * {spacing} + off) SECOND
        FROM prs, (VALUES (0, 'review_requested', 5500), (1, 'merged', 86400), (2, 'closed', 86400))
             AS ev_t(e, ev, off)"""),
    ("github_deployments", """
        SELECT repo, r * 10000000 + i * 4 + bit * 2 + a, env, md5(repo || ':m:' || i), 'main', 'deploy', 'deployer',
               t0 + INTERVAL (i * {spacing} + 86400 + delay + a * 900) SECOND,
               t0 + INTERVAL (i * {spacing} + 86400 + delay + a * 900 + 600) SECOND
        FROM prs, (VALUES ('staging', 0, 3, 1800), ('production', 1, 10, 7200)) AS e(env, bit, every, delay),
             range(2) AS attempt(a)
        WHERE i % every = every - 1 AND (a = 0 OR (env = 'production' AND i % 250 = 249))"""),
    ("github_deployment_statuses", """
        SELECT d.repo, d.deployment_id, d.deployment_id * 4 + s, st,
               d.created_at + INTERVAL (s * 300) SECOND
        FROM github_deployments AS d, (VALUES (0, 'queued'), (1, 'in_progress'), (2, 'done')) AS x(s, st0),
             LATERAL (SELECT CASE WHEN st0 <> 'done' THEN st0
                                  WHEN d.deployment_id % 4 = 2 AND (d.deployment_id % 10000000) // 4 % 250 = 249
                                       THEN 'failure'
                                  ELSE 'success' END AS st)
        WHERE d.deployment_id % 10000000 BETWEEN {lo_id} AND {hi_id}"""),
)


def generate(con: duckdb.DuckDBPyConnection, repos: int, lo: int, hi: int) -> dict[str, int]:
    """Insert PRs lo..hi-1 of every repo (and their commits, reviews, events, deployments)."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE prs AS SELECT 'org/repo-' || r AS repo, r, i, {EPOCH} AS t0 "
        f"FROM range({repos}) AS a(r), range({lo}, {hi}) AS b(i)"
    )
    counts = {}
    for table, select in TABLES:
        sql = select.format(spacing=PR_SPACING_S, lo_id=lo * 4, hi_id=hi * 4 - 1)
        before = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
        con.execute(f"INSERT OR REPLACE INTO {table} {sql}")
        counts[table] = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] - before
    return counts


def phase(args: argparse.Namespace) -> None:
    """One measured step in this process: generate, or map; prints one JSON line."""
    con = duckdb.connect(args.db)
    con.execute("SET TimeZone = 'UTC'")
    started = time.perf_counter()
    detail: dict[str, Any] = {}
    if args.phase == "generate":
        migrate(con)
        detail = generate(con, args.repos, args.lo, args.hi)
    else:
        result = run_mapper(con, MapSettings(), incremental=args.phase == "map_incremental")
        detail = {"changes": result.changes, "deployed": result.deployed, "incremental": result.incremental,
                  "recomputed": result.recomputed}
    seconds = time.perf_counter() - started
    con.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"phase": args.phase, "seconds": round(seconds, 3), "peak_rss_mb": round(peak_mb, 1),
                      "detail": detail}))


def run_phase(db: Path, phase_name: str, repos: int, lo: int = 0, hi: int = 0) -> dict[str, Any]:
    """Run one phase in a fresh interpreter and return its measurements."""
    command = [sys.executable, __file__, "--phase", phase_name, "--db", str(db), "--repos", str(repos),
               "--lo", str(lo), "--hi", str(hi)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    """Drive the phases and report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=20)
    parser.add_argument("--prs-per-repo", type=int, default=5000)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--phase", choices=["generate", "map", "map_incremental"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--lo", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--hi", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        phase(args)
        return
    week = 7 * 86400 // PR_SPACING_S
    base = args.prs_per_repo - week
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "bench.duckdb"
        results = {
            "generate": run_phase(db, "generate", args.repos, 0, base),
            "map_full": run_phase(db, "map", args.repos),
            "generate_week": run_phase(db, "generate", args.repos, base, args.prs_per_repo),
            "map_incremental_week": run_phase(db, "map_incremental", args.repos),
            "map_full_again": run_phase(db, "map", args.repos),
        }
        size_mb = db.stat().st_size / 2**20
    rows = sum(results["generate"]["detail"].values()) + sum(results["generate_week"]["detail"].values())
    summary = {"repos": args.repos, "prs": args.repos * args.prs_per_repo, "rows": rows,
               "db_mb": round(size_mb, 1), **results}
    for name, value in results.items():
        sys.stdout.write(f"{name:15s} {value['seconds']:8.2f} s   peak RSS {value['peak_rss_mb']:7.1f} MB\n")
    sys.stdout.write(f"{summary['prs']} PRs, {rows} rows, database {summary['db_mb']} MB\n")
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
