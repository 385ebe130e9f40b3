"""The planner's queue read: Store.fair_queue_view (a window per project) against queue_view (one LIMIT), in-process.

    .venv/bin/python bench/bench_fair_queue.py [queued ...]

For each queue size: one SQLite database with that many queued pipelines, 95% in one project (a big launch),
the rest over 20 others; the median of 50 reads of each, as the assignment transaction does them (limit 12:
max_active_pipelines 2 + 10 instances).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from scheduler_server.pipelines.models import Pipeline
from scheduler_server.pipelines.storage.store import Store

LIMIT = 12
READS = 50


def _fill(store: Store, queued: int) -> None:
    rows = []
    for i in range(queued):
        project = "big" if i % 20 else f"lab{i % 400 // 20}"
        rows.append(Pipeline(type="xnat", project=project, script="s.sh", spec={}, priority=0))
    store.add_pipelines(rows)


def _median_ms(read, *args) -> float:
    times = []
    for _ in range(READS):
        started = time.perf_counter()
        read(*args)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main(sizes: list[int]) -> None:
    for queued in sizes:
        with tempfile.TemporaryDirectory() as folder:
            store = Store(f"sqlite:///{Path(folder) / 'p.sqlite'}")
            _fill(store, queued)
            now = time.time() + 1
            with store.read() as session:
                plain = _median_ms(store.queue_view, now, LIMIT, session)
                fair = _median_ms(store.fair_queue_view, now, LIMIT, session)
            store.close()
        print(f"{queued:>6} queued: queue_view {plain:.2f} ms, fair_queue_view {fair:.2f} ms (median of {READS})")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100, 1000, 10000])
