"""The ``local`` backend (the default): each instance is a sandbox directory on this machine.

Commands run as ``bash -c`` subprocesses inside the sandbox, with an
environment stripped of the service's own settings (which may hold keys).
Pipelines started there are detached (their own session), so they survive a
restart of the service exactly as they would on a remote instance.

A sandbox is ``<data_dir>/instances/<name>/`` with a ``.scheduler_server_id``
file naming the scheduler that made it: that is its tag.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from scheduler_server.pipelines import jobdir
from scheduler_server.pipelines.backend_errors import InstanceGone, InstanceUnreachable
from scheduler_server.pipelines.clouds.backend import TAG_KEY, CloudBackend, InstanceInfo
from scheduler_server.pipelines.clouds.executor import CommandResult, Executor
from scheduler_server.pipelines.clouds.local.spare_shells import SpareShells

TAG_FILE = f".{TAG_KEY}"
_KEEP_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "SHELL", "TMPDIR", "TZ")


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in _KEEP_ENV}


class LocalExecutor(Executor):
    def __init__(self, root: Path, spares: SpareShells | None = None):
        self.root = root
        self._spares = spares or SpareShells(_clean_env, keep=0)

    def _check(self) -> None:
        if not self.root.is_dir():
            raise InstanceGone(f"sandbox {self.root} no longer exists")

    def _path(self, remote_path: str) -> Path:
        return Path(remote_path) if os.path.isabs(remote_path) else self.root / remote_path

    def run(self, command: str, *, stdin: bytes | None = None, timeout: float | None = 60.0) -> CommandResult:
        self._check()
        try:
            done = subprocess.run(
                ["bash", "-c", command],
                cwd=self.root,
                input=stdin or b"",
                capture_output=True,
                timeout=timeout,
                env=_clean_env(),
            )
        except subprocess.TimeoutExpired:
            raise InstanceUnreachable(f"local command timed out after {timeout} s") from None
        except FileNotFoundError:
            raise InstanceGone(f"sandbox {self.root} no longer exists") from None
        return CommandResult(done.returncode, done.stdout, done.stderr)

    def upload(self, local_path: Path, remote_path: str, mode: int = 0o644) -> None:
        self._check()
        target = self._path(remote_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local_path, target)
        os.chmod(target, mode)

    def write_file(self, remote_path: str, data: bytes, mode: int = 0o644) -> None:
        self._check()
        target = self._path(remote_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(target, mode)

    def launch_detached(self, directory: str, script: str, stdin: bytes, on_exit=None) -> int:
        # Started from here, in a shell made ahead of time: three process creations fewer
        # than the shell launcher over ``run``, and the one left is off the launch path.
        self._check()
        workdir = self._path(directory)
        try:  # FileExistsError: launched before
            fd = os.open(workdir / jobdir.LAUNCHED, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileNotFoundError:
            raise InstanceGone(f"{workdir} no longer exists") from None
        os.close(fd)
        record = lambda pid: (workdir / jobdir.PID).write_text(f"{pid}\n")  # noqa: E731
        return self._spares.launch(str(workdir.resolve()), script, stdin, record, on_exit)

    def remove_tree(self, remote_path: str) -> None:
        shutil.rmtree(self._path(remote_path), ignore_errors=True)

    def read_file(self, remote_path: str, offset: int = 0, max_bytes: int = 1 << 20) -> bytes:
        with open(self._path(remote_path), "rb") as handle:
            handle.seek(offset)
            return handle.read(max_bytes)


class LocalBackend(CloudBackend):
    name = "local"
    destroy_erases = True

    def __init__(self, settings, *, scheduler_id: str, data_dir: Path):
        super().__init__(settings, scheduler_id=scheduler_id, data_dir=data_dir)
        self._spares = SpareShells(_clean_env)  # no process until the first launch: init stays cheap

    @property
    def sandboxes(self) -> Path:
        return self.data_dir / "instances"

    def _info(self, path: Path) -> InstanceInfo:
        tag_file = path / TAG_FILE
        owner = tag_file.read_text().strip() if tag_file.is_file() else None
        created = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        return InstanceInfo(
            id=path.name,
            name=path.name,
            state="active",
            tagged=owner == self.scheduler_id,
            created_at=created,
            extra={"path": str(path)},
        )

    def provision(self, name: str) -> InstanceInfo:
        # The sandboxes are on the service's own host: other users there must not read a running
        # job's raw (unmasked) logs, its arguments or its files.
        self.sandboxes.mkdir(mode=0o700, parents=True, exist_ok=True)
        if stat.S_IMODE(self.sandboxes.stat().st_mode) & 0o077:
            os.chmod(self.sandboxes, 0o700)
        path = self.sandboxes / name
        path.mkdir(mode=0o700, exist_ok=True)
        (path / TAG_FILE).write_text(self.scheduler_id + "\n")
        return self._info(path)

    def wait_until_reachable(self, instance: InstanceInfo) -> InstanceInfo:
        if not (self.sandboxes / instance.id).is_dir():
            raise InstanceGone(f"sandbox {instance.id} no longer exists")
        instance.state = "active"
        return instance

    def executor(self, instance: InstanceInfo) -> Executor:
        return LocalExecutor(self.sandboxes / instance.id, self._spares)

    def destroy(self, instance: InstanceInfo) -> None:
        path = self.sandboxes / instance.id
        if not path.is_dir():
            return
        # Whatever still runs there goes with it, as on a deleted server. Another process (a
        # replica, a test's second service) may be removing the same sandbox meanwhile.
        try:
            pid_files = list(path.glob(f"*/{jobdir.JOB_PREFIX}*/{jobdir.PID}"))
        except FileNotFoundError:
            pid_files = []
        for pid_file in pid_files:
            _kill_group(pid_file, path)
        shutil.rmtree(path, ignore_errors=True)

    def close(self) -> None:
        self._spares.close()

    def get_instance(self, instance_id: str) -> InstanceInfo | None:
        path = self.sandboxes / instance_id
        return self._info(path) if path.is_dir() else None

    def list_instances(self, *, include_untagged: bool = False) -> list[InstanceInfo]:
        if not self.sandboxes.is_dir():
            return []
        found = []
        for path in sorted(self.sandboxes.iterdir()):
            try:
                found.append(self._info(path))
            except (FileNotFoundError, NotADirectoryError):
                continue  # deleted meanwhile, or not a sandbox
        return [i for i in found if i.tagged or include_untagged]


def _kill_group(pid_file: Path, sandbox: Path) -> None:
    try:
        pid = int(pid_file.read_text().strip())
        if Path(os.readlink(f"/proc/{pid}/cwd")).is_relative_to(sandbox):
            os.killpg(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass
