"""Bash processes started ahead of need, so a local launch costs one process creation less.

A launch must start ``run.sh`` in a process that outlives the service (it records
the exit code) and that process then starts ``bash <script>``: two process
creations. A spare shell is the first
of them, made before the submission arrives: it leads its own session and blocks
reading its standard input. ``launch`` hands it a job directory and a script name
(each NUL-terminated, so any name works) followed by the script's own stdin (the
secret line); it then ``cd``s there and sources the script (``run.sh``) in the
same process, so ``$$``, the process group and ``/proc/<pid>/cwd`` are exactly
what a freshly started ``bash run.sh`` has.

A spare that never gets a job reads EOF when the service closes its end (or dies)
and exits without doing anything. The shell program (``jobdir.SPARE_SHELL``) is a constant: nothing from a
request is ever on a command line.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from collections.abc import Callable

from scheduler_server.pipelines import jobdir

log = logging.getLogger(__name__)


class SpareShells:
    def __init__(self, env: Callable[[], dict[str, str]], keep: int = 2):
        self._env = env
        self._keep = keep
        self._spares: list[subprocess.Popen] = []
        self._owner = os.getpid()
        self._lock = threading.Lock()
        self._closed = False

    def _start(self) -> subprocess.Popen:
        return subprocess.Popen(
            ["bash", "-c", jobdir.SPARE_SHELL],
            cwd="/",
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=self._env(),
        )

    def _take(self) -> subprocess.Popen | None:
        with self._lock:
            if self._owner != os.getpid():  # forked: the pipes belong to the parent's spares
                self._spares, self._owner = [], os.getpid()
            while self._spares:
                spare = self._spares.pop(0)
                if spare.poll() is None:
                    return spare
        return None

    def refill(self) -> None:
        """Start spares up to ``keep`` (called off the launch path)."""
        while True:
            with self._lock:
                if self._closed or self._owner != os.getpid() or len(self._spares) >= self._keep:
                    return
            try:
                spare = self._start()
            except OSError as exc:
                log.warning("could not start a spare shell: %s", exc)
                return
            with self._lock:
                if self._closed:
                    _discard(spare)
                    return
                self._spares.append(spare)

    def launch(self, directory: str, script: str, stdin: bytes, record_pid: Callable[[int], None], on_exit=None) -> int:
        """Run ``<directory>/<script>`` in a spare (or a new shell if none is ready); return its pid.

        ``record_pid`` is called with the pid before the job is handed over, so the pid file
        exists before anything runs, as with a freshly started process. ``on_exit`` is called
        from a thread when that process has ended."""
        process = self._take() or self._start()
        record_pid(process.pid)
        try:
            process.stdin.write(os.fsencode(directory) + b"\0" + os.fsencode(script) + b"\0" + stdin)
            process.stdin.close()
        except BrokenPipeError:
            raise OSError(f"the shell for {directory} died before it got its job") from None
        # After a restart it is init's child; until then this thread reaps it and reports its end.
        threading.Thread(
            target=_wait_for_end, args=(process, on_exit), name=f"local-job-{process.pid}", daemon=True
        ).start()
        threading.Thread(target=self.refill, name="spare-shells", daemon=True).start()
        return process.pid

    def close(self) -> None:
        with self._lock:
            self._closed = True
            spares, self._spares = self._spares, []
        for spare in spares:
            _discard(spare)


def _wait_for_end(process: subprocess.Popen, on_exit) -> None:
    process.wait()
    if on_exit is not None:
        try:
            on_exit(None)  # the exit_code file says how the script ended (this process is run.sh)
        except Exception:  # noqa: BLE001 - a callback's bug must not be silent
            log.exception("the end-of-job callback failed")


def _discard(spare: subprocess.Popen) -> None:
    try:
        spare.stdin.close()  # EOF: it exits without running anything
        spare.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        spare.kill()
