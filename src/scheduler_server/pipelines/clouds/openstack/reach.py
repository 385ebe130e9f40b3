"""Reaching an instance over SSH once the cloud made it: the step shared by Nova servers and Heat
stacks from "the cloud gives this address" to "active", the SSH probe with backoff, and the
executors of each instance (one per server id and address).

The cloud side (creating, polling the status, the address) stays in ``backend.py`` and
``heat_backend.py``; what is here knows nothing of the cloud's API but the two callbacks the
executors need: whether the server still exists, and that a job was launched on it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from scheduler_server.pipelines.backend_errors import InstanceGone, InstanceUnreachable
from scheduler_server.pipelines.clouds.openstack.executor import OpenStackExecutor

if TYPE_CHECKING:
    from scheduler_server.pipelines.clouds.backend import InstanceInfo
    from scheduler_server.pipelines.clouds.openstack.urgent_first import UrgentFirst
    from scheduler_server.pipelines.settings import PipelineSettings

#: First pause between two SSH probes of a fresh server; it doubles up to CONNECTION_RETRY_INTERVAL.
SSH_PROBE_FIRST = 0.2
#: Longest spares wait for an awaited server's first launch after its probe (seconds).
FIRST_LAUNCH_HOLD = 1.0


class SshReach:
    """``settings()`` the current pipeline settings (PUT /config swaps them); ``order`` the turns
    awaited instances take before spares; ``awaited(name)`` whether a pipeline waits for it;
    ``exists(server_id)`` and ``launched(server_id, job)`` what an executor tells the backend."""

    def __init__(
        self,
        settings: Callable[[], PipelineSettings],
        order: UrgentFirst,
        awaited: Callable[[str], bool],
        exists: Callable[[str], bool],
        launched: Callable[[str, str], None],
    ):
        self._settings = settings
        self._order = order
        self._awaited = awaited
        self._exists = exists
        self._launched = launched
        self._lock = threading.Lock()
        self._executors: dict[str, OpenStackExecutor] = {}

    def reached(self, instance: InstanceInfo, address: str) -> InstanceInfo:
        """The instance at ``address``, probed over SSH: active, or ``InstanceUnreachable``."""
        settings = self._settings()
        instance.address, instance.port, instance.user = address, settings.openstack.ssh_port, settings.ssh_user
        instance.state = "building"
        self.probe(instance)
        instance.state = "active"
        return instance

    def probe(self, instance: InstanceInfo) -> None:
        """The seed's MAX_CONNECTION_RETRIES x CONNECTION_RETRY_INTERVAL, with the first probes sooner."""
        settings = self._settings()
        attempts = settings.max_connection_retries + 1
        interval = settings.connection_retry_interval
        delay = min(SSH_PROBE_FIRST, interval)
        last: Exception | None = None
        for attempt in range(1, attempts + 1):
            try:
                # Reachable once connected, authenticated and the first job's launcher session is
                # open: that session's sshd set-up is then off the job's start.
                with self._order.turn(lambda: self._awaited(instance.name)) as urgent:
                    self.executor(instance).prepare_launcher()
                    if urgent:  # its first launch comes next: spares keep waiting until it happened
                        self._order.hold(instance.id, FIRST_LAUNCH_HOLD)
                return
            except InstanceGone:
                raise
            except InstanceUnreachable as exc:
                last = exc
            if attempt < attempts:
                time.sleep(delay)
                delay = min(delay * 2, interval)
        raise InstanceUnreachable(f"server {instance.name}: no SSH after {attempts} attempts: {last}")

    def executor(self, instance: InstanceInfo) -> OpenStackExecutor:
        key = f"{instance.id}@{instance.address}"
        with self._lock:
            executor = self._executors.get(key)
            if executor is None:
                if not instance.address:
                    raise InstanceUnreachable(f"server {instance.name} has no address yet")
                executor = self._executors[key] = self._new_executor(instance)
            return executor

    def _new_executor(self, instance: InstanceInfo) -> OpenStackExecutor:
        settings = self._settings()
        password = settings.ssh_password.get_secret_value() if settings.ssh_password else None
        return OpenStackExecutor(
            instance.address,
            instance.port,
            instance.user or settings.ssh_user,
            key_file=settings.ssh_key_file,
            password=password,
            exists=lambda sid=instance.id: self._exists(sid),
            server_name=instance.name,
            launched=lambda job, sid=instance.id: self._launched(sid, job),
            # With TTL 1 a server runs one job: the session its probe opened is the only one needed.
            relaunch_ahead=settings.virtual_server_ttl > 1,
        )

    def forget(self, instance_id: str) -> None:
        """Close the executors of an instance about to be deleted."""
        with self._lock:
            gone = [self._executors.pop(k) for k in list(self._executors) if k.startswith(f"{instance_id}@")]
        for executor in gone:
            executor.close()

    def close(self) -> None:
        with self._lock:
            executors, self._executors = list(self._executors.values()), {}
        for executor in executors:
            executor.close()
