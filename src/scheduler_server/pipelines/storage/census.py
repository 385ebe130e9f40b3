"""Rows by state, counted at scrape time for GET /metrics (the same answer from every replica)."""

from __future__ import annotations

from sqlalchemy import func, select

from scheduler_server.pipelines.models import PIPELINE_STATES, Instance, InstanceState, Pipeline
from scheduler_server.pipelines.storage.store import Store


def pipelines_by_status(store: Store) -> dict[tuple[str, ...], int]:
    """Every status, zero included (a status missing from a scrape would read as 'no data', not 0)."""
    counts = {(status,): 0 for status in PIPELINE_STATES}
    with store.read() as session:
        for status, n in session.execute(select(Pipeline.status, func.count()).group_by(Pipeline.status)):
            counts[(status,)] = n
    return counts


def instances_by_state(store: Store, backend: str) -> dict[tuple[str, ...], int]:
    """(state, backend) -> rows; this server's backend shows every state, zero included."""
    counts = {(state.value, backend): 0 for state in InstanceState}
    query = select(Instance.state, Instance.backend, func.count()).group_by(Instance.state, Instance.backend)
    with store.read() as session:
        for state, name, n in session.execute(query):
            counts[(InstanceState(state).value, name)] = n
    return counts
