"""Several scopes (repos) of one source fetched at once by a small pool of threads, while the calling
thread alone writes their pages: DuckDB has one writer, and each page still commits with its cursor.

Workers only talk HTTP (the connector's `pages`) and hand each page over a bounded queue, so a slow writer
holds them back instead of filling memory. A failing scope ends with its error; the others go on.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from collector.progress import Progress
from collector.scope_retry import (
    MAX_RESTARTS,
    SCOPE_RESTARTS,
    CursorBook,
    advances,
    is_passing,
    restart_pause,
)
from collector.store import Store
from connectors.base import Connector, Cursors
from connectors.scrub import scrub
from models.records import Page

log = logging.getLogger(__name__)

# pages waiting for the writer, in all: fetching is the slow side, and every waiting page is work a kill
# throws away (one worker left alone at the end must not hold several)
WAITING_PAGES = 1


@dataclass
class _Done:
    """A worker finished one scope (error is the one-line cause when it failed)."""

    scope: str
    error: str | None = None


@dataclass
class _Failed:
    """A worker's scope failed for a reason that may pass: the writer decides whether it starts again."""

    scope: str
    error: str


def collect_concurrently(connector: Connector, scopes: Iterable[str], book: CursorBook, store: Store,
                         workers: int, on_written: Callable[[str, Page, int], None],
                         stop: threading.Event | None = None) -> dict[str, str | None]:
    """Fetch every scope with up to `workers` threads, store each page on this thread as it arrives.

    A scope failing for a passing reason is started again from the cursors of its stored pages once the
    writer has stored every page it fetched before failing (collector/scope_retry.py).
    Returns each scope's outcome: None when it completed, else its error line (or why it stopped).
    """
    pending = list(scopes)
    handoff: queue.Queue[tuple[str, Page] | _Done | _Failed] = queue.Queue(maxsize=WAITING_PAGES)
    halt = threading.Event()  # set when the caller asks to stop: workers end after the page in hand

    def put(item: tuple[str, Page] | _Done | _Failed) -> bool:
        while not halt.is_set():
            try:
                handoff.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def fetch(scope: str, cursors: Cursors, pause: float = 0.0) -> None:
        if halt.wait(pause) or halt.is_set():
            return
        try:
            for page in connector.pages(scope, cursors):
                if not put((scope, page)):
                    return
            put(_Done(scope))
        except Exception as exc:  # noqa: BLE001 - one failing scope must not stop the others
            error = scrub(connector.describe_error(exc))
            put(_Failed(scope, error) if is_passing(exc) else _Done(scope, error))

    outcome: dict[str, str | None] = {}
    in_a_row: dict[str, int] = {}
    began: dict[str, dict[tuple[str, str], str]] = {}  # the cursors each restarted scope began from
    restarts: dict[str, int] = {}
    progress = Progress(f"{connector.source}")
    rows = 0
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=f"{connector.source}-fetch") as pool:
        for scope in pending:
            pool.submit(fetch, scope, book.snapshot())
        try:
            while len(outcome) < len(pending):
                item = handoff.get()
                if isinstance(item, _Failed):
                    # every page the worker fetched before failing is stored by now (the queue keeps order)
                    again, total = in_a_row.get(item.scope, 0) + 1, restarts.get(item.scope, 0) + 1
                    if again > SCOPE_RESTARTS or total > MAX_RESTARTS:
                        outcome[item.scope] = item.error
                        continue
                    in_a_row[item.scope], restarts[item.scope] = again, total
                    log.warning("%s %s: %s; starting it again from its last stored page (restart %d of %d)",
                                connector.source, item.scope, item.error, again, SCOPE_RESTARTS)
                    began[item.scope] = book.snapshot()
                    pool.submit(fetch, item.scope, began[item.scope], restart_pause(again))
                    continue
                if isinstance(item, _Done):
                    outcome[item.scope] = item.error
                    if item.error is None:
                        log.info("%s %s: done (%d requests so far)", connector.source, item.scope,
                                 connector.requests_made)
                    continue
                scope, page = item
                written = store.write_page(page)
                book.written(page)
                if scope in began and advances(page, began[scope]):
                    in_a_row[scope] = 0
                    del began[scope]
                rows += written
                on_written(scope, page, written)
                progress.update(f"{len(outcome)}/{len(pending)} done, {rows} rows, "
                                f"{connector.requests_made} requests")
                if stop is not None and stop.is_set():
                    halt.set()
                    break
        finally:  # finished, stopped or failing: no worker starts or hands over anything more
            halt.set()
            progress.close()
        _drain(handoff)
    for scope in pending:
        outcome.setdefault(scope, "stopped after a stored page; the next run resumes")
    return outcome


def _drain(handoff: queue.Queue[Any]) -> None:
    """Throw away what workers fetched after the stop: it was never stored, so the cursors re-fetch it."""
    while True:
        try:
            handoff.get_nowait()
        except queue.Empty:
            return
