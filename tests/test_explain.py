"""explain_change and explain_stage: every figure of a change traced back to its events and rules."""

from __future__ import annotations

import datetime as dt

import pytest

from models.explain import StageItem, UnknownChange, explain_change, explain_stage
from tests.mapper_cases import H, World, at


def _world() -> World:
    """#1 reviewed and built twice, #2 in the seeds, #3 delivered by a deployment of an unknown SHA."""
    w = World()
    w.line("m1", "a")
    w.ship(901, "m1", created=-3, success=-2.75)  # production seed
    w.build("seed-build", "m1", started=-4, finished=-3.9)
    w.pr(1, opened=0, merged=3, merge_sha="a", commits=[("p1", 0)],
         reviews=[("dependabot[bot]", "COMMENTED", 0.25),  # review 1: a bot
                  ("alice", "COMMENTED", 0.5),  # review 2: the author
                  ("erin", "PENDING", None),  # review 3: never submitted
                  ("bob", "CHANGES_REQUESTED", 1),  # review 4: the pickup, changes requested
                  ("carol", "APPROVED", 1.5),  # review 5: an approval, not the last
                  ("bob", "APPROVED", 2),  # review 6: the last approval before the merge
                  ("dave", "APPROVED", 3.5)],  # review 7: after the merge
         reviewer_types={"dependabot[bot]": "Bot"})
    w.con.execute("UPDATE pr_commits SET message = 'Add login' || chr(10) || 'details' WHERE sha = 'p1'")
    w.build("b1", "a", started=3.25, finished=3.5, status="failure")
    w.build("b2", "a", started=4, finished=4.5)
    w.ship(2, "a", created=5, success=5.5)
    w.pr(2, opened=0.5, merged=0.75, merge_sha="m1")  # never reviewed; already in both seeds
    w.pr(3, opened=5.75, merged=6)  # merged after deployment 2 started, no merge commit known
    w.ship(3, "beef", created=7, success=7.5)  # a SHA the commit graph does not know
    w.map()
    return w


def test_explain_change_timeline_and_reviews() -> None:
    e = explain_change(_world().con, "acme/web#1")
    assert (e.change_id, e.repo, e.pr_number) == ("acme/web#1", "acme/web", 1)
    assert (e.title, e.author) == ("PR 1", "alice")
    assert (e.is_bot, e.is_revert, e.reverts_change_id, e.reverted_by) == (False, False, None, ())
    assert (e.merged_at, e.deployed_at, e.lead_time_s) == (at(3), at(5.5), 5.5 * H)  # first commit 0h
    assert e.week == dt.date(2026, 3, 2)
    assert [(v.event, v.environment, v.at, v.source, v.detail) for v in e.events] == [
        ("commit_authored", None, at(0), "pr_commits", "commit p1 by alice: Add login"),
        ("pr_opened", None, at(0), "pull_requests", "pull request #1 opened by alice"),
        ("pr_ready", None, at(0), "pull_requests", "ready for review when opened"),
        ("review_changes_requested", None, at(1), "pr_reviews", "review 4 by bob (CHANGES_REQUESTED)"),
        ("review_first", None, at(1), "pr_reviews", "review 4 by bob (CHANGES_REQUESTED)"),
        ("review_approved", None, at(2), "pr_reviews", "review 6 by bob (APPROVED)"),
        ("pr_merged", None, at(3), "pull_requests", "merged as a"),
        ("build_started", None, at(4), "builds", "build b2 of job ci at a"),
        ("build_finished", None, at(4.5), "builds", "build b2 of job ci at a"),
        ("deploy_started", "production", at(5), "deployments", "deployment github:2 to production at a"),
        ("deploy_finished", "production", at(5.5), "deployments", "deployment github:2 to production at a"),
    ]
    assert [(r.review_id, r.counted, r.roles, r.reason) for r in e.reviews] == [
        (1, False, (), "skipped: a bot is no reviewer"),
        (2, False, (), "skipped: the author's own review"),
        (4, True, ("first", "changes_requested"),
         ("the first review by a human other than the author (ends the review wait); "
          "the first review requesting changes (review rework)")),
        (5, True, (), "counted: an approval, but a later one is the last before the merge"),
        (6, True, ("approval",), "the last approval at or before the merge (ends the review process)"),
        (7, False, (), "skipped: submitted after the merge"),
        (3, False, (), "skipped: never submitted (pending)"),
    ]


def test_explain_change_stages_and_deliveries() -> None:
    e = explain_change(_world().con, "acme/web#1")
    build, production = e.deliveries
    assert (build.target, build.item_id, build.attribution) == ("build", "b2", "graph")
    assert build.failed_attempts == 1  # b1 failed at 3.25h, after the merge at 3h and before b2
    assert build.reason == ("b2: the first successful build (by finish time) whose SHA a reaches merge"
                            " commit a in the commit graph; 1 failed attempt(s) reaching the merge commit"
                            " before it (rework)")
    assert (production.item_id, production.attribution, production.started_at) == ("github:2", "graph", at(5))
    stages = {s.stage: s for s in e.stages}
    assert list(stages) == ["code", "review", "merge", "build", "release"]
    review = stages["review"]
    assert (review.wait_from_event, review.wait_to_event) == ("pr_ready", "review_first")
    assert (review.process_from_event, review.process_to_event) == ("review_first", "review_approved")
    assert (review.wait_s, review.process_s, review.rework) == (1 * H, 1 * H, 1)  # 0h -> 1h -> 2h
    release = stages["release"]
    # no staging: the wait starts at the build's end 4.5h -> production start 5h; 5h -> 5.5h
    assert release.wait_from_event == "build_finished"
    assert (release.wait_s, release.process_s) == (0.5 * H, 0.5 * H)
    assert "wait: used build_finished because the change has no deploy_finished:staging" in release.why
    assert stages["build"].why == ("wait: pr_merged -> build_started",
                                   "process: build_started -> build_finished",
                                   "rework: 1 failed attempt(s) before the delivering build")
    assert e.skipped_stages == (
        "staging: skipped, the change has none of deploy_finished:staging, deploy_started:staging",)


def test_explain_seed_time_window_and_a_stage_nobody_picked_up() -> None:
    con = _world().con
    seeded = explain_change(con, "acme/web#2")
    assert [(d.target, d.attribution, d.item_id) for d in seeded.deliveries] == [
        ("build", "seed", None), ("production", "seed", None)]
    assert seeded.deliveries[1].reason == (
        "in the seed: github:901, the first successful production deployment of the repo, already contains"
        " merge commit m1; history before it is unknown, so no time is given")
    review = next(s for s in seeded.stages if s.stage == "review")
    assert (review.wait_s, review.process_s) == (0.25 * H, 0.0)  # ready 0.5h -> merged 0.75h, all wait
    assert ("nobody picked it up: no review_first, so the whole stage is wait until pr_merged and process"
            " is 0") in review.why
    windowed = explain_change(con, "acme/web#3")
    build, production = windowed.deliveries
    assert build.attribution is None
    assert build.reason == "not delivered: no successful build reaches merge commit ? yet"
    # merged 6h, after deployment 2 started (5h) and before deployment 3 started (7h)
    assert (production.attribution, production.item_id) == ("time_window", "github:3")
    assert production.finished_at == at(7.5)
    assert "unknown to the commit graph" in production.reason and "(github:2)" in production.reason


def test_explain_stage_lists_the_changes_behind_a_weekly_figure() -> None:
    con = _world().con
    # any day of the ISO week works; the week of Monday 2 March holds all three changes
    assert explain_stage(con, "review", dt.date(2026, 3, 4)) == [
        StageItem("acme/web#1", "PR 1", 1 * H, 1 * H, 1 * H, 1 * H, 1),  # ready 0h -> 1h -> approved 2h
        StageItem("acme/web#2", "PR 2", 0.25 * H, 0.0, 0.25 * H, 0.0, 0),  # 0.5h -> merged 0.75h
        StageItem("acme/web#3", "PR 3", 0.25 * H, 0.0, 0.25 * H, 0.0, 0),  # 5.75h -> merged 6h
    ]
    assert explain_stage(con, "review", dt.date(2026, 3, 9)) == []


def test_unknown_change_raises() -> None:
    con = _world().con
    with pytest.raises(UnknownChange):
        explain_change(con, "acme/web#99")
    with pytest.raises(KeyError):
        explain_change(con, "nonsense")


def test_every_event_delivery_and_incident_links_to_its_page_at_the_source() -> None:
    web = "https://github.com/acme/web"
    w = World()
    w.con.execute("INSERT INTO repos VALUES ('acme/web', 'main', ?)", [web])
    w.line("m1", "a")
    w.build("seed-build", "m1", started=-4, finished=-3.9)
    w.ship(901, "m1", created=-3, success=-2.75, environment="staging")
    w.ci_deploy("jenkins:deploy#1", "m1", started=-2, finished=-1.5)
    w.pr(1, opened=0, merged=3, merge_sha="a", commits=[("p1", 0)], reviews=[("bob", "APPROVED", 2)])
    w.con.execute("UPDATE pull_requests SET html_url = ? WHERE number = 1", [f"{web}/pull/1"])
    w.build("jenkins:ci#7", "a", started=3.25, finished=3.5, url="https://ci.example/job/ci/7/")
    w.ship(2, "a", created=4, success=4.5, environment="staging")
    w.ci_deploy("jenkins:deploy#2", "a", started=5, finished=5.5, url="https://ci.example/job/deploy/2/")
    # an hour after production received #1: blamed on that deployment by the time window
    w.con.execute("INSERT INTO incident_records (source, incident_id, repo, title, url, created_at, resolved_at)"
                  " VALUES ('pagerduty', 'P1', 'acme/web', 'checkout down', 'https://acme.pagerduty.com/incidents/P1',"
                  " ?, ?)", [at(6.5), at(7)])
    w.map()
    e = explain_change(w.con, "acme/web#1")
    pr, ci, deploy = f"{web}/pull/1", "https://ci.example/job/ci/7/", "https://ci.example/job/deploy/2/"
    assert [(v.event, v.environment, v.url) for v in e.events] == [
        ("commit_authored", None, f"{pr}/commits/p1"),  # a PR's commit, shown inside the PR
        ("pr_opened", None, pr),
        ("pr_ready", None, pr),
        ("review_approved", None, f"{pr}#pullrequestreview-1"),  # the review's anchor on the conversation
        ("review_first", None, f"{pr}#pullrequestreview-1"),
        ("pr_merged", None, pr),
        ("build_started", None, ci),
        ("build_finished", None, ci),
        ("deploy_started", "staging", f"{web}/deployments"),  # GitHub gives a deployment no page of its own
        ("deploy_finished", "staging", f"{web}/deployments"),
        ("deploy_started", "production", deploy),
        ("deploy_finished", "production", deploy),
    ]
    assert [(d.target, d.item_id, d.url) for d in e.deliveries] == [
        ("build", "jenkins:ci#7", ci), ("staging", "github:2", f"{web}/deployments"),
        ("production", "jenkins:deploy#2", deploy)]
    build, staging, production = e.deliveries
    assert build.incidents == staging.incidents == ()
    assert [(i.incident_id, i.source, i.title, i.created_at, i.resolved_at, i.link_method, i.url)
            for i in production.incidents] == [
        ("pagerduty:P1", "pagerduty", "checkout down", at(6.5), at(7), "time_window",
         "https://acme.pagerduty.com/incidents/P1")]
