"""The pipeline list's filters and order, and the queue summary (counts, queue depth, throughput).

Both run on SQLite and PostgreSQL alike: plain comparisons, a case-insensitive
``LIKE`` for the search (its wildcards escaped), one ``GROUP BY`` for the counts
and one read of three time columns for the curves.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from scheduler_server.pipelines.models import PIPELINE_STATES, Pipeline

#: sort key of the list -> column (a leading '-' sorts descending; ties go by id, the same way).
SORT_COLUMNS = {
    "id": Pipeline.id,
    "submitted": Pipeline.created_at,
    "started": Pipeline.started_at,
    "finished": Pipeline.finished_at,
    "priority": Pipeline.priority,
    "status": Pipeline.status,
}
SORT_KEYS = tuple(k for name in SORT_COLUMNS for k in (name, f"-{name}"))
#: The columns a search looks in.
SEARCHED = (Pipeline.project, Pipeline.subject, Pipeline.session, Pipeline.script)


@dataclass(frozen=True)
class ListFilter:
    statuses: Sequence[str] | None = None
    project: str | None = None
    subject: str | None = None
    session: str | None = None
    search: str | None = None
    ids: Sequence[int] | None = None

    def apply(self, query: Select, dialect: str = "") -> Select:
        if self.statuses:
            query = query.where(Pipeline.status.in_(list(self.statuses)))
        for column, value in ((Pipeline.project, self.project), (Pipeline.subject, self.subject)):
            if value is not None:
                query = query.where(column == value)
        if self.session is not None:
            query = query.where(Pipeline.session == self.session)
        if self.ids is not None:
            query = query.where(Pipeline.id.in_(list(self.ids)))
        if self.search:
            pattern = "%" + self.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            # SQLite's LIKE already ignores ASCII case, as its lower() (which ilike adds) folds only ASCII:
            # the same match, without a function call per column and row.
            match = "like" if dialect == "sqlite" else "ilike"
            query = query.where(or_(*(getattr(column, match)(pattern, escape="\\") for column in SEARCHED)))
        return query


def ordered(query: Select, sort: str) -> Select:
    """``query`` in the order of ``sort`` (one of SORT_KEYS); nulls (not started yet) last either way."""
    descending = sort.startswith("-")
    column = SORT_COLUMNS[sort.lstrip("-")]
    key = column.desc() if descending else column.asc()
    tie = Pipeline.id.desc() if descending else Pipeline.id.asc()
    if column is Pipeline.id:
        return query.order_by(key)
    return query.order_by(column.is_(None), key, tie)


def summary(session: Session, now: float, hours: int, bucket_seconds: int) -> dict:
    """Counts by status; the queue depth (submitted, not started, not finished) at each bucket edge of the
    last ``hours``; and how many finished in each bucket, labelled by the bucket's end."""
    counts = dict.fromkeys(PIPELINE_STATES, 0)
    for status, n in session.execute(select(Pipeline.status, func.count()).group_by(Pipeline.status)):
        counts[status] = n
    since = now - hours * 3600
    table = Pipeline.__table__.c  # a Core read: plain tuples, no ORM rows for thousands of pipelines
    rows = (
        session.connection()
        .execute(
            select(table.created_at, table.started_at, table.finished_at).where(
                table.created_at <= now, or_(table.finished_at.is_(None), table.finished_at >= since)
            )
        )
        .all()
    )
    edges = [since + i * bucket_seconds for i in range(hours * 3600 // bucket_seconds + 1)]
    submitted = sorted(r[0] for r in rows)
    # A pipeline leaves the queue when it starts running or ends (whichever is first).
    left = sorted(min(t for t in (r[1], r[2]) if t is not None) for r in rows if r[1] is not None or r[2] is not None)
    finished = sorted(r[2] for r in rows if r[2] is not None)
    depth = [bisect.bisect_right(submitted, t) - bisect.bisect_right(left, t) for t in edges]
    done = [bisect.bisect_left(finished, b) - bisect.bisect_left(finished, a) for a, b in zip(edges, edges[1:])]
    return {"counts": counts, "edges": edges, "queue_depth": depth, "throughput": done}
