"""The pipeline REST API: /api/v1/pipelines and /api/v1/instances.

Errors answer in the /api/v1 style of the whole service,
``{"status": "error", "message": ..., "field": ...}``.
"""

from __future__ import annotations

import time
from dataclasses import asdict

from flask import Blueprint, jsonify, request
from pydantic import BaseModel, ValidationError

from scheduler_server.pipelines.redacted import instance_view, iso, pipeline_view
from scheduler_server.pipelines.tasks.base import PLAIN_TEXT_SCHEMA, plain_text
from scheduler_server.validation_text import field_and_problem
from scheduler_server.web.errors import ApiError
from scheduler_server.web.integers import ID_RANGE, IntegerError, parse_int
from scheduler_server.web.metrics import count_submissions
from scheduler_server.web.openapi import spec
from scheduler_server.web.pipelines import lifecycle as common
from scheduler_server.web.pipelines.models import (
    MAX_SUBMISSION,
    SUBMIT_400,
    SUMMARY_BUCKET_SECONDS,
    SUMMARY_HOURS,
    Deleted,
    ErrorOut,
    InstanceList,
    LogChunk,
    LogsQuery,
    PipelineListQuery,
    PipelineOut,
    PipelinePage,
    PipelineSubmission,
    PipelineSummary,
    SubmitAnswer,
    TokenQuery,
)

bp = Blueprint("pipelines_api", __name__, url_prefix="/api/v1")
bp.before_request(common.guard)
TAGS = ["pipelines"]
ID = {"id": ("Pipeline id.", {"type": "integer", "minimum": ID_RANGE[0], "maximum": ID_RANGE[1]})}
_UNAVAILABLE = {503: ("The service cannot serve this now (e.g. its database cannot take writes)", ErrorOut)}
_COMMON = {
    400: ("A client mistake: the request does not match this document", ErrorOut),
    401: ("Missing or wrong token", ErrorOut),
    **_UNAVAILABLE,
}
_ERRORS = {**_COMMON, 404: ("No such pipeline", ErrorOut)}


common.answer_errors_in_status_style(bp)


def _query(model: type[BaseModel]):
    """The query as ``model``, each parameter given once (to_dict() would keep one of several silently)."""
    for name in request.args:
        count = len(request.args.getlist(name))
        if count > 1:
            raise ApiError(400, f"{name}: given {count} times; give it once", name)
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        name, problem, _ = field_and_problem(exc, "query")
        first = exc.errors()[0]
        if first["type"] == "too_long" and isinstance(first.get("input"), str):  # a text filter, not a list
            problem = f"at most {first['ctx']['max_length']} characters, not {len(first['input'])}"
        raise ApiError(400, f"{name}: {problem}", name) from None


def _pipeline_id(raw: str) -> int:
    try:
        return parse_int(raw, *ID_RANGE)
    except IntegerError as exc:
        raise ApiError(400, f"id: {exc}", "id") from None


def _links_to_pipeline(id_expression: str) -> dict[str, dict]:
    """The operations that take a pipeline id, fed from ``id_expression`` (an OpenAPI runtime expression)."""
    ops = {
        "GetPipeline": "get_api_v1_pipelines_id",
        "CancelPipeline": "post_api_v1_pipelines_id_cancel",
        "RetryPipeline": "post_api_v1_pipelines_id_retry",
        "PipelineLogs": "get_api_v1_pipelines_id_logs",
    }
    return {name: {"operationId": op, "parameters": {"id": id_expression}} for name, op in ops.items()}


@spec.operation(
    "/api/v1/pipelines",
    "post",
    "Submit one pipeline or many",
    TAGS,
    body=PipelineSubmission,
    query=TokenQuery,
    links={201: _links_to_pipeline("$response.body#/pipelines/0/id")},
    responses={
        201: ("Accepted (some items may be rejected: see each report)", SubmitAnswer),
        **_COMMON,
        400: (SUBMIT_400, (ErrorOut, SubmitAnswer)),
    },
    security=True,
)
@bp.post("/pipelines")
def submit():
    """Answers 201 when at least one pipeline was accepted, 400 when none was."""
    body = common.json_body()
    items = [body] if isinstance(body, dict) else body
    if not isinstance(items, list) or not items or len(items) > MAX_SUBMISSION:
        raise common.BodyError(f"request body: must be a pipeline object or a list of 1 to {MAX_SUBMISSION} of them")
    results = common.service().submit(items)
    count_submissions(items, results)
    accepted = sum(r.accepted for r in results)
    if not accepted and len(results) == 1:
        raise results[0].error
    reports = [common.submit_report(r) for r in results]
    answer = {"accepted": accepted, "rejected": len(reports) - accepted, "pipelines": reports}
    return jsonify(answer), 201 if accepted else 400


@spec.operation(
    "/api/v1/pipelines",
    "get",
    "List pipelines, filtered and paginated",
    TAGS,
    query=PipelineListQuery,
    links={200: _links_to_pipeline("$response.body#/items/0/id")},
    responses={200: ("One page", PipelinePage), **_COMMON},
    security=True,
)
@bp.get("/pipelines")
def list_pipelines():
    query = _query(PipelineListQuery)
    # The model's pattern admits only known statuses.
    statuses = [s.strip() for s in query.status.split(",")] if query.status else None
    found, total = common.service().store.list_pipelines(
        statuses=statuses,
        project=query.project,
        subject=query.subject,
        session=query.session,
        search=query.q,
        sort=query.sort,
        offset=query.offset,
        limit=query.limit,
    )
    return jsonify(
        {"total": total, "offset": query.offset, "limit": query.limit, "items": [pipeline_view(p) for p in found]}
    )


@spec.operation(
    "/api/v1/pipelines/summary",
    "get",
    "Counts by status, and the queue depth and throughput over the last hours",
    TAGS,
    query=TokenQuery,
    responses={200: ("The summary", PipelineSummary), **_COMMON},
    security=True,
)
@bp.get("/pipelines/summary")
def summary():
    """Queue depth at every bucket edge of the last ``hours``; throughput per bucket, labelled by its end."""
    found = common.service().store.summary(time.time(), SUMMARY_HOURS, SUMMARY_BUCKET_SECONDS)
    edges = [iso(t) for t in found["edges"]]
    return jsonify(
        {
            "counts": found["counts"],
            "queue_depth": [list(pair) for pair in zip(edges, found["queue_depth"])],
            "throughput": [list(pair) for pair in zip(edges[1:], found["throughput"])],
            "bucket_seconds": SUMMARY_BUCKET_SECONDS,
            "hours": SUMMARY_HOURS,
        }
    )


@spec.operation(
    "/api/v1/pipelines/{id}",
    "get",
    "One pipeline with its status history",
    TAGS,
    path_params=ID,
    query=TokenQuery,
    responses={200: ("The pipeline", PipelineOut), **_ERRORS},
    security=True,
)
@bp.get("/pipelines/<raw_id>")
def get_pipeline(raw_id: str):
    return jsonify(pipeline_view(common.service().get(_pipeline_id(raw_id)), history=True))


@spec.operation(
    "/api/v1/pipelines/{id}/cancel",
    "post",
    "Cancel: dequeue it, or kill its process group on the instance",
    TAGS,
    path_params=ID,
    query=TokenQuery,
    responses={202: ("Cancellation under way (or done)", PipelineOut), **_ERRORS, 409: ("Already finished", ErrorOut)},
    security=True,
)
@bp.post("/pipelines/<raw_id>/cancel")
def cancel(raw_id: str):
    return jsonify(pipeline_view(common.service().cancel(_pipeline_id(raw_id)), history=True)), 202


@spec.operation(
    "/api/v1/pipelines/{id}/retry",
    "post",
    "Queue a failed or cancelled pipeline again (attempts count anew)",
    TAGS,
    path_params=ID,
    query=TokenQuery,
    responses={202: ("Queued again", PipelineOut), **_ERRORS, 409: ("Not failed or cancelled", ErrorOut)},
    security=True,
)
@bp.post("/pipelines/<raw_id>/retry")
def retry(raw_id: str):
    # A body is optional: fresh XNAT credentials ({user, pwd} or {alias, secret}) once the alias token is gone.
    credentials = common.json_body(required=False)
    return jsonify(pipeline_view(common.service().retry(_pipeline_id(raw_id), credentials), history=True)), 202


@spec.operation(
    "/api/v1/pipelines/{id}/logs",
    "get",
    "Tail the script's stdout or stderr",
    TAGS,
    path_params=ID,
    query=LogsQuery,
    responses={
        200: ("A chunk of the log", LogChunk),
        **_ERRORS,
        503: ("Instance unreachable, or the service cannot serve this now", ErrorOut),
    },
    security=True,
)
@bp.get("/pipelines/<raw_id>/logs")
def logs(raw_id: str):
    """Read from byte ``since``; pass the answer's ``next`` as the following ``since`` to follow a running job."""
    query = _query(LogsQuery)
    chunk = common.service().logs(_pipeline_id(raw_id), query.stream, query.since, query.max_bytes)
    return jsonify(asdict(chunk))


@spec.operation(
    "/api/v1/instances",
    "get",
    "Live instances",
    ["instances"],
    query=TokenQuery,
    responses={200: ("Booting, idle, busy and deleting instances", InstanceList), **_COMMON},
    security=True,
)
@bp.get("/instances")
def instances():
    return jsonify({"items": [instance_view(i) for i in common.service().pool.live()]})


@spec.operation(
    "/api/v1/instances/{id}",
    "delete",
    "Delete one idle instance",
    ["instances"],
    path_params={
        "id": (
            "Instance id (as GET /api/v1/instances lists it).",
            {"type": "string", "minLength": 1, "maxLength": 255, **PLAIN_TEXT_SCHEMA},
        )
    },
    query=TokenQuery,
    responses={
        200: ("Deleted", Deleted),
        **_COMMON,
        404: ("No such live instance", ErrorOut),
        409: ("In use or still booting", ErrorOut),
    },
    security=True,
)
@bp.delete("/instances/<instance_id>")
def delete_instance(instance_id: str):
    # As the id column stores it; a NUL would reach PostgreSQL, which refuses it.
    try:
        plain_text(instance_id)
        if len(instance_id) > 255:
            raise ValueError("must be at most 255 characters")
    except ValueError as exc:
        raise ApiError(400, f"id: {exc}", "id") from None
    common.service().delete_instance(instance_id)
    return jsonify({"deleted": instance_id})
