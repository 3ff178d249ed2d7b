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

from flask import Flask, Response, current_app, jsonify, redirect, request

from collector.present import views
from collector.present.explain import UnknownChange, change, slowest_change, stage_changes
from collector.present.health import STALE_AFTER_S, health_view
from collector.present.records import as_json
from collector.present.trends import trends
from collector.present.value_stream import value_stream
from collector.present.weekly import TREND_WEEKS
from collector.present.weeks import day_bounds, last_complete_week, parse_day, week_bounds
from collector.render.web.pages import change_page, error_page, health_page, map_page, stage_page, trends_page
from collector.store import StoreError, open_for_reading

log = logging.getLogger(__name__)

FILTER_KEYS = ("repo", "from", "to")
TOKEN_COOKIE = "vsm_token"
Clock = Callable[[], dt.datetime]


def now() -> dt.datetime:
    """The current UTC time (the default last week of the Trends and Health pages)."""
    return dt.datetime.now(dt.UTC)


class BadRequest(ValueError):
    """A parameter the page cannot answer; str() is the one line shown with the 400."""


class NotFound(LookupError):
    """The page's subject (a change) is not in the database; str() is the one line shown with the 404."""


@dataclass(frozen=True)
class Filters:
    """The validated URL parameters: one repo (None: all), a half-open UTC day range (None: open), the
    collected repos the form offers, and the parameters as given (to carry across links)."""

    repo: str | None
    start: dt.datetime | None
    end: dt.datetime | None
    repos: tuple[str, ...]
    given: Mapping[str, str]

    @property
    def query(self) -> str:
        """The given parameters as a query string ('' when none)."""
        return "?" + urlencode(self.given) if self.given else ""


def parse_filters(args: Mapping[str, str], known_repos: tuple[str, ...],
                  allowed: tuple[str, ...] = FILTER_KEYS) -> Filters:
    """Check repo against the collected repos and from/to as dates; BadRequest names what is wrong."""
    unknown = sorted(set(args) - set(allowed) - {"token"})
    if unknown:
        raise BadRequest(f"unknown parameter {unknown[0]!r} (this page takes {', '.join(allowed)})")
    given = {k: args[k].strip() for k in allowed if args.get(k, "").strip()}
    repo = given.get("repo")
    if repo is not None and repo not in known_repos:
        raise BadRequest(f"unknown repo {repo!r} (collected: {', '.join(known_repos) or 'none'})")
    try:
        first = parse_day(given["from"]) if "from" in given else None
        last = parse_day(given["to"]) if "to" in given else None
        bounds = day_bounds(first or last, last or first) if first or last else (None, None)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return Filters(repo, bounds[0] if first else None, bounds[1] if last else None, known_repos, given)


def _map(con: Any, filters: Filters, clock: Clock) -> Any:
    """The value stream of the period and repo."""
    return value_stream(con, filters.start, filters.end, filters.repo)


def _stage(con: Any, filters: Filters, clock: Clock) -> Any:
    """One stage's changes over the period and repo; the stage must be one the mapper produced."""
    known, stage = views.stages(con), filters.given.get("stage")
    if stage not in known:
        raise BadRequest(f"{'unknown stage ' + repr(stage) if stage else 'no stage given'} "
                         f"(stages: {', '.join(known) or 'none mapped'})")
    return stage_changes(con, stage, filters.start, filters.end, filters.repo)


def _change(con: Any, filters: Filters, clock: Clock) -> Any:
    """One change's explanation; without an id the slowest change, the first one worth explaining."""
    change_id = filters.given.get("id")
    if change_id is None:
        slowest = slowest_change(con)
        if slowest is None:
            raise views.NotMapped("the database holds no changes yet: run `vsm collect` first")
        change_id = slowest[0]
    try:
        return change(con, change_id)
    except UnknownChange:
        raise NotFound(f"{change_id} is not a merged pull request in the database "
                       "(ids look like owner/repo#123)") from None


def _trends(con: Any, filters: Filters, clock: Clock) -> Any:
    """The weeks ending with the one holding `to` (a UTC day), else with the last complete week."""
    last = (filters.end - dt.timedelta(days=1)).date() if filters.end else last_complete_week(clock())
    return trends(con, last, TREND_WEEKS, filters.repo)


def _health(con: Any, filters: Filters, clock: Clock) -> Any:
    """Data health over the range: by default the last complete week; an open end is now, an open start
    seven days before the end."""
    moment = clock()
    if filters.start is None and filters.end is None:
        start, end = week_bounds(last_complete_week(moment))
    else:
        end = filters.end or moment
        start = filters.start or end - dt.timedelta(days=7)
    return health_view(con, start, end, filters.repo, moment, current_app.config["VSM_STALE_AFTER_S"])


@dataclass(frozen=True)
class Page:
    """One page: the parameters it takes, the figures it answers (its JSON), and how they are drawn."""

    params: tuple[str, ...]
    figures: Callable[[Any, Filters, Clock], Any]
    draw: Callable[[Any, Filters], str]


PAGES: dict[str, Page] = {
    "/map": Page(FILTER_KEYS, _map, lambda r, f: map_page(r, f.repos, f.given, f.query)),
    "/stage": Page(("stage", *FILTER_KEYS), _stage, lambda r, f: stage_page(
        r, f.repos, {k: v for k, v in f.given.items() if k != "stage"}, f.query)),
    "/change": Page(("id",), _change, lambda r, f: change_page(r)),
    "/trends": Page(("repo", "to"), _trends, lambda r, f: trends_page(r, f.repos, f.given, f.query)),
    "/health": Page(FILTER_KEYS, _health, lambda r, f: health_page(r, f.repos, f.given, f.query)),
}


def _wants_json() -> bool:
    """JSON when the URL ends in .json or the client prefers application/json over HTML."""
    if request.path.endswith(".json"):
        return True
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"


def _error(status: int, message: str) -> Response:
    """A 4xx/5xx answer with its one-line reason, as JSON or as a page like the request's."""
    if _wants_json():
        reply = jsonify(error=message, status=status)
    else:
        reply = Response(error_page(status, message), mimetype="text/html")
    reply.status_code = status
    return reply


def create_app(db_path: Path, wait_s: float = 2.0, clock: Clock = now, token: str | None = None,
               stale_after_s: float = STALE_AFTER_S) -> Flask:
    """The Flask app over db_path, opened read-only (or its snapshot) for each request; clock gives now.

    With a token, every request must carry it: ?token= (then kept in a cookie, so the page's links work),
    the cookie, or an `Authorization: Bearer` header. stale_after_s is [schedule] stale_after (Health).
    """
    app = Flask("vsm")
    app.config["VSM_STALE_AFTER_S"] = stale_after_s

    @app.before_request
    def check_token() -> Response | None:
        if token is None:
            return None
        offered = (request.args.get("token") or request.cookies.get(TOKEN_COOKIE)
                   or request.headers.get("Authorization", "").removeprefix("Bearer "))
        if offered and hmac.compare_digest(offered.encode(), token.encode()):
            return None
        return _error(401, "this vsm serve needs its shared-link token: add ?token=... to the URL")

    @app.after_request
    def keep_token(reply: Response) -> Response:
        if token is not None and request.args.get("token") == token:
            reply.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
        return reply

    def view(page: Page) -> Callable[..., Response]:
        def answer(suffix: str = "") -> Response:
            try:
                store, _ = open_for_reading(db_path, wait_s=wait_s)
            except StoreError as exc:
                return _error(503, str(exc))
            with store:
                try:
                    filters = parse_filters(request.args, views.repos(store.con), page.params)
                    record = page.figures(store.con, filters, clock)
                except BadRequest as exc:
                    return _error(400, str(exc))
                except NotFound as exc:
                    return _error(404, str(exc))
                except views.NotMapped as exc:
                    return _error(503, str(exc))
            if _wants_json():
                return jsonify(as_json(record))
            return Response(page.draw(record, filters), mimetype="text/html")
        return answer

    app.add_url_rule("/", "home", lambda: redirect("/map"))
    for path, page in PAGES.items():
        name = path.strip("/")
        app.add_url_rule(path, name, view(page))
        app.add_url_rule(f"{path}<any('.json'):suffix>", f"{name}_json", view(page))

    @app.errorhandler(404)
    def not_found(_: Exception) -> Response:
        return _error(404, f"no page at {request.path} (pages: {', '.join(PAGES)})")

    return app


def serve(db_path: Path, host: str, port: int, token: str | None = None,
          stale_after_s: float = STALE_AFTER_S) -> None:
    """Serve the app with waitress until interrupted; refuses at once when there is no database."""
    from waitress import serve as waitress_serve

    if not db_path.exists():
        raise StoreError(f"no database at {db_path}: run `vsm collect` (or `vsm demo`) first")
    if host not in ("127.0.0.1", "localhost", "::1") and token is None:
        log.warning("vsm serve binds %s without [serve] token_env: anyone who can reach it reads the figures",
                    host)
    log.info("vsm serve: http://%s:%d/map (read-only over %s)", host, port, db_path)
    waitress_serve(create_app(db_path, token=token, stale_after_s=stale_after_s), host=host, port=port, threads=4,
                   _quiet=True)
