"""Resumable walks: the cursor of a newest-first listing also says where an unfinished walk goes on.

GitHub lists pull requests, deployments and history newest first, with no `since` filter for most of
them, so a walk can only move a stream's stop point once it has reached the old one. Until then each
stored page carries a checkpoint instead: the stop point of the last finished walk (`done`, the cursor
text as it was) and where this walk continues (`at`: a REST page number or a GraphQL end cursor) with
what it gathered so far. A run killed mid-walk then resumes at the page after the last stored one.

Items that change while a walk is paused move to the front of the listing: the rest of the walk sees
some items twice (stored idempotently) and the changed ones are picked up by the next walk, whose stop
point is the newest item of this one. Nothing is skipped.
"""

from __future__ import annotations

import json
from typing import Any

# the key that marks a cursor as a checkpoint of an unfinished walk
RESUME = "resume"


def open_walk(cursor: str | None, transport: str) -> tuple[str | None, dict[str, Any] | None]:
    """(the finished walk's cursor text, the unfinished walk's checkpoint or None) of a stored cursor.

    A checkpoint written by the other transport (REST page numbers mean nothing to GraphQL) is dropped:
    the walk restarts from the top and stops at the same old stop point, so nothing is lost.
    """
    if not cursor or not cursor.startswith("{"):
        return cursor, None
    state = json.loads(cursor)
    if not isinstance(state, dict) or RESUME not in state:
        return cursor, None
    resume = state[RESUME]
    done = state.get("done")
    if not isinstance(resume, dict) or resume.get("transport") != transport:
        return done, None
    return done, resume


def checkpoint(done: str | None, transport: str, at: Any, **gathered: Any) -> str:
    """The cursor of a page stored mid-walk: the old stop point, where to go on and what was gathered."""
    return json.dumps({"done": done, RESUME: {"transport": transport, "at": at, **gathered}}, sort_keys=True)
