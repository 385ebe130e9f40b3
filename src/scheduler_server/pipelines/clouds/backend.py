"""What a backend ("cloud") does for the pipeline scheduler, and how one is chosen.

A backend creates *instances* (an OpenStack server, a sandbox directory on this
machine, a slot on a static SSH host), tells when one is reachable, hands out an
``Executor`` to run shell commands and move files on it, and deletes it.

Everything above this layer (pool, dispatcher, runner) is backend-agnostic: the
runner only ever talks to an instance through ``Executor`` (``run``, ``upload``,
``write_file``, ``read_file``), so a new cloud is one new file in ``clouds/``
that subclasses ``CloudBackend`` and is named in ``BACKENDS``.

Contract for implementers
-------------------------
* ``__init__(settings, *, scheduler_id, data_dir)`` must be cheap and must not
  touch the network: the service builds the backend at start and also for
  ``config check``. Connect lazily.
* Every method may block (network calls); the pool calls them from worker
  threads, several at once, so implementations must be thread-safe.
* Instances this scheduler creates carry its ``scheduler_id`` (OpenStack: server
  metadata ``TAG_KEY: scheduler_id``) so ``list_instances()`` can tell its own
  instances from the project's other servers.
* Infrastructure problems raise a ``BackendError`` subclass; the scheduler
  retries the pipeline on a fresh instance (up to ``MAX_ATTEMPTS``) for those and
  only those. Any other exception is treated as a bug and fails the pipeline.
* ``InstanceInfo`` is stored in the database (``to_dict``) and handed back after
  a restart (``from_dict``), so anything a backend needs to find its instance
  again (server id, floating-IP id, ...) belongs in ``InstanceInfo.extra``.
"""

from __future__ import annotations

import importlib
import logging
import posixpath
import shlex
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from scheduler_server.pipelines.settings import PipelineSettings

log = logging.getLogger(__name__)

#: Metadata key (OpenStack server metadata, marker files...) that names the scheduler owning an instance.
TAG_KEY = "scheduler_server_id"

InstanceState = Literal["building", "active", "error", "gone"]


class BackendError(Exception):
    """An infrastructure failure: the pipeline is retried on a fresh instance."""


class ProvisionError(BackendError):
    """The backend could not create an instance (quota, bad image, API error, ERROR state)."""


class InstanceUnreachable(BackendError):
    """The instance did not accept connections within the allowed retries, or the connection broke."""


class InstanceGone(BackendError):
    """The instance no longer exists (deleted behind our back, host removed from config)."""


class NoCapacity(BackendError):
    """No instance can be created right now (all SSH host slots taken). Not a failure: wait and try again."""


class BackendConfigError(Exception):
    """The backend's configuration is unusable (unknown backend name, missing image...). Reported at start."""


@dataclass
class InstanceInfo:
    """One instance as the backend sees it. Plain data: stored as JSON, compared by ``id``.

    ``id``       the backend's stable identifier (OpenStack server id, sandbox name, "host:port/slot").
    ``name``     human-readable name (OpenStack server name).
    ``state``    "building" | "active" | "error" | "gone".
    ``address``  where SSH connects (IP or host name); None while unknown or for the local backend.
    ``port``/``user``  SSH port and login user, when they differ per instance.
    ``tagged``   True if it carries this scheduler's ``scheduler_id`` (see ``TAG_KEY``).
    ``created_at`` backend-reported creation time (UTC), if known.
    ``extra``    backend-private JSON-able details needed to find or delete it again.
    """

    id: str
    name: str
    state: InstanceState = "building"
    address: str | None = None
    port: int = 22
    user: str | None = None
    tagged: bool = True
    created_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat() if self.created_at else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InstanceInfo:
        data = dict(data)
        if data.get("created_at"):
            data["created_at"] = datetime.fromisoformat(data["created_at"])
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


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


# The secret line is read here and handed on through a bash here-string (a pipe for
# small strings), so it is never in a command line or a file.
_ENTER = """\
cd -- "$dir" || exit 91
( set -C; echo "$$" > launched ) 2>/dev/null || { echo already-launched; exit 92; }
"""
# No complete secret line: the connection was cut mid-message; start nothing (the job is then "lost").
_START = """\
IFS= read -r line || exit 96
setsid bash "./$script" <<< "$line" > /dev/null 2>&1 &
unset line
echo $! > pid
echo $!
"""
_LAUNCH = _ENTER + _START


def _launcher(directory: str, script: str) -> str:
    """The launcher for a job known now: directory and script are part of the command."""
    return f"dir={shlex.quote(directory)}; script={shlex.quote(script)}\n{_LAUNCH}"


#: The same launcher started before its job is known (see ``SSHExecutor.prepare_launcher``). It
#: reads ``<dir>\0<script>\0<n>\0<watch>\0`` from stdin, then ``n`` bytes of a tar archive of the job's
#: files (n may be 0: staged already), then the secret line; on EOF it does nothing. The archive
#: is unpacked only once ``launched`` is created, so a job launched before is never overwritten.
#: After printing the pid it stays (if ``watch`` is 1), waiting for the job, and prints ``ended <rc>``
#: (``rc`` from ``exit_code``, empty if there is none) when it has: the service hears of the end at
#: once instead of at its next poll (the job never depends on it). ``head`` must be GNU's: it reads exactly ``n`` bytes from a pipe.
WAITING_LAUNCHER = (
    'IFS= read -r -d "" dir || exit 0\nIFS= read -r -d "" script || exit 0\nIFS= read -r -d "" size || exit 0\n'
    'IFS= read -r -d "" watch || exit 0\ncase "$size" in ""|*[!0-9]*) exit 94;; esac\n'
    'if [ "$size" -gt 0 ]; then mkdir -p -- "$dir" || exit 91; fi\n'
    + _ENTER
    + 'if [ "$size" -gt 0 ]; then head -c "$size" | tar -x --no-same-owner -f - || { echo staging-failed; exit 93; }; fi\n'
    + _START
    + '[ "$watch" = 1 ] || exit 0\nwait "$!" 2>/dev/null\nrc=\nIFS= read -r rc < exit_code 2>/dev/null\necho "ended $rc"\n'
)


@dataclass(frozen=True)
class JobFile:
    """A file of a job: ``name`` relative to the job directory, content from ``path`` or ``data``."""

    name: str
    mode: int
    path: Path | None = None
    data: bytes | None = None

    def size(self) -> int:
        return len(self.data) if self.data is not None else self.path.stat().st_size

    def content(self) -> bytes:
        return self.data if self.data is not None else self.path.read_bytes()


def launch_result(result: CommandResult, directory: str) -> int:
    """The pid a launcher printed; FileExistsError if the job had been launched before."""
    text = result.text().strip()
    if result.exit_code == 92:
        raise FileExistsError(f"{directory}/launched")
    if not result.ok or not text.isdigit():
        detail = " ".join(filter(None, (text, result.stderr.decode(errors="replace").strip())))[:500]
        raise InstanceUnreachable(f"launcher exited {result.exit_code}: {detail}")
    return int(text)


class Executor(ABC):
    """Runs shell commands and moves files on one instance.

    Paths given to an executor that are not absolute are relative to the
    instance's *root*: the login user's home directory over SSH, the sandbox
    directory for the local backend. Commands run in that root through
    ``bash -c``-like shell semantics (POSIX sh at least; bash, ``setsid``, ``tar`` and ``head``
    must be installed on the instance).

    Secrets must never be part of ``command`` (it is visible in process lists
    and may be logged); pass them on ``stdin``.

    Executors are shared: the runner and the pool may use one executor from
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
        result = self.run(_launcher(directory, script), stdin=stdin, timeout=30)
        return launch_result(result, directory)

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


class CloudBackend(ABC):
    """Creates, reaches and deletes instances. See the module docstring for the contract."""

    #: The ``pipelines.backend`` name this class is registered under.
    name: ClassVar[str] = ""
    #: ``destroy`` erases everything on the instance (a deleted server, a removed sandbox), so
    #: job directories on an instance about to be destroyed need not be cleaned up first.
    destroy_erases: ClassVar[bool] = False

    def __init__(self, settings: PipelineSettings, *, scheduler_id: str, data_dir: Path):
        self.settings = settings
        self.scheduler_id = scheduler_id
        self.data_dir = data_dir
        #: Whether a pipeline is waiting for the instance named ``name`` (else it is a spare booted
        #: ahead). Set by the pool; a backend may use it to reach awaited instances first.
        self.awaited: Callable[[str], bool] = lambda name: True

    # --- lifecycle of one instance -------------------------------------------------

    @abstractmethod
    def provision(self, name: str) -> InstanceInfo:
        """Start creating an instance named ``name``, tagged with ``scheduler_id``.

        May return while the instance is still ``building``: the pool then calls
        ``wait_until_reachable``. Raise ``ProvisionError`` if creation failed and
        ``NoCapacity`` if none can be created right now.
        """

    def wait_until_reachable(self, instance: InstanceInfo) -> InstanceInfo:
        """Block until commands can run on ``instance``; return its updated info (``state="active"``).

        The default tries ``executor(instance).run("true")`` up to
        ``settings.max_connection_retries`` + 1 times, ``connection_retry_interval``
        seconds apart (the seed's MAX_CONNECTION_RETRIES / CONNECTION_RETRY_INTERVAL).
        Cloud backends override it to first wait for the server to be ACTIVE and
        have an address, then call ``super().wait_until_reachable(updated_info)``.
        Raise ``InstanceUnreachable`` (or ``ProvisionError`` if it went to ERROR).
        """
        attempts = self.settings.max_connection_retries + 1
        last: Exception | None = None
        for attempt in range(1, attempts + 1):
            try:
                result = self.executor(instance).run("true", timeout=30)
                if result.ok:
                    instance.state = "active"
                    return instance
                last = InstanceUnreachable(f"probe command exited {result.exit_code}")
            except InstanceUnreachable as exc:
                last = exc
            log.info("instance %s not reachable yet (attempt %d/%d): %s", instance.id, attempt, attempts, last)
            if attempt < attempts:
                time.sleep(self.settings.connection_retry_interval)
        raise InstanceUnreachable(f"instance {instance.id} unreachable after {attempts} attempts: {last}")

    @abstractmethod
    def executor(self, instance: InstanceInfo) -> Executor:
        """Return a (possibly cached, shared) ``Executor`` for ``instance``. Must not block long."""

    def release(self, instance: InstanceInfo) -> None:
        """A pipeline finished on ``instance`` and it may be reused; backends with per-use state reset it here.

        Default: nothing to do.
        """

    @abstractmethod
    def destroy(self, instance: InstanceInfo) -> None:
        """Delete the instance and whatever the backend created for it (floating IP...).

        Idempotent: deleting an instance that is already gone is not an error.
        Also drops a cached executor for it.
        """

    @abstractmethod
    def get_instance(self, instance_id: str) -> InstanceInfo | None:
        """Fresh info on one instance, or None if it no longer exists."""

    @abstractmethod
    def list_instances(self, *, include_untagged: bool = False) -> list[InstanceInfo]:
        """Instances the backend can see: those tagged with ``scheduler_id``; with
        ``include_untagged`` also the project's other ones (``tagged=False``), for
        the seed's ``DELETE /instance?all=true``."""

    def adopt(self, instances: list[InstanceInfo]) -> None:
        """After a restart, the pool hands back the instances it still tracks so a
        stateful backend (SSH host slots) can rebuild its in-memory state. Default: no-op."""

    def capacity(self) -> int | None:
        """Most instances that can exist at once (SSH: total slots), or None if only MAX_INSTANCES bounds it."""
        return None

    def close(self) -> None:
        """Close connections and cached executors. The service calls it on shutdown."""


# --- the factory -------------------------------------------------------------------

#: ``pipelines.backend`` name -> "module:Class". Modules are imported only when chosen,
#: so a deployment without an OpenStack cloud never imports openstacksdk.
BACKENDS: dict[str, str] = {
    "local": "scheduler_server.pipelines.clouds.local.backend:LocalBackend",
    "ssh": "scheduler_server.pipelines.clouds.ssh.backend:SSHHostsBackend",
    "openstack": "scheduler_server.pipelines.clouds.openstack.backend:OpenStackBackend",
}


def backend_class(name: str) -> type[CloudBackend]:
    """The class registered for ``name``; ``BackendConfigError`` if unknown or not importable."""
    try:
        target = BACKENDS[name]
    except KeyError:
        raise BackendConfigError(f"unknown pipelines.backend {name!r}; known: {', '.join(sorted(BACKENDS))}") from None
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendConfigError(f"pipelines.backend {name!r} cannot be loaded: {exc}") from exc
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, CloudBackend)):
        raise BackendConfigError(f"pipelines.backend {name!r}: {target} is not a CloudBackend")
    return cls


def create_backend(settings: PipelineSettings, *, scheduler_id: str, data_dir: Path) -> CloudBackend:
    """Build the backend named by ``settings.backend``."""
    return backend_class(settings.backend)(settings, scheduler_id=scheduler_id, data_dir=data_dir)
