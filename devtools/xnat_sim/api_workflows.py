"""Workflows (``wrk:workflowData``), as xnat-web's WorkflowResource and WorkflowsRestlet take and answer them.

- ``PUT /data/workflows?wrk:workflowData/id=XNAT_E00001&wrk:workflowData/pipeline_name=...&...`` creates or updates:
  an existing entry is found by (pipeline_name, id, scan_id, launch_time), so repeating a PUT never makes a second
  one; a new entry needs id, launch_time, data_type and pipeline_name (400 otherwise, XNAT's message). ``PUT
  /data/workflows/{wrk_workflowData_id}`` updates that entry (404 if none). A user without the right to write
  workflows, or editing another user's entry, gets 403 ("You are not allowed to make changes to this workflow.").
- ``GET /data/workflows/{wrk_workflowData_id}?format=json``, or ``GET /data/workflows?wrk:workflowData/...`` with
  the identifying fields: the item (404 "Unable to find the specified workflow."). A body (an XML document) is not
  simulated (501): fields go in the query.
- ``GET /data/services/workflows/{pipeline_name}?experiment=<ID>&display=ALL&format=json``: the session's entries
  whose pipeline_name contains the name (SQL ``LIKE '%name%'``), newest launch first, as a ResultSet;
  ``display=LATEST`` (the default) gives the newest as an item.
"""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, Response, current_app, g, request

from . import render
from .api_data import readable_experiment
from .errors import SimError, fmt_of, only_params

bp = Blueprint("xnat_workflows", __name__)
PREFIX = "wrk:workflowdata/"
FIELDS = {
    f.lower(): f
    for f in (
        "id scan_id pipeline_name launch_time status data_type step_description current_step_id "
        "current_step_launch_time next_step_id percentageComplete externalID comments details justification "
        "description src type category jobID create_user"
    ).split()
}
REQUIRED = ("id", "launch_time", "pipeline_name", "data_type")
_DATE_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f")


def _state():
    return current_app.config["SIM"].state


def _parse_time(name: str, raw: str) -> str:
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(raw, fmt).strftime("%Y-%m-%d %H:%M:%S.0")
        except ValueError:
            continue
    raise SimError(400, f"wrk:workflowData/{name}: not a date-time XNAT reads: {raw!r}")


def _fields_from_query(skip: tuple[str, ...] = ()) -> dict:
    fields = {}
    for key, value in request.args.items():
        if key in skip:
            continue
        if not key.lower().startswith(PREFIX) or key.lower()[len(PREFIX) :] not in FIELDS:
            raise SimError(400, f"unknown query parameter {key} (workflows take wrk:workflowData/<field>)")
        name = FIELDS[key.lower()[len(PREFIX) :]]
        fields[name] = _parse_time(name, value) if name in ("launch_time", "current_step_launch_time") else value
    return fields


def _same(row: dict, fields: dict) -> bool:
    keys = ("pipeline_name", "id", "scan_id", "launch_time")
    return all((row.get(k) or "") == (fields.get(k) or "") for k in keys)


@bp.route("/data/workflows", methods=["PUT"])
@bp.route("/data/workflows/<int:wid>", methods=["PUT"])
def put_workflow(wid: int | None = None):
    if request.get_data():
        raise SimError(
            501, "not simulated by devtools.xnat_sim: a wrk:workflowData document in the body (use the query)"
        )
    fields, state = _fields_from_query(), _state()
    with state.lock:
        if wid is not None:
            existing = next((w for w in state.workflows if w["wrk_workflowData_id"] == wid), None)
            if existing is None:
                raise SimError(404, "Unable to find the specified workflow.")
        else:
            existing = next((w for w in state.workflows if _same(w, fields)), None)
        if not g.user.may_write_workflows and not g.user.admin:
            raise SimError(403, "You are not allowed to make changes to this workflow.")
        if existing is not None and existing["insert_user"] != g.user.name and not g.user.admin:
            raise SimError(403, "You are not allowed to make changes to this workflow.")
        if existing is None:
            if any(not fields.get(k) for k in REQUIRED):
                raise SimError(
                    400,
                    "Id, launch_time, data_type and pipeline_name are all required "
                    "(scan_id may be specified when appropriate but is not required).",
                )
            experiment = readable_experiment(fields["id"])
            existing = {"wrk_workflowData_id": len(state.workflows) + 1, "insert_user": g.user.name}
            existing["ExternalID"] = experiment.project
            state.workflows.append(existing)
        existing.update(fields)
    return Response("", 200)


@bp.route("/data/workflows", methods=["GET"])
@bp.route("/data/workflows/<int:wid>", methods=["GET"])
def get_workflow(wid: int | None = None):
    """One entry: by its ``wrk_workflowData_id``, or (``/data/workflows?wrk:workflowData/...``) by the fields that
    identify it (pipeline_name, id, scan_id, launch_time), as WorkflowResource finds it."""
    fmt = fmt_of(request.args, render.ITEM_FORMATS, "xml")
    key = _fields_from_query(skip=("format",)) if wid is None else None
    if wid is not None:
        only_params({"format"}, request.args)
    with _state().lock:
        rows = [dict(w) for w in _state().workflows]
    if key is not None:
        row = next((w for w in rows if _same(w, key)), None)
    else:
        row = next((w for w in rows if w["wrk_workflowData_id"] == wid), None)
    if row is None:
        raise SimError(404, "Unable to find the specified workflow.")
    return render.item("wrk:workflowData", row, fmt)


@bp.route("/data/services/workflows/<pipeline_name>", methods=["GET"])
def session_workflows(pipeline_name: str):
    only_params({"format", "experiment", "project", "status", "display"}, request.args)
    display = (request.args.get("display") or "LATEST").upper()
    experiment_id = request.args.get("experiment")
    if not experiment_id:
        raise SimError(501, "not simulated by devtools.xnat_sim: workflow listings without experiment=")
    experiment = readable_experiment(experiment_id)
    status = request.args.get("status")
    with _state().lock:
        rows = [
            dict(w)
            for w in _state().workflows
            if w.get("id") == experiment.id
            and pipeline_name.lower() in (w.get("pipeline_name") or "")
            and (status is None or w.get("status") == status)
        ]
    rows.sort(key=lambda w: w.get("launch_time") or "", reverse=True)
    if display == "LATEST":
        if not rows:
            raise SimError(
                404, f"Unable to find workflow entry for pipeline {pipeline_name} and experiment.{experiment.id}"
            )
        return render.item("wrk:workflowData", rows[0], fmt_of(request.args, render.ITEM_FORMATS, "xml"))
    columns = ["wrk_workflowData_id", "id", "ExternalID", "pipeline_name", "launch_time", "status", "data_type"]
    columns += ["step_description", "current_step_id", "current_step_launch_time", "percentageComplete", "insert_user"]
    return render.result_set(rows, columns, fmt_of(request.args, render.LISTING_FORMATS, "html"), title="All workflows")
