"""The simulated GitHub's GraphQL endpoint answers as GitHub documents: its schema, cost formula, node and
page limits, error forms and points budget (checked with plain HTTP, as any client would see it)."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from graphql import build_client_schema, get_introspection_query

from collector.demo.github_server import GitHubSimulator
from collector.demo.world import World


def post(sim: GitHubSimulator, query: str, variables: dict[str, Any] | None = None,
         token: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(f"{sim.base_url}/graphql", json={"query": query, "variables": variables or {}},
                         headers=headers, timeout=30)


def test_the_published_schema_is_what_it_serves(sim: GitHubSimulator) -> None:
    answer = post(sim, get_introspection_query()).json()
    schema = build_client_schema(answer["data"])
    fields = schema.get_type("PullRequest").fields  # type: ignore[union-attr]
    assert {"fullDatabaseId", "timelineItems", "reviews", "mergeCommit"} <= set(fields)
    assert schema.get_type("Bot") is not None and schema.get_type("RateLimit") is not None


def test_cost_follows_githubs_formula(sim: GitHubSimulator, world: World) -> None:
    # GitHub: each connection needs as many requests as its parents' page sizes multiply to;
    # cost = total requests / 100, rounded, at least 1. Here: pullRequests 1 request; reviews and labels
    # under 100 PRs: 100 requests each; commits under 100 PRs: 100 -> 301 requests -> cost 3.
    # Nodes: 100 PRs + 100*50 reviews + 100*10 labels + 100*20 commits = 8,100.
    query = """query { rateLimit { cost nodeCount remaining }
      repository(owner: "petclinic", name: "petclinic-web") {
        pullRequests(first: 100) { nodes { number reviews(first: 50) { totalCount }
          labels(first: 10) { totalCount } commits(first: 20) { totalCount } } } } }"""
    rate = post(sim, query).json()["data"]["rateLimit"]
    assert (rate["cost"], rate["nodeCount"]) == (3, 8_100)
    assert rate["remaining"] == 5000 - 3
    # a query without connections costs the minimum, 1; a skipped connection costs nothing
    cheap = post(sim, 'query($x: Boolean!) { rateLimit { cost } repository(owner: "petclinic", name: '
                      '"petclinic-web") { nameWithOwner pullRequests(first: 100) @include(if: $x) '
                      '{ nodes { reviews(first: 100) { totalCount } } } } }', {"x": False}).json()
    assert cheap["data"]["rateLimit"]["cost"] == 1


@pytest.mark.parametrize(("query", "kind", "text"), [
    ('{ repository(owner: "petclinic", name: "petclinic-web") { pullRequests { totalCount } } }',
     "MISSING_PAGINATION_BOUNDARIES", "You must provide a `first` or `last` value"),
    ('{ repository(owner: "petclinic", name: "petclinic-web") { pullRequests(first: 101) { totalCount } } }',
     "EXCESSIVE_PAGINATION", "exceeds the `first` limit of 100 records"),
    (('{ repository(owner: "petclinic", name: "petclinic-web") { pullRequests(first: 100) { nodes { '
     'commits(first: 100) { nodes { commit { history(first: 100) { totalCount } } } } } } } }'),
     "MAX_NODE_LIMIT_EXCEEDED", "exceeds the maximum limit of 500,000"),
])
def test_limits_are_refused_before_anything_runs(sim: GitHubSimulator, query: str, kind: str, text: str) -> None:
    answer = post(sim, query)
    assert answer.status_code == 200
    body = answer.json()
    assert "data" not in body
    (error,) = body["errors"]
    assert error["type"] == kind and text in error["message"]


def test_errors_arrive_with_http_200_and_partial_data(sim: GitHubSimulator, world: World) -> None:
    body = post(sim, '{ a: repository(owner: "petclinic", name: "petclinic-web") { nameWithOwner } '
                     'b: repository(owner: "petclinic", name: "gone") { nameWithOwner } }').json()
    assert body["data"] == {"a": {"nameWithOwner": "petclinic/petclinic-web"}, "b": None}
    (error,) = body["errors"]
    assert error["type"] == "NOT_FOUND" and error["path"] == ["b"]
    assert error["message"] == "Could not resolve to a Repository with the name 'petclinic/gone'."
    invalid = post(sim, '{ repository(owner: "petclinic", name: "petclinic-web") { nam } }').json()
    assert "data" not in invalid and "Cannot query field 'nam'" in invalid["errors"][0]["message"]


def test_bots_and_bot_commits_look_as_on_github(sim: GitHubSimulator, world: World) -> None:
    rw = world.repos[0]
    bot_pr = next(p for p in rw.pulls if p.author_login == "dependabot[bot]")
    query = """query($n: Int!) { repository(owner: "petclinic", name: "petclinic-web") {
      pullRequest(number: $n) { author { __typename login } commits(first: 5) { nodes { commit {
        author { email user { login } } } } } } } }"""
    body = post(sim, query, {"n": bot_pr.number}).json()
    assert "errors" not in body, body.get("errors")
    node = body["data"]["repository"]["pullRequest"]
    assert node["author"] == {"__typename": "Bot", "login": "dependabot"}  # the app slug, not dependabot[bot]
    commit_author = node["commits"]["nodes"][0]["commit"]["author"]
    assert commit_author["user"] is None and commit_author["email"].endswith("+dependabot[bot]@users.noreply.github.com")


def test_each_token_has_its_own_points_budget(world: World) -> None:
    with GitHubSimulator(world, token=("tok-one", "tok-two")) as sim:
        assert sim.graphql is not None
        sim.graphql.points_limit = 2
        query = "{ rateLimit { cost remaining limit resetAt } }"
        first = post(sim, query, token="tok-one")
        assert first.json()["data"]["rateLimit"]["remaining"] == 1
        assert first.headers["X-RateLimit-Resource"] == "graphql" and first.headers["X-RateLimit-Remaining"] == "1"
        post(sim, query, token="tok-one")
        spent = post(sim, query, token="tok-one")
        assert spent.status_code == 200 and spent.json()["errors"][0]["type"] == "RATE_LIMITED"
        assert post(sim, query, token="tok-two").json()["data"]["rateLimit"]["remaining"] == 1
        assert post(sim, query, token="wrong").status_code == 401
        # REST quota is a bucket of its own: GraphQL spent none of it
        core = requests.get(f"{sim.base_url}/rate_limit", headers={"Authorization": "Bearer tok-one"}, timeout=10)
        assert core.json()["resources"]["core"]["remaining"] == 5000
