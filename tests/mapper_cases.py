"""A tiny world builder for the mapper's golden tests: typed rows inserted with plain SQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import duckdb

from models.mapper import MapResult, MapSettings, run_mapper
from models.migrations import migrate

# Every test clock starts here; times are written as hours after T0 so the expected values can be
# worked out by hand.
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
H = 3600.0
REPO = "acme/web"


def at(hours: float) -> dt.datetime:
    """The moment `hours` after T0."""
    return T0 + dt.timedelta(hours=hours)


class World:
    """A fresh in-memory vsm database plus helpers to insert commits, PRs and deployments."""

    def __init__(self, repo: str = REPO) -> None:
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone='UTC'")
        migrate(self.con)
        self.repo = repo
        self._review_id = 0
        self._event_id = 0
        self._status_id = 0

    def commit(self, sha: str, *parents: str, hours: float = 0.0, repo: str | None = None) -> None:
        """One commit of the default branch and its parents (first listed = first parent)."""
        repo = repo or self.repo
        self.con.execute(
            "INSERT INTO commits (repo, sha, authored_at, committed_at) VALUES (?, ?, ?, ?)",
            [repo, sha, at(hours), at(hours)],
        )
        for index, parent in enumerate(parents):
            self.con.execute(
                "INSERT INTO commit_parents VALUES (?, ?, ?, ?)", [repo, sha, index, parent]
            )

    def line(self, *shas: str, parent: str | None = None) -> None:
        """A straight first-parent line of commits, each the child of the one before."""
        previous = parent
        for sha in shas:
            if previous is None:
                self.commit(sha)
            else:
                self.commit(sha, previous)
            previous = sha

    def pr(
        self,
        number: int,
        *,
        opened: float,
        merged: float | None,
        merge_sha: str | None = None,
        author: str = "alice",
        author_type: str = "User",
        draft: bool = False,
        commits: Iterable[tuple[str, float]] = (),
        reviews: Iterable[tuple[str, str, float | None]] = (),
        events: Iterable[tuple[str, float]] = (),
        reviewer_types: dict[str, str] | None = None,
        repo: str | None = None,
        title: str | None = None,
        head_ref: str | None = None,
    ) -> None:
        """A pull request with its commits (sha, authored hour), reviews (login, state, hour) and events."""
        repo = repo or self.repo
        self.con.execute(
            "INSERT INTO pull_requests (repo, number, title, author_login, author_type, state, draft,"
            " created_at, merged_at, merge_commit_sha, head_ref) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [repo, number, title or f"PR {number}", author, author_type,
             "closed" if merged is not None else "open", draft, at(opened),
             None if merged is None else at(merged), merge_sha, head_ref or f"feature-{number}"],
        )
        for sha, hours in commits:
            self.con.execute(
                "INSERT INTO pr_commits (repo, pr_number, sha, author_login, authored_at, committed_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [repo, number, sha, author, at(hours), at(hours)],
            )
        types = reviewer_types or {}
        for login, state, hours in reviews:
            self._review_id += 1
            self.con.execute(
                "INSERT INTO pr_reviews (repo, pr_number, review_id, reviewer_login, reviewer_type, state,"
                " submitted_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [repo, number, self._review_id, login, types.get(login, "User"), state,
                 None if hours is None else at(hours)],
            )
        for event, hours in events:
            self._event_id += 1
            self.con.execute(
                "INSERT INTO pr_events (repo, pr_number, event_id, event, created_at) VALUES (?, ?, ?, ?, ?)",
                [repo, number, f"e{self._event_id}", event, at(hours)],
            )

    def deploy(
        self,
        deployment_id: int,
        sha: str | None,
        *,
        created: float,
        statuses: Sequence[tuple[str, float]] = (),
        environment: str = "production",
        repo: str | None = None,
    ) -> None:
        """A GitHub deployment of sha and its statuses (state, hour), in the order given."""
        repo = repo or self.repo
        self.con.execute(
            "INSERT INTO github_deployments (repo, deployment_id, environment, sha, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [repo, deployment_id, environment, sha, at(created), at(created)],
        )
        for state, hours in statuses:
            self._status_id += 1
            self.con.execute(
                "INSERT INTO github_deployment_statuses VALUES (?, ?, ?, ?, ?)",
                [repo, deployment_id, self._status_id, state, at(hours)],
            )

    def ship(self, deployment_id: int, sha: str, *, created: float, success: float,
             environment: str = "production") -> None:
        """A deployment that went in_progress when created and succeeded at `success`."""
        self.deploy(deployment_id, sha, created=created, environment=environment,
                    statuses=[("in_progress", created), ("success", success)])

    def build(self, build_id: str, sha: str | None, *, started: float, finished: float | None,
              status: str = "success", queued: float | None = None, pause_s: float = 0.0,
              repo: str | None = None, url: str | None = None) -> None:
        """A CI build of sha (hours after T0), written to ci_builds, which backs the builds view."""
        self.con.execute(
            "INSERT INTO ci_builds (build_id, repo, job, sha, queued_at, started_at, finished_at, status, source,"
            " pause_s, url) VALUES (?, ?, 'ci', ?, ?, ?, ?, ?, 'test', ?, ?)",
            [build_id, repo or self.repo, sha, None if queued is None else at(queued), at(started),
             None if finished is None else at(finished), status, pause_s, url],
        )

    def ci_deploy(self, deployment_id: str, sha: str | None, *, started: float, finished: float | None,
                  status: str = "success", environment: str = "production", pause_s: float = 0.0,
                  repo: str | None = None, url: str | None = None) -> None:
        """A deployment of a non-GitHub source (ci_deployments), e.g. with a manual-approval pause."""
        self.con.execute(
            "INSERT INTO ci_deployments (deployment_id, repo, environment, sha, started_at, finished_at, status,"
            " source, pause_s, url) VALUES (?, ?, ?, ?, ?, ?, ?, 'test', ?, ?)",
            [deployment_id, repo or self.repo, environment, sha, at(started),
             None if finished is None else at(finished), status, pause_s, url],
        )

    def map(self, bots: Sequence[str] = (), production: Sequence[str] = ("production",),
            incremental: bool = False, **settings: Any) -> MapResult:
        """Run the mapper with the given settings (further MapSettings fields as keywords)."""
        return run_mapper(self.con, MapSettings(bots=tuple(bots), production_environments=tuple(production),
                                                **settings), incremental=incremental)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Query rows as dicts keyed by column name."""
        cursor = self.con.execute(sql, list(params))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def change(self, number: int, repo: str | None = None) -> dict[str, Any]:
        """The changes row of one PR."""
        found = self.rows("SELECT * FROM changes WHERE repo = ? AND pr_number = ?",
                          [repo or self.repo, number])
        assert len(found) == 1, found
        return found[0]

    def deployed_at(self, number: int) -> dt.datetime | None:
        """deployed_at of one PR."""
        return self.change(number)["deployed_at"]

    def stages(self, number: int, repo: str | None = None) -> dict[str, tuple[float, float]]:
        """stage -> (wait_s, process_s) of one PR, from stage_times."""
        return {r["stage"]: (r["wait_s"], r["process_s"]) for r in self.stage_rows(number, repo)}

    def stage_rows(self, number: int, repo: str | None = None) -> list[dict[str, Any]]:
        """The stage_times rows of one PR in stage order."""
        return self.rows("SELECT * FROM stage_times WHERE repo = ? AND pr_number = ? ORDER BY stage_order",
                         [repo or self.repo, number])

    def stage(self, number: int, stage: str) -> dict[str, Any]:
        """One stage_times row of one PR."""
        found = [r for r in self.stage_rows(number) if r["stage"] == stage]
        assert len(found) == 1, (number, stage, found)
        return found[0]
