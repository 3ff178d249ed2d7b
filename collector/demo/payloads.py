"""GitHub REST payloads for the Pet Clinic world, rendered from templates derived from recorded responses.

The templates in data/github/ are official GitHub examples and recorded api.github.com responses whose
values were replaced by `${name}` placeholders (see data/github/MANIFEST.md). A string that is exactly one
placeholder takes the context value as is (number, bool, null, object, list); other strings are
interpolated. Every URL is built on the simulator's base URL: PyGithub refuses URLs on another host:port.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import quote, urlsplit

from collector.demo.actions_world import Attempt, WorkflowJob, WorkflowRun
from collector.demo.incident_world import LABEL as INCIDENT_LABEL
from collector.demo.incident_world import Incident
from collector.demo.world import (
    DATA,
    Commit,
    Deployment,
    DeploymentStatus,
    PullRequest,
    RepoWorld,
    Review,
    World,
)

Json = dict[str, Any]
TEMPLATES = {
    "user": "openapi/user.json",
    "repository": "openapi/repository.json",
    "full_repository": "openapi/full_repository.json",
    "label": "openapi/label.json",
    "pull_request": "openapi/pull_request.json",
    "pull_request_simple": "openapi/pull_request_simple.json",
    "issue": "openapi/issue.json",
    "review": "openapi/review.json",
    "commit": "openapi/commit.json",
    "commit_list_item": "openapi/commit_list_item.json",
    "commit_parent": "openapi/commit_parent.json",
    "commit_file": "openapi/commit_file.json",
    "deployment": "openapi/deployment.json",
    "deployment_status": "openapi/deployment_status.json",
    "rate_limit": "openapi/rate_limit.json",
    "workflow_run": "openapi/workflow_run.json",
    "workflow_job": "openapi/workflow_job.json",
    "timeline_committed": "pygithub/timeline_committed.json",
    "timeline_reviewed": "pygithub/timeline_reviewed.json",
    "timeline_event": "pygithub/timeline_event.json",
    "timeline_review_requested": "pygithub/timeline_review_requested.json",
    "timeline_review_dismissed": "pygithub/timeline_review_dismissed.json",
    "error": "pygithub/error.json",
}
_WHOLE = re.compile(r"\$\{(\w+)\}")
_EVENT_NODE_TYPES = {"merged": "MergedEvent", "closed": "ClosedEvent", "reopened": "ReopenedEvent",
                     "ready_for_review": "ReadyForReviewEvent", "convert_to_draft": "ConvertToDraftEvent",
                     "review_requested": "ReviewRequestedEvent", "review_dismissed": "ReviewDismissedEvent"}
_NODE_TYPES = {"User": "User", "Bot": "Bot", "Organization": "Organization"}
_LABEL_COLOURS = {"dependencies": "0366d6", "java": "ffa221", "github_actions": "000000",
                  "incident": "b60205"}
_LABEL_DESCRIPTIONS = {"incident": "Something is broken in production"}



@cache
def template(name: str) -> Any:
    """The parsed template file (cached; never mutated)."""
    return json.loads((DATA / "github" / TEMPLATES[name]).read_text("utf-8"))


def render(tpl: Any, ctx: Mapping[str, Any]) -> Any:
    """Fill a template with context values (a missing name is a bug and raises KeyError)."""
    if isinstance(tpl, str):
        whole = _WHOLE.fullmatch(tpl)
        if whole:
            return ctx[whole.group(1)]
        return _WHOLE.sub(lambda m: str(ctx[m.group(1)]), tpl) if "${" in tpl else tpl
    if isinstance(tpl, dict):
        return {key: render(value, ctx) for key, value in tpl.items()}
    if isinstance(tpl, list):
        return [render(value, ctx) for value in tpl]
    return tpl


def iso(t: datetime | None) -> str | None:
    """GitHub's timestamp format: 2024-05-01T09:30:00Z."""
    return None if t is None else t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_id(kind: str, ident: object) -> str:
    """A legacy GitHub global node id ('04:User1' base64-encoded)."""
    return base64.b64encode(f"0{len(kind)}:{kind}{ident}".encode()).decode()


def derived_sha(*parts: object) -> str:
    """A stable fake sha for objects the world does not model (trees, blobs, test merge commits)."""
    return hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest()


class Payloads:
    """Builds GitHub JSON for world objects as seen at a given instant, every URL on `base_url`."""

    def __init__(self, world: World, base_url: str) -> None:
        self.world = world
        self.api = self.web = base_url.rstrip("/")
        self.host = urlsplit(self.api).netloc
        self._users: dict[str, Json] = {}
        self._repos: dict[tuple[str, datetime, bool], Json] = {}

    def _base(self, rw: RepoWorld) -> Json:
        return {"api": self.api, "web": self.web, "full_name": rw.repo.full_name}

    # -- accounts and repositories ---------------------------------------------------------------------
    def user(self, login: str | None) -> Json | None:
        """The simple-user object of an account (None for commits by unknown emails)."""
        if login is None:
            return None
        if login not in self._users:
            person = self.world.person(login)
            html = (f"{self.web}/apps/{login.removesuffix('[bot]')}" if person.type == "Bot"
                    else f"{self.web}/{login}")
            self._users[login] = render(template("user"), {
                "api": self.api, "login": login, "url_login": quote(login), "id": person.id,
                "node_id": node_id(_NODE_TYPES[person.type], person.id),
                "avatar_url": f"{self.web}/avatars/u/{person.id}?v=4", "html_url": html, "type": person.type,
                "site_admin": False})
        return self._users[login]

    def repository(self, rw: RepoWorld, t: datetime, *, full: bool = False) -> Json:
        """The repository (full for GET /repos/{o}/{r}, simple inside PRs); cached per instant."""
        key = (rw.repo.full_name, t, full)
        if key not in self._repos:
            self._repos[key] = self._repository(rw, t, full)
        return self._repos[key]

    def _repository(self, rw: RepoWorld, t: datetime, full: bool) -> Json:
        repo = rw.repo
        tip = rw.tip_at(t)
        pushed = tip.landed_at if tip else repo.created_at
        ctx = {**self._base(rw), "id": repo.id, "node_id": node_id("Repository", repo.id),
               "name": repo.full_name.split("/")[1], "owner": self.user(repo.full_name.split("/")[0]),
               "description": repo.description, "homepage": None, "stargazers": 40 + repo.id % 200,
               "size": 2000 + repo.id % 5000, "default_branch": repo.default_branch,
               "open_issues": sum(1 for pr in rw.pulls if (now := pr.as_of(t)) and now.state == "open"),
               "pushed_at": iso(pushed), "created_at": iso(repo.created_at), "updated_at": iso(pushed),
               "git_url": f"git://{self.host}/{repo.full_name}.git",
               "ssh_url": f"git@{self.host}:{repo.full_name}.git", "subscribers": 6 + repo.id % 7}
        return render(template("full_repository" if full else "repository"), ctx)

    # -- commits -----------------------------------------------------------------------------------------
    def parent(self, rw: RepoWorld, sha: str) -> Json:
        """A parent reference {sha, url, html_url}."""
        return render(template("commit_parent"), {**self._base(rw), "sha": sha})

    def _commit_ctx(self, rw: RepoWorld, commit: Commit) -> Json:
        signed = commit.committer_login == "web-flow"
        return {**self._base(rw), "sha": commit.sha,
                "node_id": node_id("Commit", f"{rw.repo.id}:{commit.sha}"),
                "author": self.user(commit.author_login), "committer": self.user(commit.committer_login),
                "parents": [self.parent(rw, sha) for sha in commit.parents],
                "author_name": commit.author_name, "author_email": commit.author_email,
                "authored_at": iso(commit.authored_at),
                "committer_name": commit.committer_name, "committer_email": commit.committer_email,
                "committed_at": iso(commit.committed_at), "message": commit.message,
                "tree_sha": derived_sha("tree", commit.sha), "verified": signed,
                "verification_reason": "valid" if signed else "unsigned"}

    def commit(self, rw: RepoWorld, commit: Commit, *, full: bool = False) -> Json:
        """A commit: list item, or with stats and files for GET /commits/{sha}."""
        ctx = self._commit_ctx(rw, commit)
        if not full:
            return render(template("commit_list_item"), ctx)
        share = max(1, len(commit.files))
        adds, dels = commit.additions, commit.deletions
        files = [render(template("commit_file"), {
            **self._base(rw), "sha": commit.sha, "filename": name, "additions": adds // share,
            "deletions": dels // share, "changes": (adds + dels) // share, "status": "modified",
            "blob_sha": derived_sha("blob", commit.sha, name)}) for name in commit.files]
        return render(template("commit"), {**ctx, "additions": adds, "deletions": dels, "total": adds + dels,
                                           "files": files})

    def comparison(self, rw: RepoWorld, base: Commit, head: Commit, merge_base: Commit, status: str,
                   ahead_by: int, behind_by: int, commits: list[Json]) -> Json:
        """A compare answer (commit-comparison schema): one page of commits, base and merge base in full."""
        basehead = f"{base.sha}...{head.sha}"
        web = f"{self.web}/{rw.repo.full_name}"
        return {"url": f"{self.api}/repos/{rw.repo.full_name}/compare/{basehead}",
                "html_url": f"{web}/compare/{basehead}",
                "permalink_url": f"{web}/compare/{rw.repo.full_name.split('/')[0]}:{basehead}",
                "diff_url": f"{web}/compare/{basehead}.diff", "patch_url": f"{web}/compare/{basehead}.patch",
                "base_commit": self.commit(rw, base), "merge_base_commit": self.commit(rw, merge_base),
                "status": status, "ahead_by": ahead_by, "behind_by": behind_by, "total_commits": ahead_by,
                "commits": commits, "files": []}

    # -- pull requests -----------------------------------------------------------------------------------
    def pull(self, rw: RepoWorld, pr: PullRequest, t: datetime, *, full: bool = False) -> Json:
        """A pull request as of t (`pr` is already `as_of(t)`): list item or full object."""
        merged = pr.merged_at is not None
        closed = pr.state == "closed"
        base_tip = rw.tip_at(pr.merged_at if merged else t)
        owner = rw.repo.full_name.split("/")[0]
        files = {f for c in pr.commits for f in c.files}
        ctx = {**self._base(rw), "id": pr.id, "node_id": node_id("PullRequest", pr.id), "number": pr.number,
               "state": pr.state, "title": pr.title, "user": self.user(pr.author_login), "body": pr.body,
               "labels": [self.label(rw, name) for name in pr.labels], "created_at": iso(pr.created_at),
               "updated_at": iso(pr.updated_at), "closed_at": iso(pr.closed_at),
               "merged_at": iso(pr.merged_at),
               "merge_commit_sha": pr.merge_commit_sha or derived_sha("test-merge", pr.id, pr.head_sha),
               "requested_reviewers": [self.user(login) for login in self.requested(pr)],
               "author_association": self.association(pr.author_login), "draft": pr.is_draft,
               "head_label": f"{owner}:{pr.head_ref}", "head_ref": pr.head_ref, "head_sha": pr.head_sha,
               "base_label": f"{owner}:{pr.base_ref}", "base_ref": pr.base_ref,
               "base_sha": base_tip.sha if base_tip else pr.commits[0].parents[0], "owner": self.user(owner),
               "repo": self.repository(rw, t), "merged": merged, "mergeable": None if closed else True,
               "mergeable_state": "unknown" if closed else ("draft" if pr.is_draft else "clean"),
               "merged_by": self.user(pr.merged_by), "commit_count": len(pr.commits),
               "additions": sum(c.additions for c in pr.commits),
               "deletions": sum(c.deletions for c in pr.commits), "changed_files": len(files)}
        return render(template("pull_request" if full else "pull_request_simple"), ctx)

    def issue(self, rw: RepoWorld, pr: PullRequest) -> Json:
        """The pull request seen through the issues API (PyGithub's `as_issue()` fetches it)."""
        closes = [e for e in pr.events if e.event == "closed"]
        return render(template("issue"), {
            **self._base(rw), "id": pr.id + 7_000_000_000, "node_id": node_id("PullRequest", pr.id),
            "number": pr.number, "state": pr.state, "title": pr.title, "body": pr.body,
            "user": self.user(pr.author_login), "labels": [self.label(rw, name) for name in pr.labels],
            "closed_at": iso(pr.closed_at), "created_at": iso(pr.created_at),
            "updated_at": iso(pr.updated_at),
            "closed_by": self.user(closes[-1].actor_login) if pr.state == "closed" and closes else None,
            "author_association": self.association(pr.author_login), "draft": pr.is_draft,
            "merged_at": iso(pr.merged_at)})

    def incident_issue(self, rw: RepoWorld, incident: Incident) -> Json:
        """An incident reported as a plain issue (the issue template without its pull request part)."""
        closed = incident.resolved_at is not None
        body = render(template("issue"), {
            **self._base(rw), "id": 9_000_000_000 + incident.number + rw.repo.id % 1000 * 100_000,
            "node_id": node_id("Issue", incident.number), "number": incident.number,
            "state": "closed" if closed else "open", "title": incident.title, "body": incident.body,
            "user": self.user(incident.reporter), "labels": [self.label(rw, INCIDENT_LABEL)],
            "closed_at": iso(incident.resolved_at), "created_at": iso(incident.created_at),
            "updated_at": iso(incident.updated_at),
            "closed_by": self.user(incident.reporter) if closed else None,
            "author_association": self.association(incident.reporter), "draft": False, "merged_at": None})
        del body["pull_request"], body["draft"]
        body["html_url"] = f"{self.web}/{rw.repo.full_name}/issues/{incident.number}"
        if closed:
            body["state_reason"] = "completed"
        return body

    def label(self, rw: RepoWorld, name: str) -> Json:
        """A label object."""
        ident = int(derived_sha("label", rw.repo.id, name)[:9], 16)
        description = _LABEL_DESCRIPTIONS.get(name, f"Pull requests that update {name}")
        return render(template("label"), {**self._base(rw), "id": ident, "node_id": node_id("Label", ident),
                                          "name": name, "description": description,
                                          "color": _LABEL_COLOURS.get(name, "ededed")})

    def association(self, login: str) -> str:
        """author_association: org members are MEMBER, bots NONE."""
        return "MEMBER" if self.world.person(login).type == "User" else "NONE"

    @staticmethod
    def requested(pr: PullRequest) -> list[str]:
        """Reviewers still requested: added by review_requested, removed once they submit a review."""
        pending: dict[str, None] = {}
        steps = [(e.created_at, 0, e.requested_reviewer) for e in pr.events if e.event == "review_requested"]
        steps += [(r.submitted_at, 1, r.user_login) for r in pr.reviews]
        for _, kind, login in sorted(steps, key=lambda s: (s[0], s[1])):
            if kind == 0 and login:
                pending[login] = None
            else:
                pending.pop(login or "", None)
        return list(pending)

    def review(self, rw: RepoWorld, pr: PullRequest, review: Review, t: datetime) -> Json:
        """A pull request review; DISMISSED once its dismissal happened by t."""
        return render(template("review"), {
            **self._base(rw), "id": review.id, "node_id": node_id("PullRequestReview", review.id),
            "user": self.user(review.user_login), "body": review.body, "state": review.state_at(t),
            "submitted_at": iso(review.submitted_at), "commit_id": review.commit_id, "number": pr.number,
            "author_association": self.association(review.user_login)})

    def timeline(self, rw: RepoWorld, pr: PullRequest, t: datetime) -> list[Json]:
        """The issue timeline of a PR: committed, reviewed and event items in chronological order."""
        items: list[tuple[datetime, int, Json]] = []
        for commit in pr.commits:
            ctx = self._commit_ctx(rw, commit)
            items.append((commit.committed_at, 0, render(template("timeline_committed"), ctx)))
        for review in pr.reviews:
            ctx = {**self._base(rw), "id": review.id, "node_id": node_id("PullRequestReview", review.id),
                   "user": self.user(review.user_login), "body": review.body, "commit_id": review.commit_id,
                   "submitted_at": iso(review.submitted_at), "state": review.state_at(t).lower(),
                   "number": pr.number, "author_association": self.association(review.user_login)}
            items.append((review.submitted_at, 1, render(template("timeline_reviewed"), ctx)))
        for event in pr.events:
            ctx = {**self._base(rw), "id": event.id,
                   "node_id": node_id(_EVENT_NODE_TYPES[event.event], event.id),
                   "actor": self.user(event.actor_login), "event": event.event,
                   "created_at": iso(event.created_at), "commit_id": None, "commit_url": None}
            if event.event == "review_requested":
                ctx.update(review_requester=ctx["actor"],
                           requested_reviewer=self.user(event.requested_reviewer))
                name = "timeline_review_requested"
            elif event.event == "review_dismissed":
                ctx.update(review_state=event.dismissed_review_state, review_id=event.dismissed_review_id,
                           commit_id=event.commit_id)
                name = "timeline_review_dismissed"
            else:
                if event.commit_id:
                    ctx.update(commit_id=event.commit_id,
                               commit_url=f"{self.api}/repos/{rw.repo.full_name}/commits/{event.commit_id}")
                name = "timeline_event"
            items.append((event.created_at, 2, render(template(name), ctx)))
        return [item for _, _, item in sorted(items, key=lambda i: (i[0], i[1]))]

    # -- deployments -------------------------------------------------------------------------------------
    def deployment(self, rw: RepoWorld, dep: Deployment) -> Json:
        """A deployment (`dep` is already `as_of` the clock, so updated_at is the latest visible status)."""
        return render(template("deployment"), {
            **self._base(rw), "id": dep.id, "node_id": node_id("Deployment", dep.id), "sha": dep.sha,
            "ref": dep.ref, "task": dep.task, "payload": {}, "environment": dep.environment,
            "description": dep.description,
            "creator": self.user(dep.creator_login), "created_at": iso(dep.created_at),
            "updated_at": iso(dep.updated_at), "production_environment": dep.environment == "production"})

    def deployment_status(self, rw: RepoWorld, dep: Deployment, status: DeploymentStatus) -> Json:
        """A deployment status, created by the CD workflow's bot."""
        return render(template("deployment_status"), {
            **self._base(rw), "id": status.id, "node_id": node_id("DeploymentStatus", status.id),
            "state": status.state, "creator": self.user("github-actions[bot]"),
            "description": status.description,
            "environment": dep.environment, "deployment_id": dep.id,
            "log_url": f"{self.web}/{rw.repo.full_name}/actions/runs/{dep.id}",
            "environment_url": f"{self.web}/{rw.repo.full_name}/deployments/{dep.environment}",
            "created_at": iso(status.created_at)})

    # -- GitHub Actions ----------------------------------------------------------------------------------
    def workflow_run(self, rw: RepoWorld, run: WorkflowRun, t: datetime) -> Json:
        """A workflow run (`run` is already `as_of(t)`): its latest attempt decides status and times."""
        attempt = run.latest
        commit = rw.commits.get(run.head_sha)
        first_line = commit.message.splitlines()[0] if commit else run.head_sha[:7]
        head_commit = None if commit is None else {
            "id": commit.sha, "tree_id": derived_sha("tree", commit.sha), "message": commit.message,
            "timestamp": iso(commit.committed_at),
            "author": {"name": commit.author_name, "email": commit.author_email},
            "committer": {"name": commit.committer_name, "email": commit.committer_email}}
        workflow_id = stable_workflow_id(rw, run.workflow)
        previous = (f"{self.api}/repos/{rw.full_name}/actions/runs/{run.id}/attempts/{attempt.number - 1}"
                    if attempt.number > 1 else None)
        actor = self.user(commit.author_login if commit and commit.author_login else "github-actions[bot]")
        return render(template("workflow_run"), {
            **self._base(rw), "id": run.id, "name": "Build", "node_id": node_id("WorkflowRun", run.id),
            "check_suite_id": run.id + attempt.number, "check_suite_node_id": node_id("CheckSuite", run.id),
            "head_branch": run.head_branch, "head_sha": run.head_sha,
            "path": f".github/workflows/{run.workflow}@{rw.repo.default_branch}", "run_number": run.run_number,
            "event": run.event, "display_title": first_line, "status": attempt.status,
            "conclusion": attempt.conclusion, "workflow_id": workflow_id, "created_at": iso(run.created_at),
            "updated_at": iso(attempt.updated_at), "actor": actor, "triggering_actor": actor,
            "run_attempt": attempt.number, "run_started_at": iso(attempt.started_at),
            "previous_attempt_url": previous, "head_commit": head_commit, "repo": self.repository(rw, t)})

    def workflow_job(self, rw: RepoWorld, run: WorkflowRun, attempt: Attempt, job: WorkflowJob) -> Json:
        """A job of one attempt; like GitHub, a queued job reports started_at = created_at."""
        step = {"name": "Run ./mvnw -B verify", "status": job.status,
                "conclusion": job.conclusion if job.completed_at else None, "number": 1,
                "started_at": iso(job.started_at), "completed_at": iso(job.completed_at)}
        runner = job.id % 20 + 1 if job.started_at else None
        return render(template("workflow_job"), {
            **self._base(rw), "id": job.id, "run_id": run.id, "run_attempt": attempt.number,
            "node_id": node_id("CheckRun", job.id), "head_sha": run.head_sha, "status": job.status,
            "conclusion": job.conclusion if job.completed_at else None, "created_at": iso(job.created_at),
            "started_at": iso(job.started_at or job.created_at), "completed_at": iso(job.completed_at),
            "name": job.name, "steps": [step] if job.started_at else [], "runner_id": runner,
            "runner_name": f"GitHub Actions {runner}" if runner else None,
            "runner_group_id": 1 if runner else None, "runner_group_name": "GitHub Actions" if runner else None,
            "workflow_name": "Build", "head_branch": run.head_branch})

    # -- service objects ---------------------------------------------------------------------------------
    @staticmethod
    def rate_limit(limit: int, remaining: int, reset: int) -> Json:
        """GET /rate_limit with the core bucket as the server counts it."""
        core = {"limit": limit, "used": limit - remaining, "remaining": remaining, "reset": reset}
        return render(template("rate_limit"), {"core": core, "reset": reset})

    @staticmethod
    def error(status: int, message: str, documentation_url: str = "https://docs.github.com/rest") -> Json:
        """GitHub's error body."""
        return render(template("error"), {"message": message, "documentation_url": documentation_url,
                                          "status": str(status)})


def stable_workflow_id(rw: RepoWorld, workflow: str) -> int:
    """The numeric id of a repo's workflow file."""
    return int(derived_sha("workflow", rw.repo.id, workflow)[:7], 16)
