"""``serve --workers N``: a small master that keeps N forked worker processes serving the same sockets.

The master binds nothing and opens nothing itself: it is handed the listening sockets
(bound before it starts, so a taken port is one error before any worker exists), sets
``PROMETHEUS_MULTIPROC_DIR`` to a fresh directory, and forks. Each worker then builds
everything it uses (the app, its database connections, the pipeline dispatcher and
their threads) after the fork, so nothing of that kind is shared across a fork.

A worker tells the master over a pipe that it is ready, or why it cannot start (one
line). The master respawns a worker that dies, waiting longer each time a slot's worker
dies while starting (so a worker that cannot start does not spin), and only while another
worker is up; when every slot's latest worker failed at start and none is left, the master
stops with that one-line reason. SIGTERM or SIGINT to the master is forwarded to the workers, which stop
gracefully; the master waits for them (``STOP_TIMEOUT``, then SIGKILL) and exits 0.
A worker whose master is gone (``kill -9``) stops too, so none is orphaned.
"""

from __future__ import annotations

import atexit
import logging
import os
import select
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scheduler_server import metrics

log = logging.getLogger("scheduler_server.workers")

#: Seconds the master waits for its workers after forwarding SIGTERM, then it kills them. Above a
#: worker's worst case (docs/deployment.md): requests 5 + dispatcher loop 10 + lease thread 5 + release
#: 2-5 + jobs 10, about 35 s.
STOP_TIMEOUT = 45.0
#: A worker that dies within this many seconds of its start counts as failing at start.
STARTUP_GRACE = 10.0
#: First and longest wait before respawning a slot whose workers keep failing at start.
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
#: Exit code of a worker that cannot start (gunicorn's APP_LOAD_ERROR too).
CANNOT_START = 4

_READY = b"ready\n"


class Reporter:
    """A worker's line to the master: ``ready()`` once it serves, ``failed(reason)`` if it cannot start."""

    def __init__(self, fd: int):
        self._fd = fd

    def ready(self) -> None:
        self._send(_READY)

    def failed(self, reason: str) -> None:
        self._send(reason.replace("\n", " ").encode("utf-8", "replace") + b"\n")

    def _send(self, data: bytes) -> None:
        try:
            os.write(self._fd, data)
        except OSError:
            pass  # the master is gone: the parent check stops this worker


#: What a worker runs after the fork: serve until stopped; a non-zero return is its exit code.
WorkerMain = Callable[[Reporter], "int | None"]


@dataclass
class _Worker:
    slot: int
    pid: int
    pipe: int  # the read end of its Reporter
    started: float
    ready: bool = False
    said: bytes = b""


@dataclass
class _Slot:
    failures: int = 0  # consecutive workers that died while starting
    due: float = 0.0  # when to respawn it (monotonic)
    reason: str = ""  # the last start failure's reason


def metrics_directory(data_path: Path) -> Path:
    """``<data_dir>/metrics/serve-<master pid>``, emptied, and exported for the workers to inherit."""
    metrics.sweep(data_path)  # directories of masters killed -9
    path = data_path / "metrics" / f"serve-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path


class Master:
    def __init__(self, count: int, worker_main: WorkerMain):
        self.count = count
        self.worker_main = worker_main
        self.workers: dict[int, _Worker] = {}
        self.slots = [_Slot() for _ in range(count)]
        self._stopping = False
        self._pid = os.getpid()

    # --- the master's loop --------------------------------------------------------------

    def run(self) -> str | None:
        """Serve until SIGTERM/SIGINT (None) or until no worker can start (its one-line reason)."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for slot in range(self.count):
                self._spawn(slot)
            failure = None
            while not self._stopping and failure is None:
                self._read_reports(timeout=0.2)
                failure = self._reap_and_respawn()
            self._stop_all()
            return failure
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum, _frame) -> None:
        if not self._stopping:
            log.info("received %s: stopping %d workers", signal.Signals(signum).name, len(self.workers))
        self._stopping = True

    def _read_reports(self, timeout: float) -> None:
        pipes = {w.pipe: w for w in self.workers.values()}
        if not pipes:
            time.sleep(timeout)
            return
        try:
            readable, _, _ = select.select(list(pipes), [], [], timeout)
        except InterruptedError:
            return
        for fd in readable:
            self._read(pipes[fd])

    def _read(self, worker: _Worker) -> None:
        try:
            data = os.read(worker.pipe, 4096)
        except BlockingIOError:
            return
        worker.said += data
        if not worker.ready and worker.said.startswith(_READY):
            worker.ready = True
            self.slots[worker.slot].failures = 0
            log.info("worker %d ready", worker.pid)

    def _reap_and_respawn(self) -> str | None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            worker = self.workers.pop(pid, None)
            if worker is not None:
                self._ended(worker, status)
        if self._stopping:
            return None
        if not self.workers and all(s.failures for s in self.slots):
            return self.slots[0].reason
        # A slot whose worker failed at start waits out its backoff, and waits for a worker that is up:
        # while none is, the others' fate decides whether any can start at all.
        up = any(w.ready for w in self.workers.values())
        now = time.monotonic()
        busy = {w.slot for w in self.workers.values()}
        for slot, state in enumerate(self.slots):
            if slot not in busy and state.due <= now and (up or not state.failures):
                self._spawn(slot)
        return None

    def _ended(self, worker: _Worker, status: int) -> None:
        self._read(worker)
        os.close(worker.pipe)
        metrics.process_ended(worker.pid)  # its live gauges leave /metrics
        if self._stopping:
            return
        how = _exit_text(status)
        slot = self.slots[worker.slot]
        if worker.ready and time.monotonic() - worker.started > STARTUP_GRACE:
            slot.failures, slot.due = 0, 0.0
            log.warning("worker %d %s: starting another", worker.pid, how)
            return
        slot.failures += 1
        lines = worker.said.decode("utf-8", "replace").splitlines()
        said = [line for line in lines if line and line != _READY.decode().strip()]
        slot.reason = said[-1] if said else f"cannot start: a worker {how} while starting (its output is above)"
        wait = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (slot.failures - 1))
        slot.due = time.monotonic() + wait
        when = "soon after it started" if worker.ready else "while starting"
        log.warning("worker %d %s %s: another in %.1f s unless none can start", worker.pid, how, when, wait)

    def _stop_all(self) -> None:
        self._stopping = True
        for worker in self.workers.values():
            _signal(worker.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.workers and time.monotonic() < deadline:
            self._read_reports(timeout=0.05)
            self._reap_and_respawn()
        for worker in list(self.workers.values()):
            log.warning("worker %d did not stop within %.0f s: killed", worker.pid, STOP_TIMEOUT)
            _signal(worker.pid, signal.SIGKILL)
            os.waitpid(worker.pid, 0)
            self._ended(self.workers.pop(worker.pid), 0)

    # --- a worker -------------------------------------------------------------------------

    def _spawn(self, slot: int) -> None:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            self._in_worker(write_end)  # never returns
        os.close(write_end)
        os.set_blocking(read_end, False)
        self.workers[pid] = _Worker(slot, pid, read_end, time.monotonic())
        log.info("started worker %d", pid)

    def _in_worker(self, report_fd: int) -> None:
        code = 1
        try:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_DFL)
            for other in self.workers.values():
                os.close(other.pipe)
            self.workers.clear()
            _watch_parent(self._pid)
            code = self.worker_main(Reporter(report_fd)) or 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 - a worker's bug ends the worker, never the master's loop
            traceback.print_exc()
        finally:
            try:
                atexit._run_exitfuncs()  # e.g. the pipeline service's stop, as at a normal exit
                logging.shutdown()
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)


def _watch_parent(master: int) -> None:
    """Stop this worker (SIGTERM to itself: the graceful path) once its master is gone."""

    def watch() -> None:
        while os.getppid() == master:
            time.sleep(0.5)
        log.warning("the master %d is gone: stopping", master)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="watch-master", daemon=True).start()


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _exit_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"
