"""Errors handled in one place: no response ever carries a traceback.

Each API family answers in its seed's JSON style; ``ApiError`` carries the
status and message and the blueprint that raised it decides the shape. The
services raise errors by kind, without HTTP: ``status_of`` is the one mapping
of those kinds to statuses. Anything unexpected becomes a 500 whose request
id is also in the server log.
"""

from __future__ import annotations

import logging
import uuid

from flask import Flask, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from scheduler_server.pipelines.errors import Conflict, InvalidInput, NotFound, PipelineError, Unavailable
from scheduler_server.pipelines.storage.errors import StoreUnavailable

log = logging.getLogger("scheduler_server.web")


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


_STATUS_OF_KIND = ((InvalidInput, 400), (NotFound, 404), (Conflict, 409), (Unavailable, 503))


def status_of(exc: PipelineError) -> int:
    """The HTTP status of a refusal of the pipeline service."""
    return next((status for kind, status in _STATUS_OF_KIND if isinstance(exc, kind)), 400)


def http_error_message(exc: HTTPException) -> str:
    """The message of an HTTP error werkzeug raised (the same in every API's shape)."""
    if exc.code == 413:
        return f"request body: larger than the {current_app.config.get('MAX_CONTENT_LENGTH')} bytes this server accepts"
    return exc.description or exc.name


def request_id() -> str:
    rid = getattr(g, "request_id", None)
    if rid is None:
        incoming = request.headers.get("X-Request-ID", "")
        rid = incoming if incoming.isascii() and incoming.isalnum() and len(incoming) <= 64 else uuid.uuid4().hex[:16]
        g.request_id = rid
    return rid


def status_style(status: int, message: str, field: str | None = None):
    """The observing seed's shape: {"status": "error", "message": ...}."""
    body = {"status": "error", "message": message}
    if field:
        body["field"] = field
    return jsonify(body), status


def unavailable(answer):
    """A 503 answer (the database cannot serve now, not a bug), with a hint when to retry."""
    response, status = answer
    response.headers["Retry-After"] = "5"
    return response, status


def install_error_handlers(app: Flask) -> None:
    @app.before_request
    def _assign_request_id():
        request_id()

    @app.after_request
    def _echo_request_id(response):
        response.headers["X-Request-ID"] = request_id()
        return response

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return status_style(exc.status, exc.message, exc.field)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        response, status = status_style(exc.code or 500, http_error_message(exc))
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response, status

    @app.errorhandler(StoreUnavailable)
    def _store_unavailable(exc: StoreUnavailable):
        return unavailable(status_style(503, f"service unavailable: {exc.reason}"))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        rid = request_id()
        log.exception("unexpected error handling %s %s [request %s]", request.method, request.path, rid)
        return status_style(500, f"internal server error; quote request id {rid} when reporting it")
