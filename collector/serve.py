"""`vsm serve`: a read-only local web app over the database (or its published snapshot beside a writer).

Each page is one figure record from collector.present, answered as HTML (collector.render.web) or as its
JSON (`Accept: application/json` or a `.json` suffix). Filters live in the URL so a link can be shared.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, jsonify, redirect, request

from collector.present import views
from collector.present.explain import UnknownChange, change, slowest_change, stage_changes
from collector.present.health import health_view
from collector.present.records import fields_json
from collector.present.trends import trends
from collector.present.value_stream import value_stream
from collector.present.weekly import TREND_WEEKS
from collector.present.weeks import day_bounds, last_complete_week, parse_day, week_bounds
from collector.render.web.pages import change_page, error_page, health_page, map_page, stage_page, trends_page
from collector.store import StoreError, open_for_reading

log = logging.getLogger(__name__)

FILTER_KEYS = ("repo", "from", "to")
TOKEN_COOKIE = "vsm_token"
# The pages: URL, endpoint, the filters it takes, and what the 404 lists.
PAGES: dict[str, tuple[str, ...]] = {"/map": FILTER_KEYS, "/stage": ("stage", *FILTER_KEYS), "/change": ("id",),
                                     "/trends": ("repo", "to"), "/health": FILTER_KEYS}


def now() -> dt.datetime:
    """The current UTC time (the Trends page's default last week)."""
    return dt.datetime.now(dt.UTC)


class BadRequest(ValueError):
    """A parameter the page cannot answer; str() is the one line shown with the 400."""


class NotFound(LookupError):
    """The page's subject (a change) is not in the database; str() is the one line shown with the 404."""


@dataclass(frozen=True)
class ChangeRecord:
    """A change's explanation as the JSON the Change page answers (models' dataclass has no to_json)."""

    explanation: Any

    def to_json(self) -> dict[str, Any]:
        """The explanation's fields as JSON-ready data."""
        return fields_json(self.explanation)


@dataclass(frozen=True)
class Filters:
    """The validated URL filters: one repo (None: all) and a half-open UTC day range (None: open)."""

    repo: str | None
    start: Any
    end: Any
    given: Mapping[str, str]

    @property
    def query(self) -> str:
        """The filters as a query string to carry across links ('' when none)."""
        return "?" + urlencode(self.given) if self.given else ""


def parse_filters(args: Mapping[str, str], known_repos: tuple[str, ...],
                  allowed: tuple[str, ...] = FILTER_KEYS) -> Filters:
    """Check repo against the collected repos and from/to as dates; BadRequest names what is wrong."""
    unknown = sorted(set(args) - set(allowed) - {"token"})
    if unknown:
        raise BadRequest(f"unknown parameter {unknown[0]!r} (this page takes {', '.join(allowed)})")
    given = {k: args[k].strip() for k in allowed if args.get(k, "").strip() and k != "token"}
    repo = given.get("repo")
    if repo is not None and repo not in known_repos:
        raise BadRequest(f"unknown repo {repo!r} (collected: {', '.join(known_repos) or 'none'})")
    try:
        first = parse_day(given["from"]) if "from" in given else None
        last = parse_day(given["to"]) if "to" in given else None
        start = end = None
        if first or last:
            start, end = day_bounds(first or parse_day("1970-01-01"), last or parse_day("9999-12-30"))
            start, end = (start if first else None), (end if last else None)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return Filters(repo, start, end, given)


def _wants_json(suffix: str) -> bool:
    """JSON when the URL ends in .json or the client prefers application/json over HTML."""
    if suffix == ".json":
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def create_app(db_path: Path, wait_s: float = 2.0, clock: Callable[[], dt.datetime] = now,
               token: str | None = None) -> Flask:
    """The Flask app over db_path, opened read-only (or its snapshot) for each request; clock gives now.

    With a token, every request must carry it: ?token= (then kept in a cookie, so the page's links work),
    the cookie, or an `Authorization: Bearer` header.
    """
    app = Flask("vsm")

    def answer_error(status: int, message: str, as_json: bool) -> Response:
        if as_json:
            reply = jsonify(error=message, status=status)
        else:
            reply = Response(error_page(status, message), mimetype="text/html")
        reply.status_code = status
        return reply

    @app.before_request
    def check_token() -> Response | None:
        if token is None:
            return None
        offered = (request.args.get("token") or request.cookies.get(TOKEN_COOKIE)
                   or request.headers.get("Authorization", "").removeprefix("Bearer "))
        if offered and hmac.compare_digest(offered.encode(), token.encode()):
            return None
        return answer_error(401, "this vsm serve needs its shared-link token: add ?token=... to the URL",
                            request.path.endswith(".json")
                            or request.accept_mimetypes.best == "application/json")

    @app.after_request
    def keep_token(reply: Response) -> Response:
        if token is not None and request.args.get("token") == token:
            reply.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
        return reply

    def page(render: Callable[[Any, Filters], tuple[Any, str]],
             allowed: tuple[str, ...]) -> Callable[[str], Response]:
        def view(suffix: str = "") -> Response:
            as_json = _wants_json(suffix)
            try:
                store, _ = open_for_reading(db_path, wait_s=wait_s)
            except StoreError as exc:
                return answer_error(503, str(exc), as_json)
            with store:
                try:
                    filters = parse_filters(request.args, views.repos(store.con), allowed)
                    record, html = render(store.con, filters)
                except BadRequest as exc:
                    return answer_error(400, str(exc), as_json)
                except NotFound as exc:
                    return answer_error(404, str(exc), as_json)
                except views.NotMapped as exc:
                    return answer_error(503, str(exc), as_json)
            if as_json:
                return jsonify(record.to_json())
            return Response(html, mimetype="text/html")
        return view

    def the_map(con: Any, filters: Filters) -> tuple[Any, str]:
        vs = value_stream(con, filters.start, filters.end, filters.repo)
        return vs, map_page(vs, views.repos(con), filters.given, filters.query)

    def the_stage(con: Any, filters: Filters) -> tuple[Any, str]:
        known = views.stages(con)
        stage = filters.given.get("stage")
        if stage not in known:
            raise BadRequest(f"{'unknown stage ' + repr(stage) if stage else 'no stage given'} "
                             f"(stages: {', '.join(known) or 'none mapped'})")
        record = stage_changes(con, stage, filters.start, filters.end, filters.repo)
        rest = {k: v for k, v in filters.given.items() if k != "stage"}
        return record, stage_page(record, views.repos(con), rest, filters.query)

    def the_change(con: Any, filters: Filters) -> tuple[Any, str]:
        change_id = filters.given.get("id")
        if change_id is None:  # no id: the slowest change, the first one worth explaining
            slowest = slowest_change(con)
            if slowest is None:
                raise views.NotMapped("the database holds no changes yet: run `vsm collect` first")
            change_id = slowest[0]
        try:
            record = change(con, change_id)
        except UnknownChange:
            raise NotFound(f"{change_id} is not a merged pull request in the database "
                           "(ids look like owner/repo#123)") from None
        return ChangeRecord(record), change_page(record)

    def the_trends(con: Any, filters: Filters) -> tuple[Any, str]:
        # the weeks end with the one holding `to` (UTC day), else the last complete week
        last = (filters.end - dt.timedelta(days=1)).date() if filters.end else last_complete_week(clock())
        record = trends(con, last, TREND_WEEKS, filters.repo)
        return record, trends_page(record, views.repos(con), filters.given, filters.query)

    def the_health(con: Any, filters: Filters) -> tuple[Any, str]:
        # an open end is now; an open start (or none given) is the last complete week's Monday
        moment = clock()
        start, end = week_bounds(last_complete_week(moment))
        start = filters.start or (start if filters.end is None else filters.end - dt.timedelta(days=7))
        record = health_view(con, start, filters.end or end, filters.repo, moment)
        return record, health_page(record, views.repos(con), filters.given, filters.query)

    renderers = {"/map": the_map, "/stage": the_stage, "/change": the_change, "/trends": the_trends,
                 "/health": the_health}
    app.add_url_rule("/", "home", lambda: redirect("/map"))
    for path, allowed in PAGES.items():
        view = page(renderers[path], allowed)
        app.add_url_rule(path, path.strip("/"), view)
        app.add_url_rule(f"{path}<any('.json'):suffix>", f"{path.strip('/')}_json", view)

    @app.errorhandler(404)
    def not_found(_: Exception) -> Response:
        return answer_error(404, f"no page at {request.path} (pages: {', '.join(PAGES)})", request.path.endswith(".json"))

    return app


def serve(db_path: Path, host: str, port: int, token: str | None = None) -> None:
    """Serve the app with waitress until interrupted; refuses at once when there is no database."""
    from waitress import serve as waitress_serve

    if not db_path.exists():
        raise StoreError(f"no database at {db_path}: run `vsm collect` (or `vsm demo`) first")
    if host not in ("127.0.0.1", "localhost", "::1") and token is None:
        log.warning("vsm serve binds %s without [serve] token_env: anyone who can reach it reads the figures",
                    host)
    log.info("vsm serve: http://%s:%d/map (read-only over %s)", host, port, db_path)
    waitress_serve(create_app(db_path, token=token), host=host, port=port, threads=4, _quiet=True)
