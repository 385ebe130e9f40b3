"""The ``ssh`` backend: a static pool of existing hosts from ``pipelines.ssh_hosts``.

Each host offers ``slots`` places; an "instance" is one slot, so a host with
three slots runs three pipelines at once. Provisioning claims a free slot,
destroying frees it: the hosts themselves are never created or deleted.
Files go over SFTP and commands over SSH, one shared connection per host.

Which slots are taken lives in memory and is rebuilt after a restart from what
the pool still tracks (``adopt``). A free slot on a host whose last connection
failed is handed out only when no other is free.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from scheduler_server.pipelines.backend_errors import BackendConfigError, InstanceGone, NoCapacity
from scheduler_server.pipelines.clouds.backend import CloudBackend, InstanceInfo
from scheduler_server.pipelines.clouds.executor import Executor
from scheduler_server.pipelines.clouds.ssh_transport.executor import SSHExecutor


def slot_id(address: str, port: int, slot: int) -> str:
    return f"{address}:{port}/{slot}"


class SSHHostsBackend(CloudBackend):
    name = "ssh"

    def __init__(self, settings, *, scheduler_id, data_dir):
        super().__init__(settings, scheduler_id=scheduler_id, data_dir=data_dir)
        if not settings.ssh_hosts:
            raise BackendConfigError(
                "pipelines.ssh_hosts: empty, but pipelines.backend is 'ssh'; list at least one host"
            )
        self._lock = threading.Lock()
        self._taken: dict[str, InstanceInfo] = {}
        self._executors: dict[tuple[str, int, str], SSHExecutor] = {}
        self._slots: list[tuple[str, object, int]] = []
        for host in settings.ssh_hosts:
            for n in range(host.slots):
                self._slots.append((slot_id(host.address, host.port, n), host, n))

    def _host_of(self, instance_id: str):
        for sid, host, _ in self._slots:
            if sid == instance_id:
                return host
        return None

    def capacity(self) -> int | None:
        return len(self._slots)

    def _answering(self, host) -> bool:
        """False if the last connection to ``host`` failed (its executor says so)."""
        executor = self._executors.get((host.address, host.port, host.user or self.settings.ssh_user))
        return executor is None or executor.failed_at is None

    def provision(self, name: str) -> InstanceInfo:
        with self._lock:
            # Hosts that answer first: a retry after a host went away should not land on it again.
            free = [slot for slot in self._slots if slot[0] not in self._taken]
            for sid, host, n in sorted(free, key=lambda slot: not self._answering(slot[1])):
                info = InstanceInfo(
                    id=sid,
                    name=name,
                    state="building",
                    address=host.address,
                    port=host.port,
                    user=host.user or self.settings.ssh_user,
                    created_at=datetime.now(UTC),
                    extra={"slot": n},
                )
                self._taken[sid] = info
                return info
        raise NoCapacity(f"all {len(self._slots)} ssh host slots are taken")

    def executor(self, instance: InstanceInfo) -> Executor:
        host = self._host_of(instance.id)
        if host is None:
            raise InstanceGone(f"{instance.id} is no longer among pipelines.ssh_hosts")
        user = host.user or self.settings.ssh_user
        key = (host.address, host.port, user)
        with self._lock:
            executor = self._executors.get(key)
            if executor is None:
                password = self.settings.ssh_password.get_secret_value() if self.settings.ssh_password else None
                executor = SSHExecutor(
                    host.address,
                    host.port,
                    user,
                    key_file=host.key_file or self.settings.ssh_key_file,
                    password=password,
                )
                self._executors[key] = executor
            return executor

    def destroy(self, instance: InstanceInfo) -> None:
        with self._lock:
            self._taken.pop(instance.id, None)

    def get_instance(self, instance_id: str) -> InstanceInfo | None:
        with self._lock:
            return self._taken.get(instance_id)

    def list_instances(self, *, include_untagged: bool = False) -> list[InstanceInfo]:
        # Static hosts are never "someone else's servers": only our taken slots exist as instances.
        with self._lock:
            return list(self._taken.values())

    def adopt(self, instances: list[InstanceInfo]) -> None:
        with self._lock:
            for info in instances:
                if self._host_of(info.id) is not None:
                    self._taken[info.id] = info

    def close(self) -> None:
        with self._lock:
            executors, self._executors = list(self._executors.values()), {}
        for executor in executors:
            executor.close()
