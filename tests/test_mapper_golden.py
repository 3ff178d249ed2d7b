"""Golden tests of the mapper: tiny hand-built histories whose expected values are worked out by hand."""

from __future__ import annotations

import random
import re
from importlib import resources

import pytest

from models.mapper import SQL_FILES, StageSummary, stage_summary, totals
from tests.mapper_cases import REPO, H, World, at

# ---------------------------------------------------------------------------------------------------
# Pull request timeline: ready, first review, approval, bots


def test_draft_pr_ready_at_is_last_ready_event_before_first_review() -> None:
    w = World()
    # #1: opened as draft at 1h; ready 3h, back to draft 4h, ready 6h, reviewed 7h, draft again 8h,
    # ready 9h, approved 10h, merged 11h.
    w.pr(1, opened=1, merged=11, draft=False, commits=[("a1", 0), ("a2", 2)],
         events=[("ready_for_review", 3), ("convert_to_draft", 4), ("ready_for_review", 6),
                 ("convert_to_draft", 8), ("ready_for_review", 9)],
         reviews=[("bob", "COMMENTED", 7), ("bob", "APPROVED", 10)])
    # #2: draft never reviewed: ready 2h, draft 3h, ready 5h, merged 6h.
    w.pr(2, opened=0, merged=6, commits=[("b1", 0)],
         events=[("ready_for_review", 2), ("convert_to_draft", 3), ("ready_for_review", 5)])
    # #3: converted to draft at 2h and reviewed (3h) before its only ready event (4h).
    w.pr(3, opened=1, merged=5, commits=[("c1", 0)],
         events=[("convert_to_draft", 2), ("ready_for_review", 4)], reviews=[("bob", "APPROVED", 3)])
    # #4: still flagged draft, no events: ready when opened.
    w.pr(4, opened=1, merged=2, draft=True, commits=[("d1", 0)])
    w.map()

    c = w.change(1)
    assert c["first_commit_at"] == at(0)  # min(0h, 2h)
    assert c["opened_at"] == at(1)
    assert c["ready_at"] == at(6)  # ready events <= first review 7h: 3h, 6h -> last is 6h (9h is later)
    assert c["first_review_at"] == at(7)
    assert c["approved_at"] == at(10)
    assert w.stages(1) == {
        "code": (0.0, 6 * H),  # 0h -> ready 6h
        "review": (1 * H, 3 * H),  # wait 6h -> 7h; process 7h -> approved 10h
        "merge": (1 * H, 0.0),  # approved 10h -> merged 11h
    }
    assert w.change(2)["ready_at"] == at(5)  # never reviewed: ready events <= merge 6h: 2h, 5h -> 5h
    assert w.stages(2)["review"] == (1 * H, 0.0)  # never reviewed: wait ready 5h -> merged 6h, process 0
    assert w.stages(2)["merge"] == (0.0, 0.0)  # no approval: review ran to the merge
    assert w.change(3)["ready_at"] == at(1)  # reviewed 3h before any ready event: opened_at 1h
    assert w.change(4)["ready_at"] == at(1)  # draft flag but no ready event: opened_at 1h


def test_bot_reviews_are_ignored() -> None:
    w = World()
    w.pr(1, opened=0, merged=5, commits=[("a1", 0)],
         reviews=[("dependabot[bot]", "COMMENTED", 1),  # type Bot
                  ("renovate[bot]", "CHANGES_REQUESTED", 1.5),  # '[bot]' login, type User
                  ("ci-robot", "COMMENTED", 2),  # listed in the settings (as CI-Robot)
                  ("carol", "COMMENTED", 3),
                  ("carol", "APPROVED", 4),
                  ("ci-robot", "APPROVED", 4.5)],
         reviewer_types={"dependabot[bot]": "Bot"})
    w.map(bots=["CI-Robot"])
    c = w.change(1)
    assert c["first_review_at"] == at(3)  # carol's comment; the bots at 1h, 1.5h, 2h do not count
    assert c["approved_at"] == at(4)  # carol; the bot approval at 4.5h does not count
    assert w.stages(1)["review"] == (3 * H, 1 * H)  # wait 0h -> 3h; process 3h -> 4h


def test_self_review_is_ignored() -> None:
    w = World()
    w.pr(1, opened=0, merged=4, author="Alice", commits=[("a1", 0)],
         reviews=[("alice", "COMMENTED", 1),  # the author herself (logins compare case-insensitively)
                  ("alice", "APPROVED", 1.5),
                  ("bob", "CHANGES_REQUESTED", 2),
                  ("bob", "APPROVED", 3)])
    w.map()
    c = w.change(1)
    assert c["first_review_at"] == at(2)  # bob; alice's own review at 1h is no pickup
    assert c["approved_at"] == at(3)  # bob; alice's self-approval at 1.5h does not count


def test_dismissed_approval_is_a_pickup_but_not_the_approval() -> None:
    w = World()
    w.pr(1, opened=0, merged=7, commits=[("a1", 0)],
         reviews=[("erin", "PENDING", None),  # never submitted
                  ("bob", "DISMISSED", 2),  # an approval that was dismissed
                  ("carol", "APPROVED", 5),
                  ("dave", "APPROVED", 8)])  # after the merge at 7h
    w.map()
    c = w.change(1)
    assert c["first_review_at"] == at(2)  # bob's dismissed review still picked the PR up
    assert c["approved_at"] == at(5)  # last approval at or before the merge: carol (dave's is after)
    assert w.stages(1) == {
        "code": (0.0, 0.0),  # first commit 0h -> opened 0h
        "review": (2 * H, 3 * H),  # wait 0h -> 2h; process 2h -> 5h
        "merge": (2 * H, 0.0),  # approved 5h -> merged 7h
    }


def test_bot_authored_pr_is_flagged() -> None:
    w = World()
    w.pr(1, opened=0, merged=1, author="dependabot[bot]", author_type="Bot")
    w.pr(2, opened=0, merged=1, author="renovate[bot]")  # '[bot]' login, type User
    w.pr(3, opened=0, merged=1, author="release-o-matic")  # listed in the settings
    w.pr(4, opened=0, merged=1, author="alice")
    w.pr(5, opened=0, merged=None, author="alice")  # never merged: no change
    result = w.map(bots=["release-o-matic"])
    flags = {r["pr_number"]: r["is_bot"] for r in w.rows("SELECT pr_number, is_bot FROM changes")}
    assert flags == {1: True, 2: True, 3: True, 4: False}
    assert result.changes == 4  # #5 is not merged
    assert totals(w.con).changes == 1  # only alice's #4 is human


# ---------------------------------------------------------------------------------------------------
# Attribution of PRs to production deployments


def test_squash_merged_pr_is_delivered_by_the_deployment_of_its_squash_commit() -> None:
    w = World()
    w.line("m1", "m2", "s3")
    w.ship(1, "m2", created=1, success=1.25)  # the seed
    # #5 squashed into s3; its own commits x1, x2 are not on the default branch.
    w.pr(5, opened=2.5, merged=4, merge_sha="s3", commits=[("x1", 0.5), ("x2", 2)])
    w.deploy(2, "s3", created=6, statuses=[("queued", 6), ("in_progress", 6.25), ("success", 6.5)])
    w.map()
    c = w.change(5)
    assert c["merge_sha"] == "s3"
    assert c["deployed_at"] == at(6.5)  # first success of deployment 2
    assert c["lead_time_s"] == 6 * H  # 6.5h - first commit 0.5h
    assert w.stages(5)["release"] == (2 * H, 0.5 * H)  # wait merged 4h -> start 6h; process 6h -> 6.5h


def test_rebase_merged_pr_is_delivered_by_a_later_deployment_reaching_its_last_commit() -> None:
    w = World()
    # main: m1 - m2 - r1 - r2 - r3 - m6; r1..r3 are the rebased copies of #6's commits o1..o3.
    w.line("m1", "m2", "r1", "r2", "r3", "m6")
    w.ship(1, "m2", created=0.5, success=0.75)  # the seed
    w.pr(6, opened=3.5, merged=4, merge_sha="r3", commits=[("o1", 1), ("o2", 2), ("o3", 3)])
    w.ship(2, "r1", created=7, success=8)  # reaches r1 only, not r3
    w.ship(3, "m6", created=9, success=10)  # m6 descends from r3
    w.map()
    c = w.change(6)
    assert c["deployed_at"] == at(10)  # deployment 3; deployment 2 (8h) does not reach r3
    assert c["lead_time_s"] == 9 * H  # 10h - first authored commit o1 at 1h


def test_merge_commit_prs_are_reached_through_second_parents() -> None:
    w = World()
    # m1 - m2 - m3 - M - M2 on the main line; #7's branch b1 - b2 is merged by M (second parent b2).
    # #8 is merged into a release branch r1 by R (parents r1, c1); M2 merges that branch (second parent R).
    w.line("m1", "m2", "m3")
    w.line("b1", "b2", parent="m2")
    w.commit("M", "m3", "b2")
    w.commit("r1", "m2")
    w.commit("c1", "m2")
    w.commit("R", "r1", "c1")
    w.commit("M2", "M", "R")
    w.ship(1, "m2", created=0.5, success=1)  # the seed
    w.pr(7, opened=2, merged=5, merge_sha="M", commits=[("b1", 1.5), ("b2", 2)])
    w.pr(8, opened=3, merged=6, merge_sha="R", commits=[("c1", 2.5)])
    w.ship(2, "M", created=6.5, success=7)  # reaches M (#7) but not R
    w.ship(3, "M2", created=9, success=9.5)  # reaches R through its second parent
    w.map()
    assert w.deployed_at(7) == at(7)  # deployment 2, the first to reach M
    assert w.deployed_at(8) == at(9.5)  # deployment 3 reaches R via M2's second parent
    assert w.change(7)["lead_time_s"] == 5.5 * H  # 7h - 1.5h
    assert w.change(8)["lead_time_s"] == 7 * H  # 9.5h - 2.5h


def test_deployment_of_a_commit_off_the_main_line() -> None:
    w = World()
    # main: m1 - m2 - M (merges hotfix h1 back); the hotfix branch h1 (parent m2) was deployed itself.
    w.line("m1", "m2")
    w.commit("h1", "m2")
    w.commit("M", "m2", "h1")
    w.ship(1, "m1", created=0, success=0.5)  # the seed
    w.pr(20, opened=1, merged=2, merge_sha="m2", commits=[("p20", 1)])
    w.pr(21, opened=2, merged=3, merge_sha="h1", commits=[("p21", 2)])  # merged into the hotfix branch
    w.pr(22, opened=4, merged=5, merge_sha="M", commits=[("p22", 4)])
    w.ship(2, "h1", created=3.5, success=4)  # deployed from the hotfix branch
    w.ship(3, "M", created=6, success=7)
    w.map()
    assert w.deployed_at(20) == at(4)  # h1's parent m2 is #20's merge commit
    assert w.deployed_at(21) == at(4)  # h1 itself
    assert w.deployed_at(22) == at(7)  # M is only reached by deployment 3


def test_two_prs_delivered_by_one_deployment() -> None:
    w = World()
    w.line("m1", "a", "b", "c")
    w.ship(1, "m1", created=0, success=0.5)  # the seed
    w.pr(10, opened=1, merged=2, merge_sha="a", commits=[("p10", 1)])
    w.pr(11, opened=1.5, merged=3, merge_sha="b", commits=[("p11", 1.5)])
    w.pr(12, opened=4, merged=5, merge_sha="c", commits=[("p12", 4)])
    w.ship(2, "b", created=4, success=4.5)
    result = w.map()
    assert w.deployed_at(10) == at(4.5)
    assert w.deployed_at(11) == at(4.5)
    assert w.deployed_at(12) is None  # c is not deployed yet
    assert w.change(10)["lead_time_s"] == 3.5 * H  # 4.5h - 1h
    assert w.change(11)["lead_time_s"] == 3 * H  # 4.5h - 1.5h
    assert w.change(12)["lead_time_s"] is None
    assert (result.changes, result.deployed) == (3, 2)
    assert "release" not in w.stages(12)


def test_repos_are_mapped_independently() -> None:
    w = World()
    other = "acme/api"
    for repo in (REPO, other):  # the same SHAs in two repos
        w.commit("m1", repo=repo)
        w.commit("q2", "m1", repo=repo)
    w.ship(1, "m1", created=0, success=0.5)  # seed of acme/web
    w.pr(50, opened=1, merged=2, merge_sha="q2", commits=[("p50", 1)])
    w.ship(2, "q2", created=3, success=3.5)
    w.pr(50, opened=1, merged=2, merge_sha="q2", commits=[("p50", 1)], repo=other)
    w.deploy(3, "q2", created=4, statuses=[("success", 4.5)], repo=other)  # the seed of acme/api
    w.map()
    assert w.deployed_at(50) == at(3.5)  # acme/web: deployment 2
    assert w.change(50, repo=other)["deployed_at"] is None  # acme/api: its first deployment is its seed
    assert w.change(50, repo=other)["change_id"] == "acme/api#50"


def _seed_world() -> World:
    """p1 - p2 (#13) - p3 (#14): the seed deploys p2, a later deployment p3."""
    w = World()
    w.line("p1", "p2", "p3")
    w.ship(9, "p2", created=1.5, success=1.75, environment="staging")  # staging is never the seed
    w.pr(13, opened=0.5, merged=1, merge_sha="p2", commits=[("q13", 0)])
    w.ship(1, "p2", created=1.75, success=2)  # the seed: first successful production deployment
    w.pr(14, opened=2.5, merged=3, merge_sha="p3", commits=[("q14", 2.5)])
    w.ship(2, "p3", created=4.5, success=5)
    w.map()
    return w


def test_pr_contained_in_the_seed_deployment_has_no_deploy_time() -> None:
    w = _seed_world()
    # The seed reaches p2: #13's history before the seed is unknown, so it is not deployed (and must
    # not be given deployment 2's 5h).
    assert w.deployed_at(13) is None
    assert w.change(13)["lead_time_s"] is None
    assert "release" not in w.stages(13)


def test_pr_merged_after_the_seed_is_delivered_by_the_next_deployment() -> None:
    w = _seed_world()
    assert w.deployed_at(14) == at(5)
    assert w.change(14)["lead_time_s"] == 2.5 * H  # 5h - 2.5h
    assert w.stages(14)["release"] == (1.5 * H, 0.5 * H)  # merged 3h -> start 4.5h -> success 5h


def test_failed_deployment_is_never_the_delivering_one() -> None:
    w = World()
    w.line("m1", "q2")
    w.ship(1, "m1", created=0, success=1)  # the seed
    w.pr(15, opened=1, merged=2, merge_sha="q2", commits=[("p15", 1)])
    w.deploy(2, "q2", created=3, statuses=[("in_progress", 3), ("failure", 3.5)])
    w.deploy(3, "q2", created=4, statuses=[("in_progress", 4), ("success", 4.25)])
    w.map()
    assert w.deployed_at(15) == at(4.25)  # deployment 3; deployment 2 failed at 3.5h
    assert w.stages(15)["release"] == (2 * H, 0.25 * H)  # merged 2h -> start 4h -> success 4.25h


def test_inactive_after_success_still_counts_with_its_first_success() -> None:
    w = World()
    w.line("m1", "q2", "q3")
    w.deploy(1, "m1", created=0, statuses=[("success", 1), ("inactive", 5)])  # still the seed
    w.pr(16, opened=1, merged=2, merge_sha="q2", commits=[("p16", 1)])
    w.deploy(2, "q2", created=3, statuses=[("success", 3.5), ("success", 4), ("inactive", 8)])
    w.pr(17, opened=0, merged=0.5, merge_sha="m1", commits=[("p17", 0)])
    w.ship(3, "q3", created=7.5, success=8)
    w.map()
    assert w.deployed_at(16) == at(3.5)  # first success of deployment 2, not its inactive 8h
    assert w.deployed_at(17) is None  # in the (now inactive) seed


def test_staging_deployment_is_ignored_and_every_production_name_counts() -> None:
    w = World()
    w.line("m1", "q2", "q3")
    w.ship(1, "m1", created=0, success=0.5)  # the seed
    w.pr(18, opened=0.5, merged=1, merge_sha="q2", commits=[("p18", 0.5)])
    w.ship(2, "q2", created=2, success=2.5, environment="staging")
    w.ship(3, "q2", created=5, success=5.5)
    w.pr(19, opened=5, merged=6, merge_sha="q3", commits=[("p19", 6)])
    w.ship(4, "q3", created=6.5, success=7, environment="staging")
    w.ship(5, "q3", created=8, success=8.5, environment="Prod-EU")
    w.ship(6, "q3", created=8, success=9)
    w.map(production=["production", "prod-eu"])
    assert w.deployed_at(18) == at(5.5)  # staging's 2.5h ignored
    assert w.deployed_at(19) == at(8.5)  # Prod-EU (8.5h) and production (9h) are one production


# ---------------------------------------------------------------------------------------------------
# Stage times, clamping and the deployments view


def test_backwards_spans_are_clamped_and_counted() -> None:
    w = World()
    # #30: reviewed at 1h, before the PR was opened at 2h (clock skew): review wait would be -1h.
    w.pr(30, opened=2, merged=4, commits=[("p30", 0)], reviews=[("bob", "COMMENTED", 1), ("bob", "APPROVED", 3)])
    # #31: its only commit was authored at 2.5h, after it was opened at 2h (force-pushed).
    w.pr(31, opened=2, merged=4, commits=[("p31", 2.5)])
    result = w.map()
    assert w.stages(30) == {
        "code": (0.0, 2 * H),  # 0h -> ready (opened) 2h
        "review": (0.0, 2 * H),  # wait 2h -> 1h clamped to 0; process 1h -> 3h
        "merge": (1 * H, 0.0),  # 3h -> 4h
    }
    assert w.stages(31)["code"] == (0.0, 0.0)  # 2.5h -> 2h clamped to 0
    # Every configured stage is listed (issue 3 added build and staging to the default stream).
    assert result.clamped == {"code": 1, "review": 1, "merge": 0, "build": 0, "staging": 0, "release": 0}
    assert dict(w.con.execute("SELECT stage, clamped FROM stage_clamps").fetchall()) == result.clamped


def test_pr_without_known_commits_has_no_code_stage_and_no_lead_time() -> None:
    w = World()
    w.line("m1", "q2")
    w.ship(1, "m1", created=0, success=0.5)
    w.pr(40, opened=1, merged=2, merge_sha="q2")
    w.ship(2, "q2", created=3, success=3.5)
    w.map()
    assert w.deployed_at(40) == at(3.5)
    assert w.change(40)["lead_time_s"] is None  # no first commit
    assert list(w.stages(40)) == ["review", "merge", "release"]


def test_deployments_view_normalises_statuses() -> None:
    w = World()
    w.deploy(1, "s1", created=0)  # no status at all
    w.deploy(2, "s2", created=0, statuses=[("pending", 0.5)])
    w.deploy(3, "s3", created=0, statuses=[("queued", 0.5), ("in_progress", 1)])
    w.deploy(4, "s4", created=0, statuses=[("in_progress", 1), ("success", 2), ("success", 3), ("inactive", 5)])
    w.deploy(5, "s5", created=1, statuses=[("in_progress", 1), ("failure", 4)])
    w.deploy(6, "s6", created=1, statuses=[("error", 6)], environment="staging")
    w.deploy(7, "s7", created=0, statuses=[("failure", 1), ("inactive", 2)])
    w.deploy(8, "s8", created=0, statuses=[("queued", 0.25)])
    w.map()
    got = {
        r["deployment_id"]: (r["status"], r["finished_at"])
        for r in w.rows("SELECT * FROM deployments")
    }
    assert got == {
        "github:1": ("queued", None),  # no status: queued
        "github:2": ("queued", None),  # pending -> queued
        "github:3": ("in_progress", None),  # latest status
        "github:4": ("success", at(2)),  # ever succeeded; first success 2h; inactive 5h does not undo it
        "github:5": ("failure", at(4)),
        "github:6": ("error", at(6)),
        "github:7": ("inactive", at(1)),  # never succeeded: keeps its failure time
        "github:8": ("queued", None),
    }
    row = w.rows("SELECT * FROM deployments WHERE deployment_id = 'github:6'")[0]
    assert row == {"deployment_id": "github:6", "repo": REPO, "environment": "staging", "sha": "s6",
                   "started_at": at(1), "finished_at": at(6), "status": "error", "source": "github",
                   "pause_s": 0.0,  # GitHub reports no pauses
                   "url": None}  # the repos table does not know acme/web, so its deployments page is unknown
    columns = [r[0] for r in w.con.execute("DESCRIBE deployments").fetchall()]
    # issue 3 appended pause_s, issue 12 url
    assert columns == ["deployment_id", "repo", "environment", "sha", "started_at", "finished_at", "status",
                       "source", "pause_s", "url"]


def test_stage_summary_and_totals_on_a_tiny_stream() -> None:
    w = World()
    # main: m0 - a (#1) - c (#3) - f (bot #6) - b (#2) - e (#5); the seed deploys m0, deployment 2 b.
    w.line("m0", "a", "c", "f", "b", "e")
    w.ship(1, "m0", created=-1, success=-0.5)
    w.pr(1, opened=1, merged=4, merge_sha="a", commits=[("pa", 0)],
         reviews=[("bob", "COMMENTED", 2), ("bob", "APPROVED", 3)])
    w.pr(2, opened=2, merged=8, merge_sha="b", commits=[("pb", 0.5)],
         reviews=[("bob", "CHANGES_REQUESTED", 5), ("bob", "APPROVED", 6)])
    w.pr(3, opened=3, merged=5, merge_sha="c", commits=[("pc", 1)])  # never reviewed
    w.pr(5, opened=11, merged=12, merge_sha="e", commits=[("pe", 10)],
         reviews=[("bob", "COMMENTED", 11.5), ("bob", "APPROVED", 11.75)])  # not deployed
    w.pr(6, opened=6, merged=7, merge_sha="f", author="dependabot[bot]", author_type="Bot",
         commits=[("pf", 6)])  # deployed, but a bot: left out of the summary
    w.ship(2, "b", created=10, success=10.5)
    w.map()
    # Per change (wait, process) in seconds:
    #   #1 code (0, 3600)  review (3600, 3600)  merge (3600, 0)  release (21600, 1800)  lead 37800
    #   #2 code (0, 5400)  review (10800, 3600) merge (7200, 0)  release (7200, 1800)   lead 36000
    #   #3 code (0, 7200)  review (7200, 0)     merge (0, 0)     release (18000, 1800)  lead 34200
    #   #5 code (0, 3600)  review (1800, 900)   merge (900, 0)
    # quantile_cont over n sorted values: position q * (n - 1), linear between neighbours.
    # Working time (default calendar: UTC, Mon-Fri 09:00-17:30): T0 is Monday 09:00, so hours 0..8.5 are
    # working time and hours 8.5..24 (the evening, where #5 and the deployment at 10h happen) are not.
    # %C/A: review = share without CHANGES_REQUESTED; release = no failed attempt, rollback or revert;
    # code and merge have no accuracy signal (None).
    assert stage_summary(w.con) == [
        # process [3600, 3600, 5400, 7200]: median (3600 + 5400) / 2; p85 at 2.55: 5400 + 0.55 * 1800
        # work process: #1 0->1h 3600, #2 0.5->2h 5400, #3 1->3h 7200, #5 10->11h 0: (3600 + 5400) / 2
        StageSummary("code", 4, 0.0, 0.0, 4500.0, pytest.approx(6390.0), None, 0.0, 4500.0),
        # wait [1800, 3600, 7200, 10800]: (3600 + 7200) / 2; 7200 + 0.55 * 3600
        # process [0, 900, 3600, 3600]: (900 + 3600) / 2; 3600 + 0.55 * 0
        # pca: #2 had changes requested, #1 #3 #5 not: 3 / 4
        # work wait: #1 3600, #2 10800, #3 7200, #5 0 (evening): [0, 3600, 7200, 10800] -> 5400
        # work process: #1 3600, #2 3600, #3 0, #5 0: [0, 0, 3600, 3600] -> 1800
        StageSummary("review", 4, 5400.0, pytest.approx(9180.0), 2250.0, 3600.0, 0.75, 5400.0, 1800.0),
        # wait [0, 900, 3600, 7200]: (900 + 3600) / 2; 3600 + 0.55 * 3600
        # work wait: #1 3h->4h 3600, #2 6h->8h 7200, #3 0, #5 0 (evening): [0, 0, 3600, 7200] -> 1800
        StageSummary("merge", 4, 2250.0, pytest.approx(5580.0), 0.0, 0.0, None, 1800.0, 0.0),
        # wait [7200, 18000, 21600]: median at 1: 18000; p85 at 1.7: 18000 + 0.7 * 3600
        # pca: deployment 2 had no failed attempt, is not rolled back, nothing reverted: 3 / 3
        # work wait up to 8.5h: #1 4h->8.5h 16200, #2 8h->8.5h 1800, #3 5h->8.5h 12600 -> median 12600;
        # process 10h -> 10.5h is evening: 0
        StageSummary("release", 3, 18000.0, pytest.approx(20520.0), 1800.0, 1800.0, 1.0, 12600.0, 0.0),
    ]
    t = totals(w.con)
    assert (t.changes, t.deployed) == (4, 3)  # #1 #2 #3 #5 (the bot's #6 left out); #5 not deployed
    assert t.lead_time_median_s == 36000.0  # [34200, 36000, 37800] at 1
    assert t.lead_time_p85_s == pytest.approx(37260.0)  # at 1.7: 36000 + 0.7 * 1800
    # process: #1 3600+3600+1800, #2 5400+3600+1800, #3 7200+1800 = 28800; lead 37800+36000+34200
    assert t.flow_efficiency == pytest.approx(28800 / 108000)
    assert t.process_s_total == 28800.0
    assert t.rolled_pca == pytest.approx(0.75)  # review 0.75 * release 1.0 (code and merge have no pca)
    # total wait per stage over #1 #2 #3 #5: review 3600+10800+7200+1800 = 23400, merge 3600+7200+0+900 =
    # 11700, release 21600+7200+18000 = 46800 -> release holds 46800 / 81900 of the wait
    assert t.bottleneck == "release"
    assert t.bottleneck_share == pytest.approx(46800 / 81900)
    # halving each deployed change's release wait: #1 37800-10800, #2 36000-3600, #3 34200-9000
    # = [25200, 27000, 32400] -> median 27000
    assert t.lead_time_median_if_halved_s == 27000.0


# ---------------------------------------------------------------------------------------------------
# Whole-run properties


def test_attribution_matches_brute_force_reachability_on_random_graphs() -> None:
    for seed in range(6):
        rng = random.Random(seed)
        w = World()
        parents: dict[str, list[str]] = {}
        shas: list[str] = []
        linear = 0.85 if seed % 2 else 0.0  # odd seeds: a long main line; even: bushy, many tips
        for i in range(60):
            sha = f"k{i}"
            ps: list[str] = []
            if shas and rng.random() < 0.97:  # a few extra roots (orphaned history)
                ps.append(shas[-1] if rng.random() < linear else rng.choice(shas[-4:]))
                if rng.random() < 0.3:
                    other = rng.choice(shas)
                    if other not in ps:
                        ps.append(other)
            parents[sha] = ps
            shas.append(sha)
            w.commit(sha, *ps)
        deploys: list[tuple[float, int, str]] = []
        for d in range(1, 16):
            sha = rng.choice(shas + ["unknown"])
            created = rng.uniform(0, 100)
            kind = rng.random()
            if kind < 0.2:
                w.deploy(d, sha, created=created, statuses=[("failure", created + 1)])
            elif kind < 0.3:
                w.ship(d, sha, created=created, success=created + 1, environment="staging")
            else:
                success = created + rng.uniform(0.5, 2)
                w.ship(d, sha, created=created, success=success)
                deploys.append((success, d, sha))
        for n, sha in enumerate(shas + ["unknown"], start=1):
            w.pr(n, opened=0, merged=1, merge_sha=sha)
        w.map()

        def reach(start: str, parents: dict[str, list[str]] = parents) -> set[str]:
            seen, todo = set(), [start]
            while todo:
                sha = todo.pop()
                if sha not in seen:
                    seen.add(sha)
                    todo.extend(parents.get(sha, []))
            return seen

        ordered = sorted(deploys)  # by first success time (no ties)
        expected: dict[int, object] = {}
        for n, sha in enumerate(shas + ["unknown"], start=1):
            first = next((i for i, (_, _, s) in enumerate(ordered) if sha in reach(s)), None)
            expected[n] = None if first is None or first == 0 else at(ordered[first][0])
        got = {r["pr_number"]: r["deployed_at"] for r in w.rows("SELECT pr_number, deployed_at FROM changes")}
        assert got == expected, seed


def test_rerun_replaces_settings_and_gives_the_same_views() -> None:
    w = World()
    w.line("m1", "q2")
    w.ship(1, "m1", created=0, success=0.5)
    w.pr(1, opened=1, merged=2, merge_sha="q2", author="helper", commits=[("p1", 1)])
    w.ship(2, "q2", created=3, success=3.5)
    first = w.map(bots=["helper", "other"])
    assert w.change(1)["is_bot"] is True
    before = w.rows("SELECT * FROM stage_times ORDER BY stage_order")
    second = w.map(bots=["someone"], production=["production", "live"])
    assert w.change(1)["is_bot"] is False
    assert (first.changes, first.deployed) == (second.changes, second.deployed) == (1, 1)
    assert w.rows("SELECT * FROM stage_times ORDER BY stage_order") == before
    assert sorted(r[0] for r in w.con.execute("SELECT login FROM map_bot_logins").fetchall()) == ["someone"]
    envs = sorted(r[0] for r in w.con.execute("SELECT environment FROM map_production_environments").fetchall())
    assert envs == ["live", "production"]


def test_every_sql_file_is_listed_in_name_order() -> None:
    # numbered files are the mapper's steps; named ones (scope_full.sql, ...) are helpers it runs itself
    shipped = sorted(e.name for e in resources.files("models.sql").iterdir()
                     if re.match(r"^\d{3}_.*\.sql$", e.name))
    listed = [name for name, _ in SQL_FILES]
    assert listed == shipped
