"""A hand-built repository served by the simulated GitHub, collected over REST and over GraphQL: both give
the same tables, and the stage times are those worked out by hand from the definitions (DOMAIN.md)."""

from __future__ import annotations

import datetime as dt

import pytest

from collector import config as cfg
from collector.demo.github_server import GitHubSimulator
from collector.demo.incident_world import IncidentWorld
from collector.demo.world_model import (
    Commit,
    Deployment,
    DeploymentStatus,
    Person,
    PullRequest,
    Repo,
    RepoWorld,
    Review,
    TimelineEvent,
    World,
)
from collector.pipeline import collect, run_map
from collector.store import Store
from tests.conftest import write_config
from tests.test_collect_github import TYPED_TABLES, snapshot

T = dt.datetime(2026, 11, 16, 9, 0, tzinfo=dt.UTC)  # a Monday, 09:00 UTC
H = dt.timedelta(hours=1)
REPO = "acme/shop"
PEOPLE = (Person("alice", "Alice Doe", "alice@acme.example", 101), Person("bob", "Bob Roe", "bob@acme.example", 102),
          Person("dependabot[bot]", "dependabot[bot]", "49699333+dependabot[bot]@users.noreply.github.com",
                 49699333, "Bot"),
          Person("sonarcloud[bot]", "sonarcloud[bot]", "39514782+sonarcloud[bot]@users.noreply.github.com",
                 39514782, "Bot"),
          Person("github-actions[bot]", "github-actions[bot]", "41898282+github-actions[bot]@users.noreply.github.com",
                 41898282, "Bot"),
          Person("acme", "Acme", "", 52000001, "Organization"))


def _commit(sha: str, parents: tuple[str, ...], who: Person, at: dt.datetime, message: str,
            landed: dt.datetime | None = None) -> Commit:
    login = who.login
    return Commit(sha, parents, login, who.name, who.email, at, login, who.name, who.email, at, message,
                  landed_at=landed)


def golden_world() -> World:
    """Two merged PRs and two production deployments, every instant chosen to make the arithmetic plain.

    #1 (alice, opened as a draft): first commit T-1h, ready T+1h, bob's first review T+3h, his approval T+5h,
    merged T+6h (merge commit m1); deployed by d1 (created T+8h, success T+8h30m).
    #2 (dependabot, a bot): opened T+2h, sonarcloud[bot] comments T+2h10m (a bot: not a pickup), alice
    approves T+4h, squash-merged T+7h (s2); deployed by d2 (created T+10h, success T+10h20m).
    """
    alice, _bob, dependabot, _sonar, actions = PEOPLE[:5]
    c0 = _commit("c0" * 20, (), alice, T - 240 * H, "Initial commit", landed=T - 240 * H)
    a1 = _commit("a1" * 20, (c0.sha,), alice, T - H, "Show the owner's pets")
    m1 = _commit("e1" * 20, (c0.sha, a1.sha), alice, T + 6 * H, "Merge pull request #1", landed=T + 6 * H)
    b1 = _commit("b1" * 20, (c0.sha,), dependabot, T + 2 * H, "Bump h2 from 2.3.230 to 2.3.232")
    s2 = _commit("f2" * 20, (m1.sha,), dependabot, T + 7 * H, "Bump h2 from 2.3.230 to 2.3.232 (#2)",
                 landed=T + 7 * H)
    pr1 = PullRequest(REPO, 1, 3_000_000_001, "Show the owner's pets", "", "alice", "User", T, True, "pets",
                      (a1,),
                      (Review(5_000_000_001, "bob", "User", "COMMENTED", T + 3 * H, a1.sha, "A question"),
                       Review(5_000_000_002, "bob", "User", "APPROVED", T + 5 * H, a1.sha, "LGTM")),
                      (TimelineEvent(21_000_000_001, "ready_for_review", "alice", "User", T + H),
                       TimelineEvent(21_000_000_002, "review_requested", "alice", "User", T + H,
                                     requested_reviewer="bob"),
                       TimelineEvent(21_000_000_003, "merged", "alice", "User", T + 6 * H, commit_id=m1.sha),
                       TimelineEvent(21_000_000_004, "closed", "alice", "User", T + 6 * H)),
                      closed_at=T + 6 * H, merged_at=T + 6 * H, merge_commit_sha=m1.sha, merge_method="merge",
                      merged_by="alice")
    pr2 = PullRequest(REPO, 2, 3_000_000_002, "Bump h2 from 2.3.230 to 2.3.232", "", "dependabot[bot]", "Bot",
                      T + 2 * H, False, "dependabot/maven/h2", (b1,),
                      (Review(5_000_000_003, "sonarcloud[bot]", "Bot", "COMMENTED", T + 2 * H + 10 * H / 60,
                              b1.sha, "Quality Gate passed"),
                       Review(5_000_000_004, "alice", "User", "APPROVED", T + 4 * H, b1.sha, "")),
                      (TimelineEvent(21_000_000_005, "merged", "alice", "User", T + 7 * H, commit_id=s2.sha),
                       TimelineEvent(21_000_000_006, "closed", "alice", "User", T + 7 * H)),
                      closed_at=T + 7 * H, merged_at=T + 7 * H, merge_commit_sha=s2.sha, merge_method="squash",
                      merged_by="alice")

    def deployment(ident: int, sha: str, created: dt.datetime, done: dt.datetime,
                   replaced: dt.datetime | None) -> Deployment:
        statuses = [DeploymentStatus(ident * 10 + 1, "queued", created),
                    DeploymentStatus(ident * 10 + 2, "in_progress", created + 5 * H / 60),
                    DeploymentStatus(ident * 10 + 3, "success", done)]
        if replaced is not None:
            statuses.append(DeploymentStatus(ident * 10 + 4, "inactive", replaced))
        return Deployment(ident, REPO, sha, "main", "production", actions.login, "Bot", created, tuple(statuses))

    # d0 is the first production deployment: the seed that holds all earlier history (it delivers no PR)
    d0 = deployment(1_100_000_000, c0.sha, T - 200 * H, T - 199.5 * H, T + 8.5 * H)
    d1 = deployment(1_100_000_001, m1.sha, T + 8 * H, T + 8.5 * H, T + 10 * H + 20 * H / 60)
    d2 = deployment(1_100_000_002, s2.sha, T + 10 * H, T + 10 * H + 20 * H / 60, None)
    repo = RepoWorld(Repo(REPO, 700_000_001, T - 300 * H, "The shop"), (c0, m1, s2), (pr1, pr2), (d0, d1, d2))
    end = T + 24 * H
    return World(seed=0, start=T - 300 * H, window_start=T - 300 * H, end=end, people=PEOPLE, repos=(repo,))


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[tuple[object, ...]]]]:
    world = golden_world()
    tables: dict[str, dict[str, list[tuple[object, ...]]]] = {}
    incidents = IncidentWorld((), (REPO,), dt.timedelta(days=7), world.end)
    with GitHubSimulator(world, incidents=incidents) as sim:
        for api in ("rest", "graphql"):
            folder = tmp_path_factory.mktemp(api)
            config = cfg.load(write_config(folder, sim.base_url, [REPO], extra=f'api = "{api}"\n'))
            with Store(config.db_path) as store:
                (result,) = collect(config, store)
                assert result.ok, result.errors
                run_map(config, store)
                tables[api] = snapshot(store, [*TYPED_TABLES, "changes", "stage_times", "deployments"])
                tables[api]["_stages"] = store.query(
                    "SELECT pr_number, stage, wait_s, process_s FROM stage_times ORDER BY pr_number, stage_order")[1]
                tables[api]["_changes"] = store.query(
                    "SELECT pr_number, is_bot, deployment_id FROM changes ORDER BY pr_number")[1]
    return tables


def test_rest_and_graphql_fill_the_same_tables(collected: dict[str, dict[str, list[tuple[object, ...]]]]) -> None:
    for table, rows in collected["rest"].items():
        assert collected["graphql"][table] == rows, table
    assert len(collected["graphql"]["pull_requests"]) == 2


@pytest.mark.parametrize("api", ["rest", "graphql"])
def test_stage_times_are_the_hand_worked_ones(collected: dict[str, dict[str, list[tuple[object, ...]]]],
                                              api: str) -> None:
    stages = {(number, stage): (wait, process) for number, stage, wait, process in collected[api]["_stages"]}
    # #1: code = first commit T-1h -> ready T+1h: 2h of process; review: ready T+1h -> bob's first review
    # T+3h waits 2h, then first review -> approval T+5h is 2h of process; merge: approval -> merged T+6h, 1h
    assert stages[(1, "code")] == (0.0, 7200.0)
    assert stages[(1, "review")] == (7200.0, 7200.0)
    assert stages[(1, "merge")] == (3600.0, 0.0)
    # release (no CI, no staging here): merged T+6h -> d1 started T+8h waits 2h; d1 runs to success T+8h30m
    assert stages[(1, "release")] == (7200.0, 1800.0)
    # #2: opened (not a draft) with its one commit at T+2h: code 0; the sonarcloud[bot] comment is no pickup,
    # so review waits from T+2h to alice's T+4h, and her first review is the approval (0 process); merge waits
    # T+4h -> T+7h (3h); release waits merged T+7h -> d2 started T+10h (3h), d2 runs 20 min
    assert stages[(2, "code")] == (0.0, 0.0)
    assert stages[(2, "review")] == (7200.0, 0.0)
    assert stages[(2, "merge")] == (10800.0, 0.0)
    assert stages[(2, "release")] == (10800.0, 1200.0)
    assert len(stages) == 8
    changes = {number: (is_bot, deployment) for number, is_bot, deployment in collected[api]["_changes"]}
    assert changes[1] == (False, "github:1100000001")
    assert changes[2] == (True, "github:1100000002")
