"""Assigning in a write transaction: read the queue under the assignment lock, ask the planner, move the rows.

The dispatcher calls ``assign`` in its own transaction, in a submission's or in a
pipeline's end; it boots and starts what was ``Assigned`` once that transaction commits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from scheduler_server.pipelines.jobdir import job_dir
from scheduler_server.pipelines.models import (
    LIVE_INSTANCE_STATES,
    PROVISIONING,
    QUEUED,
    STAGING,
    Instance,
    InstanceState,
    Pipeline,
)
from scheduler_server.pipelines.scheduling import planner
from scheduler_server.pipelines.scheduling.pool import Pool
from scheduler_server.pipelines.settings import PipelineSettings
from scheduler_server.pipelines.storage.store import Store


@dataclass
class Assigned:
    """What an assignment changed: the instances to boot, the pipelines to start on ready ones."""

    boot: list[str] = field(default_factory=list)
    start: list[tuple[Pipeline, Instance]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.boot or self.start)


def assign(
    session: Session,
    store: Store,
    pool: Pool,
    settings: PipelineSettings,
    now: float,
    limit: int,
    busy: Callable[[int], bool],
    turns: dict[str | None, int] | None = None,
) -> Assigned | None:
    """In the write transaction ``session``: ask the planner, and move queued pipelines onto
    instances as it says (None if nothing is queued). ``limit``: the instances there may be;
    ``busy(pipeline id)``: a job of its own is still returning (a retry, a cancel), so not this time.
    ``turns``: each project's last turn (the dispatcher's, in memory; updated here), for round-robin.

    The queue is read here, under the assignment lock: a view read before could be out of date (a
    pipeline's end may have assigned meanwhile) and planning on it would exceed
    MAX_ACTIVE_PIPELINES or boot spares for pipelines that already have an instance."""
    store.lock_assignments(session)
    by_project, due = store.fair_queue_view(now, settings.max_active_pipelines + limit, session)
    if not due:
        return None
    queued = [planner.Queued(id_, priority, project) for id_, priority, project in due]
    active = sum(by_project.values())
    ids = [q.id for q in queued]
    pipelines = {p.id: p for p in session.scalars(select(Pipeline).where(Pipeline.id.in_(ids)))}
    held = {pid for pid in ids if busy(pid) or not _assignable(pipelines.get(pid))}
    live = list(session.scalars(select(Instance).where(Instance.state.in_(LIVE_INSTANCE_STATES))))
    shares = planner.ProjectLimits(settings.project_limits.default, settings.project_limits.projects)
    limits = planner.Limits(settings.max_active_pipelines, limit, settings.virtual_server_ttl, shares)
    turns = {} if turns is None else turns
    decided = planner.plan(queued, active, live, limits, held, by_project, turns)
    projects = {q.id: q.project for q in queued}
    for chosen in decided.assignments:
        turns[projects[chosen.pipeline_id]] = max(turns.values(), default=0) + 1
    instances = {i.id: i for i in live}
    assigned = Assigned()
    for assignment in decided.assignments:
        if assignment.instance_id is None:
            instance = pool.create(session)
            assigned.boot.append(instance.id)
        else:
            instance = instances[assignment.instance_id]
        pipeline = pipelines[assignment.pipeline_id]
        _put_on(pipeline, instance, assignment.ready, now, settings.remote_base_folder)
        if assignment.ready:
            assigned.start.append((pipeline, instance))
    assigned.boot += [pool.create(session).id for _ in range(decided.spares)]
    return assigned


def _put_on(pipeline: Pipeline, instance: Instance, ready: bool, now: float, remote_base_folder: str) -> None:
    if ready:
        instance.move(InstanceState.BUSY)
    pipeline.attempt += 1
    pipeline.move(PROVISIONING, f"attempt {pipeline.attempts_used()}: instance {instance.id}", now)
    pipeline.instance_id = instance.id
    pipeline.exit_code = None
    instance.pipeline_id = pipeline.id
    instance.uses += 1
    instance.idle_since = None
    if ready:  # staging starts now, in this transaction
        pipeline.move(STAGING, f"instance {instance.id} ready (reused)", now)
        pipeline.instance_ready_at = now
        pipeline.job_dir = job_dir(remote_base_folder, pipeline.id, pipeline.attempt)


def _assignable(pipeline: Pipeline | None) -> bool:
    return pipeline is not None and pipeline.status == QUEUED and not pipeline.cancel_requested
