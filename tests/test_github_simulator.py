"""The simulated GitHub and its Pet Clinic world: API shapes (OpenAPI), paging, clock, faults, PyGithub."""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from github import Auth, Github
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from collector.demo.github_server import ROUTES, GitHubSimulator
from collector.demo.world import UTC, PullRequest, RepoWorld, World, generate_world
from tests.conftest import ACTIONS_REPO, WORLD_END

SPEC_PATH = Path(__file__).parent / "fixtures" / "github" / "openapi" / "api.github.com.subset.json"
R = "/repos/{owner}/{repo}"
LONDON = ZoneInfo("Europe/London")
# Timeline items are validated against the specific schema of their kind, not only the permissive anyOf.
TIMELINE_SCHEMAS = {"committed": "timeline-committed-event", "reviewed": "timeline-reviewed-event",
                    "review_requested": "review-requested-issue-event",
                    "review_dismissed": "review-dismissed-issue-event"}
EVENT_KINDS = ("ready_for_review", "convert_to_draft", "review_requested", "review_dismissed", "merged",
               "closed", "reopened")
LISTS = ("pulls", "commits", "deployments", "issues")


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    """GitHub's OpenAPI description (subset), copied into tests/fixtures."""
    return json.loads(SPEC_PATH.read_text("utf-8"))


def schema_errors(spec: dict[str, Any], body: Any, *, path: str | None = None, status: str = "200",
                  schema: str | None = None) -> list[str]:
    """Errors of a body against an operation's response schema (or a named component schema)."""
    if schema is not None:
        root: dict[str, Any] = {"$ref": f"#/components/schemas/{schema}"}
    else:
        assert path is not None
        response = spec["paths"][path]["get"]["responses"][status]
        if "$ref" in response:
            response = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
        root = response["content"]["application/json"]["schema"]
    document = {**root, "components": spec["components"]}  # so that "#/components/..." refs resolve
    validator = OAS30Validator(document, format_checker=oas30_format_checker)
    # GitHub's spec marks nullable enums (a queued job's `conclusion`) without listing null in the enum
    return [f"{list(e.absolute_path)[:6]}: {e.message[:160]}" for e in validator.iter_errors(body)
            if not (e.validator == "enum" and e.instance is None and e.schema.get("nullable"))]


def get(sim: GitHubSimulator, path: str, headers: dict[str, str] | None = None,
        **params: Any) -> requests.Response:
    """One GET against the simulator."""
    return requests.get(sim.base_url + path, params=params or None, headers=headers, timeout=10)


def pages(sim: GitHubSimulator, path: str, **params: Any) -> Iterator[requests.Response]:
    """Every page of a list endpoint, following Link rel=next."""
    url: str | None = sim.base_url + path
    query: dict[str, Any] | None = params
    while url:
        response = requests.get(url, params=query, timeout=10)
        assert response.status_code == 200, response.text
        yield response
        url, query = response.links.get("next", {}).get("url"), None


def get_all(sim: GitHubSimulator, path: str, **params: Any) -> list[dict[str, Any]]:
    """All items of a list endpoint."""
    return [item for page in pages(sim, path, **params) for item in page.json()]


def ancestors(rw: RepoWorld, sha: str) -> set[str]:
    """Every commit reachable from sha (itself included)."""
    seen: set[str] = set()
    stack = [sha]
    while stack:
        top = stack.pop()
        if top not in seen:
            seen.add(top)
            stack.extend(rw.commits[top].parents)
    return seen


def with_event(rw: RepoWorld, kind: str) -> PullRequest:
    """A pull request whose timeline has an event of that kind."""
    return next(pr for pr in rw.pulls if any(e.event == kind for e in pr.events))


# -- API shapes ----------------------------------------------------------------------------------------

def actions_cases(rw: RepoWorld) -> list[tuple[str, str, str]]:
    """Every Actions endpoint for a repo with runs: lists with filters, a re-run and its attempts."""
    name = rw.full_name
    rerun = next(r for r in rw.runs if len(r.attempts) > 1)
    runs = R + "/actions/workflows/{workflow_id}/runs"
    jobs = R + "/actions/runs/{run_id}/jobs"
    attempt_jobs = R + "/actions/runs/{run_id}/attempts/{attempt_number}/jobs"
    return [
        (runs, f"/repos/{name}/actions/workflows/build.yml/runs?branch=main&created=>=2026-10-01", "workflow_runs"),
        (runs, f"/repos/{name}/actions/workflows/build.yml/runs?status=failure", "workflow_runs"),
        (R + "/actions/runs", f"/repos/{name}/actions/runs?branch=main&event=push&created=>=2026-10-01", "repo_runs"),
        (R + "/actions/runs/{run_id}", f"/repos/{name}/actions/runs/{rerun.id}", "workflow_run"),
        (jobs, f"/repos/{name}/actions/runs/{rerun.id}/jobs", "run_jobs"),
        (jobs, f"/repos/{name}/actions/runs/{rerun.id}/jobs?filter=all", "run_jobs"),
        (attempt_jobs, f"/repos/{name}/actions/runs/{rerun.id}/attempts/1/jobs", "attempt_jobs"),
    ]


def test_actions_endpoints_answer_with_the_documented_schema(spec: dict[str, Any],
                                                             actions_world: World) -> None:
    rw = actions_world.repo(ACTIONS_REPO)
    rerun = next(r for r in rw.runs if len(r.attempts) > 1)
    first_job = min(rerun.attempts[0].jobs, key=lambda j: j.started_at or WORLD_END)
    errors: list[str] = []
    with GitHubSimulator(actions_world) as server:
        # queued, running, failed and re-run (completed) as GitHub shows each of them
        for clock in (rerun.attempts[0].started_at, first_job.started_at, rerun.attempts[1].started_at,
                      actions_world.end):
            assert clock is not None
            server.clock = clock
            for spec_path, url, route in actions_cases(rw):
                for page in pages(server, url, per_page=2):
                    body = page.json()
                    if route != "workflow_run":
                        assert body["total_count"] >= len(body.get("jobs") or body.get("workflow_runs") or [])
                    errors += [f"{clock} {url}: {e}" for e in schema_errors(spec, body, path=spec_path)]
    assert not errors, errors[:10]


def test_every_endpoint_answers_with_the_documented_schema(spec: dict[str, Any], sim: GitHubSimulator,
                                                           world: World, actions_world: World) -> None:
    errors: list[str] = []
    served: set[str] = {route for _, _, route in actions_cases(actions_world.repo(ACTIONS_REPO))}
    kinds: Counter[str] = Counter()
    for rw in world.repos:
        name = rw.full_name
        pr = next(p for p in rw.pulls if p.merged_at and len(p.reviews) > 1)
        dep = next(d for d in reversed(rw.deployments) if len(d.statuses) > 2)
        cases = [
            ("/rate_limit", "/rate_limit", "rate_limit"), (R, f"/repos/{name}", "repo"),
            (R + "/commits", f"/repos/{name}/commits", "commits"),
            (R + "/commits/{ref}", f"/repos/{name}/commits/{rw.main[-1].sha}", "commit"),
            (R + "/commits/{ref}", f"/repos/{name}/commits/{pr.commits[0].sha}", "commit"),
            (R + "/compare/{basehead}", f"/repos/{name}/compare/{rw.main[-40].sha}...main", "compare"),
            (R + "/pulls", f"/repos/{name}/pulls?state=all", "pulls"),
            (R + "/pulls/{pull_number}", f"/repos/{name}/pulls/{pr.number}", "pull"),
            (R + "/pulls/{pull_number}/reviews", f"/repos/{name}/pulls/{pr.number}/reviews", "reviews"),
            (R + "/pulls/{pull_number}/commits", f"/repos/{name}/pulls/{pr.number}/commits", "pull_commits"),
            (R + "/issues/{issue_number}", f"/repos/{name}/issues/{pr.number}", "issue"),
            (R + "/issues", f"/repos/{name}/issues?state=all", "issues"),
            (R + "/deployments", f"/repos/{name}/deployments", "deployments"),
            (R + "/deployments/{deployment_id}", f"/repos/{name}/deployments/{dep.id}", "deployment"),
            (R + "/deployments/{deployment_id}/statuses", f"/repos/{name}/deployments/{dep.id}/statuses",
             "statuses"),
        ]
        cases += [(R + "/pulls/{pull_number}", f"/repos/{name}/pulls/{p.number}", "pull")
                  for p in rw.pulls if p.state == "open"]
        cases += [(R + "/issues/{issue_number}", f"/repos/{name}/issues/{i.number}", "issue")
                  for i in sim.incidents.of("github") if i.repo == name]
        timelines = {with_event(rw, kind).number for kind in EVENT_KINDS if any(
            e.event == kind for p in rw.pulls for e in p.events)}
        cases += [(R + "/issues/{issue_number}/timeline", f"/repos/{name}/issues/{n}/timeline", "timeline")
                  for n in sorted(timelines)]
        for spec_path, url, route in cases:
            served.add(route)
            for page in pages(sim, url, per_page=100) if route in LISTS else [get(sim, url)]:
                assert page.status_code == 200, (url, page.text)
                errors += [f"{url}: {e}" for e in schema_errors(spec, page.json(), path=spec_path)]
                for item in page.json() if route == "timeline" else []:
                    kinds[item["event"]] += 1
                    schema = TIMELINE_SCHEMAS.get(item["event"], "state-change-issue-event")
                    errors += [f"{url} {item['event']}: {e}"
                               for e in schema_errors(spec, item, schema=schema)]
    assert not errors, errors[:10]
    # the bundled spec excerpt has no /orgs or /users paths: tests/test_github_repos.py checks those
    # items against the minimal-repository schema
    served |= {"org_repos", "user_repos"}
    assert served == {name for _, name in ROUTES}, "an endpoint of the route table was not validated"
    assert set(EVENT_KINDS) | {"committed", "reviewed"} <= set(kinds), kinds


def test_error_bodies_match_the_documented_schema(spec: dict[str, Any], sim: GitHubSimulator,
                                                  world: World) -> None:
    name = world.repos[0].full_name
    cases = [(R, "/repos/petclinic/no-such-repo", 404),
             (R + "/pulls/{pull_number}", f"/repos/{name}/pulls/1", 404),
             (R + "/commits/{ref}", f"/repos/{name}/commits/deadbeef", 422),
             (R + "/deployments/{deployment_id}", f"/repos/{name}/deployments/1", 404)]
    for spec_path, url, status in cases:
        response = get(sim, url)
        assert response.status_code == status, url
        body = response.json()
        assert body["message"] and body["documentation_url"].startswith("https://docs.github.com")
        assert not schema_errors(spec, response.json(), path=spec_path, status=str(status))
    unknown = get(sim, "/no/such/endpoint")
    assert unknown.status_code == 404 and unknown.json()["message"] == "Not Found"
    assert not schema_errors(spec, unknown.json(), schema="basic-error")


def test_schema_validation_is_not_vacuous(spec: dict[str, Any], sim: GitHubSimulator,
                                          world: World) -> None:
    pr = world.repos[0].pulls[0]
    body = get(sim, f"/repos/{world.repos[0].full_name}/pulls/{pr.number}").json()
    assert not schema_errors(spec, body, path=R + "/pulls/{pull_number}")
    broken = {**body, "merged_at": 12, "user": {"login": "x"}}
    del broken["head"]
    assert len(schema_errors(spec, broken, path=R + "/pulls/{pull_number}")) >= 3


def test_every_url_in_payloads_uses_the_simulators_host_and_port(sim: GitHubSimulator, world: World) -> None:
    rw = world.repos[0]
    pr = with_event(rw, "review_dismissed")
    dep = rw.deployments[-1]
    bodies = [get(sim, path).json() for path in (
        f"/repos/{rw.full_name}", f"/repos/{rw.full_name}/pulls?state=all&per_page=100",
        f"/repos/{rw.full_name}/pulls/{pr.number}", f"/repos/{rw.full_name}/pulls/{pr.number}/reviews",
        f"/repos/{rw.full_name}/pulls/{pr.number}/commits", f"/repos/{rw.full_name}/issues/{pr.number}",
        f"/repos/{rw.full_name}/issues/{pr.number}/timeline",
        f"/repos/{rw.full_name}/commits/{pr.merge_commit_sha}",
        f"/repos/{rw.full_name}/commits", f"/repos/{rw.full_name}/deployments",
        f"/repos/{rw.full_name}/deployments/{dep.id}/statuses")]
    host = sim.base_url.removeprefix("http://")
    urls: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for child in value.values():
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)
        elif isinstance(value, str) and re.match(r"^(https?|git)://|^git@", value):
            urls.append(value)

    walk(bodies)
    assert len(urls) > 1000
    assert [u for u in urls if host not in u] == []
    assert [u for u in urls if u.startswith("http") and not u.startswith(sim.base_url + "/")] == []


# -- paging, clock, faults, auth, rate limit -----------------------------------------------------------

def test_link_headers_page_through_every_list(sim: GitHubSimulator, world: World) -> None:
    rw = world.repos[0]
    responses = list(pages(sim, f"/repos/{rw.full_name}/pulls", state="all", per_page=7))
    numbers = [item["number"] for page in responses for item in page.json()]
    assert len(responses) == math.ceil(len(rw.pulls) / 7) > 3
    assert numbers == sorted((pr.number for pr in rw.pulls), reverse=True)  # created desc = number desc
    first, second, last = responses[0].links, responses[1].links, responses[-1].links
    assert set(first) == {"next", "last"} and set(last) == {"prev", "first"}
    assert set(second) == {"prev", "next", "last", "first"}
    assert f"page={len(responses)}" in first["last"]["url"] and "state=all" in first["next"]["url"]
    assert all(link["url"].startswith(sim.base_url + "/repos/") for link in second.values())
    assert len(get(sim, f"/repos/{rw.full_name}/commits", per_page=1000).json()) == 100
    assert len(get(sim, f"/repos/{rw.full_name}/pulls", state="all").json()) == 30
    commits = get_all(sim, f"/repos/{rw.full_name}/commits", per_page=100)
    assert len(commits) == len(rw.main) and {c["sha"] for c in commits} == {c.sha for c in rw.main}
    dates = [c["commit"]["committer"]["date"] for c in commits]
    assert dates == sorted(dates, reverse=True)
    assert len(get_all(sim, f"/repos/{rw.full_name}/deployments", per_page=9)) == len(rw.deployments)


def test_clock_hides_what_had_not_happened_yet(sim: GitHubSimulator, world: World) -> None:
    rw = world.repos[0]
    pr = next(p for p in rw.pulls if p.merged_at and p.merged_at > world.window_start + timedelta(days=14)
              and len(p.reviews) >= 2 and p.merged_at - p.reviews[-1].submitted_at > timedelta(minutes=5))
    path = f"/repos/{rw.full_name}/pulls/{pr.number}"
    sim.clock = pr.reviews[-1].submitted_at - timedelta(seconds=1)
    assert [r["id"] for r in get(sim, path + "/reviews").json()] == [r.id for r in pr.reviews[:-1]]
    before = pr.merged_at - timedelta(seconds=1)
    sim.clock = before
    early = get(sim, path).json()
    assert (early["state"], early["merged"], early["merged_at"], early["closed_at"]) == (
        "open", False, None, None)
    assert early["merge_commit_sha"] != pr.merge_commit_sha  # a test-merge sha, as GitHub shows for open PRs
    assert [r["id"] for r in get(sim, path + "/reviews").json()] == [r.id for r in pr.reviews]
    timeline = get(sim, f"/repos/{rw.full_name}/issues/{pr.number}/timeline").json()
    events_before = [e["event"] for e in timeline]
    assert "merged" not in events_before and "closed" not in events_before
    main_before = {c["sha"] for c in get_all(sim, f"/repos/{rw.full_name}/commits", per_page=100)}
    assert pr.merge_commit_sha not in main_before
    assert get(sim, f"/repos/{rw.full_name}/commits/{pr.merge_commit_sha}").status_code == 422
    deployments = get_all(sim, f"/repos/{rw.full_name}/deployments", per_page=100)
    assert deployments and max(d["created_at"] for d in deployments) <= before.strftime("%Y-%m-%dT%H:%M:%SZ")
    count_before = len(get_all(sim, f"/repos/{rw.full_name}/pulls", state="all", per_page=100))

    sim.clock = world.end
    late = get(sim, path).json()
    assert (late["state"], late["merged"], late["merge_commit_sha"]) == ("closed", True, pr.merge_commit_sha)
    assert late["updated_at"] > early["updated_at"]
    main_after = {c["sha"] for c in get_all(sim, f"/repos/{rw.full_name}/commits", per_page=100)}
    assert pr.merge_commit_sha in main_after and main_before < main_after
    assert len(get_all(sim, f"/repos/{rw.full_name}/pulls", state="all", per_page=100)) > count_before
    assert len(get_all(sim, f"/repos/{rw.full_name}/deployments", per_page=100)) > len(deployments)


def test_draft_flag_follows_ready_and_convert_events(sim: GitHubSimulator, world: World) -> None:
    rw = next(r for r in world.repos
              if any(e.event == "convert_to_draft" for p in r.pulls for e in p.events))
    pr = with_event(rw, "convert_to_draft")
    toggles = [e for e in pr.events if e.event in ("ready_for_review", "convert_to_draft")]
    seen = []
    for moment in [pr.created_at, *(e.created_at for e in toggles)]:
        sim.clock = moment
        seen.append(get(sim, f"/repos/{rw.full_name}/pulls/{pr.number}").json()["draft"])
    assert seen == [pr.draft, *(e.event == "convert_to_draft" for e in toggles)]
    assert True in seen and False in seen


def activity(pr: PullRequest) -> list[datetime]:
    """Every instant something happened to a PR: creation, pushes, reviews, dismissals, events."""
    dismissals = [r.dismissed_at for r in pr.reviews if r.dismissed_at]
    reviews = [r.submitted_at for r in pr.reviews]
    return sorted([pr.created_at, *(c.committed_at for c in pr.commits), *reviews, *dismissals,
                   *(e.created_at for e in pr.events)])


def test_updated_at_lets_a_client_sync_incrementally(sim: GitHubSimulator, world: World) -> None:
    rw = world.repos[0]
    # Sync at t1, then at t2, where one PR's only change in between is a review: updated_at must show it.
    gaps = []
    for pr in rw.pulls:
        acts = activity(pr)
        for before, review, after in zip(acts, acts[1:], acts[2:], strict=False):
            if review in {r.submitted_at for r in pr.reviews} and review > world.end - timedelta(days=10):
                gaps.append((min(review - before, after - review), pr, review, after))
    gap, target, review, after = max(gaps, key=lambda g: g[0])
    t1, t2 = review - min(gap, timedelta(hours=1)) / 2, after - timedelta(seconds=1)
    stamp = t1.strftime("%Y-%m-%dT%H:%M:%SZ")
    sim.clock = t1
    at_t1 = {p["number"]: p["updated_at"] for p in get_all(sim, f"/repos/{rw.full_name}/pulls", state="all",
                                                           per_page=100)}
    assert max(at_t1.values()) <= stamp
    sim.clock = t2
    changed: set[int] = set()
    for page in pages(sim, f"/repos/{rw.full_name}/pulls", state="all", sort="updated", direction="desc",
                      per_page=20):
        fresh = [p for p in page.json() if p["updated_at"] > stamp]
        changed |= {p["number"] for p in fresh}
        if len(fresh) < len(page.json()):
            break
    expected = {pr.number for pr in rw.pulls
                if pr.created_at <= t2 and any(t1 < t <= t2 for t in activity(pr))}
    assert changed == expected and target.number in changed and len(expected) >= 3
    assert expected & set(at_t1), "some PRs should have changed since t1"


def test_injected_faults_fail_the_next_matching_requests(sim: GitHubSimulator, world: World) -> None:
    name = world.repos[0].full_name
    sim.inject_fault(r"/pulls\?", 500, times=2)
    statuses = [get(sim, f"/repos/{name}/pulls", state="all").status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert [s for _, path, s in sim.request_log if "/pulls?" in path] == [500, 500, 200]
    assert get(sim, f"/repos/{name}/deployments").status_code == 200  # other paths are unaffected

    reset = str(int(time.time()) + 60)
    sim.inject_fault("/deployments", 403, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})
    limited = get(sim, f"/repos/{name}/deployments")
    assert limited.status_code == 403 and "rate limit" in limited.json()["message"]
    assert (limited.headers["X-RateLimit-Remaining"], limited.headers["X-RateLimit-Reset"]) == ("0", reset)

    sim.inject_fault("/commits", 429, headers={"Retry-After": "7"}, body={"message": "slow down"})
    secondary = get(sim, f"/repos/{name}/commits")
    assert (secondary.status_code, secondary.headers["Retry-After"]) == (429, "7")
    assert secondary.json() == {"message": "slow down"}
    assert get(sim, f"/repos/{name}/commits").status_code == 200


def test_a_wrong_or_missing_token_gets_githubs_401(spec: dict[str, Any], world: World) -> None:
    with GitHubSimulator(world, token="s3cret") as sim:
        path = f"/repos/{world.repos[0].full_name}"
        missing = get(sim, path)
        wrong = get(sim, path, headers={"Authorization": "token nope"})
        for response in (missing, wrong):
            assert response.status_code == 401 and response.json()["message"] == "Bad credentials"
            assert response.json()["documentation_url"].startswith("https://docs.github.com")
            assert not schema_errors(spec, response.json(), schema="basic-error")
            assert response.headers["X-RateLimit-Limit"] == "5000"
        assert get(sim, path, headers={"Authorization": "token s3cret"}).status_code == 200
        assert get(sim, path, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert [s for _, _, s in sim.request_log] == [401, 401, 200, 200]


def test_rate_limit_headers_count_down_and_etags_save_quota(sim: GitHubSimulator, world: World) -> None:
    path = f"/repos/{world.repos[0].full_name}"
    first, second = get(sim, path), get(sim, path)
    remaining = int(first.headers["X-RateLimit-Remaining"])
    assert int(second.headers["X-RateLimit-Remaining"]) == remaining - 1
    assert second.headers["X-RateLimit-Used"] == str(5000 - remaining + 1)
    assert second.headers["X-RateLimit-Resource"] == "core"
    assert int(second.headers["X-RateLimit-Reset"]) > time.time()
    assert second.headers["Content-Type"] == "application/json; charset=utf-8"
    assert first.headers["ETag"] == second.headers["ETag"]
    unchanged = get(sim, path, headers={"If-None-Match": second.headers["ETag"]})
    assert (unchanged.status_code, unchanged.content) == (304, b"")
    assert unchanged.headers["X-RateLimit-Remaining"] == str(remaining - 1)
    core = get(sim, "/rate_limit").json()["resources"]["core"]
    assert core["remaining"] == remaining - 1 and core["limit"] == 5000
    assert get(sim, path).headers["X-RateLimit-Remaining"] == str(remaining - 2)


# -- the world -----------------------------------------------------------------------------------------

def test_default_branch_graph_is_consistent(world: World) -> None:
    methods: Counter[str] = Counter()
    for rw in world.repos:
        main = {c.sha: c for c in rw.main}
        assert [c for c in rw.main if not c.parents] == [rw.main[0]]
        assert all(p in main for c in rw.main for p in c.parents)
        assert all(p in rw.commits for pr in rw.pulls for c in pr.commits for p in c.parents)
        commit = rw.main[-1]
        while commit.parents:
            parent = main[commit.parents[0]]
            assert parent.committed_at <= commit.committed_at
            commit = parent
        for pr in rw.pulls:
            if not pr.merged_at:
                assert pr.merge_commit_sha is None
                continue
            methods[pr.merge_method or ""] += 1
            landed = main[pr.merge_commit_sha or ""]
            assert landed.committed_at == pr.merged_at
            if pr.merge_method == "merge":
                assert len(landed.parents) == 2 and landed.parents[1] == pr.head_sha
                assert landed.message.startswith(f"Merge pull request #{pr.number} from ")
            elif pr.merge_method == "squash":
                assert len(landed.parents) == 1 and landed.sha not in {c.sha for c in pr.commits}
                assert f"(#{pr.number})" in landed.message
            else:
                chain = [landed]
                while len(chain) < len(pr.commits):
                    chain.insert(0, main[chain[0].parents[0]])
                assert [c.message for c in chain] == [c.message for c in pr.commits]
                assert all(len(c.parents) == 1 and c.sha not in {o.sha for o in pr.commits} for c in chain)
    assert min(methods.values()) >= 5 and set(methods) == {"merge", "squash", "rebase"}


def test_seed_production_deployment_already_contains_older_prs(world: World) -> None:
    for rw in world.repos:
        production = [d for d in rw.deployments if d.environment == "production"]
        seed = min(production, key=lambda d: d.created_at)
        assert seed.created_at >= world.window_start
        older = [pr for pr in rw.pulls if pr.merged_at and pr.merged_at < world.window_start]
        assert len(older) >= 5
        assert {pr.merge_commit_sha for pr in older} <= ancestors(rw, seed.sha)


def test_world_is_deterministic_for_a_seed(world: World) -> None:
    again = generate_world(seed=7, end=WORLD_END)
    assert again == world
    other = generate_world(seed=8, end=WORLD_END)
    assert [pr.title for pr in other.repos[0].pulls] != [pr.title for pr in world.repos[0].pulls]
    now = generate_world(weeks=1, repos=("petclinic/solo",))
    assert now.end.tzinfo is UTC and now.end.microsecond == 0
    assert abs((datetime.now(UTC) - now.end).total_seconds()) < 60


def test_world_has_the_behaviours_the_metrics_must_handle(world: World) -> None:
    pulls = [pr for rw in world.repos for pr in rw.pulls]
    humans = {p.login for p in world.people if p.type == "User" and p.login != "web-flow"}
    assert 150 <= len(pulls) <= 500 and len(humans) == 6
    bots = [pr for pr in pulls if pr.author_type == "Bot"]
    assert bots and all(pr.author_login == "dependabot[bot]" for pr in bots)
    assert any(pr.merged_at for pr in bots)
    assert any(pr.state == "closed" and not pr.merged_at for pr in bots)
    assert sum(pr.draft for pr in pulls) >= 10
    for kind in ("ready_for_review", "convert_to_draft", "reopened", "review_dismissed"):
        assert any(e.event == kind for pr in pulls for e in pr.events), kind
    reviews = [(pr, r) for pr in pulls for r in pr.reviews]
    assert any(r.user_login == "sonarcloud[bot]" and r.state == "COMMENTED" for _, r in reviews)
    assert any(r.user_login == pr.author_login and r.state == "COMMENTED" for pr, r in reviews)

    def loop(pr: PullRequest) -> bool:
        asked = [r for r in pr.reviews if r.state == "CHANGES_REQUESTED"]
        return bool(asked) and any(c.committed_at > asked[0].submitted_at for c in pr.commits) and any(
            r.state == "APPROVED" and r.submitted_at > asked[0].submitted_at for r in pr.reviews)

    assert sum(loop(pr) for pr in pulls) >= 5
    assert any(r.dismissed_at and any(o.state == "APPROVED" and o.submitted_at > r.dismissed_at
                                      for o in pr.reviews) for pr, r in reviews)
    assert any(pr.author_type == "User" and pr.state == "closed" and not pr.merged_at for pr in pulls)
    assert sum(pr.state == "open" for pr in pulls) >= 2
    numbers = {(pr.repo, pr.number) for pr in pulls if pr.merged_at}
    reverts = [pr for pr in pulls if re.match(r"revert-\d+-", pr.head_ref)]
    assert reverts and all((pr.repo, int(pr.head_ref.split("-")[1])) in numbers for pr in reverts)

    acts = [c.authored_at for pr in pulls if pr.author_type == "User" for c in pr.commits]
    acts += [r.submitted_at for pr in pulls for r in pr.reviews if r.user_type == "User"]
    local = [t.astimezone(LONDON) for t in acts]
    assert all(t.weekday() < 5 for t in local)
    office = sum(9 <= t.hour < 18 for t in local)
    assert office / len(local) > 0.85 and office < len(local)  # mostly office hours, some evening work


def test_deployments_follow_the_release_rhythm(world: World) -> None:
    for rw in world.repos:
        main = {c.sha: c for c in rw.main}
        deployments = sorted(rw.deployments, key=lambda d: d.created_at)
        assert [d.id for d in deployments] == sorted(d.id for d in deployments)
        assert all(main[d.sha].landed_at <= d.created_at for d in deployments)
        for env in ("staging", "production"):
            ours = [d for d in deployments if d.environment == env]
            assert len(ours) >= 12, env
            for dep in ours:
                states = [s.state for s in dep.statuses]
                assert states[:2] == ["queued", "in_progress"] and states[2] in ("success", "failure"), states
                assert [s.id for s in dep.statuses] == sorted(s.id for s in dep.statuses)
            done = sorted(((next(s.created_at for s in d.statuses if s.state == "success"), d) for d in ours
                           if any(s.state == "success" for s in d.statuses)), key=lambda x: x[0])
            for (_, older), (newer_success, _) in pairwise(done):
                assert older.statuses[-1].state == "inactive"
                assert older.statuses[-1].created_at == newer_success + timedelta(seconds=1)
            assert done[-1][1].statuses[-1].state != "inactive"
            for failed in (d for d in ours if d.statuses[-1].state == "failure"):
                retry = next(d for d in ours if d.created_at > failed.created_at)
                assert failed.sha in ancestors(rw, retry.sha)
        production = [d for d in deployments if d.environment == "production"]
        assert all(d.created_at.astimezone(LONDON).weekday() < 5 for d in production)
        weeks = Counter(d.created_at.astimezone(LONDON).isocalendar()[:2] for d in production)
        full_weeks = list(weeks.values())[1:-1]
        assert full_weeks and all(2 <= n <= 6 for n in full_weeks), weeks
        shipped = [pr for pr in rw.pulls if pr.merged_at and pr.merged_at >= production[0].created_at]
        assert len(shipped) / len(production) > 1.5  # several PRs ship per production deployment


# -- endpoint behaviour --------------------------------------------------------------------------------

def test_deployment_filters_and_newest_first_order(sim: GitHubSimulator, world: World) -> None:
    rw = world.repos[1]
    production = get_all(sim, f"/repos/{rw.full_name}/deployments", environment="production",
                         per_page=100)
    expected = sorted((d.id for d in rw.deployments if d.environment == "production"), reverse=True)
    assert [d["id"] for d in production] == expected
    assert all(d["production_environment"] for d in production)
    sha = production[-1]["sha"]
    assert {d["sha"] for d in get_all(sim, f"/repos/{rw.full_name}/deployments", sha=sha)} == {sha}
    statuses = get(sim, f"/repos/{rw.full_name}/deployments/{production[-1]['id']}/statuses").json()
    assert [s["state"] for s in statuses][-2:] == ["in_progress", "queued"]
    assert [s["id"] for s in statuses] == sorted((s["id"] for s in statuses), reverse=True)


def test_commit_listing_filters_by_date_and_start_ref(sim: GitHubSimulator, world: World) -> None:
    rw = world.repos[0]
    since, until = world.end - timedelta(days=10), world.end - timedelta(days=3)
    listed = get_all(sim, f"/repos/{rw.full_name}/commits", since=since.isoformat(),
                     until=until.isoformat(), per_page=100)
    expected = {c.sha for c in rw.main if since <= c.committed_at <= until}
    assert {c["sha"] for c in listed} == expected and len(expected) > 10
    pr = next(p for p in reversed(rw.pulls) if p.merge_method == "squash" and len(p.commits) > 1)
    branch = get_all(sim, f"/repos/{rw.full_name}/commits", sha=pr.head_ref, per_page=100)
    assert [c["sha"] for c in branch[: len(pr.commits)]] == [c.sha for c in reversed(pr.commits)]
    assert pr.merge_commit_sha not in {c["sha"] for c in branch}
    assert get(sim, f"/repos/{rw.full_name}/commits/{pr.head_sha[:10]}").json()["sha"] == pr.head_sha


def test_pygithub_reads_the_simulator_unmodified(world: World) -> None:
    rw = world.repos[0]
    with GitHubSimulator(world, token="t") as sim:
        gh = Github(auth=Auth.Token("t"), base_url=sim.base_url, per_page=100, seconds_between_requests=None)
        repo = gh.get_repo(rw.full_name)
        pulls = list(repo.get_pulls(state="all", sort="updated", direction="desc"))
        by_update = sorted(rw.pulls, key=lambda p: (p.updated_at, p.number), reverse=True)
        assert [p.number for p in pulls] == [p.number for p in by_update]
        pr = next(p for p in rw.pulls if p.merged_at and any(r.dismissed_at for r in p.reviews))
        remote = next(p for p in pulls if p.number == pr.number)
        assert (remote.merged_at, remote.merge_commit_sha) == (pr.merged_at, pr.merge_commit_sha)
        assert remote.merged and remote.merged_by.login == pr.merged_by  # lazily completes from /pulls/N
        reviews = list(remote.get_reviews())
        assert [(r.id, r.user.login, r.state) for r in reviews] == [
            (r.id, r.user_login, r.state_at(world.end)) for r in pr.reviews]
        assert "DISMISSED" in {r.state for r in reviews}
        assert [c.sha for c in remote.get_commits()] == [c.sha for c in pr.commits]
        events = [e.event for e in remote.as_issue().get_timeline()]
        assert "merged" in events and "review_dismissed" in events
        deployments = list(repo.get_deployments())
        assert [d.id for d in deployments] == sorted((d.id for d in rw.deployments), reverse=True)
        newest = deployments[0]
        expected = next(d for d in rw.deployments if d.id == newest.id)
        assert (newest.sha, newest.environment) == (expected.sha, expected.environment)
        assert [s.state for s in newest.get_statuses()] == [s.state for s in reversed(expected.statuses)]
        assert {status for _, _, status in sim.request_log} == {200}
        assert len(sim.request_log) < 20


def test_a_stopped_simulator_answers_nothing(world: World) -> None:
    session = requests.Session()
    sim = GitHubSimulator(world).start()
    url = sim.base_url
    assert session.get(url + "/rate_limit", timeout=5).status_code == 200  # keeps a connection open
    sim.stop()
    with pytest.raises(requests.ConnectionError):
        session.get(url + "/rate_limit", timeout=5)
    with pytest.raises(RuntimeError):
        _ = sim.base_url


def test_compare_lists_what_head_reaches_and_base_does_not(sim: GitHubSimulator, world: World) -> None:
    rw = world.repos[0]
    base, head = rw.main[-60], rw.main[-1]
    expected = ancestors(rw, head.sha) - ancestors(rw, base.sha)
    listed: list[dict[str, Any]] = []
    for page in pages(sim, f"/repos/{rw.full_name}/compare/{base.sha}...{head.sha}", per_page=7):
        body = page.json()
        assert body["status"] == "ahead" and body["behind_by"] == 0
        assert body["total_commits"] == body["ahead_by"] == len(expected)
        assert body["base_commit"]["sha"] == base.sha == body["merge_base_commit"]["sha"]
        listed += body["commits"]
    assert [c["sha"] for c in listed][-1] == head.sha  # oldest first, head last
    assert {c["sha"] for c in listed} == expected and len(listed) == len(expected) > 7
    same = get(sim, f"/repos/{rw.full_name}/compare/{head.sha}...{head.sha}").json()
    assert same["status"] == "identical" and same["commits"] == []
    assert get(sim, f"/repos/{rw.full_name}/compare/{'0' * 40}...main").status_code == 404
