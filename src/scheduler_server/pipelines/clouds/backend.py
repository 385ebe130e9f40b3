"""What a backend ("cloud") does for the pipeline scheduler, and how one is chosen.

A backend creates *instances* (an OpenStack server, a sandbox directory on this
machine, a slot on a static SSH host), tells when one is reachable, hands out an
``Executor`` to run shell commands and move files on it, and deletes it.

Everything above this layer (pool, dispatcher, attempts) is backend-agnostic: it
only ever talks to an instance through an ``Executor`` (``clouds/executor.py``) and
the job protocol (``jobdir.py``), so a new cloud is one new package in ``clouds/``
whose backend subclasses ``CloudBackend``, named in ``BACKENDS``.

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
* Infrastructure problems raise a ``BackendError`` subclass (``backend_errors.py``); the scheduler
  retries the pipeline on a fresh instance (up to ``MAX_ATTEMPTS``) for those and
  only those. Any other exception is treated as a bug and fails the pipeline.
* ``InstanceInfo`` is stored in the database (``to_dict``) and handed back after
  a restart (``from_dict``), so anything a backend needs to find its instance
  again (server id, floating-IP id, ...) belongs in ``InstanceInfo.extra``.
"""

from __future__ import annotations

import importlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from scheduler_server import metrics
from scheduler_server.pipelines.backend_errors import BackendConfigError, InstanceUnreachable
from scheduler_server.pipelines.clouds.executor import Executor

if TYPE_CHECKING:
    from scheduler_server.pipelines.settings import PipelineSettings

log = logging.getLogger(__name__)

#: Metadata key (OpenStack server metadata, marker files...) that names the scheduler owning an instance.
TAG_KEY = "scheduler_server_id"

InstanceState = Literal["building", "active", "error", "gone"]


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
        data.setdefault("name", data.get("id"))  # rows written before instances had names
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


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
            if attempt < attempts:  # not a retry in the metrics: a booting instance is not reachable yet
                time.sleep(self.settings.connection_retry_interval)
        metrics.backend_error(self.name, "connect")
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

    def check_settings(self, settings: PipelineSettings) -> None:
        """Raise ``BackendConfigError`` naming the key if this running backend cannot take ``settings``
        (``PUT /config``, the restart keys already put back): the reload is refused. Default: no check."""

    def close(self) -> None:
        """Close connections and cached executors. The service calls it on shutdown."""


# --- the factory -------------------------------------------------------------------

#: ``pipelines.backend`` name -> "module:Class". Modules are imported only when chosen,
#: so a deployment without an OpenStack cloud never imports openstacksdk.
BACKENDS: dict[str, str] = {
    "local": "scheduler_server.pipelines.clouds.local.backend:LocalBackend",
    "ssh": "scheduler_server.pipelines.clouds.ssh.backend:SSHHostsBackend",
    "openstack": "scheduler_server.pipelines.clouds.openstack.chosen:ChosenOpenStackBackend",
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
