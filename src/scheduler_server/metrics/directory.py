"""Where the processes of one server keep their metric files (prometheus-client's multiprocess mode).

``PROMETHEUS_MULTIPROC_DIR`` set by whoever started us (``serve --workers N``'s master, an operator)
wins. Unset, a gunicorn worker picks ``<data>/metrics/gunicorn-<master pid>``, shared by every worker
of that master; a lone process (``serve`` with one worker, the CLI, tests) keeps its series in memory.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

log = logging.getLogger(__name__)

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def choose(data_path: Path) -> Path | None:
    """The multiprocess directory of this process, set in the environment; None: in-memory series."""
    given = os.environ.get(VARIABLE) or os.environ.get(VARIABLE.lower())
    if given:
        path = Path(given)
    elif _gunicorn_worker():
        base = data_path / "metrics"
        _remove_dead_masters(base)
        path = base / f"gunicorn-{os.getppid()}"
    else:
        return None
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ[VARIABLE] = str(path)
    return path


def _gunicorn_worker() -> bool:
    """A worker forked by a gunicorn master (``gunicorn scheduler_server.app:app``)."""
    return "gunicorn.workers.base" in sys.modules


def _remove_dead_masters(base: Path) -> None:
    """Directories of gunicorn masters that are gone: nobody will read them again."""
    if not base.is_dir():
        return
    for entry in base.iterdir():
        name, _, pid = entry.name.partition("-")
        if name == "gunicorn" and pid.isdigit() and int(pid) != os.getppid() and not alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def dead_pids(path: Path) -> set[int]:
    """Processes whose live gauges lie in ``path`` but that no longer run (a worker that died)."""
    pids = set()
    for file in path.glob("gauge_live*_*.db"):
        pid = file.stem.rpartition("_")[2]
        if pid.isdigit() and not alive(int(pid)):
            pids.add(int(pid))
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
