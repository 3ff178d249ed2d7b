"""The simulated GitHub's GraphQL API (POST /graphql): GitHub's published schema executed by graphql-core over
the Pet Clinic world, with GitHub's pagination limits, node limit, point cost and error forms.

Objects are dicts whose values are plain data or callables taking the field's arguments, so one small field
resolver serves every type; abstract types (Actor, Node, timeline unions) resolve by their `__typename`.
"""

from __future__ import annotations

import base64
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    build_schema,
    execute,
    get_named_type,
    parse,
    validate,
    value_from_ast_untyped,
)

from collector.demo.incident_world import LABEL, Incident, IncidentWorld
from collector.demo.payloads import Payloads, iso, node_id
from collector.demo.world import DATA, Commit, Deployment, PullRequest, RepoWorld, World

Obj = dict[str, Any]
POINTS_LIMIT = 5000
NODE_LIMIT = 500_000
PAGE_LIMIT = 100
DOCS = "https://docs.github.com/graphql"
# PR timeline item types the simulator models, by the __typename of the world's event names.
EVENT_TYPES = {"ready_for_review": "ReadyForReviewEvent", "convert_to_draft": "ConvertToDraftEvent",
               "review_requested": "ReviewRequestedEvent", "review_request_removed": "ReviewRequestRemovedEvent",
               "merged": "MergedEvent", "closed": "ClosedEvent", "reopened": "ReopenedEvent",
               "review_dismissed": "ReviewDismissedEvent"}
# the itemTypes enum value of each __typename (READY_FOR_REVIEW_EVENT, ...)
ITEM_TYPES = {name: "".join("_" + c if c.isupper() else c for c in name).lstrip("_").upper()
              for name in EVENT_TYPES.values()}
TIMEOUT_MESSAGE = ("Something went wrong while executing your query. This may be the result of a timeout, or "
                   "it could be a GitHub bug. Please include `SIM:0001` when reporting this issue.")


@cache
def github_schema() -> GraphQLSchema:
    """GitHub's public schema (built once per process; the published SDL needs the lenient checks)."""
    text = (DATA / "github" / "graphql" / "schema.graphql").read_text("utf-8")
    return build_schema(text, assume_valid=True, assume_valid_sdl=True)


class QueryError(Exception):
    """An error GitHub reports in the `errors` list with a `type` (NOT_FOUND, RATE_LIMITED, ...)."""

    def __init__(self, kind: str | None, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Budget:
    """One token's point budget for the hour (GitHub keeps GraphQL points apart from REST requests)."""

    limit: int
    remaining: int
    reset: float
    used: int = 0


@dataclass
class Reply:
    """What /graphql answers: status, JSON body and the rate-limit headers of the graphql resource."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def _cursor(index: int) -> str:
    return base64.b64encode(f"cursor:v2:{index}".encode()).decode()


def _offset(cursor: str | None, name: str) -> int:
    """The index a cursor points at (-1 before the start); a foreign cursor is GitHub's argument error."""
    if cursor is None:
        return -1
    try:
        kind, version, index = base64.b64decode(cursor).decode().split(":")
        assert kind == "cursor" and version == "v2"
        return int(index)
    except Exception:  # noqa: BLE001 - any undecodable cursor gets the same answer
        raise QueryError("INVALID_CURSOR_ARGUMENTS", f"`{cursor}` does not appear to be a valid cursor.") from None


def connection(items: list[Any], render: Callable[[Any], Obj], args: dict[str, Any], name: str) -> Obj:
    """A connection page (nodes, edges, pageInfo, totalCount) by first/after or last/before."""
    first, last = args.get("first"), args.get("last")
    start = _offset(args.get("after"), name) + 1
    end = _offset(args.get("before"), name) if args.get("before") is not None else len(items)
    start, end = max(0, start), min(len(items), end)
    if first is not None:
        window = range(start, min(end, start + first))
    else:
        window = range(max(start, end - (last or 0)), end)
    shown = [(i, render(items[i])) for i in window]
    return {
        "totalCount": len(items),
        "nodes": [obj for _, obj in shown],
        "edges": [{"cursor": _cursor(i), "node": obj} for i, obj in shown],
        "pageInfo": {"hasNextPage": window.stop < end, "hasPreviousPage": window.start > start,
                     "startCursor": _cursor(window.start) if shown else None,
                     "endCursor": _cursor(window.stop - 1) if shown else None},
    }


def _resolve(obj: Any, info: Any, **args: Any) -> Any:
    """Every field: a dict value as is, or called with the field's arguments when it is a callable."""
    value = obj.get(info.field_name) if isinstance(obj, dict) else getattr(obj, info.field_name, None)
    return value(**args) if callable(value) else value


# -- static analysis: pagination limits, node count and point cost ------------------------------------------

@dataclass
class _Walk:
    """What a walk over the query found: limit violations, nodes that may come back, requests needed."""

    errors: list[dict[str, Any]] = field(default_factory=list)
    nodes: int = 0
    requests: int = 0


def analyse(schema: GraphQLSchema, document: DocumentNode, variables: dict[str, Any]) -> _Walk:
    """GitHub's static checks and cost: each connection needs first/last (at most 100); its possible nodes are
    the product of the page sizes above it (at most 500,000 in all); its requests are that product without
    its own page size. Cost = requests / 100, rounded, at least 1."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    walk = _Walk()
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            root = schema.query_type if definition.operation.value == "query" else schema.mutation_type
            _walk(schema, root, definition.selection_set, 1, [], walk, fragments, variables)
    return walk


def _walk(schema: GraphQLSchema, parent: Any, selections: SelectionSetNode | None, multiplier: int,
          path: list[str], walk: _Walk, fragments: dict[str, FragmentDefinitionNode],
          variables: dict[str, Any]) -> None:
    if selections is None or parent is None:
        return
    for node in selections.selections:
        if _skipped(node, variables):
            continue
        if isinstance(node, InlineFragmentNode):
            target = schema.get_type(node.type_condition.name.value) if node.type_condition else parent
            _walk(schema, target, node.selection_set, multiplier, path, walk, fragments, variables)
        elif isinstance(node, FragmentSpreadNode):
            fragment = fragments.get(node.name.value)
            if fragment is not None:
                target = schema.get_type(fragment.type_condition.name.value)
                _walk(schema, target, fragment.selection_set, multiplier, path, walk, fragments, variables)
        elif isinstance(node, FieldNode):
            _walk_field(schema, parent, node, multiplier, path, walk, fragments, variables)


def _skipped(node: Any, variables: dict[str, Any]) -> bool:
    """Whether @include(if: false) or @skip(if: true) leaves a selection out (it then costs nothing)."""
    for directive in node.directives or ():
        condition = next((value_from_ast_untyped(a.value, variables) for a in directive.arguments or ()
                          if a.name.value == "if"), None)
        if (directive.name.value == "include" and condition is False) or (
                directive.name.value == "skip" and condition is True):
            return True
    return False


def _walk_field(schema: GraphQLSchema, parent: Any, node: FieldNode, multiplier: int, path: list[str],
                walk: _Walk, fragments: dict[str, FragmentDefinitionNode], variables: dict[str, Any]) -> None:
    fields = getattr(parent, "fields", None)
    name = node.name.value
    definition = fields.get(name) if fields else None
    if definition is None:
        return
    named = get_named_type(definition.type)
    here = [*path, node.alias.value if node.alias else name]
    if named.name.endswith("Connection") and "first" in definition.args:
        args = {a.name.value: value_from_ast_untyped(a.value, variables) for a in node.arguments or ()}
        size = args.get("first") if args.get("first") is not None else args.get("last")
        if size is None:
            walk.errors.append({"type": "MISSING_PAGINATION_BOUNDARIES", "path": here,
                                "message": f"You must provide a `first` or `last` value to properly paginate "
                                           f"the `{name}` connection."})
            return
        key = "first" if args.get("first") is not None else "last"
        if not 1 <= int(size) <= PAGE_LIMIT:
            walk.errors.append({"type": "EXCESSIVE_PAGINATION" if int(size) > PAGE_LIMIT else "INVALID_ARGUMENTS",
                                "path": here,
                                "message": f"Requesting {size} records on the `{name}` connection exceeds the "
                                           f"`{key}` limit of {PAGE_LIMIT} records." if int(size) > PAGE_LIMIT
                                           else f"`{key}` on the `{name}` connection cannot be less than one."})
            return
        walk.requests += multiplier
        multiplier *= int(size)
        walk.nodes += multiplier
    if isinstance(named, GraphQLObjectType) or hasattr(named, "fields") or node.selection_set is not None:
        _walk(schema, named, node.selection_set, multiplier, here, walk, fragments, variables)


@lru_cache(maxsize=64)
def _prepare(query: str) -> tuple[DocumentNode | None, list[dict[str, Any]]]:
    """Parse and validate a query once (clients send the same text again and again)."""
    try:
        document = parse(query)
    except GraphQLError as error:
        return None, [{"message": error.message, "locations": _locations(error)}]
    problems = validate(github_schema(), document)
    if problems:
        return None, [{"message": p.message, "locations": _locations(p),
                       "extensions": {"code": "undefinedField" if "Cannot query field" in p.message
                                      else "argumentLiteralsIncompatible"}} for p in problems]
    return document, []


def _locations(error: GraphQLError) -> list[dict[str, int]]:
    return [{"line": loc.line, "column": loc.column} for loc in error.locations or ()]


class GraphQLEndpoint:
    """Answers GraphQL POST bodies for one world; the clock is given per request, budgets are per token."""

    def __init__(self, world: World, payloads: Payloads, incidents: IncidentWorld) -> None:
        self.world, self.p, self.incidents = world, payloads, incidents
        self.points_limit = POINTS_LIMIT
        self.reset_after = 3600.0  # seconds from a budget's first use to its reset
        self.fail_reviews_of: set[int] = set()  # PR numbers whose `reviews` fail (partial data, like a timeout)
        self.fail_reviews_times: int | None = None  # how many more times they fail (None: every time)
        self.queries = 0
        self._budgets: dict[str, Budget] = {}
        self._lock = threading.Lock()
        self._index: dict[str, tuple[str, RepoWorld, Any]] | None = None

    # -- budget ---------------------------------------------------------------------------------------------
    def budget(self, token: str) -> Budget:
        """The point budget of a token (a fresh hour once the reset has passed)."""
        with self._lock:
            budget = self._budgets.get(token)
            if budget is None or budget.reset <= time.time():
                # GitHub's windows end on a whole second (X-RateLimit-Reset is epoch seconds)
                budget = Budget(self.points_limit, self.points_limit, math.ceil(time.time() + self.reset_after))
                self._budgets[token] = budget
            return budget

    def _headers(self, budget: Budget) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(budget.limit), "X-RateLimit-Remaining": str(budget.remaining),
                "X-RateLimit-Used": str(budget.used), "X-RateLimit-Reset": str(int(budget.reset)),
                "X-RateLimit-Resource": "graphql"}

    # -- one request ----------------------------------------------------------------------------------------
    def answer(self, body: Any, token: str, clock: datetime) -> Reply:
        """Execute one request body ({query, variables, operationName}) as of `clock`."""
        budget = self.budget(token)
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return Reply(400, {"message": "Problems parsing JSON", "documentation_url": DOCS})
        document, errors = _prepare(body["query"])
        if document is None:
            return Reply(200, {"errors": errors}, self._headers(budget))
        variables = body.get("variables") or {}
        walk = analyse(github_schema(), document, variables)
        if walk.errors:
            return Reply(200, {"errors": walk.errors}, self._headers(budget))
        if walk.nodes > NODE_LIMIT:
            message = (f"This query requests up to {walk.nodes:,} possible nodes which exceeds the maximum limit "
                       f"of {NODE_LIMIT:,}.")
            return Reply(200, {"errors": [{"type": "MAX_NODE_LIMIT_EXCEEDED", "message": message}]},
                         self._headers(budget))
        cost = max(1, round(walk.requests / 100))
        with self._lock:
            if budget.remaining < cost:
                # GitHub answers a spent GraphQL budget with 200 and a RATE_LIMITED error, not a 403
                return Reply(200, {"errors": [{"type": "RATE_LIMITED", "code": "graphql_rate_limit",
                                               "message": "API rate limit already exceeded for user ID 1."}]},
                             self._headers(budget))
            budget.remaining -= cost
            budget.used += cost
            self.queries += 1
        root = _Root(self, clock, cost, walk.nodes, budget).query()
        result = execute(github_schema(), document, root_value=root, variable_values=variables,
                         operation_name=body.get("operationName"), field_resolver=_resolve)
        out: dict[str, Any] = {}
        if result.errors:
            out["errors"] = [_format(error) for error in result.errors]
        out["data"] = result.data
        return Reply(200, out, self._headers(budget))

    def spoils_reviews_of(self, number: int) -> bool:
        """Whether this answer's `reviews` of PR `number` fail (counting down `fail_reviews_times`)."""
        with self._lock:
            if number not in self.fail_reviews_of or self.fail_reviews_times == 0:
                return False
            if self.fail_reviews_times is not None:
                self.fail_reviews_times -= 1
            return True

    # -- node index -----------------------------------------------------------------------------------------
    def lookup(self, ident: str) -> tuple[str, RepoWorld, Any] | None:
        """A global node id -> (kind, repo, world object), for `node`/`nodes`."""
        with self._lock:
            if self._index is None:
                index: dict[str, tuple[str, RepoWorld, Any]] = {}
                for rw in self.world.repos:
                    index[node_id("Repository", rw.repo.id)] = ("repo", rw, rw)
                    for pr in rw.pulls:
                        index[node_id("PullRequest", pr.id)] = ("pull", rw, pr)
                    for dep in rw.deployments:
                        index[node_id("Deployment", dep.id)] = ("deployment", rw, dep)
                self._index = index
            return self._index.get(ident)


def _format(error: GraphQLError) -> dict[str, Any]:
    """An execution error as GitHub writes it: type (when known), path, locations, message."""
    out: dict[str, Any] = {}
    original = error.original_error
    if isinstance(original, QueryError) and original.kind:
        out["type"] = original.kind
    if error.path:
        out["path"] = list(error.path)
    out["locations"] = _locations(error)
    out["message"] = error.message
    return out


class _Root:
    """The objects of one request as of its clock (the world seen at that instant)."""

    def __init__(self, endpoint: GraphQLEndpoint, clock: datetime, cost: int, nodes: int, budget: Budget) -> None:
        self.e, self.t, self.p = endpoint, clock, endpoint.p
        self.cost, self.nodes, self.budget = cost, nodes, budget

    def query(self) -> Obj:
        return {"rateLimit": self.rate_limit, "repository": self.repository, "node": self.node,
                "nodes": lambda ids: [self.node(i) for i in ids]}

    def rate_limit(self, dryRun: bool = False) -> Obj:
        b = self.budget
        return {"cost": self.cost, "limit": b.limit, "nodeCount": self.nodes, "remaining": b.remaining,
                "used": b.used, "resetAt": iso(datetime.fromtimestamp(int(b.reset), UTC))}

    def repository(self, owner: str, name: str, followRenames: bool = True) -> Obj:
        try:
            rw = self.e.world.repo(f"{owner}/{name}")
        except KeyError:
            rw = None
        if rw is None or rw.repo.created_at > self.t:
            raise QueryError("NOT_FOUND", f"Could not resolve to a Repository with the name '{owner}/{name}'.")
        return self.repo(rw)

    def node(self, id: str) -> Obj | None:
        found = self.e.lookup(id)
        if found is None:
            raise QueryError("NOT_FOUND", f"Could not resolve to a node with the global id of '{id}'")
        kind, rw, item = found
        if kind == "repo":
            return self.repo(rw)
        now = item.as_of(self.t)
        if now is None:
            raise QueryError("NOT_FOUND", f"Could not resolve to a node with the global id of '{id}'")
        return self.pull(rw, now) if kind == "pull" else self.deployment(rw, now)

    # -- accounts -----------------------------------------------------------------------------------------
    def actor(self, login: str | None) -> Obj | None:
        """User, Bot (login is the app slug, without `[bot]`) or Organization."""
        if login is None:
            return None
        person = self.e.world.person(login)
        kind = person.type if person.type in ("User", "Bot", "Organization") else "User"
        slug = login.removesuffix("[bot]") if kind == "Bot" else login
        url = f"{self.p.web}/apps/{slug}" if kind == "Bot" else f"{self.p.web}/{login}"
        return {"__typename": kind, "id": node_id(kind, person.id), "login": slug, "databaseId": person.id,
                "name": person.name, "url": url, "resourcePath": url.removeprefix(self.p.web),
                "avatarUrl": lambda size=None: f"{self.p.web}/avatars/u/{person.id}?v=4"}

    def git_actor(self, name: str, email: str, login: str | None, at: datetime) -> Obj:
        """GitActor: `user` is null when the email belongs to no user account (always for bots)."""
        user = None
        if login is not None and self.e.world.person(login).type == "User":
            user = self.actor(login)
        return {"name": name, "email": email, "date": iso(at), "user": user,
                "avatarUrl": lambda size=None: f"{self.p.web}/avatars/u/0?v=4"}

    # -- repository ---------------------------------------------------------------------------------------
    def repo(self, rw: RepoWorld) -> Obj:
        tip = rw.tip_at(self.t)
        return {
            "__typename": "Repository", "id": node_id("Repository", rw.repo.id), "databaseId": rw.repo.id,
            "name": rw.full_name.split("/")[1], "nameWithOwner": rw.full_name,
            "url": f"{self.p.web}/{rw.full_name}", "isArchived": getattr(rw.repo, "archived", False),
            "isEmpty": tip is None, "createdAt": iso(rw.repo.created_at), "description": rw.repo.description,
            "defaultBranchRef": None if tip is None else self.ref(rw, rw.repo.default_branch, tip),
            "object": lambda oid=None, expression=None: self.git_object(rw, oid or expression),
            "pullRequests": lambda **a: self.pull_requests(rw, a),
            "pullRequest": lambda number: self.pull_by_number(rw, number),
            "deployments": lambda **a: self.deployments(rw, a),
            "issues": lambda **a: self.issues(rw, a),
        }

    def ref(self, rw: RepoWorld, name: str, tip: Commit) -> Obj:
        return {"__typename": "Ref", "id": node_id("Ref", f"{rw.repo.id}:{name}"), "name": name,
                "prefix": "refs/heads/", "target": self.commit(rw, tip)}

    def git_object(self, rw: RepoWorld, ref: str | None) -> Obj | None:
        """`object(oid:)` or `object(expression:)`: a sha, a branch name, `HEAD`."""
        if ref is None:
            return None
        if ref in ("HEAD", rw.repo.default_branch):
            tip = rw.tip_at(self.t)
            return self.commit(rw, tip) if tip else None
        commit = rw.commits.get(ref)
        return self.commit(rw, commit) if commit and commit.committed_at <= self.t else None

    def commit(self, rw: RepoWorld, c: Commit) -> Obj:
        return {
            "__typename": "Commit", "id": node_id("Commit", f"{rw.repo.id}:{c.sha}"), "oid": c.sha,
            "abbreviatedOid": c.sha[:7], "message": c.message, "messageHeadline": c.message.splitlines()[0],
            "committedDate": iso(c.committed_at), "authoredDate": iso(c.authored_at),
            "url": f"{self.p.web}/{rw.full_name}/commit/{c.sha}",
            "author": self.git_actor(c.author_name, c.author_email, c.author_login, c.authored_at),
            "committer": self.git_actor(c.committer_name, c.committer_email, c.committer_login, c.committed_at),
            "parents": lambda **a: connection([p for p in c.parents if p in rw.commits],
                                              lambda sha: self.commit(rw, rw.commits[sha]), a, "parents"),
            "history": lambda **a: self.history(rw, c, a),
        }

    def history(self, rw: RepoWorld, start: Commit, args: dict[str, Any]) -> Obj:
        """`git log` from a commit, newest first (as the REST commits list), since/until on commit date."""
        from collector.demo.github_server import _Api, _topo_order  # the REST list's order, shared

        seen = _Api._history(rw, start)
        order = _topo_order(seen)
        since = _time(args.get("since"))
        until = _time(args.get("until"))
        listed = [c for c in seen.values() if (since is None or c.committed_at >= since)
                  and (until is None or c.committed_at <= until)]
        listed.sort(key=lambda c: (c.committed_at, order[c.sha]), reverse=True)
        return connection(listed, lambda c: self.commit(rw, c), args, "history")

    # -- pull requests ------------------------------------------------------------------------------------
    def pull_requests(self, rw: RepoWorld, args: dict[str, Any]) -> Obj:
        states = set(args.get("states") or ("OPEN", "CLOSED", "MERGED"))
        listed = [now for pr in rw.pulls if (now := pr.as_of(self.t)) is not None and _pr_state(now) in states
                  and args.get("baseRefName", now.base_ref) in (None, now.base_ref)
                  and args.get("headRefName", now.head_ref) in (None, now.head_ref)]
        order = args.get("orderBy") or {"field": "CREATED_AT", "direction": "ASC"}
        attr = {"CREATED_AT": "created_at", "UPDATED_AT": "updated_at"}.get(order["field"], "created_at")
        listed.sort(key=lambda pr: (getattr(pr, attr), pr.number), reverse=order["direction"] == "DESC")
        return connection(listed, lambda pr: self.pull(rw, pr), args, "pullRequests")

    def pull_by_number(self, rw: RepoWorld, number: int) -> Obj:
        """`pullRequest(number:)`: NOT_FOUND (with a null) when there is none at the clock."""
        pr = rw.pull(number)
        now = pr.as_of(self.t) if pr else None
        if now is None:
            raise QueryError("NOT_FOUND", f"Could not resolve to a PullRequest with the number of {number}.")
        return self.pull(rw, now)

    def pull(self, rw: RepoWorld, pr: PullRequest) -> Obj:
        merged = pr.merged_at is not None
        merge_commit = rw.commits.get(pr.merge_commit_sha or "") if merged else None
        return {
            "__typename": "PullRequest", "id": node_id("PullRequest", pr.id), "databaseId": pr.id,
            "fullDatabaseId": str(pr.id), "number": pr.number, "title": pr.title, "body": pr.body,
            "url": f"{self.p.web}/{rw.full_name}/pull/{pr.number}", "state": _pr_state(pr),
            "isDraft": pr.is_draft, "merged": merged, "createdAt": iso(pr.created_at),
            "updatedAt": iso(pr.updated_at), "closedAt": iso(pr.closed_at), "mergedAt": iso(pr.merged_at),
            "author": self.actor(pr.author_login), "mergedBy": self.actor(pr.merged_by),
            "mergeCommit": self.commit(rw, merge_commit) if merge_commit else None,
            "headRefName": pr.head_ref, "headRefOid": pr.head_sha, "baseRefName": pr.base_ref,
            "reviews": lambda **a: self.reviews(rw, pr, a),
            "commits": lambda **a: connection(list(pr.commits), lambda c: {
                "__typename": "PullRequestCommit", "id": node_id("PullRequestCommit", f"{pr.id}:{c.sha}"),
                "commit": self.commit(rw, c)}, a, "commits"),
            "timelineItems": lambda **a: self.timeline(rw, pr, a),
        }

    def reviews(self, rw: RepoWorld, pr: PullRequest, args: dict[str, Any]) -> Obj:
        if self.e.spoils_reviews_of(pr.number):
            raise QueryError(None, TIMEOUT_MESSAGE)
        states = set(args.get("states") or ())
        listed = [r for r in pr.reviews if not states or r.state_at(self.t) in states]
        return connection(listed, lambda r: {
            "__typename": "PullRequestReview", "id": node_id("PullRequestReview", r.id),
            "databaseId": r.id if r.id < 2**31 else None, "fullDatabaseId": str(r.id),
            "state": r.state_at(self.t), "submittedAt": iso(r.submitted_at), "body": r.body,
            "author": self.actor(r.user_login), "commit": self.commit(rw, rw.commits[r.commit_id])
            if r.commit_id in rw.commits else None}, args, "reviews")

    def timeline(self, rw: RepoWorld, pr: PullRequest, args: dict[str, Any]) -> Obj:
        """timelineItems over the modelled issue events, chronological, filtered by itemTypes and since."""
        wanted = set(args.get("itemTypes") or ITEM_TYPES.values())
        since = _time(args.get("since"))
        listed = [e for e in pr.events if ITEM_TYPES[EVENT_TYPES[e.event]] in wanted
                  and (since is None or e.created_at >= since)]

        def render(e: Any) -> Obj:
            kind = EVENT_TYPES[e.event]
            obj: Obj = {"__typename": kind, "id": node_id(kind, e.id), "createdAt": iso(e.created_at),
                        "actor": self.actor(e.actor_login)}
            if e.event in ("review_requested", "review_request_removed"):
                obj["requestedReviewer"] = self.actor(e.requested_reviewer)
            if e.event == "merged" and e.commit_id in rw.commits:
                obj["commit"] = self.commit(rw, rw.commits[e.commit_id])
                obj["mergeRefName"] = pr.base_ref
            if e.event == "review_dismissed":
                obj["previousReviewState"] = e.dismissed_review_state
            return obj

        return connection(listed, render, args, "timelineItems")

    # -- deployments --------------------------------------------------------------------------------------
    def deployments(self, rw: RepoWorld, args: dict[str, Any]) -> Obj:
        environments = set(args.get("environments") or ())
        listed = [now for d in rw.deployments if (now := d.as_of(self.t)) is not None
                  and (not environments or now.environment in environments)]
        order = args.get("orderBy") or {"field": "CREATED_AT", "direction": "ASC"}
        listed.sort(key=lambda d: (d.created_at, d.id), reverse=order["direction"] == "DESC")
        return connection(listed, lambda d: self.deployment(rw, d), args, "deployments")

    def deployment(self, rw: RepoWorld, dep: Deployment) -> Obj:
        statuses = sorted(dep.statuses, key=lambda s: s.id, reverse=True)  # newest first, as REST lists them
        is_branch = not (len(dep.ref) == 40 and all(ch in "0123456789abcdef" for ch in dep.ref))
        commit = rw.commits.get(dep.sha)
        return {
            "__typename": "Deployment", "id": node_id("Deployment", dep.id), "databaseId": dep.id,
            "environment": dep.environment, "originalEnvironment": dep.environment,
            "latestEnvironment": dep.environment, "commitOid": dep.sha, "task": dep.task,
            "description": dep.description, "createdAt": iso(dep.created_at), "updatedAt": iso(dep.updated_at),
            "creator": self.actor(dep.creator_login), "commit": self.commit(rw, commit) if commit else None,
            "ref": {"__typename": "Ref", "id": node_id("Ref", f"{rw.repo.id}:{dep.ref}"), "name": dep.ref,
                    "prefix": "refs/heads/"} if is_branch else None,
            "state": statuses[0].state.upper() if statuses else "PENDING",
            "latestStatus": self.status(dep, statuses[0]) if statuses else None,
            "statuses": lambda **a: connection(statuses, lambda s: self.status(dep, s), a, "statuses"),
        }

    def status(self, dep: Deployment, status: Any) -> Obj:
        return {"__typename": "DeploymentStatus", "id": node_id("DeploymentStatus", status.id),
                "state": status.state.upper(), "createdAt": iso(status.created_at),
                "updatedAt": iso(status.created_at), "description": status.description,
                "environment": dep.environment, "creator": self.actor("github-actions[bot]")}

    # -- incident issues ----------------------------------------------------------------------------------
    def issues(self, rw: RepoWorld, args: dict[str, Any]) -> Obj:
        """The repo's incident issues (the world has no other plain issues): labels, states, filterBy.since."""
        filters = args.get("filterBy") or {}
        labels = set(args.get("labels") or filters.get("labels") or ())
        states = set(args.get("states") or filters.get("states") or ("OPEN", "CLOSED"))
        since = _time(filters.get("since"))
        listed = [now for i in self.e.incidents.of("github") if i.repo == rw.full_name
                  and (now := i.as_of(self.t)) is not None and labels <= {LABEL}
                  and ("CLOSED" if now.resolved_at else "OPEN") in states
                  and (since is None or now.updated_at >= since)]
        order = args.get("orderBy") or {"field": "CREATED_AT", "direction": "ASC"}
        attr = {"CREATED_AT": "created_at", "UPDATED_AT": "updated_at"}.get(order["field"], "created_at")
        listed.sort(key=lambda i: (getattr(i, attr), i.number), reverse=order["direction"] == "DESC")
        return connection(listed, lambda i: self.issue(rw, i), args, "issues")

    def issue(self, rw: RepoWorld, incident: Incident) -> Obj:
        ident = 9_000_000_000 + incident.number + rw.repo.id % 1000 * 100_000  # as the REST payload
        return {"__typename": "Issue", "id": node_id("Issue", incident.number), "fullDatabaseId": str(ident),
                "number": incident.number, "title": incident.title, "body": incident.body,
                "url": f"{self.p.web}/{rw.full_name}/issues/{incident.number}",
                "state": "CLOSED" if incident.resolved_at else "OPEN", "createdAt": iso(incident.created_at),
                "updatedAt": iso(incident.updated_at), "closedAt": iso(incident.resolved_at),
                "author": self.actor(incident.reporter),
                "labels": lambda **a: connection([LABEL], lambda name: {"__typename": "Label", "name": name},
                                                 a, "labels")}


def _pr_state(pr: PullRequest) -> str:
    return "MERGED" if pr.merged_at is not None else "CLOSED" if pr.state == "closed" else "OPEN"


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
