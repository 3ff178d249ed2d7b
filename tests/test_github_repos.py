"""Org/user repo listing with ETags and `owner/glob` patterns, against the simulated GitHub."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
from github import Github
from github.GithubException import UnknownObjectException

from collector.demo.github_server import GitHubSimulator
from collector.demo.world import World, generate_world
from connectors.github_repos import (
    OwnerListings,
    OwnerNotFoundError,
    conditional_get,
    expand,
    is_pattern,
    owner_repos,
)
from tests.conftest import WORLD_END
from tests.test_github_simulator import SPEC_PATH, schema_errors

ORG_REPOS = ("petclinic/a", "petclinic/b", "petclinic/c")
USER_REPO = "dave-syer/notes"  # a team member's login as owner: a user account, not an organisation


@pytest.fixture(scope="module")
def owners_world() -> World:
    """Three org repos (one archived) and one repo of a user."""
    return generate_world(seed=7, end=WORLD_END, weeks=2, repos=(*ORG_REPOS, USER_REPO),
                          archived_repos=("petclinic/c",))


@pytest.fixture
def osim(owners_world: World) -> Iterator[GitHubSimulator]:
    """A simulated GitHub over the owners world."""
    with GitHubSimulator(owners_world) as server:
        yield server


def gh(sim: GitHubSimulator) -> Github:
    """A PyGithub client on the simulator without client-side throttling."""
    return Github(base_url=sim.base_url, per_page=100, seconds_between_requests=0, lazy=True)


def remaining(sim: GitHubSimulator) -> int:
    """The simulator's REST quota left (GET /rate_limit is free)."""
    return int(requests.get(f"{sim.base_url}/rate_limit", timeout=10).json()["resources"]["core"]["remaining"])


def log_since(sim: GitHubSimulator, start: int) -> list[tuple[str, int]]:
    """(path without query, status) of the requests since index start."""
    return [(path.split("?")[0], status) for _, path, status in sim.request_log[start:]]


def test_org_repos_are_listed_with_archived_flags_then_answer_304_for_free(osim: GitHubSimulator) -> None:
    client = gh(osim)
    start = len(osim.request_log)
    repos, etag = owner_repos(client, "petclinic", None)
    assert repos is not None and etag
    assert sorted(repos) == [("petclinic/a", False), ("petclinic/b", False), ("petclinic/c", True)]
    assert log_since(osim, start) == [("/orgs/petclinic/repos", 200)]
    before, start = remaining(osim), len(osim.request_log)
    assert owner_repos(client, "petclinic", etag) == (None, etag)
    assert log_since(osim, start) == [("/orgs/petclinic/repos", 304)]
    assert remaining(osim) == before, "a 304 costs no quota"


def test_a_user_owner_falls_back_to_the_user_list_and_remembers_it(osim: GitHubSimulator) -> None:
    client = gh(osim)
    start = len(osim.request_log)
    repos, etag = owner_repos(client, "dave-syer", None)
    assert repos == [(USER_REPO, False)]
    assert log_since(osim, start) == [("/orgs/dave-syer/repos", 404), ("/users/dave-syer/repos", 200)]
    start = len(osim.request_log)
    assert owner_repos(client, "dave-syer", etag) == (None, etag)
    assert log_since(osim, start) == [("/users/dave-syer/repos", 304)], "no second try of the org list"


def test_an_unknown_owner_is_a_clear_error(osim: GitHubSimulator) -> None:
    with pytest.raises(OwnerNotFoundError, match="no organisation or user 'nobody'"):
        owner_repos(gh(osim), "nobody", None)


def test_repos_created_after_the_clock_are_not_listed(osim: GitHubSimulator, owners_world: World) -> None:
    newest = max(owners_world.repos[:3], key=lambda rw: rw.repo.created_at)
    osim.clock = newest.repo.created_at - timedelta(seconds=1)
    older = {rw.full_name for rw in owners_world.repos[:3] if rw is not newest}
    repos, _ = owner_repos(gh(osim), "petclinic", None)
    assert repos is not None and {name for name, _ in repos} == older and len(older) == 2


def test_simulated_repo_lists_filter_sort_and_validate(osim: GitHubSimulator) -> None:
    def names(path: str, **query: str) -> list[str]:
        answer = requests.get(f"{osim.base_url}{path}", params=query, timeout=10)
        assert answer.status_code == 200, answer.text
        return [item["full_name"] for item in answer.json()]

    assert names("/orgs/petclinic/repos", sort="full_name") == list(ORG_REPOS)
    assert names("/orgs/petclinic/repos", sort="full_name", direction="desc") == list(reversed(ORG_REPOS))
    assert names("/orgs/petclinic/repos", type="private") == names("/orgs/petclinic/repos", type="forks") == []
    assert names("/orgs/PetClinic/repos", type="sources", per_page="2", page="2", sort="full_name") == ["petclinic/c"]
    assert names("/users/dave-syer/repos") == [USER_REPO]
    assert names("/users/petclinic/repos") == list(ORG_REPOS), "an organisation's public repos, by name"
    item = requests.get(f"{osim.base_url}/orgs/petclinic/repos", timeout=10).json()[0]
    assert {"full_name", "owner", "archived", "private", "fork"} <= set(item)
    assert requests.get(f"{osim.base_url}/orgs/petclinic/repos?type=bogus", timeout=10).status_code == 422
    assert requests.get(f"{osim.base_url}/orgs/dave-syer/repos", timeout=10).status_code == 404
    assert requests.get(f"{osim.base_url}/users/nobody/repos", timeout=10).json()["message"] == "Not Found"


def test_conditional_get_returns_status_headers_and_body(osim: GitHubSimulator) -> None:
    requester = gh(osim).requester
    status, headers, body = conditional_get(requester, "/repos/petclinic/a", None, None)
    assert status == 200 and body["full_name"] == "petclinic/a" and headers["etag"]
    assert conditional_get(requester, "/repos/petclinic/a", None, headers["etag"])[::2] == (304, None)
    with pytest.raises(UnknownObjectException):
        conditional_get(requester, "/repos/petclinic/zzz", None, None)


def test_is_pattern() -> None:
    assert is_pattern("petclinic/*") and is_pattern("petclinic/svc-?") and is_pattern("o/[ab]*")
    assert not is_pattern("petclinic/web") and not is_pattern("*") and not is_pattern("/x*")


def test_expand_keeps_names_and_replaces_patterns_by_unarchived_matches(caplog: pytest.LogCaptureFixture) -> None:
    lists = {"petclinic": [("petclinic/web", False), ("petclinic/vets-service", False),
                           ("petclinic/old-service", True), ("petclinic/Api-Service", False)]}
    asked: list[str] = []

    def listing(owner: str) -> list[tuple[str, bool]]:
        asked.append(owner)
        return lists[owner.lower()]

    with caplog.at_level(logging.WARNING):
        got = expand(["petclinic/web", "PetClinic/*-service", "petclinic/old-service", "petclinic/*",
                      "petclinic/nothing-*", "other/plain"], listing)
    assert got == ["petclinic/web", "petclinic/vets-service", "petclinic/Api-Service", "petclinic/old-service",
                   "other/plain"]
    assert len(asked) == 1, "one listing per owner"
    assert "petclinic/nothing-*" in caplog.text
    with pytest.raises(ValueError, match="only the name part"):
        expand(["*/web"], listing)


def test_owner_listings_keep_the_list_across_a_304(osim: GitHubSimulator) -> None:
    listings = OwnerListings(gh(osim))
    assert expand(["petclinic/*"], listings) == ["petclinic/a", "petclinic/b"], "newest created first"
    state = listings.to_json()
    start = len(osim.request_log)
    again = OwnerListings(gh(osim), state)
    assert sorted(expand(["petclinic/*", "dave-syer/n*"], again)) == ["dave-syer/notes", "petclinic/a", "petclinic/b"]
    assert ("/orgs/petclinic/repos", 304) in log_since(osim, start)


def test_simulated_repo_list_items_match_the_documented_schema(osim: GitHubSimulator) -> None:
    # the spec subset has no /orgs or /users paths: their items are GitHub's `minimal-repository`
    spec = json.loads(SPEC_PATH.read_text("utf-8"))
    errors = []
    for path in ("/orgs/petclinic/repos", "/users/dave-syer/repos", "/users/petclinic/repos"):
        for item in requests.get(f"{osim.base_url}{path}", timeout=10).json():
            errors += [f"{path} {item['full_name']}: {e}" for e in schema_errors(spec, item, schema="minimal-repository")]
    assert not errors, errors[:10]
