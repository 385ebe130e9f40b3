"""The pipeline list's filters and order, and the queue summary (counts, queue depth, throughput).

Both run on SQLite and PostgreSQL alike: plain comparisons, a case-insensitive
``LIKE`` for the search (its wildcards escaped), and ``GROUP BY`` for the counts
and for the curves.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Integer, Select, and_, case, cast, func, or_, select
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
    """Counts by status; the queue depth (submitted, neither started nor finished) at each bucket edge of the
    last ``hours``; and how many finished in each bucket (after its start, up to its end), labelled by its end.

    One ``GROUP BY`` of each pipeline's three edge indexes (the first edge at or after each time), summed up
    here: a few hundred numbers cross from the database, not a row per pipeline."""
    counts = dict.fromkeys(PIPELINE_STATES, 0)
    for status, n in session.execute(select(Pipeline.status, func.count()).group_by(Pipeline.status)):
        counts[status] = n
    since = now - hours * 3600
    edges = [since + i * bucket_seconds for i in range(hours * 3600 // bucket_seconds + 1)]
    c = Pipeline.__table__.c
    # A pipeline leaves the queue when it starts running or ends, whichever is first.
    left = case(
        (c.started_at.is_(None), c.finished_at),
        (c.finished_at.is_(None), c.started_at),
        (c.started_at < c.finished_at, c.started_at),
        else_=c.finished_at,
    )
    # Pipelines that ended before the window were submitted and left before it: they change no edge.
    window = and_(c.created_at <= now, or_(c.finished_at.is_(None), c.finished_at >= since))
    dialect = session.get_bind().dialect.name
    # One scan: the three edge indexes of each pipeline, grouped (a few hundred groups at most, as the
    # three times of a pipeline lie close together); a null time has a null index.
    columns = (c.created_at, left, c.finished_at)
    indexes = [_edge_index(column, since, bucket_seconds, dialect) for column in columns]
    histograms = [[0] * (len(edges) + 1) for _ in columns]
    for *found, n in session.connection().execute(select(*indexes, func.count()).where(window).group_by(*indexes)):
        for histogram, k in zip(histograms, found):
            if k is not None:
                histogram[min(int(k), len(edges))] += n
    submitted, gone, ended = (list(itertools.accumulate(h))[: len(edges)] for h in histograms)  # at or before each edge
    depth = [a - b for a, b in zip(submitted, gone)]
    return {
        "counts": counts,
        "edges": edges,
        "queue_depth": depth,
        "throughput": [b - a for a, b in zip(ended, ended[1:])],
    }


def _edge_index(column, since: float, width: int, dialect: str):
    """The index of the first edge (``since + k * width``) at or after the time in ``column``; 0 up to ``since``."""
    x = (column - since) / float(width)
    if dialect == "postgresql":
        whole = cast(func.ceil(x), Integer)
    else:  # ceil() in SQLite needs its optional math functions; CAST truncates, a floor for x > 0
        whole = cast(x, Integer) + case((x > cast(x, Integer), 1), else_=0)
    return case((column <= since, 0), else_=whole)
