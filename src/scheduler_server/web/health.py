"""GET / : is the service up and ready, and which version (the pipeline seed's health check). Needs no token.

Ready means the pipeline database takes writes: while it is read-only, full or
unreachable the answer is 503 in the same shape, with the reason, so a load
balancer or an operator's probe sees it. The check is cheap (see ``store_health``).
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, redirect, request
from pydantic import BaseModel

from scheduler_server import __version__
from scheduler_server.web.errors import unavailable
from scheduler_server.web.openapi import spec

bp = Blueprint("health", __name__)


class Health(BaseModel):
    request: str
    content: dict[str, str]


@spec.operation(
    "/",
    "get",
    "Health check: the service is up and its database takes writes",
    ["health"],
    responses={
        200: ("Up and ready, with its version", Health),
        302: ("A browser (an Accept header preferring text/html) is sent to the web UI, /ui/", None),
        503: ("Up but not ready: content.reason says why", Health),
    },
)
@bp.get("/")
def health():
    """Every client whose Accept header does not prefer text/html over JSON (curl's */* included) gets the JSON."""
    if request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html":
        return redirect("/ui/", 302)
    problem = _database_problem()
    if problem is not None:
        body = {"request": "error", "content": {"status": "unavailable", "version": __version__, "reason": problem}}
        return unavailable((jsonify(body), 503))
    return jsonify({"request": "success", "content": {"status": "ok", "version": __version__}})


def _database_problem() -> str | None:
    pipelines = current_app.extensions.get("pipelines")
    return pipelines.service.store.write_problem() if pipelines is not None else None
