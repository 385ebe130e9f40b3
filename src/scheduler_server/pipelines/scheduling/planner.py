"""Who goes where next: the queue, the live instances and the limits in, a Plan out.

A pure function, with no database and no backend, so that the rules (MAX_ACTIVE_PIPELINES,
MAX_INSTANCES, VIRTUAL_SERVER_TTL, look-ahead, fair shares between projects) can be read and tested
on their own. The
dispatcher reads the rows under its assignment lock, asks ``plan`` and applies the answer in the
same write transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from scheduler_server.pipelines.models import InstanceState


@dataclass(frozen=True)
class ProjectLimits:
    """pipelines.project_limits: most active pipelines per project (None: no limit of its own)."""

    default: int | None = None
    projects: Mapping[str, int] = field(default_factory=dict)

    def of(self, project: str | None) -> int | None:
        if project is None:  # a pipeline of no project (type script) has no project limit
            return None
        return self.projects.get(project, self.default)


@dataclass(frozen=True)
class Limits:
    max_active: int  # MAX_ACTIVE_PIPELINES
    max_instances: int  # MAX_INSTANCES, or fewer when the backend has room for fewer
    ttl: int  # VIRTUAL_SERVER_TTL: pipelines one instance runs before it is deleted
    projects: ProjectLimits = ProjectLimits()


@dataclass(frozen=True)
class Queued:
    """A queue entry: a queued pipeline due now, with what fairness needs."""

    id: int
    priority: int = 0
    project: str | None = None


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
    queue: Sequence[int | Queued],
    active: int,
    instances: Sequence[LiveInstance],
    limits: Limits,
    held: Collection[int] = (),
    active_by_project: Mapping[str | None, int] | None = None,
    last_turn: Mapping[str | None, int] | None = None,
) -> Plan:
    """Assign the queue's pipelines, in turn, while fewer than ``max_active`` are active: to an
    idle instance under its TTL first, then to a spare still booting, then to a new instance while
    fewer than ``max_instances`` live; then boot spares ahead for the rest of the queue.

    ``queue``: the queued pipelines due now (ids, or ``Queued`` with priority and project), by priority then
    FIFO; within one priority projects take turns (``fair_order``: ``last_turn`` says when each project last
    had one assigned, higher is later), and a project with ``limits.projects.of(project)`` active gets no
    more (nor spares for its waiting ones). ``active``: how many are active (``active_by_project``: per
    project). ``instances``: the live ones (booting, idle, busy, deleting: each counts against
    ``max_instances``). ``held``: pipelines of the queue that cannot be assigned this time (a job of their
    own is still returning); they still wait, for the look-ahead.
    """
    running = dict(active_by_project or {})
    entries = fair_order([q if isinstance(q, Queued) else Queued(q) for q in queue], running, last_turn or {})
    free = limits.max_active - active
    idle = [i.id for i in instances if i.state == InstanceState.IDLE and i.pipeline_id is None and i.uses < limits.ttl]
    spare = [i.id for i in instances if i.state == InstanceState.BOOTING and i.pipeline_id is None]
    count = len(instances)
    assignments: list[Assignment] = []
    for entry in entries:
        pipeline_id = entry.id
        if len(assignments) >= free:
            break
        if _at_limit(entry, running, limits.projects) or pipeline_id in held:
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
        running[entry.project] = running.get(entry.project, 0) + 1
    assigned = {a.pipeline_id for a in assignments}
    # Those waiting only for their project's limit get no spare booted ahead.
    waiting = sum(1 for e in entries if e.id not in assigned and not _at_limit(e, running, limits.projects))
    ahead = min(waiting - len(spare) - len(idle), limits.max_instances - count)
    return Plan(tuple(assignments), max(0, ahead))


def _at_limit(entry: Queued, running: Mapping[str | None, int], limits: ProjectLimits) -> bool:
    cap = limits.of(entry.project)
    return cap is not None and running.get(entry.project, 0) >= cap


def fair_order(
    queue: Sequence[Queued],
    active_by_project: Mapping[str | None, int],
    last_turn: Mapping[str | None, int] | None = None,
) -> list[Queued]:
    """The queue in the order it goes: by priority (highest first); within one priority, round-robin between
    projects: a project's n-th queued pipeline goes after every other project's (n-1)-th, counting the
    pipelines it already has active, so a project with none running goes first. Ties: the project whose
    last turn (``last_turn``) is longest ago, never-served first; then the one whose oldest pipeline queued
    first. Within a project: FIFO, as given. Pipelines of no project count as one project."""
    last_turn = last_turn or {}
    seen: dict[tuple[int, str | None], int] = {}
    first: dict[tuple[int, str | None], int] = {}
    keyed = []
    for index, entry in enumerate(queue):
        group = (entry.priority, entry.project)
        rank = seen.get(group, active_by_project.get(entry.project, 0))
        seen[group] = rank + 1
        first.setdefault(group, index)
        keyed.append(((-entry.priority, rank, last_turn.get(entry.project, 0), first[group], index), entry))
    return [entry for _, entry in sorted(keyed, key=lambda pair: pair[0])]
