"""Pipelines and instances as JSON-able dicts, with every secret masked. Used by the web API and the CLI."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from scheduler_server.pipelines.models import Instance, Pipeline
from scheduler_server.pipelines.secrets import MASK


def iso(t: float | None) -> str | None:
    return datetime.fromtimestamp(t, tz=UTC).isoformat().replace("+00:00", "Z") if t else None


def pipeline_view(pipeline: Pipeline, *, history: bool = False) -> dict[str, Any]:
    spec = dict(pipeline.spec or {})
    spec.pop("user_is_pwd", None)  # its user is the password, stored and shown as MASK
    view: dict[str, Any] = {"id": pipeline.id, "type": pipeline.type, "status": pipeline.status, **spec}
    if pipeline.secret is not None:
        view["pwd"] = MASK
    view.update(
        {
            "priority": pipeline.priority,
            "timeout": pipeline.timeout,
            "attempt": pipeline.attempt,
            "instance": pipeline.instance_id,
            "exit_code": pipeline.exit_code,
            "reason": pipeline.reason,
            "cancel_requested": pipeline.cancel_requested,
            "timings": {
                "queued": iso(pipeline.created_at),
                "instance_ready": iso(pipeline.instance_ready_at),
                "script_started": iso(pipeline.started_at),
                "finished": iso(pipeline.finished_at),
            },
        }
    )
    if history:
        view["history"] = [
            {"at": iso(t.at), "from": t.from_status, "to": t.to_status, "attempt": t.attempt, "reason": t.reason}
            for t in pipeline.transitions
        ]
    return view


def instance_view(instance: Instance) -> dict[str, Any]:
    info = instance.info or {}
    return {
        "id": instance.id,
        "backend": instance.backend,
        "state": instance.state,
        "backend_id": info.get("id"),
        "address": info.get("address"),
        "pipeline": instance.pipeline_id,
        "uses": instance.uses,
        "created": iso(instance.created_at),
        "ready": iso(instance.ready_at),
        "idle_since": iso(instance.idle_since),
        "error": instance.error,
    }
