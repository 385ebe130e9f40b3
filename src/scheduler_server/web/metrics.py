"""GET /metrics: the Prometheus text format (0.0.4), every worker's series merged (docs/metrics.md).

Guarded like the pipeline API: with ``pipelines.tokens_file`` set, a scrape presents a token
(``Authorization: Bearer`` or ``?token=``). Not in the OpenAPI document: it is not JSON, and
Prometheus, not an API client, reads it. Also here: the timing of Schedule API requests and the
count of submissions, which the views report with one call.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, Flask, Response, g, request

from scheduler_server import metrics
from scheduler_server.observing.policies.registry import available_policies
from scheduler_server.pipelines.storage.errors import StoreUnavailable
from scheduler_server.pipelines.tasks import TASK_TYPES
from scheduler_server.web.auth import AuthError
from scheduler_server.web.errors import status_style
from scheduler_server.web.pipelines import lifecycle

log = logging.getLogger(__name__)

bp = Blueprint("metrics", __name__)
SCHEDULE_ENDPOINT = "schedule.schedule"


@bp.get("/metrics")
def scrape():
    ext = lifecycle.pipelines()
    try:
        ext.auth.check(request)
    except AuthError as exc:
        response, status = status_style(exc.status, exc.message)
        response.headers["WWW-Authenticate"] = 'Bearer realm="scheduler-server"'
        return response, status
    service = ext.service
    return Response(metrics.render(lambda: _census(service)), content_type=metrics.CONTENT_TYPE)


def _census(service) -> metrics.Census:
    """The database's rows by state; none if it cannot be read now (the scrape still answers)."""
    try:
        pipelines, instances = service.census()
    except StoreUnavailable as exc:
        log.warning("/metrics: database series left out: %s", exc)
        return []
    return [
        ("pipelines", "Pipelines by status (from the database: the same on every replica).", ("status",), pipelines),
        (
            "instances",
            "Instance rows by state and backend (from the database: the same on every replica).",
            ("state", "backend"),
            instances,
        ),
    ]


def install(app: Flask) -> None:
    """Time each Schedule API request, whatever answers it (the view, an error handler)."""

    @app.before_request
    def _start_schedule_clock():
        if request.endpoint == SCHEDULE_ENDPOINT:
            g.schedule_started = time.perf_counter()

    @app.after_request
    def _observe_schedule(response):
        started = g.get("schedule_started")
        if started is not None:
            metrics.schedule_request(_policy_label(), _outcome(response.status_code), time.perf_counter() - started)
        return response


def _policy_label() -> str:
    """The policy the request named (``g.policy``, set by the view once the body is valid) if installed."""
    name = g.get("policy")
    if name is None:
        return "none"
    return name if name in available_policies() else "other"


def _outcome(status: int) -> str:
    return "server_error" if status >= 500 else "client_error" if status >= 400 else "ok"


def count_submissions(items: list[Any], results: list[Any]) -> None:
    """One count per submitted item, by its task type (``other`` if unknown) and whether it was queued."""
    for item, result in zip(items, results):
        kind = item.get("type", "xnat") if isinstance(item, dict) else None
        metrics.submitted(kind if isinstance(kind, str) and kind in TASK_TYPES else "other", result.accepted)


def count_launched(created: int) -> None:
    """A project launch (POST /api/v1/xnat/launch) queued ``created`` pipelines of type xnat."""
    for _ in range(created):
        metrics.submitted("xnat", True)
