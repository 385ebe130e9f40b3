"""What the two pipeline blueprints share: the service on the app, the token guard, JSON body parsing,
the per-item submit report (the seed's, which the REST API kept).

The ``PipelineService`` is built when the blueprints are registered (so a bad
configuration fails at start), but its dispatcher thread starts only on the
first pipeline request or when ``scheduler-server serve`` boots its worker
(``start_pipelines``): building the app never starts threads by itself.
"""

from __future__ import annotations

import atexit
import re
from typing import Any

from flask import Blueprint, Flask, current_app, request

from scheduler_server.pipelines.backend_errors import BackendConfigError
from scheduler_server.pipelines.clouds.backend import InstanceInfo
from scheduler_server.pipelines.errors import PipelineError
from scheduler_server.pipelines.models import QUEUED
from scheduler_server.pipelines.secrets import SecretError
from scheduler_server.pipelines.service import PipelineService, Submitted, UntrackedCleanup
from scheduler_server.startup_error import ConfigError
from scheduler_server.web.auth import AuthError, TokenAuth, warn_if_open
from scheduler_server.web.bodies import BodyError, json_body
from scheduler_server.web.errors import status_of, status_style
from scheduler_server.web.integers import INT32_MAX
from scheduler_server.web.openapi import spec

__all__ = [
    "BodyError",
    "json_body",
    "parse_ids",
    "service",
    "guard",
    "answer_errors_in_status_style",
    "install",
    "start_pipelines",
    "stop_pipelines",
    "submit_report",
    "cleanup_report",
]

EXTENSION = "pipelines"


def answer_errors_in_status_style(bp: Blueprint) -> None:
    """The /api/v1 answers of a blueprint's body, pipeline and token errors (the seed's routes keep their own shape)."""
    bp.register_error_handler(BodyError, lambda exc: status_style(exc.status, exc.message, exc.field))
    bp.register_error_handler(PipelineError, lambda exc: status_style(status_of(exc), exc.message, exc.field))
    bp.register_error_handler(AuthError, _auth_error)


def _auth_error(exc: AuthError):
    response, status = status_style(exc.status, exc.message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="scheduler-server"'
    return response, status


spec.security_schemes.setdefault(
    "bearerAuth", {"type": "http", "scheme": "bearer", "description": "A line of pipelines.tokens_file."}
)
spec.security_schemes.setdefault("tokenQuery", {"type": "apiKey", "in": "query", "name": "token"})


class Pipelines:
    """The pipeline service and its token check, as one Flask extension."""

    def __init__(self, app: Flask):
        try:
            settings = app.config["SETTINGS"]
            self.service = PipelineService(settings.pipelines, settings.data_path, settings.xnat)
        except (BackendConfigError, SecretError) as exc:
            raise ConfigError(str(exc)) from None
        self.auth = TokenAuth(lambda: self.service.settings.tokens_file)
        warn_if_open(self.auth)


def install(app: Flask) -> None:
    if EXTENSION not in app.extensions:
        app.extensions[EXTENSION] = Pipelines(app)


def start_pipelines(app: Flask) -> None:
    """Start the dispatcher in this process now (gunicorn worker boot) rather than on the first request."""
    install(app)
    app.extensions[EXTENSION].service.ensure_started()


def stop_pipelines(app: Flask) -> None:
    """The end of a serving process, once its requests are done: the dispatcher stops (handing the
    lease over), running jobs keep running on their instances, the backend's connections close."""
    ext = app.extensions.get(EXTENSION)
    if ext is not None:
        atexit.unregister(ext.service.stop)  # done here, not again at exit
        ext.service.stop()


def pipelines() -> Pipelines:
    return current_app.extensions[EXTENSION]


def service() -> PipelineService:
    return pipelines().service


def guard() -> None:
    """before_request of both pipeline blueprints: start the dispatcher here if needed, then check the token."""
    ext = pipelines()
    ext.service.ensure_started()
    ext.auth.check(request)


def parse_ids(values: list[Any]) -> list[int]:
    """Ids of GET /pipeline (query ``1,2`` or JSON ``1`` / ``[1, 2]``): 1 to 10 ASCII digits each.

    An id of 10 digits above the id range names no pipeline, so it matches nothing.
    """
    ids = []
    for value in values:
        parts = value.split(",") if isinstance(value, str) else [value]
        for part in parts:
            text = part.strip() if isinstance(part, str) else part
            if isinstance(text, int) and not isinstance(text, bool) and 0 <= text <= 9_999_999_999:
                text = str(text)
            if not isinstance(text, str) or not _ID.fullmatch(text):
                raise BodyError(f"id: {_shown(part)} is not a pipeline id (an integer of 1 to 10 ASCII digits)")
            if 1 <= int(text) <= INT32_MAX:
                ids.append(int(text))
    return ids


def submit_report(result: Submitted) -> dict[str, Any]:
    """One item's report, as the seed's POST /pipeline answered a list (and POST /api/v1/pipelines too)."""
    if result.error is not None:
        return {"index": result.index, "request": "error", "error": result.error.message, "field": result.error.field}
    report = {"index": result.index, "request": "success", "id": result.id, "status": QUEUED}
    if result.warnings:
        report["warnings"] = list(result.warnings)
    return report


def cleanup_report(cleanup: UntrackedCleanup) -> dict[str, Any]:
    """DELETE /instance's content (also what ``scheduler-server instances delete-untracked`` prints)."""
    return {
        "dry_run": cleanup.dry_run,
        "all": cleanup.include_untagged,
        "candidates": [_described(i) for i in cleanup.candidates],
        "deleted": cleanup.deleted,
        "failed": [{"id": instance_id, "error": why} for instance_id, why in cleanup.failed],
    }


def _described(info: InstanceInfo) -> dict[str, Any]:
    return {"id": info.id, "name": info.name, "state": info.state, "address": info.address, "tagged": info.tagged}


_ID = re.compile(r"[0-9]{1,10}")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
