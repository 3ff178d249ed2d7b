"""Golden tests of the value-stream model (issue 3): build, staging and release rules, pauses, custom
streams, reverts, bots, attribution, the time-window fallback, rework / %C/A and the weekly views.

Every test clock is in hours after T0 = Monday 2026-03-02 09:00 UTC; the default calendar's working day
is 09:00-17:30 UTC, so hours 0..8.5 of T0's day are working time.
"""

from __future__ import annotations

import datetime as dt

import pytest

from models.mapper import stage_summary, totals
from models.stream import Stage, span
from tests.mapper_cases import REPO, H, World, at


def _seeds(w: World, sha: str = "m1", *, build: bool = True, staging: bool = True) -> None:
    """The first successful item of each target is its seed: ship one of each before the story starts."""
    w.ship(901, sha, created=-3, success=-2.75)
    if staging:
        w.ship(902, sha, created=-3.5, success=-3.25, environment="staging")
    if build:
        w.build("seed-build", sha, started=-4, finished=-3.9)


# ---------------------------------------------------------------------------------------------------
# Stage rules of the default stream


def test_every_default_stage_from_one_timeline() -> None:
    w = World()
    w.line("m1", "a")
    _seeds(w)
    w.pr(1, opened=0.5, merged=1, merge_sha="a", commits=[("p1", 0)], reviews=[("bob", "APPROVED", 0.75)])
    w.build("b1", "a", queued=1.25, started=1.5, finished=2, status="failure")  # a failed build of #1
    w.build("b2", "a", queued=2.25, started=2.5, finished=3)  # first green build reaching a
    w.ship(3, "a", created=3.5, success=3.75, environment="staging")
    w.ship(4, "a", created=5, success=5.5)
    w.map()
    assert w.stages(1) == {
        "code": (0.0, 0.5 * H),  # first commit 0h -> ready (opened) 0.5h
        "review": (0.25 * H, 0.0),  # ready 0.5h -> first review 0.75h; it is also the approval
        "merge": (0.25 * H, 0.0),  # approved 0.75h -> merged 1h
        "build": (1.5 * H, 0.5 * H),  # merged 1h -> b2 started 2.5h (queue included); 2.5h -> 3h
        "staging": (0.5 * H, 0.25 * H),  # build finished 3h -> staging start 3.5h; 3.5h -> 3.75h
        "release": (1.25 * H, 0.5 * H),  # staging finished 3.75h -> production start 5h; 5h -> 5.5h
    }
    rework = {r["stage"]: r["rework"] for r in w.stage_rows(1)}
    # b1 failed before b2 and reaches a; code and merge carry no rework signal
    assert rework == {"code": None, "review": 0, "merge": None, "build": 1, "staging": 0, "release": 0}
    assert w.stage(1, "build")["wait_work_s"] == 1.5 * H  # all inside Monday 09:00-17:30: same as wait_s
    c = w.change(1)
    assert (c["build_started_at"], c["build_finished_at"]) == (at(2.5), at(3))
    assert (c["staging_at"], c["release_started_at"], c["deployed_at"]) == (at(3.75), at(5), at(5.5))
    assert c["lead_time_s"] == 5.5 * H  # 0h -> 5.5h
    assert c["wait_s"] == 3.75 * H  # 0 + 0.25 + 0.25 + 1.5 + 0.5 + 1.25
    assert c["process_s"] == 1.75 * H  # 0.5 + 0 + 0 + 0.5 + 0.25 + 0.5
    assert c["flow_efficiency"] == pytest.approx(1.75 / 5.5)
    assert (c["is_revert"], c["attribution"], c["week"]) == (False, "graph", dt.date(2026, 3, 2))
    timeline = [(r["event"], r["environment"], r["at"])
                for r in w.rows("SELECT * FROM change_timeline WHERE pr_number = 1 ORDER BY \"at\", event")]
    assert timeline == [
        ("commit_authored", None, at(0)), ("pr_opened", None, at(0.5)), ("pr_ready", None, at(0.5)),
        ("review_approved", None, at(0.75)), ("review_first", None, at(0.75)), ("pr_merged", None, at(1)),
        ("build_queued", None, at(2.25)), ("build_started", None, at(2.5)), ("build_finished", None, at(3)),
        ("deploy_started", "staging", at(3.5)), ("deploy_finished", "staging", at(3.75)),
        ("deploy_started", "production", at(5)), ("deploy_finished", "production", at(5.5)),
    ]


def test_staging_without_build_data_waits_from_the_merge() -> None:
    w = World()
    w.line("m1", "a")
    _seeds(w, build=False, staging=False)
    w.ship(902, "m1", created=-3, success=-2.75, environment="Stage-EU")  # 'stag...': staging; its seed
    w.pr(1, opened=0, merged=1, merge_sha="a", commits=[("p1", 0)])
    w.ship(3, "a", created=2, success=2.5, environment="Stage-EU")
    w.ship(4, "a", created=4, success=4.25)
    w.map()
    assert w.stages(1) == {
        "code": (0.0, 0.0),
        "review": (1 * H, 0.0),  # never reviewed: ready 0h -> merged 1h is all wait
        "merge": (0.0, 0.0),
        "staging": (1 * H, 0.5 * H),  # no build data: merged 1h -> staging start 2h; 2h -> 2.5h
        "release": (1.5 * H, 0.25 * H),  # staging finished 2.5h -> 4h; 4h -> 4.25h
    }
    assert w.change(1)["staging_at"] == at(2.5)


def test_release_without_staging_waits_from_the_build() -> None:
    w = World()
    w.line("m1", "a")
    _seeds(w, staging=False)
    w.pr(1, opened=0, merged=1, merge_sha="a", commits=[("p1", 0)])
    w.build("b1", "a", started=1.5, finished=2)  # no queue time reported
    w.ship(2, "a", created=3, success=3.5)
    w.map()
    stages = w.stages(1)
    assert "staging" not in stages  # skipped, not zero-filled
    assert stages["build"] == (0.5 * H, 0.5 * H)  # merged 1h -> 1.5h; 1.5h -> 2h
    assert stages["release"] == (1 * H, 0.5 * H)  # build finished 2h -> 3h; 3h -> 3.5h
    events = {r["event"] for r in w.rows("SELECT event FROM change_timeline WHERE pr_number = 1")}
    assert "build_queued" not in events and "build_started" in events


def test_pauses_move_from_process_to_wait() -> None:
    w = World()
    w.line("m1", "a", "b")
    w.ci_deploy("jenkins:1", "m1", started=-2, finished=-1.5)  # the production seed
    w.build("seed-build", "m1", started=-3, finished=-2.9)
    w.pr(1, opened=0, merged=1, merge_sha="a", commits=[("p1", 0)])
    w.build("b1", "a", started=1.5, finished=2.5, pause_s=900)  # 15 minutes waiting on an input step
    w.ci_deploy("jenkins:2", "a", started=3, finished=5, pause_s=3600)  # a one-hour release approval
    w.pr(2, opened=5, merged=5.5, merge_sha="b", commits=[("p2", 5)])
    w.build("b2", "b", started=5.75, finished=6, pause_s=5000)  # pause longer than the run: capped
    w.map()
    assert w.stages(1)["build"] == (0.75 * H, 0.75 * H)  # wait 1h->1.5h + 0.25h pause; process 1h - 0.25h
    assert w.stages(1)["release"] == (1.5 * H, 1 * H)  # wait 2.5h->3h + 1h pause; process 2h - 1h
    assert w.stage(1, "release")["wait_work_s"] == 1.5 * H  # all in working hours: same as wait_s
    assert w.stage(1, "release")["process_work_s"] == 1 * H
    assert w.stages(2)["build"] == (0.5 * H, 0.0)  # 0.25h wait + the whole 0.25h run; pause capped at it
    row = w.rows("SELECT * FROM deployments WHERE deployment_id = 'jenkins:2'")[0]
    assert (row["pause_s"], row["source"], row["status"]) == (3600.0, "test", "success")
    assert w.rows("SELECT pause_s FROM builds WHERE build_id = 'b1'") == [{"pause_s": 900.0}]


def test_backwards_build_span_is_clamped_and_counted() -> None:
    w = World()
    w.line("m1", "a")
    w.build("seed-build", "m1", started=-2, finished=-1.9)
    w.pr(1, opened=0, merged=2, merge_sha="a", commits=[("p1", 0)])
    w.build("b1", "a", started=1.5, finished=2.5)  # started before GitHub recorded the merge (clock skew)
    result = w.map()
    row = w.stage(1, "build")
    assert (row["wait_s"], row["process_s"], row["clamped"]) == (0.0, 1 * H, True)  # 2h -> 1.5h: 0
    assert result.clamped["build"] == 1


def test_a_review_after_the_merge_picks_nothing_up() -> None:
    w = World()
    w.pr(1, opened=0, merged=2, commits=[("p1", 0)], reviews=[("bob", "APPROVED", 3)])
    w.map()
    assert w.change(1)["first_review_at"] == at(3)  # the changes column keeps mapper v1's meaning
    assert w.change(1)["approved_at"] is None  # an approval after the merge is no approval
    assert w.stages(1)["review"] == (2 * H, 0.0)  # no pickup before the merge: ready 0h -> merged 2h, all wait
    events = {r["event"] for r in w.rows("SELECT event FROM change_timeline")}
    assert "review_first" not in events and "review_approved" not in events


# ---------------------------------------------------------------------------------------------------
# A custom stream from the settings


def test_custom_stream_with_pickup_approval_and_a_qa_environment() -> None:
    w = World()
    stream = (
        Stage("pickup", wait=span("pr_ready", "review_first")),
        Stage("approval", process=span("review_first", "review_approved")),
        Stage("qa", wait=span("pr_merged", "deploy_started:qa"),
              process=span("deploy_started:qa", "deploy_finished:qa")),
    )
    w.line("m1", "a")
    w.ship(1, "m1", created=-1, success=-0.5, environment="QA")  # the qa seed (names compare lower-cased)
    w.pr(1, opened=0, merged=5, merge_sha="a",
         reviews=[("bob", "CHANGES_REQUESTED", 1), ("bob", "APPROVED", 3)])
    w.pr(2, opened=0, merged=2, reviews=[("bob", "COMMENTED", 0.5)])  # reviewed, never approved
    w.pr(3, opened=0, merged=1)  # never reviewed
    w.ship(2, "a", created=6, success=6.5, environment="QA")
    result = w.map(stages=stream)
    assert w.stages(1) == {
        "pickup": (1 * H, 0.0),  # ready 0h -> first review 1h; no process span
        "approval": (0.0, 2 * H),  # first review 1h -> approval 3h; no wait span
        "qa": (1 * H, 0.5 * H),  # merged 5h -> qa start 6h; 6h -> 6.5h
    }
    assert w.stages(2) == {"pickup": (0.5 * H, 0.0)}  # no approval: the approval stage is skipped
    assert w.stages(3) == {}  # no review: both skipped
    assert result.clamped == {"pickup": 0, "approval": 0, "qa": 0}
    rows = w.rows("SELECT * FROM value_stream WHERE period IS NULL ORDER BY stage_order")
    vs = {r["stage"]: r for r in rows}
    assert list(vs) == ["pickup", "approval", "qa"]
    assert vs["pickup"]["items"] == 2 and vs["pickup"]["wait_median_s"] == 0.75 * H  # (0.5h + 1h) / 2
    assert vs["pickup"]["pca"] == 0.5  # #1 had changes requested, #2 not (a review signal)
    assert vs["approval"]["pca"] == 0.0  # only #1, with changes requested
    assert vs["qa"]["pca"] == 1.0  # deployment to qa: no failed attempt, no rollback
    assert [s.stage for s in stage_summary(w.con)] == ["pickup", "approval", "qa"]


# ---------------------------------------------------------------------------------------------------
# Reverts and bots


def test_reverts_are_detected_linked_and_counted_as_rework() -> None:
    w = World()
    w.line("m1", "s8", "s9", "s10", "s11", "s12", "s13", "s16")
    w.ship(1, "m1", created=-1, success=-0.5)
    w.pr(8, opened=0, merged=0.5, merge_sha="s8", title="Tune pool")
    w.pr(9, opened=0, merged=1, merge_sha="s9", title="Fix typo")
    w.pr(10, opened=0, merged=1.5, merge_sha="s10", title="Add cache")
    w.ship(2, "s10", created=2, success=2.5)  # delivers #8, #9, #10
    w.pr(11, opened=3, merged=3.5, merge_sha="s11", title='Revert "Add cache"',
         head_ref="revert-10-add-cache")
    w.pr(12, opened=3, merged=4, merge_sha="s12", title='Revert "Fix typo"')  # by title
    w.pr(13, opened=3, merged=4.5, merge_sha="s13", title="Undo the pool change")  # by commit subject
    subject = 'Revert "Tune pool"\n\nThis reverts s8.'
    w.con.execute("UPDATE commits SET message = ? WHERE sha = 's13'", [subject])
    w.pr(14, opened=5, merged=6, title="Fix typo")  # same title as #9 but merged after #12: not its target
    w.pr(15, opened=5, merged=6, title='Revert "Nothing like it"')  # a revert of nothing we know
    w.pr(16, opened=5, merged=6.5, merge_sha="s16", title='Revert "Add cache"', head_ref="revert-9-fix-typo")
    result = w.map()
    got = {r["pr_number"]: (r["is_revert"], r["reverts_change_id"])
           for r in w.rows("SELECT pr_number, is_revert, reverts_change_id FROM changes")}
    assert got == {
        8: (False, None), 9: (False, None), 10: (False, None),
        11: (True, "acme/web#10"),  # revert-10- branch
        12: (True, "acme/web#9"),  # the latest PR titled "Fix typo" merged before it
        13: (True, "acme/web#8"),  # the merge commit's subject
        14: (False, None),
        15: (True, None),
        16: (True, "acme/web#9"),  # the branch number wins over the title
    }
    assert result.reverts == 5
    # release rework = reverts of the change (no failed attempt, no rollback here)
    assert [w.stage(n, "release")["rework"] for n in (8, 9, 10)] == [1, 2, 1]
    assert w.rows("SELECT pca FROM value_stream WHERE period IS NULL AND stage = 'release'") == [{"pca": 0.0}]


def test_bot_changes_are_left_out_of_the_headline_unless_included() -> None:
    w = World()
    w.pr(1, opened=0, merged=2, commits=[("p1", 0)])
    w.pr(2, opened=0, merged=1, author="dependabot[bot]", author_type="Bot", commits=[("p2", 0)])

    def review_row() -> dict[str, object]:
        return w.rows("SELECT items, wait_median_s FROM value_stream"
                      " WHERE period IS NULL AND stage = 'review'")[0]

    w.map()
    assert review_row() == {"items": 1, "wait_median_s": 2 * H}  # only #1: ready 0h -> merged 2h
    assert totals(w.con).changes == 1
    assert stage_summary(w.con)[1].items == 1
    assert w.rows("SELECT items FROM flow_weekly") == [{"items": 1}]
    w.map(include_bots=True)
    assert review_row() == {"items": 2, "wait_median_s": 1.5 * H}  # [1h, 2h] -> (1h + 2h) / 2
    assert totals(w.con).changes == 2
    assert w.rows("SELECT items FROM flow_weekly") == [{"items": 2}]
    assert w.change(2)["is_bot"] is True  # still flagged


# ---------------------------------------------------------------------------------------------------
# Attribution


def test_merge_squash_and_rebase_prs_batched_into_staging_and_production() -> None:
    w = World()
    # main: m1 - S (#1 squashed) - r1 - r2 (#2 rebased, r2 its last commit) - M (#3's merge commit,
    # second parent b2 of the branch b1 - b2 forked at S) - q (#4 squashed)
    w.line("m1", "S", "r1", "r2")
    w.line("b1", "b2", parent="S")
    w.commit("M", "r2", "b2")
    w.commit("q", "M")
    w.ship(1, "m1", created=0, success=0.25)  # production seed
    w.ship(2, "m1", created=0, success=0.25, environment="staging")  # staging seed
    w.pr(1, opened=0.5, merged=1, merge_sha="S", commits=[("x1", 0.25)])
    w.pr(2, opened=1, merged=2, merge_sha="r2", commits=[("o1", 0.5), ("o2", 0.75)])
    w.pr(3, opened=1.5, merged=3, merge_sha="M", commits=[("b1", 1.25), ("b2", 1.5)])
    w.pr(4, opened=3.5, merged=4, merge_sha="q", commits=[("x4", 3.25)])
    w.ship(3, "M", created=3.5, success=3.75, environment="staging")  # batch: #1 #2 #3
    w.ship(4, "M", created=5, success=5.5)  # batch: #1 #2 #3
    w.ship(5, "q", created=6, success=6.25, environment="staging")
    w.ship(6, "q", created=7, success=7.5)
    w.map()
    got = {r["pr_number"]: (r["staging_at"], r["deployed_at"], r["lead_time_s"], r["attribution"])
           for r in w.rows("SELECT * FROM changes")}
    assert got == {
        1: (at(3.75), at(5.5), 5.25 * H, "graph"),  # 5.5h - 0.25h
        2: (at(3.75), at(5.5), 5 * H, "graph"),  # 5.5h - 0.5h
        3: (at(3.75), at(5.5), 4.25 * H, "graph"),  # 5.5h - 1.25h
        4: (at(6.25), at(7.5), 4.25 * H, "graph"),  # 7.5h - 3.25h
    }
    assert w.stages(1)["staging"] == (2.5 * H, 0.25 * H)  # merged 1h -> 3.5h; 3.5h -> 3.75h
    assert w.stages(2)["staging"] == (1.5 * H, 0.25 * H)  # merged 2h -> 3.5h
    assert w.stages(3)["staging"] == (0.5 * H, 0.25 * H)  # merged 3h -> 3.5h
    assert w.stages(1)["release"] == (1.25 * H, 0.5 * H)  # staging finished 3.75h -> 5h; 5h -> 5.5h
    assert w.stages(4) == {
        "code": (0.0, 0.25 * H), "review": (0.5 * H, 0.0), "merge": (0.0, 0.0),
        "staging": (2 * H, 0.25 * H),  # merged 4h -> 6h; 6h -> 6.25h
        "release": (0.75 * H, 0.5 * H),  # 6.25h -> 7h; 7h -> 7.5h
    }


def test_deployment_of_a_sha_unknown_to_the_graph_delivers_by_time_window() -> None:
    w = World()
    w.line("m1", "a", "b", "c")
    w.ship(1, "m1", created=-1, success=-0.5)  # the seed, started at -1h
    w.pr(1, opened=0, merged=1, merge_sha="a", commits=[("p1", 0)])
    w.pr(2, opened=0, merged=2, merge_sha="b", commits=[("p2", 0)])
    w.ship(2, "f00d", created=3, success=3.5)  # its SHA is not in the commit graph
    w.pr(3, opened=3, merged=4, merge_sha="c", commits=[("p3", 3)])
    w.ship(3, "c", created=5, success=5.5)  # reaches a, b and c through the graph
    result = w.map()

    def delivery() -> dict[int, tuple[object, object]]:
        return {r["pr_number"]: (r["deployed_at"], r["attribution"]) for r in w.rows("SELECT * FROM changes")}

    # window of deployment 2: merged after the seed started (-1h) and up to its own start (3h): #1 and #2;
    # it comes before deployment 3, so it wins over the graph
    assert delivery() == {1: (at(3.5), "time_window"), 2: (at(3.5), "time_window"), 3: (at(5.5), "graph")}
    assert result.time_window == 2
    assert w.stages(1)["release"] == (2 * H, 0.5 * H)  # merged 1h -> deployment 2 started 3h; 3h -> 3.5h
    w.map(link_window_s=1.5 * H)  # the window now opens at 3h - 1.5h = 1.5h: #1 (merged 1h) is outside
    assert delivery() == {1: (at(5.5), "graph"), 2: (at(3.5), "time_window"), 3: (at(5.5), "graph")}


def test_failed_attempts_and_rollbacks_are_release_rework() -> None:
    w = World()
    w.line("m1", "a", "b", "c")
    w.ship(1, "m1", created=-1, success=-0.5)
    w.pr(1, opened=0, merged=1, merge_sha="a", commits=[("p1", 0)])
    w.deploy(2, "a", created=2, statuses=[("in_progress", 2), ("failure", 2.25)])  # a failed attempt of #1
    w.ship(3, "a", created=3, success=3.5)  # delivers #1
    w.pr(2, opened=0, merged=4, merge_sha="b", commits=[("p2", 0)])
    w.ship(4, "b", created=5, success=5.5)  # delivers #2 ...
    w.ship(5, "a", created=6, success=6.5)  # ... and is rolled back: a is an ancestor of b
    w.pr(3, opened=0, merged=7, merge_sha="c", commits=[("p3", 0)])
    w.ship(6, "c", created=8, success=8.5)  # a forward deployment: no rollback of deployment 5
    w.map()
    assert [w.stage(n, "release")["rework"] for n in (1, 2, 3)] == [1, 1, 0]
    assert w.deployed_at(1) == at(3.5) and w.deployed_at(2) == at(5.5) and w.deployed_at(3) == at(8.5)
    release = w.rows("SELECT pca FROM value_stream WHERE period IS NULL AND stage = 'release'")
    assert release == [{"pca": pytest.approx(1 / 3)}]  # only #3 went through untouched


# ---------------------------------------------------------------------------------------------------
# value_stream, flow_weekly and the totals on a two-week history


def _two_weeks() -> World:
    """Week of 2026-03-02: #1, #2 (and the bot's #5) deployed at 5.5h; week of 03-09: #3 deployed, #4 not."""
    w = World()
    w.line("m0", "a", "b", "f", "c", "d")
    w.ship(1, "m0", created=-1, success=-0.5)
    w.pr(1, opened=1, merged=4, merge_sha="a", commits=[("p1", 0)],
         reviews=[("bob", "CHANGES_REQUESTED", 2), ("bob", "APPROVED", 3)])
    w.pr(2, opened=2, merged=4.5, merge_sha="b", commits=[("p2", 1)],
         reviews=[("bob", "COMMENTED", 2.5), ("bob", "APPROVED", 3.5)])
    w.pr(5, opened=0, merged=4.75, merge_sha="f", author="renovate[bot]", commits=[("p5", 0)])
    w.ship(2, "f", created=5, success=5.5)
    w.pr(3, opened=169, merged=172, merge_sha="c", commits=[("p3", 168)], reviews=[("bob", "APPROVED", 171)])
    w.pr(4, opened=173, merged=175, merge_sha="d", commits=[("p4", 173)])
    w.ship(3, "c", created=174, success=174.5)
    w.map()
    return w


# Per change (wait, process) in hours, worked out from the timelines above:
#   #1 code (0, 1)  review (1, 1) rework 1  merge (1, 0)  release (1, 0.5)  lead 5.5  process 2.5
#   #2 code (0, 1)  review (0.5, 1)         merge (1, 0)  release (0.5, 0.5)  lead 4.5  process 2.5
#   #3 code (0, 1)  review (2, 0)           merge (1, 0)  release (2, 0.5)  lead 6.5  process 1.5
#   #4 code (0, 0)  review (2, 0) (never reviewed: ready 173h -> merged 175h)  merge (0, 0)  undeployed
WEEK1, WEEK2 = dt.date(2026, 3, 2), dt.date(2026, 3, 9)


def test_value_stream_per_week_and_all_time() -> None:
    w = _two_weeks()
    got = {(r["period"], r["stage"]): (r["items"], r["wait_median_s"], r["wait_p85_s"], r["process_median_s"],
                                       r["process_p85_s"], r["pca"])
           for r in w.rows("SELECT * FROM value_stream")}
    assert got[(WEEK1, "code")] == (2, 0.0, 0.0, 1 * H, 1 * H, None)  # the bot's #5 is left out
    # wait [0.5h, 1h]: median 0.75h; p85 at 0.85: 0.5h + 0.85 * 0.5h = 0.925h; pca 1 of 2 without changes
    assert got[(WEEK1, "review")] == (2, 0.75 * H, pytest.approx(0.925 * H), 1 * H, 1 * H, 0.5)
    assert got[(WEEK1, "merge")] == (2, 1 * H, 1 * H, 0.0, 0.0, None)
    assert got[(WEEK1, "release")] == (2, 0.75 * H, pytest.approx(0.925 * H), 0.5 * H, 0.5 * H, 1.0)
    # week 2: #3 and the undeployed #4 (by its merge); process [0, 1h]: median 0.5h, p85 0.85h
    assert got[(WEEK2, "code")] == (2, 0.0, 0.0, 0.5 * H, pytest.approx(0.85 * H), None)
    assert got[(WEEK2, "review")] == (2, 2 * H, 2 * H, 0.0, 0.0, 1.0)
    assert got[(WEEK2, "release")] == (1, 2 * H, 2 * H, 0.5 * H, 0.5 * H, 1.0)
    # all time, review wait [0.5h, 1h, 2h, 2h]: median (1h + 2h) / 2; p85 at 2.55: 2h; pca 3 of 4
    assert got[(None, "review")] == (4, 1.5 * H, 2 * H, 0.5 * H, 1 * H, 0.75)
    assert (None, "build") not in got and (None, "staging") not in got  # no change has them


def test_flow_weekly_per_repo() -> None:
    w = _two_weeks()
    assert w.rows("SELECT * FROM flow_weekly") == [
        # lead [4.5h, 5.5h]: median 5h, p85 4.5h + 0.85h; process (2.5h + 2.5h) / lead (5.5h + 4.5h);
        # rolled pca review 0.5 * release 1.0; wait per stage: review 1.5h, merge 2h, release 1.5h
        {"week": WEEK1, "repo": REPO, "items": 2, "lead_time_median_s": 5 * H,
         "lead_time_p85_s": pytest.approx(5.35 * H), "flow_efficiency": 0.5, "rolled_pca": 0.5,
         "bottleneck_stage": "merge"},
        # #3 and #4; only #3 deployed: lead 6.5h, process 1.5h; wait: review 4h, merge 1h, release 2h
        {"week": WEEK2, "repo": REPO, "items": 2, "lead_time_median_s": 6.5 * H, "lead_time_p85_s": 6.5 * H,
         "flow_efficiency": pytest.approx(1.5 / 6.5), "rolled_pca": 1.0, "bottleneck_stage": "review"},
    ]


def test_totals_bottleneck_and_halving_its_wait() -> None:
    w = _two_weeks()
    t = totals(w.con)
    assert (t.changes, t.deployed) == (4, 3)
    assert t.lead_time_median_s == 5.5 * H  # [4.5h, 5.5h, 6.5h]
    assert t.process_s_total == 6.5 * H  # 2.5h + 2.5h + 1.5h
    assert t.flow_efficiency == pytest.approx(6.5 / 16.5)
    assert t.rolled_pca == 0.75  # review 3/4 * release 3/3
    # wait: review 1 + 0.5 + 2 + 2 = 5.5h, merge 1 + 1 + 1 = 3h, release 1 + 0.5 + 2 = 3.5h
    assert (t.bottleneck, t.bottleneck_share) == ("review", pytest.approx(5.5 / 12))
    # lead minus half the review wait: #1 5.5 - 0.5, #2 4.5 - 0.25, #3 6.5 - 1 -> [4.25, 5, 5.5]: 5h
    assert t.lead_time_median_if_halved_s == 5 * H
    week2 = totals(w.con, start=at(168), end=at(336))
    assert (week2.changes, week2.deployed, week2.lead_time_median_s) == (2, 1, 6.5 * H)
    assert totals(w.con, repo="acme/other").changes == 0
    summary = stage_summary(w.con, start=at(168), end=at(336))
    assert [(s.stage, s.items, s.wait_median_s) for s in summary] == [
        ("code", 2, 0.0), ("review", 2, 2 * H), ("merge", 2, 0.5 * H), ("release", 1, 2 * H)]


# ---------------------------------------------------------------------------------------------------
# Incremental map


def _history(w: World) -> None:
    """Week 1: #10 fully delivered (later reverted), #11 the latest batch, #12 merged but not delivered."""
    w.line("m1", "a", "b", "c")
    _seeds(w)
    w.pr(10, opened=0, merged=0.25, merge_sha="a", commits=[("p10", 0)], title="Add cache")
    w.build("b10", "a", started=0.5, finished=0.75)
    w.ship(10, "a", created=1, success=1.25, environment="staging")
    w.ship(11, "a", created=1.5, success=1.75)
    w.pr(11, opened=1, merged=2, merge_sha="b", commits=[("p11", 1)],
         reviews=[("bob", "CHANGES_REQUESTED", 1.5)])
    w.build("b11", "b", started=2.25, finished=2.5)
    w.ship(12, "b", created=3, success=3.25, environment="staging")
    w.ship(13, "b", created=3.5, success=3.75)
    w.pr(12, opened=3, merged=4, merge_sha="c", commits=[("p12", 3)])


def _next_week(w: World) -> None:
    """#12 delivered after a failed build; a revert of the frozen #10; a rollback; a time-window delivery."""
    w.line("d", "e", parent="c")
    w.build("b12a", "c", started=5, finished=5.5, status="failure")
    w.build("b12b", "c", started=6, finished=6.5)
    w.ship(14, "c", created=7, success=7.5)
    w.pr(13, opened=170, merged=171, merge_sha="d", commits=[("p13", 169)], title='Revert "Add cache"')
    w.pr(14, opened=170, merged=172, merge_sha="e", commits=[("p14", 170)])
    w.build("b14", "e", started=172.5, finished=173)
    w.ship(15, "e", created=174, success=174.5, environment="staging")
    w.ship(16, "e", created=175, success=175.5)
    w.ship(17, "c", created=176, success=176.5)  # rolls deployment 16 back to c
    w.pr(15, opened=176, merged=177)  # no merge commit known
    w.ship(18, "feed", created=178, success=178.5)  # unknown SHA: delivers #15 by time window


VIEWS = {
    "changes": "SELECT * FROM changes ORDER BY change_id",
    "stage_times": "SELECT * FROM stage_times ORDER BY change_id, stage_order",
    "change_timeline": "SELECT * FROM change_timeline ORDER BY change_id, \"at\", event",
    "value_stream": "SELECT * FROM value_stream ORDER BY period NULLS FIRST, stage_order",
    "flow_weekly": "SELECT * FROM flow_weekly ORDER BY week, repo",
}


def test_incremental_map_equals_a_full_map() -> None:
    incremental, full = World(), World()
    for w in (incremental, full):
        _history(w)
    first = incremental.map()
    assert (first.incremental, first.recomputed) == (False, 3)
    for w in (incremental, full):
        _next_week(w)
    result = incremental.map(incremental=True)
    # in scope: the latest batch's #11 (merged 2h) and everything merged since; #10 stays as it was
    assert (result.incremental, result.recomputed, result.changes) == (True, 5, 6)
    full.map()
    for name, sql in VIEWS.items():
        got, want = incremental.rows(sql), full.rows(sql)
        approx = name in ("value_stream", "flow_weekly")  # float sums may add up in another order
        assert got == [pytest.approx(row) if approx else row for row in want], name
    # the patched rework of the frozen #10 (reverted by #13) and of the rolled-back deployment 16 (#13, #14)
    assert [incremental.stage(n, "release")["rework"] for n in (10, 13, 14)] == [1, 1, 1]
    assert incremental.change(15)["attribution"] == "time_window"
    assert incremental.change(12)["deployed_at"] == at(7.5)


def test_incremental_falls_back_to_a_full_map_when_settings_change() -> None:
    w = World()
    _history(w)
    assert w.map(incremental=True).incremental is False  # never mapped before
    assert w.map(incremental=True).incremental is True
    assert w.map(incremental=True, include_bots=True).incremental is False  # other settings


def test_a_deployment_reported_by_jenkins_and_github_counts_once() -> None:
    w = World()
    w.commit("m1")
    # the same production deployment of m1, reported by a Jenkins deploy job and as a GitHub deployment
    # started 20 minutes apart: one row, the Jenkins one (it carries the approval pause)
    w.ci_deploy("jenkins:deploy-prod#7", "m1", started=1.0, finished=1.5, pause_s=600.0)
    w.ship(501, "m1", created=1 + 20 / 60, success=1.6)
    # a GitHub deployment of the same SHA two hours later is a different deployment (a redeploy): kept
    w.ship(502, "m1", created=3.0, success=3.1)
    # and one to another environment is never the same deployment
    w.ship(503, "m1", created=1.0, success=1.2, environment="staging")
    w.map()
    rows = w.rows("SELECT deployment_id, environment, pause_s FROM deployments ORDER BY deployment_id")
    assert rows == [
        {"deployment_id": "github:502", "environment": "production", "pause_s": 0.0},
        {"deployment_id": "github:503", "environment": "staging", "pause_s": 0.0},
        {"deployment_id": "jenkins:deploy-prod#7", "environment": "production", "pause_s": 600.0},
    ]


def test_a_linked_incident_is_release_rework() -> None:
    w = World()
    w.line("m1", "a", "b")
    w.ship(1, "m1", created=-1, success=-0.5)  # the seed
    w.pr(1, opened=0, merged=1, merge_sha="a", commits=[("p1", 0)])
    w.ship(2, "a", created=2, success=2.5)  # delivers #1
    w.pr(2, opened=0, merged=3, merge_sha="b", commits=[("p2", 0)])
    w.ship(3, "b", created=4, success=4.5)  # delivers #2
    # an incident opened 1h after deployment 3 finished, no reference: linked by time to deployment 3
    w.con.execute("INSERT INTO incident_records (source, incident_id, repo, title, created_at, resolved_at) "
                  "VALUES ('pagerduty', 'P1', ?, 'checkout errors', ?, ?)", [REPO, at(5.5), at(6)])
    w.map()
    linked = w.rows("SELECT deployment_id, link_method FROM incidents")
    assert linked == [{"deployment_id": "github:3", "link_method": "time_window"}]
    # #2's production stage had a linked incident: rework 1; #1's had none
    assert [w.stage(n, "release")["rework"] for n in (1, 2)] == [0, 1]
    release = w.rows("SELECT pca FROM value_stream WHERE period IS NULL AND stage = 'release'")
    assert release == [{"pca": pytest.approx(1 / 2)}]  # one of the two changes went through untouched
    w.map(incremental=True)  # mapping again (incrementally) neither loses nor doubles the incident
    assert [w.stage(n, "release")["rework"] for n in (1, 2)] == [0, 1]
