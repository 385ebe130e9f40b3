"""``TIMETEST_CSV_FILE``: the seed's timing log, one CSV row per finished pipeline.

Times are UTC epoch seconds as the seed measured them: when the pipeline was
queued, when its instance was ready, when the script started and when it
finished; the header is written when the file is new.
"""

from __future__ import annotations

import csv
import logging
import threading
from pathlib import Path

from scheduler_server.pipelines.models import Pipeline

log = logging.getLogger(__name__)

COLUMNS = (
    "id",
    "project",
    "subject",
    "session",
    "script",
    "status",
    "exit_code",
    "attempt",
    "instance",
    "queued",
    "instance_ready",
    "script_started",
    "finished",
)


class TimetestCsv:
    def __init__(self, path_source):
        self._path_source = path_source  # callable: the configured path or None (settings can be reloaded)
        self._lock = threading.Lock()

    def record(self, pipeline: Pipeline) -> None:
        path: Path | None = self._path_source()
        if path is None:
            return
        path = Path(path).expanduser()
        row = [
            pipeline.id,
            pipeline.project,
            pipeline.subject,
            pipeline.session,
            pipeline.script,
            pipeline.status,
            pipeline.exit_code,
            pipeline.attempt,
            pipeline.instance_id,
            *(
                f"{t:.3f}" if t else ""
                for t in (pipeline.created_at, pipeline.instance_ready_at, pipeline.started_at, pipeline.finished_at)
            ),
        ]
        try:
            with self._lock:
                path.parent.mkdir(parents=True, exist_ok=True)
                new = not path.exists() or path.stat().st_size == 0
                with path.open("a", newline="") as handle:
                    writer = csv.writer(handle)
                    if new:
                        writer.writerow(COLUMNS)
                    writer.writerow(row)
        except OSError as exc:
            log.warning("cannot write TIMETEST_CSV_FILE %s: %s", path, exc)
