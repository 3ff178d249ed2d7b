"""A simulated Jenkins: a threaded HTTP server on 127.0.0.1 answering the JSON API for a JenkinsWorld.

It answers what python-jenkins and the connector ask for (root, crumb issuer, folders, multibranch projects,
jobs, builds, `wfapi/describe`, the queue), applies the `tree` parameter (nested fields, `{M,N}` ranges,
fields hidden unless named) and shows only what existed at `clock`: a build running at the clock is
`building` with no result. Payload shapes come from the recorded responses in data/jenkins (MANIFEST.md).
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import re
import time
from datetime import datetime
from functools import cache
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from collector.demo.jenkins_tree import Hidden, Nested, TreeError, parse_tree, pick, visible
from collector.demo.jenkins_world import FOLDER, PIPELINE, Build, Folder, JenkinsWorld, Job, ms
from collector.demo.served import Fault, ServedSimulator
from collector.demo.world import DATA

logger = logging.getLogger(__name__)

# Recorded payloads whose keys (order and constant values) shape each answer: (file, path to the element).
TEMPLATES: dict[str, tuple[str, tuple[str | int, ...]]] = {
    "root": ("api4jenkins/jenkins/jenkins.json", ()),
    "crumb": ("api4jenkins/jenkins/crumb.json", ()),
    "folder": ("api4jenkins/job/folder.json", ()),
    "multibranch": ("api4jenkins/job/mbranch.json", ()),
    "pipeline_job": ("api4jenkins/job/pipeline.json", ()),
    "freestyle_job": ("jenkins-rest/job-info.json", ()),
    "pipeline_build": ("api4jenkins/run/workflowrun.json", ()),
    "freestyle_build": ("api4jenkins/run/freestylebuild.json", ()),
    "git_change": ("jenkins-rest/build-info-git-commit.json", ("changeSets", 0, "items", 0)),
    "health": ("api4jenkins/job/pipeline.json", ("healthReport", 0)),
    "describe": ("metrik/pipeline/jenkins/raw-build-detail-1.json", ()),
    "stage": ("metrik/pipeline/jenkins/raw-build-detail-1.json", ("stages", 0)),
    "queue": ("api4jenkins/queue/queue.json", ()),
    "waiting": ("api4jenkins/queue/waitingitem.json", ()),
    "blocked": ("api4jenkins/queue/blockeditem.json", ()),
    "buildable": ("api4jenkins/queue/buildableitem.json", ()),
}
CLASSES = {
    FOLDER: "com.cloudbees.hudson.plugins.folder.Folder",
    "multibranch": "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject",
    PIPELINE: "org.jenkinsci.plugins.workflow.job.WorkflowJob",
    "freestyle": "hudson.model.FreeStyleProject",
    "pipeline_build": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
    "freestyle_build": "hudson.model.FreeStyleBuild",
}
# TimeInQueueAction (Metrics plugin): exported with visibility 2, so a depth-0 answer shows only its _class.
QUEUE_FIELDS = ("blockedDurationMillis", "blockedTimeMillis", "buildableDurationMillis",
                "buildableTimeMillis", "buildingDurationMillis", "executingTimeMillis", "executorUtilization",
                "subTaskCount", "waitingDurationMillis", "waitingTimeMillis", "queuingDurationMillis",
                "queuingTimeMillis", "totalDurationMillis")
COLORS = {"SUCCESS": "blue", "FAILURE": "red", "UNSTABLE": "yellow", "ABORTED": "aborted"}
WFAPI_STATUS = {"SUCCESS": "SUCCESS", "FAILURE": "FAILED", "UNSTABLE": "UNSTABLE", "ABORTED": "ABORTED"}
STAGE_ERRORS = {"FAILED": ("script returned exit code 1", "hudson.AbortException"),
                "ABORTED": (None, "org.jenkinsci.plugins.workflow.steps.FlowInterruptedException")}
_JOB = r"(?P<job>(?:/job/[^/]+)+)"
# (path regex, handler method of _Payloads): every GET endpoint the simulator answers.
ROUTES: tuple[tuple[str, str], ...] = (
    (r"/api/json", "root"),
    (r"/crumbIssuer/api/json", "crumb"),
    (r"/queue/api/json", "queue"),
    (_JOB + r"/api/json", "item"),
    (_JOB + r"/(?P<number>\d+)/api/json", "build"),
    (_JOB + r"/(?P<number>\d+)/wfapi/describe", "describe"),
)
_COMPILED = tuple((re.compile(pattern), name) for pattern, name in ROUTES)
_NOT_FOUND = ("<html><head><title>Error 404 Not Found</title></head>"
              "<body><h2>HTTP ERROR 404 Not Found</h2></body></html>")


# -- payloads -------------------------------------------------------------------------------------------
@cache
def _template(name: str) -> dict[str, Any]:
    """A recorded payload (or one element of it) from data/jenkins."""
    path, element = TEMPLATES[name]
    value = json.loads((DATA / "jenkins" / path).read_text("utf-8"))
    for key in element:
        value = value[key]
    return value


def shaped(template_name: str, /, **values: Any) -> dict[str, Any]:
    """A payload with the template's keys in its order: given values replace, others stay as recorded."""
    template = _template(template_name)
    out = {key: values.pop(key) if key in values else copy.deepcopy(template[key]) for key in template}
    out.update(values)
    return out


def epoch_ms(t: datetime) -> int:
    """Jenkins's timestamps: epoch milliseconds."""
    return round(t.timestamp() * 1000)


class _Payloads:
    """The endpoint handlers of ROUTES for one world at one clock."""

    def __init__(self, jw: JenkinsWorld, base: str, clock: datetime) -> None:
        self.jw, self.base, self.clock = jw, base, clock

    def path(self, full_name: str) -> str:
        """/job/a/job/b for a full name a/b."""
        return "".join(f"/job/{quote(part)}" for part in full_name.split("/"))

    def url(self, full_name: str) -> str:
        """The absolute URL of a job or folder (with Jenkins's trailing slash)."""
        return f"{self.base}{self.path(full_name)}/"

    def _named(self, params: dict[str, str]) -> Job | Folder:
        name = "/".join(unquote(part) for part in params["job"].split("/job/")[1:])
        found = self.jw.item(name)
        if found is None:
            raise LookupError(name)
        return found

    def _build(self, params: dict[str, str]) -> Build:
        job = self._named(params)
        number = int(params["number"])
        found = next((b for b in job.visible(self.clock) if b.number == number), None) \
            if isinstance(job, Job) else None
        if found is None:
            raise LookupError(number)
        return found

    # -- endpoints ----------------------------------------------------------------------------------
    def root(self, params: dict[str, str]) -> dict[str, Any]:
        """GET /api/json: the Jenkins instance with its top-level items."""
        view = {"_class": "hudson.model.AllView", "name": "all", "url": f"{self.base}/"}
        return shaped("root", description="Pet Clinic CI", jobs=self._children(""), primaryView=view,
                      views=[view], useCrumbs=True, url=f"{self.base}/")

    def crumb(self, params: dict[str, str]) -> dict[str, Any]:
        """GET /crumbIssuer/api/json: the CSRF crumb python-jenkins asks for once per client."""
        return {"_class": "hudson.security.csrf.DefaultCrumbIssuer",
                **shaped("crumb", crumb="5f3c0e4d9b2a41c7", crumbRequestField="Jenkins-Crumb")}

    def item(self, params: dict[str, str]) -> dict[str, Any]:
        """GET /job/.../api/json: a folder, multibranch project or job."""
        found = self._named(params)
        return self.job(found) if isinstance(found, Job) else self.folder(found)

    def build(self, params: dict[str, str]) -> dict[str, Any]:
        """GET /job/.../N/api/json: one build."""
        return self.run(self._build(params))

    def describe(self, params: dict[str, str]) -> dict[str, Any]:
        """GET /job/.../N/wfapi/describe: a pipeline run's stages (404 for other builds, as Jenkins)."""
        build = self._build(params)
        if build.kind != PIPELINE:
            raise LookupError(build.number)
        return self.stages(build)

    def queue(self, params: dict[str, str]) -> dict[str, Any]:
        """GET /queue/api/json: items waiting at the clock (quiet period, blocked, or for an executor)."""
        waiting = sorted((b for b in self.jw.all_builds() if b.queued_at <= self.clock < b.started_at),
                         key=lambda b: b.queue_id)
        return shaped("queue", items=[self.queue_item(b) for b in waiting])

    # -- objects ------------------------------------------------------------------------------------
    def _children(self, parent: str) -> Nested:
        return Nested(self.jw.children(parent), lambda name: self.item({"job": self.path(name)}), self.ref)

    def ref(self, name: str) -> dict[str, Any]:
        """An item as a folder's `jobs` list shows it."""
        found = self.jw.item(name)
        assert found is not None
        short = name.rsplit("/", 1)[-1]
        out = {"_class": CLASSES[found.kind], "name": short, "url": self.url(name)}
        return out | ({"color": self.color(found)} if isinstance(found, Job) else {})

    def color(self, job: Job) -> str:
        """blue/red/yellow/aborted from the last completed build, `_anime` while one runs."""
        builds = job.visible(self.clock)
        done = [b for b in builds if not b.running_at(self.clock)]
        color = COLORS.get(done[0].result, "grey") if done else "notbuilt"
        return color + ("_anime" if any(b.running_at(self.clock) for b in builds) else "")

    def _names(self, full_name: str) -> dict[str, Any]:
        """The naming properties every item has."""
        short = full_name.rsplit("/", 1)[-1]
        return {"displayName": short, "displayNameOrNull": None,
                "fullDisplayName": full_name.replace("/", " » "), "fullName": full_name, "name": short,
                "url": self.url(full_name)}

    def folder(self, folder: Folder) -> dict[str, Any]:
        """A folder or multibranch project with its items."""
        name, url = folder.full_name, self.url(folder.full_name)
        values = {"_class": CLASSES[folder.kind], "description": folder.description, **self._names(name),
                  "jobs": self._children(name)}
        if folder.kind == FOLDER:
            view = {"_class": "hudson.model.AllView", "name": "All", "url": url}
            return shaped("folder", **values, primaryView=view, views=[view])
        cls = "jenkins.branch.MultiBranchProjectViewHolder$ViewImpl"
        views = [{"_class": cls, "name": "change-requests", "url": f"{url}view/change-requests/"},
                 {"_class": cls, "name": "default", "url": url}]
        jobs = [self.jw.jobs[n] for n in self.jw.children(name) if n in self.jw.jobs]
        return shaped("multibranch", **values, healthReport=[self.health(j) for j in jobs[:1]],
                      primaryView=views[1], views=views)

    def health(self, job: Job) -> dict[str, Any]:
        """Build stability over the last five completed builds."""
        done = [b for b in job.visible(self.clock) if not b.running_at(self.clock)][:5]
        failed = sum(b.result != "SUCCESS" for b in done)
        score = 100 - 20 * failed
        band = "80plus" if score > 80 else "60to79" if score >= 60 else "40to59" if score >= 40 else "00to19"
        text = f"Build stability: {failed} out of the last {len(done)} builds failed."
        return shaped("health", description=text, iconClassName=f"icon-health-{band}",
                      iconUrl=f"health-{band}.png", score=score)

    def build_ref(self, build: Build | None) -> dict[str, Any] | None:
        """A build as job properties (lastBuild, firstBuild, ...) show it."""
        if build is None:
            return None
        return {"_class": CLASSES[f"{build.kind}_build"], "number": build.number,
                "url": f"{self.url(build.job)}{build.number}/"}

    def job(self, job: Job) -> dict[str, Any]:
        """A pipeline or freestyle job; allBuilds is there only for a tree that names it."""
        builds = job.visible(self.clock)
        done = [b for b in builds if not b.running_at(self.clock)]

        def last(*results: str, negate: bool = False) -> dict[str, Any] | None:
            return self.build_ref(next((b for b in done if (b.result in results) != negate), None))

        values = {
            "_class": CLASSES[job.kind], "description": job.description, **self._names(job.full_name),
            "buildable": True, "builds": Nested(builds[:100], self.run, self.build_ref),
            "color": self.color(job), "firstBuild": self.build_ref(builds[-1] if builds else None),
            "healthReport": [self.health(job)] if done else [], "inQueue": False, "keepDependencies": False,
            "lastBuild": self.build_ref(builds[0] if builds else None),
            "lastCompletedBuild": self.build_ref(done[0] if done else None),
            "lastFailedBuild": last("FAILURE"), "lastStableBuild": last("SUCCESS"),
            "lastSuccessfulBuild": last("SUCCESS", "UNSTABLE"), "lastUnstableBuild": last("UNSTABLE"),
            "lastUnsuccessfulBuild": last("SUCCESS", negate=True),
            "nextBuildNumber": (builds[0].number + 1) if builds else 1, "property": [], "queueItem": None,
            "concurrentBuild": False, "allBuilds": Hidden(Nested(builds, self.run, self.build_ref))}
        if job.kind == PIPELINE:
            actions = copy.deepcopy(_template("pipeline_job")["actions"])
            if job.primary:
                actions.append({"_class": "jenkins.scm.api.metadata.PrimaryInstanceMetadataAction"})
            return shaped("pipeline_job", actions=actions, **values, resumeBlocked=False)
        string, boolean = "StringParameterDefinition", "BooleanParameterDefinition"
        definitions = [
            {"_class": f"hudson.model.{string}", "name": "GIT_COMMIT", "type": string,
             "description": "The commit to deploy"},
            {"_class": f"hudson.model.{boolean}", "name": "RUN_MIGRATIONS", "type": boolean,
             "description": "Apply database migrations"}]
        prop = {"_class": "hudson.model.ParametersDefinitionProperty", "parameterDefinitions": definitions}
        cls = values.pop("_class")  # the recorded freestyle job predates `_class`: first, as Jenkins has it
        values["property"] = [prop]
        return {"_class": cls, **shaped("freestyle_job", actions=[prop], **values, downstreamProjects=[],
                                        upstreamProjects=[])}

    def run(self, build: Build) -> dict[str, Any]:
        """A build as /job/.../N/api/json shows it at the clock (an element of allBuilds too)."""
        running = build.running_at(self.clock)
        job = self.jw.jobs[build.job]
        visible_builds = job.visible(self.clock)
        older = [b for b in visible_builds if b.number < build.number and not b.running_at(self.clock)]
        values = {
            "actions": self.run_actions(build, running), "artifacts": [], "building": running,
            "description": None, "displayName": f"#{build.number}",
            "duration": 0 if running else build.duration_ms,
            "estimatedDuration": older[0].duration_ms if older else -1,
            "executor": {"_class": "hudson.model.OneOffExecutor"} if running else None,
            "fullDisplayName": f"{build.job.replace('/', ' » ')} #{build.number}", "id": str(build.number),
            "keepLog": False, "number": build.number, "queueId": build.queue_id,
            "result": None if running else build.result, "timestamp": epoch_ms(build.started_at),
            "url": f"{self.url(build.job)}{build.number}/", "culprits": []}
        if build.kind != PIPELINE:
            empty = {"_class": "hudson.scm.EmptyChangeLogSet", "items": [], "kind": None}
            return shaped("freestyle_build", _class=CLASSES["freestyle_build"], **values,
                          builtOn="deploy-agent", changeSet=empty)
        changes = [{"_class": "hudson.plugins.git.GitChangeSetList", "kind": "git",
                    "items": [self.change(c) for c in build.changes]}] if build.changes else []
        newer = [b for b in visible_builds if b.number > build.number]
        return shaped("pipeline_build", _class=CLASSES["pipeline_build"], **values, changeSets=changes,
                      nextBuild=self.build_ref(newer[-1] if newer else None),
                      previousBuild=self.build_ref(older[0] if older else None))

    def run_actions(self, build: Build, running: bool) -> list[dict[str, Any]]:
        """A build's actions: causes, parameters, queue times, git checkouts, and a few without data."""
        actions: list[dict[str, Any]] = [{"_class": "hudson.model.CauseAction", "causes": list(build.causes)}]
        if build.parameters:
            values = [{"_class": f"hudson.model.{'Boolean' if isinstance(v, bool) else 'String'}"
                                 "ParameterValue", "name": n, "value": v} for n, v in build.parameters]
            actions.append({"_class": "hudson.model.ParametersAction", "parameters": values})
        if build.metrics:
            actions.append(self.time_in_queue(build, running))
        for rev in build.revisions:
            revision = {"SHA1": rev.sha, "branch": [{"SHA1": rev.sha, "name": rev.branch}]}
            built = {"_class": "hudson.plugins.git.util.Build", "buildNumber": build.number,
                     "buildResult": None, "marked": revision, "revision": revision}
            actions.append({"_class": "hudson.plugins.git.util.BuildData",
                            "buildsByBranchName": {rev.branch: built}, "lastBuiltRevision": revision,
                            "remoteUrls": [rev.remote_url], "scmName": ""})
        return [*actions, {}, {"_class": "org.jenkinsci.plugins.displayurlapi.actions.RunDisplayAction"}]

    def time_in_queue(self, build: Build, running: bool) -> dict[str, Any]:
        """The Metrics plugin's TimeInQueueAction, its fields hidden unless a tree names them."""
        q = build.queue
        executing = ms(self.clock - build.started_at) if running else build.duration_ms
        figures = {"blocked": q.blocked_ms, "buildable": q.buildable_ms, "building": executing,
                   "executing": executing, "waiting": q.waiting_ms, "queuing": q.total_ms,
                   "total": q.total_ms + executing}
        values = {f"{name}{kind}Millis": value for name, value in figures.items()
                  for kind in ("Duration", "Time")}
        values |= {"executorUtilization": 1.0, "subTaskCount": 0}
        return {"_class": "jenkins.metrics.impl.TimeInQueueAction",
                **{k: Hidden(values[k]) for k in QUEUE_FIELDS}}

    def change(self, commit: Any) -> dict[str, Any]:
        """A git change set item."""
        login = (commit.author_login or "unknown").replace("[bot]", "")
        return shaped("git_change", affectedPaths=list(commit.files), commitId=commit.sha,
                      timestamp=epoch_ms(commit.committed_at),
                      author={"absoluteUrl": f"{self.base}/user/{login}", "fullName": commit.author_name},
                      authorEmail=commit.author_email, comment=commit.message + "\n",
                      date=commit.committed_at.strftime("%Y-%m-%d %H:%M:%S +0000"), id=commit.sha,
                      msg=commit.message.splitlines()[0],
                      paths=[{"editType": "edit", "file": f} for f in commit.files])

    def stages(self, build: Build) -> dict[str, Any]:
        """wfapi/describe at the clock: stages so far, a waiting `input` shown as PAUSED_PENDING_INPUT."""
        running = build.running_at(self.clock)
        stages = [s for stage in build.stages if (s := stage.as_of(self.clock)) is not None]
        href = f"{self.path(build.job)}/{build.number}"
        paused = any(s.status == "PAUSED_PENDING_INPUT" for s in stages)
        links = {"self": {"href": f"{href}/wfapi/describe"},
                 "changesets": {"href": f"{href}/wfapi/changesets"}}
        if paused:
            links["pendingInputActions"] = {"href": f"{href}/wfapi/pendingInputActions"}
        status = WFAPI_STATUS.get(build.result, "IN_PROGRESS")
        if running:
            status = "PAUSED_PENDING_INPUT" if paused else "IN_PROGRESS"
        end = self.clock if running else build.finished_at
        start = build.stages[0].started_at if build.stages else build.started_at
        rendered = []
        for stage in stages:
            node = {"self": {"href": f"{href}/execution/node/{stage.id}/wfapi/describe"}}
            item = shaped("stage", _links=node, id=stage.id, name=stage.name, execNode="",
                          status=stage.status, startTimeMillis=epoch_ms(stage.started_at),
                          durationMillis=stage.duration_ms, pauseDurationMillis=stage.pause_ms)
            if stage.status in STAGE_ERRORS:  # recorded failing stages carry `error` right after `status`
                message, kind = STAGE_ERRORS[stage.status]
                keys = list(item)
                keys.insert(keys.index("status") + 1, "error")
                item = {k: {"message": message, "type": kind} if k == "error" else item[k] for k in keys}
            rendered.append(item)
        return shaped("describe", _links=links, id=str(build.number), name=f"#{build.number}", status=status,
                      startTimeMillis=epoch_ms(build.started_at), endTimeMillis=epoch_ms(end),
                      durationMillis=ms(end - build.started_at),
                      queueDurationMillis=ms(start - build.started_at),
                      pauseDurationMillis=sum(s.pause_ms for s in stages), stages=rendered)

    def queue_item(self, build: Build) -> dict[str, Any]:
        """A queue item in the phase it is in at the clock."""
        q = build.queue
        elapsed = ms(self.clock - build.queued_at)
        job = self.jw.jobs[build.job]
        task = {"_class": CLASSES[job.kind], "name": job.full_name.rsplit("/", 1)[-1],
                "url": self.url(job.full_name), "color": self.color(job)}
        params = "".join(f"\n{n}={str(v).lower() if isinstance(v, bool) else v}" for n, v in build.parameters)
        common = {"actions": [{"_class": "hudson.model.CauseAction", "causes": list(build.causes)}],
                  "id": build.queue_id, "inQueueSince": epoch_ms(build.queued_at), "params": params,
                  "stuck": False, "task": task, "url": f"queue/item/{build.queue_id}/"}
        buildable_since = epoch_ms(build.queued_at) + q.waiting_ms + q.blocked_ms
        if elapsed < q.waiting_ms:
            left = (q.waiting_ms - elapsed) / 1000
            return shaped("waiting", **common, blocked=False, buildable=False,
                          why=f"In the quiet period. Expires in {left:.1f} sec",
                          timestamp=epoch_ms(build.queued_at) + q.waiting_ms)
        if elapsed < q.waiting_ms + q.blocked_ms:
            running = next((b for b in job.visible(self.clock) if b.running_at(self.clock)), None)
            blocker = f"Build #{running.number} is already in progress (ETA:N/A)" if running else "Blocked"
            return shaped("blocked", **common, blocked=True, buildable=False, why=blocker,
                          buildableStartMilliseconds=buildable_since)
        return shaped("buildable", **common, blocked=False, buildable=True,
                      why="Waiting for next available executor", buildableStartMilliseconds=buildable_since,
                      pending=False)


# -- the server -----------------------------------------------------------------------------------------
class JenkinsSimulator(ServedSimulator):
    """Serves a JenkinsWorld like a Jenkins controller on http://127.0.0.1:<free port>, as of `clock`."""

    name = "jenkins"
    server_header = "Jetty(10.0.20)"

    def __init__(self, jenkins_world: JenkinsWorld, *, user: str | None = None,
                 token: str | None = None) -> None:
        super().__init__()
        self.world = jenkins_world
        self.user, self.token = user, token
        self.clock: datetime = jenkins_world.end
        self.request_log: list[tuple[str, str, int]] = []


    def handle(self, request: BaseHTTPRequestHandler) -> None:
        """Answer one request, log it, write it to the wire."""
        fault = self._take_fault(request.path)
        try:
            status, body, headers = self._answer(request, fault)
        except Exception:
            logger.exception("simulated Jenkins failed on %s %s", request.command, request.path)
            status, body, headers = 500, "<html><body>Oops!</body></html>", {}
        with self._lock:  # logged before the answer leaves, so a client never sees a request missing
            self.request_log.append((request.command, request.path, status))
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
        data = text.encode("utf-8")
        kind = "text/html;charset=utf-8" if isinstance(body, str) else "application/json;charset=utf-8"
        request.send_response(status)
        for name, value in {"Content-Type": kind, "X-Jenkins": "2.462.3", "X-Content-Type-Options": "nosniff",
                            **headers}.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(data)


    def _answer(self, request: BaseHTTPRequestHandler,
                fault: Fault | None) -> tuple[int, Any, dict[str, str]]:
        """(status, body, headers) for a request: auth, injected fault, then the route."""
        if self.user is not None and self.token is not None:
            expected = "Basic " + base64.b64encode(f"{self.user}:{self.token}".encode()).decode()
            if request.headers.get("Authorization") != expected:
                return 401, "<html><body>Invalid password/token for user</body></html>", {
                    "WWW-Authenticate": 'Basic realm="Jenkins"'}
        if fault is not None and fault.status is not None:
            body = fault.body
            if body is None:
                body = f"<html><body>HTTP ERROR {fault.status}</body></html>"
            return fault.status, body, fault.headers
        split = urlsplit(request.path)
        path = split.path.rstrip("/") or "/"
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        payloads = _Payloads(self.world, self.base_url, self.clock)
        for pattern, name in _COMPILED:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            try:
                value = getattr(payloads, name)(match.groupdict())
                tree = parse_tree(query["tree"]) if "tree" in query and name != "describe" else None
            except LookupError:
                break
            except TreeError as exc:
                return 400, f"<html><body>{exc}</body></html>", {}
            return 200, pick(value, tree) if tree is not None else visible(value), {}
        return 404, _NOT_FOUND, {}
