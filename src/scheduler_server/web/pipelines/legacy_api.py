"""The pipeline seed's Web-API, verbatim: /pipeline, /instance, /config.

Every answer, errors included, is the seed's ``{"request": "success"|"error",
"content": ...}``; the errors of this blueprint are shaped here, not by the
app-wide handlers.
"""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from scheduler_server.config import load_settings
from scheduler_server.pipelines.backend_errors import BackendConfigError, BackendError
from scheduler_server.pipelines.errors import PipelineError
from scheduler_server.pipelines.models import ACTIVE_STATES, QUEUED
from scheduler_server.pipelines.redacted import instance_view, pipeline_view
from scheduler_server.pipelines.storage.errors import StoreUnavailable
from scheduler_server.startup_error import ConfigError
from scheduler_server.web.auth import AuthError
from scheduler_server.web.errors import http_error_message, request_id, status_of, unavailable
from scheduler_server.web.metrics import count_submissions
from scheduler_server.web.openapi import spec
from scheduler_server.web.pipelines import lifecycle as common
from scheduler_server.web.pipelines.models import (
    MAX_SUBMISSION,
    SUBMIT_400,
    DeleteInstancesQuery,
    PipelineIdQuery,
    PipelineIds,
    PipelineSubmission,
    SeedAnswer,
    TokenQuery,
)

log = logging.getLogger("scheduler_server.web")

bp = Blueprint("pipelines_seed", __name__)
bp.before_request(common.guard)
TAGS = ["pipelines (seed)"]


def _answer(content, status: int = 200):
    return jsonify({"request": "success", "content": content}), status


def _error(message: str, status: int, field: str | None = None):
    body = {"request": "error", "content": message}
    if field:
        body["field"] = field
    return jsonify(body), status


@bp.errorhandler(common.BodyError)
def _body_error(exc: common.BodyError):
    return _error(exc.message, exc.status, exc.field)


@bp.errorhandler(PipelineError)
def _pipeline_error(exc: PipelineError):
    return _error(exc.message, status_of(exc), exc.field)


@bp.errorhandler(AuthError)
def _auth_error(exc: AuthError):
    response, status = _error(exc.message, exc.status)
    response.headers["WWW-Authenticate"] = 'Bearer realm="scheduler-server"'
    return response, status


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return _error(http_error_message(exc), exc.code or 500)


@bp.errorhandler(StoreUnavailable)
def _store_unavailable(exc: StoreUnavailable):
    return unavailable(_error(f"service unavailable: {exc.reason}", 503))


@bp.errorhandler(Exception)
def _unexpected(exc: Exception):
    rid = request_id()
    log.exception("unexpected error handling %s %s [request %s]", request.method, request.path, rid)
    return _error(f"internal server error; quote request id {rid} when reporting it", 500)


_RESPONSES = {
    200: ("Success", SeedAnswer),
    400: ("A client mistake: the request does not match this document", SeedAnswer),
    401: ("Missing or wrong token", SeedAnswer),
    503: ("The service cannot serve this now (e.g. its database cannot take writes)", SeedAnswer),
}


@spec.operation(
    "/pipeline",
    "get",
    "List active and queued pipelines (or the ones named by id)",
    TAGS,
    query=PipelineIdQuery,
    models=[PipelineIds],
    responses=_RESPONSES,
    security=True,
)
@bp.get("/pipeline")
def list_pipelines():
    """All queued and active pipelines. With ?id=1,2 or a JSON body {"id": 1} / {"id": [1, 2]} (or a list of such
    objects, as the seed's later version sent) only those, whatever their status."""
    ids = _requested_ids()
    if ids is not None:
        found, _ = service().store.list_pipelines(ids=ids)
        return _answer([pipeline_view(p) for p in found])
    found, _ = service().store.list_pipelines(statuses=(QUEUED, *ACTIVE_STATES))
    return _answer([pipeline_view(p) for p in found])


def _requested_ids() -> list[int] | None:
    if request.args.getlist("id"):
        return common.parse_ids(request.args.getlist("id"))
    body = common.json_body(required=False)
    if body is None:
        return None
    items = body if isinstance(body, list) else [body]
    values = []
    for item in items:
        if isinstance(item, dict) and "id" in item:
            values.extend(item["id"] if isinstance(item["id"], list) else [item["id"]])
        else:
            values.append(item)
    return common.parse_ids(values)


@spec.operation(
    "/pipeline",
    "post",
    "Register one pipeline or a list of them",
    TAGS,
    body=PipelineSubmission,
    query=TokenQuery,
    responses={
        **_RESPONSES,
        400: (SUBMIT_400, SeedAnswer),
    },
    security=True,
)
@bp.post("/pipeline")
def submit_pipelines():
    """One object gets {"id", "status"}; a list gets one report per item: a bad item is rejected with its
    reason and does not stop the good ones (HTTP 400 only when none was accepted)."""
    body = common.json_body()
    single = isinstance(body, dict)
    items = [body] if single else body
    if not isinstance(items, list):
        raise common.BodyError("request body: must be a pipeline object or a list of them")
    if not items:
        raise common.BodyError("request body: the list is empty")
    if len(items) > MAX_SUBMISSION:
        raise common.BodyError(f"request body: a list of {len(items)} pipelines; at most {MAX_SUBMISSION} per request")
    results = service().submit(items)
    count_submissions(items, results)
    if single:
        (result,) = results
        if not result.accepted:
            raise result.error
        return _answer({"id": result.id, "status": QUEUED})
    accepted = any(r.accepted for r in results)
    content = [common.submit_report(r) for r in results]
    return jsonify({"request": "success" if accepted else "error", "content": content}), 200 if accepted else 400


@spec.operation(
    "/instance",
    "get",
    "List instances (booting, idle and busy)",
    TAGS,
    query=TokenQuery,
    responses=_RESPONSES,
    security=True,
)
@bp.get("/instance")
def list_instances():
    return _answer([instance_view(i) for i in service().pool.live()])


@spec.operation(
    "/instance",
    "delete",
    "Delete the backend's instances this scheduler does not track",
    TAGS,
    query=DeleteInstancesQuery,
    responses={**_RESPONSES, 503: ("Backend unreachable, or the service cannot serve this now", SeedAnswer)},
    security=True,
)
@bp.delete("/instance")
def delete_instances():
    """By default only instances tagged with this scheduler's id that it no longer tracks (crash
    leftovers); ?all=true also the project's other instances, as the seed did; ?dry_run=true only
    lists them. Tracked instances (running, booting, idle spares) are never deleted here."""
    query = _bool_query(DeleteInstancesQuery)
    try:
        cleanup = service().delete_untracked(include_untagged=query.all, dry_run=query.dry_run)
    except BackendError as exc:
        return _error(f"backend: {exc}", 503)
    return _answer(common.cleanup_report(cleanup))


def _bool_query(model):
    values = {}
    for name, info in model.model_fields.items():
        raw = request.args.get(name)
        if raw is None or info.annotation is not bool:
            continue
        if raw not in ("true", "false"):
            raise common.BodyError(f"{name}: must be true or false, not {raw[:40]!r}")
        values[name] = raw == "true"
    return model(**values)


@spec.operation(
    "/config",
    "get",
    "The effective configuration (secrets masked)",
    TAGS,
    query=TokenQuery,
    responses=_RESPONSES,
    security=True,
)
@bp.get("/config")
def get_config():
    settings = current_app.config["SETTINGS"]
    return _answer({"source": settings.source, **settings.public_dict()})


@spec.operation(
    "/config",
    "put",
    "Reload the configuration file; an invalid file keeps the running configuration",
    TAGS,
    query=TokenQuery,
    responses={**_RESPONSES, 400: ("The configuration file is invalid: the running configuration is kept", SeedAnswer)},
    security=True,
)
@bp.put("/config")
def reload_config():
    running = current_app.config["SETTINGS"]
    try:
        fresh = load_settings(running.source)
    except ConfigError as exc:
        return _error(f"configuration not reloaded, the running one is kept: {exc}", 400)
    try:
        restart = service().reconfigure(fresh.pipelines, fresh.data_path)
    except BackendConfigError as exc:  # what the running backend's start check says of them
        return _error(f"configuration not reloaded, the running one is kept: {exc}", 400)
    service().xnat_settings = fresh.xnat  # the XNAT servers take effect at once
    kept = {"pipelines": service().settings}
    if "data_dir" in restart:
        kept["data_dir"] = running.data_dir
    fresh = fresh.model_copy(update=kept)
    fresh.source = running.source
    current_app.config["SETTINGS"] = fresh
    return _answer({"reloaded": fresh.source or "built-in defaults", "restart_required": restart})


def service():
    return common.service()
