"""Commits of deployed SHAs that the default branch's history does not hold (release and hotfix branches).

Attribution follows reachability in the commit graph, so a deployment from a release branch must find its
branch's commits there; the default branch's history alone leaves such a SHA unknown, and the mapper would
fall back to a time window that credits it with changes it does not contain. For each such SHA this asks
GitHub once for the comparison with the default branch (`compare/{branch}...{sha}`): its commits ahead of
the branch, with parents, go into the graph, and the answer is remembered so the SHA is not asked again.
Fetches only; the pipeline says which SHAs are wanted and stores what this yields.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from github.GithubException import GithubException, UnknownObjectException
from github.Repository import Repository

from connectors.base import Cursors
from connectors.github import PER_PAGE, GitHubConnector, _commit_row, _payload
from models.records import Page, RawObject

log = logging.getLogger(__name__)

SOURCE = "github_deployed"


class DeployedCommits(GitHubConnector):
    """One comparison per unknown deployed SHA; scopes are the repos that have such SHAs."""

    source = SOURCE

    def __init__(self, wanted: Mapping[str, tuple[str, Sequence[str]]], **kwargs: Any) -> None:
        """`wanted` maps a repo to (its default branch, the SHAs to look up)."""
        super().__init__(sorted(wanted), **kwargs)
        self._wanted = dict(wanted)

    def prepare(self, cursors: Cursors) -> Iterator[Page]:
        """No `owner/*` patterns here: the pipeline names the repos."""
        return iter(())

    def scopes(self) -> list[str]:
        return sorted(self._wanted)

    def pages(self, scope: str, cursors: Cursors) -> Iterator[Page]:
        """A page per SHA: the commits it has beyond the default branch, and how it compares."""
        self._enlist()
        branch, shas = self._wanted[scope]
        url = f"{self._gh.requester.base_url}/repos/{scope}"
        # a lazy repo: the comparison is the only request per SHA
        repo = Repository(self._gh.requester, {}, {"url": url, "full_name": scope, "name": scope.split("/")[1],
                                                   "default_branch": branch}, completed=False)
        for sha in shas:
            self._current = f"compare {branch}...{sha[:12]} of {scope}"
            yield self._compare(repo, scope, branch, sha)

    def _compare(self, repo: Repository, scope: str, branch: str, sha: str) -> Page:
        page = Page(SOURCE, scope, "deployed")
        resolved: dict[str, Any] = {"repo": scope, "sha": sha, "resolved_at": dt.datetime.now(dt.UTC)}
        try:
            comparison = repo.compare(branch, sha, comparison_commits_per_page=PER_PAGE)
            status = comparison.status
            commits = list(comparison.commits) if status in ("ahead", "diverged") else []
            merge_base = comparison.merge_base_commit.sha
            ahead = comparison.ahead_by
        except (UnknownObjectException, GithubException) as exc:
            # 404 (or 422 "No commit found") when the SHA is gone, e.g. force-pushed away and collected:
            # the mapper then falls back to the time window for that deployment, flagged
            if isinstance(exc, GithubException) and exc.status not in (404, 422):
                raise
            log.warning("github %s: deployed SHA %s is unknown to GitHub (%s); its deployment keeps the "
                        "time-window attribution", scope, sha[:12], exc.status)
            page.add("deployed_shas", {**resolved, "status": "unknown"})
            return page
        for commit in commits:
            data = _payload(commit)
            row = _commit_row(scope, data)
            page.add("commits", row)
            for index, parent in enumerate(data.get("parents") or []):
                page.add("commit_parents", {"repo": scope, "sha": data["sha"], "parent_index": index,
                                            "parent_sha": parent["sha"]})
            page.raw.append(RawObject("commit", f"{scope}@{data['sha']}", data, scope))
        page.add("deployed_shas", {**resolved, "status": status, "ahead_by": ahead, "merge_base": merge_base})
        log.info("github %s: deployed SHA %s is %s of %s by %d commits", scope, sha[:12], status, branch, ahead)
        return page
