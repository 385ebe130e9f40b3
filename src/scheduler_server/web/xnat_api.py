"""The XNAT API: POST /api/v1/xnat/launch, one pipeline per session of a project (``pipelines/xnat/launch.py``).

Protected as the pipeline API is (the same token guard); errors answer in the /api/v1 style,
``{"status": "error", "message": ..., "field": ...}``.
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from pydantic import BaseModel

from scheduler_server.pipelines.xnat.launch import LaunchRequest, launch
from scheduler_server.web.metrics import count_launched
from scheduler_server.web.openapi import spec
from scheduler_server.web.pipelines import lifecycle as common
from scheduler_server.web.pipelines.models import ErrorOut, TokenQuery

bp = Blueprint("xnat_api", __name__, url_prefix="/api/v1/xnat")
bp.before_request(common.guard)
TAGS = ["xnat"]


class LaunchedSession(BaseModel):
    subject: str
    session: str
    session_id: str
    xsiType: str
    id: int | None = None  # the pipeline's id (absent in a dry run)


class SkippedSession(BaseModel):
    subject: str
    session: str
    session_id: str
    xsiType: str
    reason: str


class LaunchAnswer(BaseModel):
    dry_run: bool
    host: str
    project: str
    listed: int
    created: int
    pipelines: list[LaunchedSession]
    skipped: list[SkippedSession]
    warnings: list[str]


_400 = (
    "A client mistake naming its field: the body does not match this document, the credentials are not exactly"
    " user and pwd or alias and secret, the password occurs in a field stored in clear, the host is not in xnat.servers,"
    " XNAT refused the credentials or has no such project, the filters match no session (the field names the"
    " filter), more sessions match than xnat.max_launch (field max_launch), or the script, files or options are"
    " refused as a submission refuses them. Nothing was created."
)


common.answer_errors_in_status_style(bp)


@spec.operation(
    "/api/v1/xnat/launch",
    "post",
    "Launch a script on every session of an XNAT project (one pipeline each)",
    TAGS,
    body=LaunchRequest,
    query=TokenQuery,
    responses={
        201: ("Every matching session got a pipeline (all were queued together)", LaunchAnswer),
        200: ("dry_run: what would be launched and skipped; nothing was created", LaunchAnswer),
        400: (_400, ErrorOut),
        401: ("Missing or wrong token", ErrorOut),
        503: (
            "XNAT cannot be asked (unreachable, a 5xx, a timeout, a redirect), or the database cannot write",
            ErrorOut,
        ),
    },
    security=True,
)
@bp.post("/launch")
def launch_project():
    """Lists the project's experiments with one XNAT request (``columns``, and ``xsiType`` from ``session_type``),
    keeps the sessions the filters match, and queues one pipeline per session, sharing one alias token; the
    answer lists the pipelines created and the sessions skipped, each with why. All or none."""
    body = common.json_body()
    result = launch(common.service(), body)
    count_launched(0 if result.dry_run else len(result.pipelines))
    return jsonify(result.view()), 200 if result.dry_run else 201
