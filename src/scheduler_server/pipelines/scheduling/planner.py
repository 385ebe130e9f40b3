"""Who goes where next: the queue, the live instances and the limits in, a Plan out.

A pure function, with no database and no backend, so that the rules (MAX_ACTIVE_PIPELINES,
MAX_INSTANCES, VIRTUAL_SERVER_TTL, look-ahead) can be read and tested on their own. The
dispatcher reads the rows under its assignment lock, asks ``plan`` and applies the answer in the
same write transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from scheduler_server.pipelines.models import InstanceState


@dataclass(frozen=True)
class Limits:
    max_active: int  # MAX_ACTIVE_PIPELINES
    max_instances: int  # MAX_INSTANCES, or fewer when the backend has room for fewer
    ttl: int  # VIRTUAL_SERVER_TTL: pipelines one instance runs before it is deleted


class LiveInstance(Protocol):
    """What the planner reads of an instance row."""

    id: str
    state: str
    pipeline_id: int | None
    uses: int


@dataclass(frozen=True)
class Assignment:
    pipeline_id: int
    instance_id: str | None  # None: a new instance, booted for it
    ready: bool  # the instance is idle: staging starts at once


@dataclass(frozen=True)
class Plan:
    assignments: tuple[Assignment, ...] = ()
    spares: int = 0  # new instances booted ahead, so that the pipelines still waiting find one ready


def plan(
    queue: Sequence[int],
    active: int,
    instances: Sequence[LiveInstance],
    limits: Limits,
    held: Collection[int] = (),
) -> Plan:
    """Assign the queue's pipelines, in order, while fewer than ``max_active`` are active: to an
    idle instance under its TTL first, then to a spare still booting, then to a new instance while
    fewer than ``max_instances`` live; then boot spares ahead for the rest of the queue.

    ``queue``: the ids of the queued pipelines due now, in the order they go (priority, then FIFO).
    ``active``: how many pipelines are active. ``instances``: the live ones (booting, idle, busy,
    deleting: each counts against ``max_instances``). ``held``: pipelines of the queue that cannot be
    assigned this time (a job of their own is still returning); they still wait, for the look-ahead.
    """
    free = limits.max_active - active
    idle = [i.id for i in instances if i.state == InstanceState.IDLE and i.pipeline_id is None and i.uses < limits.ttl]
    spare = [i.id for i in instances if i.state == InstanceState.BOOTING and i.pipeline_id is None]
    count = len(instances)
    assignments: list[Assignment] = []
    for pipeline_id in queue:
        if len(assignments) >= free:
            break
        if pipeline_id in held:
            continue
        if idle:
            assignments.append(Assignment(pipeline_id, idle.pop(0), ready=True))
        elif spare:
            assignments.append(Assignment(pipeline_id, spare.pop(0), ready=False))
        elif count < limits.max_instances:
            assignments.append(Assignment(pipeline_id, None, ready=False))
            count += 1
        else:
            break
    waiting = len(queue) - len(assignments)
    ahead = min(waiting - len(spare) - len(idle), limits.max_instances - count)
    return Plan(tuple(assignments), max(0, ahead))
