"""``Executor``: how everything above a backend talks to one instance (commands and files).

The job protocol (``jobdir.py``) only ever reaches an instance through these methods
(``run``, ``upload``, ``write_file``, ``read_file``, ``stage_and_launch``), so the pool, the
dispatcher and the attempts are backend-agnostic; each backend hands out its own subclass.
"""

from __future__ import annotations

import posixpath
import shlex
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scheduler_server.pipelines import jobdir
from scheduler_server.pipelines.jobdir import JobFile


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


class Executor(ABC):
    """Runs shell commands and moves files on one instance.

    Paths given to an executor that are not absolute are relative to the
    instance's *root*: the login user's home directory over SSH, the sandbox
    directory for the local backend. Commands run in that root through
    ``bash -c``-like shell semantics (POSIX sh at least; bash, ``setsid``, ``tar`` and ``head``
    must be installed on the instance).

    Secrets must never be part of ``command`` (it is visible in process lists
    and may be logged); pass them on ``stdin``.

    Executors are shared: the job protocol (``jobdir``) and the pool may use one executor from
    several threads at once, and must not ``close()`` one they got from
    ``CloudBackend.executor`` (the backend closes it in ``destroy``/``close``).
    Connection failures raise ``InstanceUnreachable``.
    """

    @abstractmethod
    def run(self, command: str, *, stdin: bytes | None = None, timeout: float | None = 60.0) -> CommandResult:
        """Run ``command`` to completion and return its exit code and output.

        ``timeout`` bounds the whole call; on expiry raise ``InstanceUnreachable``.
        A non-zero exit is *not* an exception: it is returned in the result.
        """

    @abstractmethod
    def upload(self, local_path: Path, remote_path: str, mode: int = 0o644) -> None:
        """Copy a local file to ``remote_path`` (parent directories are created) with ``mode``."""

    @abstractmethod
    def write_file(self, remote_path: str, data: bytes, mode: int = 0o644) -> None:
        """Create or replace ``remote_path`` with ``data`` (parent directories are created)."""

    @abstractmethod
    def read_file(self, remote_path: str, offset: int = 0, max_bytes: int = 1 << 20) -> bytes:
        """Return up to ``max_bytes`` bytes of ``remote_path`` from ``offset``; raise FileNotFoundError if absent."""

    def launch_detached(
        self, directory: str, script: str, stdin: bytes, on_exit: Callable[[int | None], None] | None = None
    ) -> int:
        """Start ``bash <script>`` in ``directory`` so that it outlives this service and the connection.

        Exactly once: ``<directory>/launched`` is created exclusively first, and if it
        already exists ``FileExistsError`` is raised and nothing starts. The process
        leads a new session (its pid is its process group, for kill), gets ``stdin``
        on its standard input (how secrets travel), has stdout/stderr on /dev/null,
        and its pid is written to ``<directory>/pid`` and returned.

        ``on_exit``, when given, may be called once from another thread when the
        process has ended (or the executor lost sight of it), with the exit code the
        job directory records if the executor read it (else None), so the end is seen
        before the next poll. Without a code it only means "look now": executors that
        cannot tell never call it, and the job directory stays the truth.

        The default runs a small bash launcher through ``run``; the local executor
        starts it in a shell made ahead, the SSH executor in a launcher channel
        opened ahead (``prepare_launcher``) when it has one.
        """
        result = self.run(jobdir.launcher(directory, script), stdin=stdin, timeout=30)
        return jobdir.launch_result(result, directory)

    def stage_and_launch(self, directory: str, files: list[JobFile], script: str, stdin: bytes, on_exit=None) -> int:
        """Write ``files`` into ``directory`` (made if need be), then ``launch_detached`` ``script`` there.

        The default uploads file by file; the SSH executor sends a small job's files with the
        launch itself (one message instead of a round trip per SFTP request)."""
        for item in files:
            target = posixpath.join(directory, item.name)
            if item.data is not None:
                self.write_file(target, item.data, item.mode)
            else:
                self.upload(item.path, target, item.mode)
        return self.launch_detached(directory, script, stdin, on_exit)

    def remove_tree(self, remote_path: str) -> None:
        """Delete a directory and everything in it; absent is fine. Default: ``rm -rf`` through ``run``."""
        self.run(f"rm -rf -- {shlex.quote(remote_path)}", timeout=120)

    def close(self) -> None:
        """Release connections. Called by the backend, not by users of a shared executor."""
