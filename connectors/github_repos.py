"""GitHub repo lists: conditional REST reads (ETags) and `owner/glob` patterns expanded to an owner's repos.

`conditional_get` is the If-None-Match request PyGithub's lists lack (a 304 through a PaginatedList silently
reads as an empty list); `owner_repos` lists an organisation's (or user's) repos with it, so polling an
unchanged owner costs no quota; `expand` turns configured names and patterns into the repos to collect.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import quote

from github import Github
from github.GithubException import UnknownObjectException
from github.Requester import Requester

log = logging.getLogger(__name__)

NOT_MODIFIED = 304
PER_PAGE = 100
GLOB_CHARS = frozenset("*?[]")
# The user fallback answered last time: remembered inside the (opaque) etag so the next poll skips the
# org request, which would 404 and cost a request every time for a user-owned owner.
_USER_MARK = "users:"
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')

Listing = list[tuple[str, bool]]


class OwnerNotFoundError(LookupError):
    """No organisation and no user of that login (both repo lists answered 404)."""


def conditional_get(requester: Requester, url: str, params: dict[str, Any] | None,
                    etag: str | None) -> tuple[int, dict[str, Any], Any]:
    """GET with If-None-Match: (304, headers, None) when unchanged, else (status, headers, JSON body).

    Errors raise PyGithub's exceptions (UnknownObjectException for a 404, ...), as requestJsonAndCheck does;
    header names come back lower-case. A 304 does not count against GitHub's rate limit.
    """
    headers = {"If-None-Match": etag} if etag else None
    status, answer_headers, output = requester.requestJson("GET", url, parameters=params, headers=headers)
    if status == NOT_MODIFIED:
        return status, answer_headers, None
    body = json.loads(output) if output else None
    if status >= 400:
        raise requester.createException(status, answer_headers, body)
    return status, answer_headers, body


def next_link(headers: dict[str, Any]) -> str | None:
    """The rel="next" URL of GitHub's Link header (None on the last page)."""
    found = _NEXT.search(headers.get("link") or "")
    return found.group(1) if found else None


def rest_items(requester: Requester, headers: dict[str, Any], body: Any, envelope: str | None = None) -> Iterator[Any]:
    """The items of a first page already read, then of every further page (fetched plainly, via Link)."""
    while True:
        # Actions lists wrap their items: {"total_count": n, "workflow_runs": [...]}
        items = (body or {}).get(envelope) if envelope else body
        yield from items or []
        url = next_link(headers)
        if url is None:
            return
        headers, body = requester.requestJsonAndCheck("GET", url)


def owner_repos(gh: Github, owner: str, etag: str | None) -> tuple[Listing | None, str | None]:
    """Every repo of an organisation (else of a user) as (full_name, archived); (None, etag) when unchanged.

    The org list (`type=all`, so private, forked and member repos too) is tried first; a 404 there means a
    user account, whose own repos come from /users/{owner}/repos. Only the first page is conditional: any
    change to the set of repos shows on it (sorted by creation) or in its ETag. Raises OwnerNotFoundError.
    """
    requester = gh.requester
    user = bool(etag and etag.startswith(_USER_MARK))
    tag = etag.removeprefix(_USER_MARK) if etag else None
    name = quote(owner, safe="")
    if not user:
        try:
            status, headers, body = conditional_get(requester, f"/orgs/{name}/repos",
                                                    {"type": "all", "per_page": PER_PAGE}, tag)
        except UnknownObjectException:
            user, tag = True, None  # not an organisation: the etag (if any) was not the user list's
        else:
            if status == NOT_MODIFIED:
                return None, etag
            return _listing(requester, headers, body), headers.get("etag")
    try:
        status, headers, body = conditional_get(requester, f"/users/{name}/repos",
                                                {"type": "owner", "per_page": PER_PAGE}, tag)
    except UnknownObjectException:
        raise OwnerNotFoundError(f"GitHub has no organisation or user {owner!r} (404 on /orgs/{owner}/repos "
                                 f"and /users/{owner}/repos); check the owner of the repo pattern") from None
    if status == NOT_MODIFIED:
        return None, etag
    new_tag = headers.get("etag")
    return _listing(requester, headers, body), _USER_MARK + new_tag if new_tag else None


def _listing(requester: Requester, headers: dict[str, Any], body: Any) -> Listing:
    """(full_name, archived) of every repo item on this page and the following ones."""
    return [(str(item["full_name"]), bool(item.get("archived"))) for item in rest_items(requester, headers, body)]


def is_pattern(name: str) -> bool:
    """Whether a configured repo is an `owner/glob` pattern (* ? [ ] in the name part)."""
    owner, sep, repo = name.partition("/")
    return bool(sep) and bool(owner) and any(char in GLOB_CHARS for char in repo)


def expand(patterns: Sequence[str], listing: Callable[[str], Listing]) -> list[str]:
    """Configured names and patterns as repo names: patterns become the owner's non-archived matches.

    Plain names stay as given (archived or not: naming one is deliberate). Matching ignores case, like GitHub's
    names; the result keeps configuration order, a pattern's matches in listing order, each repo once.
    """
    result: list[str] = []
    seen: set[str] = set()
    listed: dict[str, Listing] = {}

    def add(full_name: str) -> None:
        if full_name.lower() not in seen:
            seen.add(full_name.lower())
            result.append(full_name)

    for entry in patterns:
        if not is_pattern(entry):
            if any(char in GLOB_CHARS for char in entry.partition("/")[0]):
                raise ValueError(f"repo pattern {entry!r}: only the name part may hold * ? [ ]")
            add(entry)
            continue
        owner, _, glob = entry.partition("/")
        if owner.lower() not in listed:
            listed[owner.lower()] = listing(owner)
        matches = [full_name for full_name, archived in listed[owner.lower()]
                   if not archived and full_name.partition("/")[0].lower() == owner.lower()
                   and fnmatch.fnmatchcase(full_name.partition("/")[2].lower(), glob.lower())]
        if not matches:
            log.warning("github: repo pattern %s matches no (unarchived) repo of %s", entry, owner)
        for full_name in matches:
            add(full_name)
    return result


class OwnerListings:
    """A listing for `expand` that polls each owner with its stored ETag and keeps the last answer.

    Its state (`to_json`/`from_json`) is meant for a sync cursor: an unchanged owner then costs one 304.
    """

    def __init__(self, gh: Github, state: str | None = None) -> None:
        self.gh = gh
        loaded = json.loads(state) if state else {}
        self.owners: dict[str, tuple[str | None, Listing]] = {
            owner: (etag, [(str(n), bool(a)) for n, a in repos]) for owner, (etag, repos) in loaded.items()}

    def __call__(self, owner: str) -> Listing:
        """The owner's repos: the stored list when GitHub answers 304, else the fresh one (then stored)."""
        key = owner.lower()
        etag, known = self.owners.get(key, (None, []))
        repos, new_etag = owner_repos(self.gh, owner, etag if key in self.owners else None)
        if repos is None:
            return known
        self.owners[key] = (new_etag, repos)
        return repos

    def to_json(self) -> str:
        """The ETags and lists, to store and pass back as `state` next time."""
        return json.dumps({owner: [etag, repos] for owner, (etag, repos) in sorted(self.owners.items())})
