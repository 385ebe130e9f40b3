"""Launch a whole XNAT project: one pipeline per session, all queued in one transaction or none.

``launch(service, body)`` takes what ``POST /api/v1/xnat/launch`` and ``scheduler-server xnat launch`` take: a
pipeline's fields (host, credentials, project, script, files, options, priority, timeout) with ``subject`` and
``session`` as label patterns (``fnmatch`` globs, case-sensitive, as XNAT labels are), ``session_type`` (an
xsiType among the server's ``session_types``), ``skip_succeeded`` and ``dry_run``. The steps:

1. The pipeline's fields are checked as a submission checks them (script, files, options), before XNAT is asked.
2. The credentials become one alias token (``tokens/issue`` with the password, or an SSO user's alias and secret
   checked with ``tokens/validate``); the password is used for that one call and never stored.
3. One request lists the project's experiments, ``/data/projects/{p}/experiments?columns=ID,label,subject_label,
   xsiType,project`` (with ``xsiType`` when ``session_type`` is given), as XNAT answers it: no paging.
4. Each experiment is kept or skipped with why (not a session type, a pattern not matched, a pipeline of this
   script already succeeded on it). Nothing kept: a 400 naming the filter that left nothing; more than
   ``xnat.max_launch``: a 400 naming the limit and the count. Either way nothing is created.
5. ``dry_run`` answers there (and invalidates the token it issued); otherwise the token is recorded once, counted
   by all the launch's pipelines (the lifecycle of ``tokens.py``), and the pipelines are inserted together.

The service is handed in (this layer sits below ``pipelines.service``); it is used for ``_build`` (a submission's
own checks and pipeline), ``tokens``, ``store``, ``dispatcher`` and ``xnat_settings``. The experiments are not
looked up one by one as a single submission's are: the listing already names each session's project, subject
and type, and 1,000 lookups would take longer than the launch may.
"""

from __future__ import annotations

import fnmatch
import logging
import secrets as random
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, ValidationError, field_validator
from sqlalchemy import select

from scheduler_server.pipelines.errors import InvalidInput
from scheduler_server.pipelines.models import QUEUED, SUCCEEDED, Pipeline
from scheduler_server.pipelines.secrets import MASK
from scheduler_server.pipelines.tasks.base import PLAIN_TEXT_SCHEMA, plain_text
from scheduler_server.pipelines.tasks.xnat import XnatRequest, options_to_args
from scheduler_server.pipelines.xnat import workflows
from scheduler_server.pipelines.xnat.client import AliasToken, XnatClient
from scheduler_server.pipelines.xnat.errors import XnatAuthError, XnatUnavailable
from scheduler_server.pipelines.xnat.hosts import HostError, match, normalise
from scheduler_server.pipelines.xnat.settings import XnatServer
from scheduler_server.pipelines.xnat.verify import Item, dismissing, outlives
from scheduler_server.validation_text import field_and_problem

log = logging.getLogger(__name__)

_Pattern = str | None
_PATTERN = PLAIN_TEXT_SCHEMA


class LaunchRequest(XnatRequest):
    """A pipeline's fields for every session of a project; ``subject`` and ``session`` are patterns here."""

    subject: _Pattern = Field(
        None,
        min_length=1,
        max_length=255,
        json_schema_extra={**_PATTERN, "examples": ["S0*"]},
        description="Subject label pattern (glob).",
    )
    session: _Pattern = Field(
        None,
        min_length=1,
        max_length=255,
        json_schema_extra={**_PATTERN, "examples": ["*_MR?"]},
        description="Session label pattern (glob).",
    )
    session_type: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        json_schema_extra={**PLAIN_TEXT_SCHEMA, "examples": ["xnat:mrSessionData"]},
        description="Only sessions of this xsiType (one of the server's session_types).",
    )
    skip_succeeded: bool = Field(False, description="Skip sessions with a succeeded pipeline of this script.")
    dry_run: bool = Field(False, description="List what would be launched and skipped; create nothing.")

    @field_validator("session_type")
    @classmethod
    def _plain_type(cls, value: str | None) -> str | None:
        return value if value is None else plain_text(value)


@dataclass
class Launch:
    """What a launch did (or, with ``dry_run``, would do): ``pipelines`` one per session, ``skipped`` with why."""

    dry_run: bool
    host: str
    project: str
    listed: int = 0  # experiments XNAT listed
    pipelines: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    token_id: int | None = None
    written: list[Item] = field(default_factory=list)  # the Queued entry written now (dismissed on a failure)

    def view(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "host": self.host,
            "project": self.project,
            "listed": self.listed,
            "created": 0 if self.dry_run else len(self.pipelines),
            "pipelines": self.pipelines,
            "skipped": self.skipped,
            "warnings": self.warnings,
        }


def launch(service: Any, body: Any) -> Launch:
    """Expand ``body`` into one pipeline per matching session; InvalidInput (400) naming the field, XnatUnavailable
    (503) if XNAT cannot be asked. All or nothing: a refusal creates no pipeline and keeps no token."""
    request = _request(body)
    server = _server(service.xnat_settings, request)
    _template(service, request)  # the script, files and options: refused before XNAT is asked
    with XnatClient(server) as client:
        token, user, issued = _token(client, request)
        try:
            rows = client.list_experiments(request.project, (token.alias, token.secret), request.session_type)
            result = _plan(service, server, request, rows)
            built = [] if request.dry_run else _prepare(service, client, request, result, token, user)
        except BaseException:
            if issued:
                _forget(client, token)
            raise
        if request.dry_run and issued:
            _forget(client, token)
    if built:
        # The token row is written: from here a failure is the sweep's to clean up (a row no pipeline names is
        # let go after ORPHAN_GRACE), never an invalidation that could pull it from under committed pipelines.
        with dismissing(result.written):  # nothing created: no Queued entry left in XNAT
            _insert(service, request, result, built)
    return result


def _request(body: Any) -> LaunchRequest:
    if not isinstance(body, dict):
        raise InvalidInput(f"request body: must be a JSON object, not a JSON {type(body).__name__}")
    try:
        request = LaunchRequest.model_validate(body)
    except ValidationError as exc:
        name, problem, _ = field_and_problem(exc, "launch")
        raise InvalidInput(f"{name}: {problem}", name) from None
    problem = request.credentials_problem()
    if problem:
        raise InvalidInput(f"{problem[0]}: {problem[1]}", problem[0])
    _check_password(request)
    return request


def _check_password(request: LaunchRequest) -> None:
    """The password (or secret) must not occur in a field that is stored and shown in clear."""
    pwd = request.secret() or request.token_secret() or ""
    if pwd in MASK:
        if pwd:
            raise InvalidInput(f"pwd: a password made of '*' only is refused (the mask {MASK} would show it)", "pwd")
        return
    fields = {"host": request.host, "project": request.project, "script": request.script}
    fields.update({"subject": request.subject or "", "session": request.session or "", "alias": request.alias or ""})
    fields.update({f"files.{n}": name for n, name in enumerate(request.files)})
    fields.update({f"options.{n}": arg for n, arg in enumerate(options_to_args(request.options))})
    if request.user is not None and request.user != pwd:
        fields["user"] = request.user
    for name, value in fields.items():
        if pwd in value:
            raise InvalidInput(f"pwd: must not occur in {name}, which is stored and shown in clear", "pwd")


def _server(settings: Any, request: LaunchRequest) -> XnatServer:
    server = match(settings, request.host)
    if server is None:
        urls = ", ".join(s.url for s in settings.servers) if settings is not None and settings.servers else ""
        known = f"one of xnat.servers ({urls})" if urls else "a server of xnat.servers, which lists none"
        raise InvalidInput(f"host: {request.host!r} is not an XNAT server to launch on: give {known}", "host")
    if request.session_type is not None and request.session_type not in server.session_types:
        allowed = ", ".join(server.session_types)
        message = f"session_type: {request.session_type!r} is not a session type of {server.url} ({allowed})"
        raise InvalidInput(message, "session_type")
    return server


def _item(request: LaunchRequest, subject: str, session: str, alias: str, secret: str) -> dict[str, Any]:
    """One session's pipeline as a submission would give it, with the token as its credentials."""
    item = request.model_dump(
        mode="json",
        include={"host", "project", "script", "files", "options", "priority", "timeout"},
    )
    return {**item, "type": "xnat", "subject": subject, "session": session, "alias": alias, "secret": secret}


def _template(service: Any, request: LaunchRequest) -> None:
    """Build one pipeline with stand-ins for the session and token: the submission's own checks, once."""
    service._build(_item(request, "subject", "session", random.token_hex(16), random.token_hex(16)))


def _token(client: XnatClient, request: LaunchRequest) -> tuple[AliasToken, str | None, bool]:
    """(token, its user, whether the scheduler issued it)."""
    secret = request.token_secret()
    if secret is None:
        return client.issue_token(request.user, request.secret()), request.user, True
    user = client.token_user(request.alias, secret)
    if user is None:
        raise XnatAuthError(
            f"{client.base} does not take this alias and secret (unknown, expired or invalidated)", "secret"
        )
    return AliasToken(request.alias, secret, client.token_expiry(request.alias, secret)), user, False


def _plan(service: Any, server: XnatServer, request: LaunchRequest, rows: list[dict]) -> Launch:
    """Sort the listing into sessions to launch and skipped ones; InvalidInput if none is left or too many."""
    result = Launch(request.dry_run, server.url, request.project, listed=len(rows))
    done = _succeeded(service, server, request) if request.skip_succeeded else {}
    emptied = "project"  # the filter after which nothing was left
    for row in sorted(rows, key=lambda r: (str(r.get("subject_label", "")), str(r.get("label", "")))):
        entry = {
            "subject": str(row.get("subject_label") or ""),
            "session": str(row.get("label") or ""),
            "session_id": str(row.get("ID") or ""),
            "xsiType": str(row.get("xsiType") or ""),
        }
        name, why = _skip(server, request, entry, done)
        if name is None:
            result.pipelines.append(entry)
        else:
            result.skipped.append({**entry, "reason": why})
            emptied = max(emptied, name, key=_FILTERS.index)
    if not result.pipelines:
        raise InvalidInput(f"{emptied}: {_nothing(request, result, emptied)}", emptied)
    limit = service.xnat_settings.max_launch
    if len(result.pipelines) > limit:
        raise InvalidInput(
            f"max_launch: {len(result.pipelines)} sessions match, more than xnat.max_launch ({limit}) allows in one"
            " launch; nothing was created: narrow subject, session or session_type, or launch in parts",
            "max_launch",
        )
    return result


#: The filters in the order they are applied (a 400 names the last one that removed sessions).
_FILTERS = ("project", "session_type", "subject", "session", "skip_succeeded")


def _skip(server: XnatServer, request: LaunchRequest, entry: dict, done: dict) -> tuple[str | None, str]:
    """(the filter that skips this session, why), or (None, "") to launch on it."""
    kind = entry["xsiType"]
    if kind not in server.session_types or (request.session_type is not None and kind != request.session_type):
        wanted = request.session_type or f"a session type of the server ({', '.join(server.session_types)})"
        return "session_type", f"{kind or 'no type'} is not {wanted}"
    if request.subject is not None and not fnmatch.fnmatchcase(entry["subject"], request.subject):
        return "subject", f"subject {entry['subject']!r} does not match {request.subject!r}"
    if request.session is not None and not fnmatch.fnmatchcase(entry["session"], request.session):
        return "session", f"session {entry['session']!r} does not match {request.session!r}"
    earlier = done.get(entry["session_id"]) or done.get(entry["session"])
    if earlier is not None:
        return "skip_succeeded", f"pipeline {earlier} of {request.script} already succeeded on it"
    return None, ""


def _nothing(request: LaunchRequest, result: Launch, emptied: str) -> str:
    if not result.listed:
        return f"XNAT lists no experiment in project {request.project!r}" + (
            f" of type {request.session_type}" if request.session_type else ""
        )
    if emptied == "skip_succeeded":
        return f"every matching session of project {request.project!r} has a succeeded pipeline of {request.script}"
    wanted = getattr(request, emptied) if emptied != "project" else None
    shown = f" {wanted!r}" if wanted else ""
    return f"{emptied}{shown} matches none of the {result.listed} experiments of project {request.project!r}"


def _succeeded(service: Any, server: XnatServer, request: LaunchRequest) -> dict[str, int]:
    """Session (label or ID, as submitted) -> a succeeded pipeline of this script on this server and project."""
    query = select(Pipeline.id, Pipeline.session, Pipeline.spec).where(
        Pipeline.type == "xnat",
        Pipeline.status == SUCCEEDED,
        Pipeline.project == request.project,
        Pipeline.script == request.script,
    )
    found: dict[str, int] = {}
    with service.store.read() as session:
        for pipeline_id, label, spec in session.execute(query):
            try:
                same = normalise(str((spec or {}).get("host", ""))) == server.url
            except HostError:
                same = False
            if same and label:
                found.setdefault(label, pipeline_id)
    return found


def _prepare(service: Any, client: XnatClient, request: LaunchRequest, result: Launch, token, user) -> list[Pipeline]:
    """Build every pipeline (a submission's checks), probe the workflow permission, record the shared token."""
    server = client.server
    built = _build_all(service, request, result, token)
    if workflows.enabled(service.xnat_settings):
        keys = [(entry["session_id"], p.script, int(p.created_at)) for p, entry in zip(built, result.pipelines)]
        seconds = workflows.claim_all(service.store, server.url, keys)  # no key shared with another pipeline
        for pipeline, entry, second in zip(built, result.pipelines, seconds):  # Queued written by the sweep (15W)
            workflows.prepare(pipeline, entry["session_id"], entry["xsiType"], second)
        _workflow_permission(service.xnat_settings, client, built, token, result)
    with dismissing(result.written):
        token_id, secret = service.tokens.record(server.url, token, user, request.token_secret() is None, len(built))
    user_is_pwd = request.secret() is not None and request.user == request.secret()
    for pipeline in built:
        pipeline.token_id, pipeline.secret = token_id, secret
        spec = dict(pipeline.spec, xnat_token=True, host=server.url, user_is_pwd=user_is_pwd)
        spec["user"] = MASK if user_is_pwd else user
        pipeline.spec = spec
    warning = outlives(request.timeout or service.settings.pipeline_timeout, token, service.xnat_settings)
    if warning:
        result.warnings.append(warning)
    result.token_id = token_id
    return built


def _build_all(service: Any, request: LaunchRequest, result: Launch, token: AliasToken) -> list[Pipeline]:
    """The first session's pipeline built as a submission builds it; the others copy it with their own subject and
    session, each validated as a submission's fields are (the script, files and environment are the same for all:
    checking them on disk 1,000 times was half of a launch's time)."""
    first, *rest = result.pipelines
    template, _, _ = service._build(_item(request, first["subject"], first["session"], token.alias, token.secret))
    columns = {k: v for k, v in vars(template).items() if not k.startswith("_")}  # the attributes _build set
    built = [template]
    for entry in rest:
        item = _item(request, entry["subject"], entry["session"], token.alias, token.secret)
        try:
            checked = XnatRequest.model_validate(item)
        except ValidationError as exc:
            name, problem, _ = field_and_problem(exc, "session")
            raise InvalidInput(f"{name}: {problem} ({entry['subject']}/{entry['session'][:60]})", name) from None
        built.append(Pipeline(**{**columns, "spec": checked.spec(), **checked.summary()}))
    return built


def _insert(service: Any, request: LaunchRequest, result: Launch, built: list[Pipeline]) -> None:
    """All the launch's pipelines in one transaction (assigned in it, as a submission's are)."""
    insert = lambda assign: service.store.add_pipelines(built, then=assign)  # noqa: E731
    (ids, _), assigned = service.dispatcher.commit_and_assign(insert)
    if not assigned:
        service.dispatcher.wake()
    for entry, pipeline_id in zip(result.pipelines, ids):
        entry["id"] = pipeline_id
    log.info("XNAT launch on %s project %s: %d pipeline(s) queued", result.host, request.project, len(ids))


def _workflow_permission(settings: Any, client: XnatClient, built: list[Pipeline], token, result: Launch) -> None:
    """With ``xnat.workflows``: the first session's Queued entry written now, as a submission writes its own (the
    rest by the workflow sweep: a launch does not wait for 1,000 PUTs). A user who may not write workflows is
    refused (a 400 naming ``workflows``: nothing created) or, with ``workflow_permission: warn``, told in
    ``warnings`` and the launch's pipelines keep no entry."""
    first = built[0]
    try:
        client.put_workflow((token.alias, token.secret), workflows.fields(first))
    except XnatAuthError as exc:
        if settings.workflow_permission == "refuse":
            raise XnatAuthError(
                f"{_words(exc)}; this user may not write workflows on the sessions", "workflows"
            ) from None
        for pipeline in built:
            pipeline.spec = {k: v for k, v in pipeline.spec.items() if k != "xnat_workflow"}
            pipeline.workflow_status = None
        result.warnings.append(f"workflows: no workflow entries in XNAT for these pipelines ({_words(exc)})")
        return
    first.workflow_status = workflows.STATUS[QUEUED][0]
    result.written.append(Item(0, first, None, client.server, auth=(token.alias, token.secret)))


def _words(exc: XnatAuthError) -> str:
    """The refusal without its ``workflows: `` prefix (the launch's message names the field once)."""
    return exc.message.removeprefix(f"{exc.field}: ")


def _forget(client: XnatClient, token: AliasToken) -> None:
    """Invalidate a token issued for a launch that queues nothing with it (best effort)."""
    try:
        client.invalidate_token(token.alias, token.secret)
    except XnatUnavailable as exc:
        log.warning("could not invalidate an unused XNAT alias token on %s: %s", client.base, exc.reason)
