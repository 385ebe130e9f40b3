"""Where the processes of one server keep their metric files (prometheus-client's multiprocess mode).

``PROMETHEUS_MULTIPROC_DIR`` set by whoever started us (``serve --workers N``'s master, an operator)
wins; an operator's must be empty at each start (docs/metrics.md). Unset, a gunicorn worker picks
``<data>/metrics/gunicorn-<master pid>-<master start time>``, shared by every worker of that master
(the start time: a later master with a reused pid gets a directory of its own); a lone process
(``serve`` with one worker, the CLI, tests) keeps its series in memory. ``sweep`` removes the
directories of masters that are gone (``serve-<pid>`` and ``gunicorn-<pid>-<start>``), killed -9
included.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from scheduler_server.startup_error import StartupError

log = logging.getLogger(__name__)

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
#: The masters' directory names: serve-<pid> (workers.py) and gunicorn-<pid>-<start time>.
PREFIXES = ("serve", "gunicorn")


def choose(data_path: Path) -> Path | None:
    """The multiprocess directory of this process, set in the environment; None: in-memory series.

    Raises ``StartupError`` naming the variable or the path if the directory cannot be used."""
    given = os.environ.get(VARIABLE) or os.environ.get(VARIABLE.lower())
    if given:
        path, what = Path(given), f"{VARIABLE}={given}"
    elif (master := gunicorn_master()) is not None:
        path = data_path / "metrics" / f"gunicorn-{master}"
        what = f"{path} (the metrics of gunicorn's workers; set {VARIABLE} to use another directory)"
    else:
        return None
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()  # writable: every worker writes its files here
    except OSError as exc:
        raise StartupError(f"{what}: cannot use it: {(exc.strerror or str(exc)).lower()}") from None
    os.environ[VARIABLE] = str(path)
    return path


def gunicorn_master() -> str | None:
    """``<pid>-<start time>`` of the gunicorn master that forked this worker; None: not a gunicorn worker."""
    if not _gunicorn_worker():
        return None
    master = os.getppid()
    return f"{master}-{start_time(master)}"


def _gunicorn_worker() -> bool:
    """A worker forked by a gunicorn master (``gunicorn scheduler_server.app:app``): gunicorn loaded,
    and the arbiter's SERVER_SOFTWARE inherited (a process that merely imported gunicorn, a test
    runner say, must not pick a directory and export it to every process it starts)."""
    return "gunicorn.workers.base" in sys.modules and os.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn/")


def start_time(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, /proc/<pid>/stat field 22); "0" if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "0"
    fields = stat.rpartition(")")[2].split()  # the name in parentheses may hold spaces
    return fields[19] if len(fields) > 19 else "0"


def sweep(base: Path) -> list[Path]:
    """Remove the directories under ``base`` of masters that no longer run (nobody reads them again)."""
    removed = []
    if not base.is_dir():
        return removed
    mine = {os.getpid(), os.getppid()}
    for entry in base.iterdir():
        prefix, _, rest = entry.name.partition("-")
        pid, _, started = rest.partition("-")
        if prefix not in PREFIXES or not pid.isdigit() or int(pid) in mine or not entry.is_dir():
            continue
        if not alive(int(pid)) or (started and start_time(int(pid)) not in (started, "0")):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


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
