"""Rows by state, counted at scrape time for GET /metrics (the same answer from every replica)."""

from __future__ import annotations

from sqlalchemy import func, select

from scheduler_server.pipelines.models import PIPELINE_STATES, Instance, InstanceState, Pipeline
from scheduler_server.pipelines.storage.store import Store

Counts = dict[tuple[str, ...], int]


def count_rows(store: Store, backend: str) -> tuple[Counts, Counts]:
    """(status -> pipelines, (state, backend) -> instance rows), in one read transaction. Every status,
    and every state of this server's ``backend``, is there, zero included: a series missing from a
    scrape would read as 'no data', not as 0."""
    pipelines: Counts = {(status,): 0 for status in PIPELINE_STATES}
    instances: Counts = {(state.value, backend): 0 for state in InstanceState}
    by_state = select(Instance.state, Instance.backend, func.count()).group_by(Instance.state, Instance.backend)
    with store.read() as session:
        for status, n in session.execute(select(Pipeline.status, func.count()).group_by(Pipeline.status)):
            pipelines[(status,)] = n
        for state, name, n in session.execute(by_state):
            instances[(InstanceState(state).value, name)] = n
    return pipelines, instances
