"""Attribution by true reachability, whatever branch the deployed SHA is on (hand-worked golden cases).

Definition (DOMAIN.md): a successful deployment of SHA D delivers exactly the merge commits reachable
from D and not reachable from any earlier successful deployment of the same repo and environment class.
The first two parts work on rows inserted directly; the last collects a hand-built repository with a
release branch from the simulated GitHub over both transports, so the connector has to fetch the branch.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from collector import config as cfg
from collector.demo.github_server import GitHubSimulator
from collector.demo.incident_world import IncidentWorld
from collector.demo.world_model import (
    Commit,
    Deployment,
    DeploymentStatus,
    PullRequest,
    Repo,
    RepoWorld,
    TimelineEvent,
    World,
)
from collector.pipeline import collect, run_map
from collector.store import Store
from tests.conftest import write_config
from tests.mapper_cases import H
from tests.mapper_cases import World as Rows
from tests.test_github_transports_golden import PEOPLE, REPO, T, _commit


def _delivery(w: Rows, number: int) -> tuple[object, object]:
    change = w.change(number)
    return change["deployment_id"], change["attribution"]


def test_a_deploy_from_a_release_branch_delivers_only_what_the_branch_contains() -> None:
    w = Rows()
    # main: c0 - m1 (PR 1) - m2 (PR 3); release/1 is cut at m1 and gets r1 (PR 2, a fix merged into it)
    w.commit("c0", hours=-100)
    w.commit("m1", "c0", "a1", hours=1)
    w.commit("m2", "m1", "a3", hours=2)
    w.commit("r1", "m1", "h2", hours=3)  # fetched because it was deployed (the release branch)
    w.pr(1, opened=0, merged=1, merge_sha="m1", commits=[("a1", 0)])
    w.pr(2, opened=2, merged=3, merge_sha="r1", commits=[("h2", 2)])
    w.pr(3, opened=1, merged=2, merge_sha="m2", commits=[("a3", 1)])
    w.ship(1, "c0", created=-90, success=-89)  # the seed
    w.ship(2, "r1", created=4, success=4.5)  # from release/1: holds m1 and r1, not m2
    w.ship(3, "m2", created=8, success=8.25)  # main: m2 (m1 was delivered already)
    w.map()
    assert _delivery(w, 1) == ("github:2", "graph")
    assert _delivery(w, 2) == ("github:2", "graph")
    # PR 3 merged at 2h, before the release deploy started at 4h, yet that deploy does not contain it
    assert _delivery(w, 3) == ("github:3", "graph")
    assert w.stages(1)["release"] == (3 * H, 0.5 * H)  # merged 1h -> started 4h -> success 4.5h
    assert w.stages(2)["release"] == (1 * H, 0.5 * H)  # merged 3h -> 4h -> 4.5h
    assert w.stages(3)["release"] == (6 * H, 0.25 * H)  # merged 2h -> started 8h -> success 8.25h


def test_a_hotfix_branch_merged_back_later_is_delivered_once_by_its_own_deploy() -> None:
    w = Rows()
    # hotfix/2 leaves main at m1 with x1 (PR 2, merged into the hotfix branch) and is deployed at 3h;
    # main goes on with m2 (PR 3) and merges the hotfix back at 6h (m3: parents m2, x1)
    w.commit("c0", hours=-100)
    w.commit("m1", "c0", hours=0)
    w.commit("x1", "m1", "f2", hours=2)
    w.commit("m2", "m1", "a3", hours=2.5)
    w.commit("m3", "m2", "x1", hours=6)
    w.pr(2, opened=1, merged=2, merge_sha="x1", commits=[("f2", 1)])
    w.pr(3, opened=1, merged=2.5, merge_sha="m2", commits=[("a3", 1)])
    w.ship(1, "m1", created=-1, success=-0.5)  # the seed: m1 and everything before
    w.ship(2, "x1", created=3, success=3.25)  # the hotfix: x1 only
    w.ship(3, "m3", created=7, success=7.5)  # main after the merge-back: m2, m3 (x1 went out at 3h)
    w.map()
    assert _delivery(w, 2) == ("github:2", "graph")
    assert w.stages(2)["release"] == (1 * H, 0.25 * H)  # merged 2h -> started 3h -> success 3.25h
    assert _delivery(w, 3) == ("github:3", "graph")
    assert w.stages(3)["release"] == (4.5 * H, 0.5 * H)  # merged 2.5h -> started 7h -> success 7.5h


def test_a_rollback_delivers_nothing_and_the_forward_deploy_delivers_what_came_after() -> None:
    w = Rows()
    w.line("c0", "m1", "m2", "m3")  # m1: PR 1, m2: PR 2, m3: PR 3 (merged at 1h, 2h, 5h)
    w.pr(1, opened=0, merged=1, merge_sha="m1")
    w.pr(2, opened=0, merged=2, merge_sha="m2")
    w.pr(3, opened=4, merged=5, merge_sha="m3")
    w.ship(1, "c0", created=-10, success=-9)  # seed
    w.ship(2, "m2", created=3, success=3.5)  # delivers m1, m2
    w.ship(3, "m1", created=4, success=4.25)  # rollback to an older SHA: contains nothing new
    w.ship(4, "m3", created=6, success=6.5)  # forward: m3 only (m1 and m2 went out at 3.5h)
    w.map()
    assert _delivery(w, 1) == ("github:2", "graph")
    assert _delivery(w, 2) == ("github:2", "graph")
    assert _delivery(w, 3) == ("github:4", "graph")
    assert w.stages(3)["release"] == (1 * H, 0.5 * H)  # merged 5h -> started 6h -> success 6.5h
    rolled = w.rows("SELECT pr_number, rolled_back FROM map_change_delivery WHERE target = 'production' "
                    "AND item_id IS NOT NULL ORDER BY pr_number")
    # deployment 2 was followed by a deploy of an ancestor of its SHA: it was rolled back
    assert rolled == [{"pr_number": 1, "rolled_back": True}, {"pr_number": 2, "rolled_back": True},
                      {"pr_number": 3, "rolled_back": False}]


def test_a_sha_the_graph_cannot_know_falls_back_to_the_time_window_and_is_flagged() -> None:
    w = Rows()
    w.line("c0", "m1", "m2")
    w.pr(1, opened=0, merged=1, merge_sha="m1")
    w.pr(2, opened=0, merged=3, merge_sha="m2")
    w.ship(1, "c0", created=-10, success=-9)  # seed
    w.ship(2, "f" * 40, created=2, success=2.5)  # a SHA GitHub no longer knows (force-pushed away)
    w.ship(3, "m2", created=5, success=5.5)
    w.map()
    # the window of deployment 2: merges after the previous deploy started (-10h) up to its own start (2h)
    assert _delivery(w, 1) == ("github:2", "time_window")
    assert w.stages(1)["release"] == (1 * H, 0.5 * H)  # merged 1h -> started 2h -> success 2.5h
    assert _delivery(w, 2) == ("github:3", "graph")


def _branch_world() -> World:
    """A repo with a release branch deployed before it is merged back (times in hours after T, a Monday).

    main: c0 (seed, deployed d0) - m1 (PR 1, merged T+1h) - m2 (PR 3, merged T+2h) - m4 (merge-back, T+7h)
    release/1 is cut at m1 and gets r1 (PR 2, a fix merged into the release branch at T+3h); d1 deploys r1
    (T+4h, success T+4h30m); d2 deploys m4 (T+8h, success T+8h15m).
    """
    alice, bob, _dependabot, _sonar, actions = PEOPLE[:5]
    c0 = _commit("c0" * 20, (), alice, T - 240 * H_, "Initial commit", landed=T - 240 * H_)
    a1 = _commit("a1" * 20, (c0.sha,), alice, T, "Owner search")
    m1 = _commit("e1" * 20, (c0.sha, a1.sha), alice, T + H_, "Merge pull request #1", landed=T + H_)
    a3 = _commit("a3" * 20, (m1.sha,), bob, T + H_, "Vet specialties")
    m2 = _commit("e3" * 20, (m1.sha, a3.sha), bob, T + 2 * H_, "Merge pull request #3", landed=T + 2 * H_)
    h2 = _commit("b2" * 20, (m1.sha,), alice, T + 2 * H_, "Fix the visit date")
    r1 = _commit("d2" * 20, (m1.sha, h2.sha), alice, T + 3 * H_, "Merge pull request #2 into release/1")
    m4 = _commit("e4" * 20, (m2.sha, r1.sha), bob, T + 7 * H_, "Merge release/1", landed=T + 7 * H_)

    def pull(number: int, who: str, opened: dt.datetime, commit: Commit, merged: dt.datetime, sha: str,
             base: str) -> PullRequest:
        return PullRequest(REPO, number, 3_100_000_000 + number, f"Change {number}", "", who, "User", opened, False,
                           f"topic-{number}", (commit,),
                           events=(TimelineEvent(22_000_000_000 + number, "merged", who, "User", merged,
                                                 commit_id=sha),),
                           base_ref=base, closed_at=merged, merged_at=merged, merge_commit_sha=sha,
                           merge_method="merge", merged_by=who)

    pulls = (pull(1, "alice", T, a1, T + H_, m1.sha, "main"),
             pull(2, "alice", T + 2 * H_, h2, T + 3 * H_, r1.sha, "release/1"),
             pull(3, "bob", T + H_, a3, T + 2 * H_, m2.sha, "main"))

    def deployment(ident: int, sha: str, ref: str, created: dt.datetime, done: dt.datetime) -> Deployment:
        statuses = (DeploymentStatus(ident * 10 + 1, "in_progress", created),
                    DeploymentStatus(ident * 10 + 2, "success", done))
        return Deployment(ident, REPO, sha, ref, "production", actions.login, "Bot", created, statuses)

    deployments = (deployment(1_200_000_000, c0.sha, "main", T - 200 * H_, T - 199.5 * H_),
                   deployment(1_200_000_001, r1.sha, "release/1", T + 4 * H_, T + 4.5 * H_),
                   deployment(1_200_000_002, m4.sha, "main", T + 8 * H_, T + 8.25 * H_))
    repo = RepoWorld(Repo(REPO, 700_000_002, T - 300 * H_, "The shop"), (c0, m1, m2, m4), pulls, deployments,
                     branches=(r1,))
    return World(seed=0, start=T - 300 * H_, window_start=T - 300 * H_, end=T + 24 * H_, people=PEOPLE,
                 repos=(repo,))


H_ = dt.timedelta(hours=1)


@pytest.mark.parametrize("api", ["rest", "graphql"])
def test_the_collector_fetches_a_deployed_release_branch_so_attribution_follows_it(
        tmp_path: Path, api: str) -> None:
    world = _branch_world()
    with GitHubSimulator(world, incidents=IncidentWorld((), (REPO,), dt.timedelta(days=7), world.end)) as sim:
        sim.clock = T + 6 * H_  # the release branch is deployed and not merged back yet
        config = cfg.load(write_config(tmp_path, sim.base_url, [REPO], extra=f'api = "{api}"\n'))
        with Store(config.db_path) as store:
            results = collect(config, store)
            assert [(r.source, r.ok) for r in results] == [("github", True), ("github_deployed", True)]
            run_map(config, store)
            early = dict(store.query("SELECT pr_number, deployment_id || ' ' || attribution FROM changes "
                                     "WHERE deployment_id IS NOT NULL")[1])
            looked_up = store.query("SELECT sha, status, ahead_by, merge_base FROM deployed_shas")[1]
            compares = [p for _, p, _ in sim.request_log if "/compare/" in p]
            # d1 holds m1 (PR 1) and r1 (PR 2); PR 3 (m2, merged before d1 started) is not in it
            assert early == {1: "github:1200000001 graph", 2: "github:1200000001 graph"}
            # r1 and PR 2's own commit h2 are ahead of main; main's m2 is not on the branch: diverged at m1
            assert looked_up == [("d2" * 20, "diverged", 2, "e1" * 20)]
            assert len(compares) == 1

            sim.clock = world.end  # main merged the release branch back and deployed it
            results = collect(config, store)
            assert [r.source for r in results] == ["github"]  # nothing left to look up
            run_map(config, store)
            late = {n: (d, a) for n, d, a in store.query(
                "SELECT pr_number, deployment_id, attribution FROM changes ORDER BY pr_number")[1]}
            stages = {(n, s): (wait, process) for n, s, wait, process in store.query(
                "SELECT pr_number, stage, wait_s, process_s FROM stage_times WHERE stage = 'release'")[1]}
    assert late == {1: ("github:1200000001", "graph"), 2: ("github:1200000001", "graph"),
                    3: ("github:1200000002", "graph")}
    assert stages[(1, "release")] == (3 * 3600.0, 1800.0)  # merged T+1h -> d1 started T+4h -> success T+4h30m
    assert stages[(2, "release")] == (3600.0, 1800.0)  # merged T+3h -> T+4h -> T+4h30m
    assert stages[(3, "release")] == (6 * 3600.0, 900.0)  # merged T+2h -> d2 started T+8h -> success T+8h15m
