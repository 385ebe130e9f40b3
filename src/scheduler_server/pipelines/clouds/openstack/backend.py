"""The ``openstack`` backend: each instance is a Nova server, reached over SSH.

``provision`` resolves the image, flavor and networks (names or ids) once,
then creates a server named by the pool and tagged in its metadata with this
scheduler's id, the pool's instance name and the creation time. A create that
failed transiently is looked up by name and request tag before it is repeated;
a late duplicate of a repeated create is deleted once found.

``wait_until_reachable`` polls until ACTIVE (ERROR, disappearance or
``boot_timeout`` become a ``ProvisionError`` with the cloud's reason), attaches
a floating IP if configured (``ips.py``), then probes SSH with backoff (``reach.py``).
At most ``max_parallel_provisioning`` servers are between create and reachable.

``destroy`` deletes the floating IP we allocated (or hands a reused one back)
and the server. ``list_instances`` also deletes our floating IPs that lost
their server, so a crash between the two deletions leaks nothing for long.
With ``provisioning: heat`` each instance is a Heat stack instead (``heat_backend.py``, ``chosen.py``).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from datetime import UTC, datetime

from scheduler_server.pipelines.backend_errors import BackendConfigError, ProvisionError
from scheduler_server.pipelines.clouds.backend import CloudBackend, InstanceInfo
from scheduler_server.pipelines.clouds.openstack import servers
from scheduler_server.pipelines.clouds.openstack.calls import CloudAPIError, call
from scheduler_server.pipelines.clouds.openstack.executor import OpenStackExecutor
from scheduler_server.pipelines.clouds.openstack.ips import FloatingIPs
from scheduler_server.pipelines.clouds.openstack.reach import SshReach
from scheduler_server.pipelines.clouds.openstack.resolve import Resolved, resolve
from scheduler_server.pipelines.clouds.openstack.status import ServerStatusBoard
from scheduler_server.pipelines.clouds.openstack.urgent_first import UrgentFirst

log = logging.getLogger(__name__)


class OpenStackBackend(CloudBackend):
    name = "openstack"
    destroy_erases = True

    def __init__(self, settings, *, scheduler_id, data_dir):
        super().__init__(settings, scheduler_id=scheduler_id, data_dir=data_dir)
        missing = [key for key in ("image_id", "flavor") if not getattr(self.os, key)]
        if missing:
            raise BackendConfigError(
                f"pipelines.openstack: {' and '.join(missing)} must be set for the openstack backend"
            )
        if self.os.use_floating_ip and not self.os.ip_pool:
            raise BackendConfigError(
                "pipelines.openstack.ip_pool must name the floating IP network when use_floating_ip is true"
            )
        if self.os.user_data and self.os.user_data_file:
            raise BackendConfigError("pipelines.openstack: set user_data or user_data_file, not both")
        self._lock = threading.Lock()
        self._conn = None
        self._resolved: tuple[tuple, Resolved] | None = None
        self._resolve_lock = threading.Lock()
        self._booting = threading.BoundedSemaphore(self.os.max_parallel_provisioning)
        self._holding: set[str] = set()  # servers holding a _booting slot
        self._reach_order = UrgentFirst()
        self._in_flight: set[str] = set()  # names being created: not yet known to the pool's store
        self._reach = SshReach(
            lambda: self.settings,
            self._reach_order,
            lambda name: self.awaited(name),  # the pool sets self.awaited after this
            self._exists,
            self._launched,
        )
        self.ips = FloatingIPs(self.connection, scheduler_id, self.os.api_retries)
        self._status = ServerStatusBoard(self.connection, self.os.api_retries)

    # --- plumbing ---------------------------------------------------------------------

    @property
    def os(self):
        # Read through self.settings: PUT /config swaps the settings object of a running backend.
        return self.settings.openstack

    def connection(self):
        with self._lock:
            if self._conn is None:
                from scheduler_server.pipelines.clouds.openstack.auth import connect

                self._conn = connect(self.os)
            return self._conn

    def _compute(self):
        """The compute proxy: reaching it may be a request (token, catalogue), so only inside ``call()``."""
        return self.connection().compute

    def resolved(self) -> Resolved:
        wanted = (
            self.os.image_id,
            self.os.flavor,
            self.os.network_id,
            self.os.ip_pool,
            self.os.use_floating_ip,
            self.os.security_group,
        )
        with self._resolve_lock:  # one lookup for all the servers provisioned at once
            if self._resolved is None or self._resolved[0] != wanted:
                self._resolved = (wanted, resolve(self.connection(), self.os))
            return self._resolved[1]

    def adopt(self, instances: list[InstanceInfo]) -> None:
        """Called once at start: connect and resolve names now, so the first pipeline does not wait
        for it and a wrong image or flavor name shows in the log right away."""
        stacks = [i.name for i in instances if i.extra.get("stack")]
        if stacks and self.os.provisioning == "nova":
            log.error(
                "openstack: %d live instance(s) are Heat stacks (%s) and provisioning is nova, which can neither "
                "reach nor delete them: set provisioning: heat until they are gone (drain before switching)",
                len(stacks),
                ", ".join(stacks[:5]),
            )
        threading.Thread(target=self._warm_up, name="openstack-warm-up", daemon=True).start()

    def _warm_up(self) -> None:
        try:
            self.resolved()
        except (CloudAPIError, BackendConfigError) as exc:
            log.error("openstack: %s", exc)

    def _call(self, what, fn, **kw):
        return call(what, fn, self.os.api_retries, **kw)

    def _instance(self, server) -> InstanceInfo:
        return servers.instance_info(server, self.os.ssh_port, self.settings.ssh_user, self.scheduler_id)

    # --- provision ----------------------------------------------------------------------

    def provision(self, name: str) -> InstanceInfo:
        try:
            wanted = self.resolved()
        except CloudAPIError as exc:
            raise ProvisionError(str(exc)) from None
        request = secrets.token_hex(8)
        attrs = servers.create_attrs(self.os, wanted, name, request, self.scheduler_id)
        retried = []

        def find_created():
            retried.append(True)
            return self._find_created(name, request)

        server = self._create(f"create server {name}", name, lambda c: c.compute.create_server(**attrs), find_created)
        log.info("openstack: created server %s (%s)", name, server.id)
        return InstanceInfo(
            id=server.id,
            name=name,
            state="building",
            port=self.os.ssh_port,
            user=self.settings.ssh_user,
            created_at=datetime.now(UTC),
            extra={"request": request, "dedupe": bool(retried)},
        )

    def _create(self, what: str, name: str, create, on_retry):
        """``create(conn)``, a server or a stack (Heat's too), holding a boot slot that a failure frees."""
        self._booting.acquire()
        with self._lock:
            self._in_flight.add(name)
        made = None
        try:
            conn = self.connection()  # inside: a failure here frees the slot too
            with self._reach_order.turn(lambda: self.awaited(name)):  # awaited first: a burst slows all
                made = self._call(what, lambda: create(conn), on_retry=on_retry)
        except CloudAPIError as exc:
            raise ProvisionError(str(exc)) from None
        finally:
            with self._lock:
                self._in_flight.discard(name)
                if made is not None:
                    self._holding.add(made.id)
            if made is None:
                self._booting.release()
        return made

    def _created(self, name: str, request: str) -> list:
        named = self._compute().servers(details=True, name=f"^{name}$")
        return [s for s in named if (s.metadata or {}).get(servers.REQUEST_KEY) == request]

    def _find_created(self, name: str, request: str):
        found = self._created(name, request)
        if found:
            log.info("openstack: server %s was created despite the error; using it", name)
        return found[0] if found else None

    def _drop_duplicates(self, instance: InstanceInfo) -> None:
        """A create that timed out may still have happened after we repeated it: delete the extra server.

        Checked once the server is ACTIVE and again when it is destroyed.
        """
        extras = self._call("list servers", lambda: self._created(instance.name, instance.extra.get("request")))
        for server in extras:
            if server.id != instance.id:
                log.warning("openstack: deleting duplicate server %s (%s) of a retried create", server.name, server.id)
                self._call(
                    "delete duplicate server", lambda s=server: self._compute().delete_server(s.id, ignore_missing=True)
                )

    def _free_slot(self, server_id: str) -> None:
        with self._lock:
            held = server_id in self._holding
            self._holding.discard(server_id)
        if held:
            self._booting.release()

    # --- reach ------------------------------------------------------------------------

    def wait_until_reachable(self, instance: InstanceInfo) -> InstanceInfo:
        try:
            server = self._wait_active(instance)
            if instance.extra.get("dedupe"):
                try:
                    self._drop_duplicates(instance)
                except CloudAPIError as exc:  # tagged and untracked: the pool's reconciliation removes it later
                    log.warning("openstack: could not check for a duplicate of %s: %s", instance.name, exc)
            address = self._address(instance, server)
        finally:
            self._free_slot(instance.id)
        return self._reach.reached(instance, address)

    def _wait_active(self, instance: InstanceInfo):
        started = instance.created_at.timestamp() if instance.created_at else time.time()
        while True:
            try:
                server = self._status.get(instance.id, max_age=self.os.status_poll_interval)
            except CloudAPIError as exc:
                raise ProvisionError(str(exc)) from None
            if server is None:
                raise ProvisionError(f"server {instance.name} disappeared while booting")
            status = (server.status or "").upper()
            if status == "ACTIVE":
                return server
            if status == "ERROR":
                fault = (server.fault or {}).get("message") or "no reason given"
                raise ProvisionError(f"server {instance.name} went to ERROR: {fault}")
            waited = time.time() - started
            if waited > self.os.boot_timeout:
                raise ProvisionError(
                    f"server {instance.name} still {status or 'not ACTIVE'} after {waited:.0f} s (boot_timeout {self.os.boot_timeout:g} s)"
                )
            time.sleep(min(self.os.status_poll_interval, max(0.05, self.os.boot_timeout - waited)))

    def _address(self, instance: InstanceInfo, server) -> str:
        wanted = self.resolved()
        if self.os.use_floating_ip:
            try:
                claim = self.ips.attach(wanted.pool_id, server.id, self.os.reuse_floating_ips)
            except CloudAPIError as exc:
                raise ProvisionError(f"floating IP for {instance.name}: {exc}") from None
            instance.extra.update(fip_id=claim.id, fip_allocated=claim.allocated)
            return claim.address
        addresses = server.addresses or {}
        networks = [wanted.network_name] if wanted.network_name in addresses else list(addresses)
        for net in networks:
            for entry in addresses[net]:
                if entry.get("OS-EXT-IPS:type", "fixed") == "fixed" and entry.get("version", 4) == 4:
                    return entry["addr"]
        raise ProvisionError(f"server {instance.name} is ACTIVE but has no fixed IPv4 address")

    def executor(self, instance: InstanceInfo) -> OpenStackExecutor:
        return self._reach.executor(instance)

    # --- release ----------------------------------------------------------------------

    def _let_go(self, instance: InstanceInfo) -> None:
        """Forget an instance about to be deleted: its boot slot, its turn, its executors."""
        self._free_slot(instance.id)
        self._reach_order.release(instance.id)
        self._reach.forget(instance.id)

    def destroy(self, instance: InstanceInfo) -> None:
        self._let_go(instance)
        try:
            fip_id = instance.extra.get("fip_id")
            if fip_id:
                self.ips.release(fip_id, bool(instance.extra.get("fip_allocated")), instance.id)
            if self.os.use_floating_ip:
                self.ips.release_for_server(instance.id)
            if instance.extra.get("dedupe"):
                self._drop_duplicates(instance)
            self._call(
                f"delete server {instance.name}",
                lambda: self._compute().delete_server(instance.id, ignore_missing=True),
            )
        except CloudAPIError as exc:
            raise ProvisionError(f"cannot delete server {instance.name}: {exc}") from None
        log.info("openstack: deleted server %s (%s)", instance.name, instance.id)

    # --- inventory --------------------------------------------------------------------

    def get_instance(self, instance_id: str) -> InstanceInfo | None:
        try:
            server = self._call("get server", lambda: self._compute().get_server(instance_id))
        except CloudAPIError as exc:
            if exc.status == 404:
                return None
            raise
        return self._instance(server)

    def _launched(self, server_id: str, job: str) -> None:
        self._reach_order.release(server_id)
        self._tag_job(server_id, job)

    def _tag_job(self, server_id: str, job: str) -> None:
        metadata = {servers.JOB_KEY: job}
        try:
            self._call("set server metadata", lambda: self._compute().set_server_metadata(server_id, **metadata))
        except CloudAPIError as exc:  # only informative: never fail a running pipeline for it
            log.warning("openstack: could not tag server %s with %s: %s", server_id, job, exc)

    def _exists(self, server_id: str) -> bool:
        info = self.get_instance(server_id)
        return info is not None and info.state != "gone"

    def list_instances(self, *, include_untagged: bool = False) -> list[InstanceInfo]:
        listed = self._call("list servers", lambda: list(self._compute().servers(details=True)))
        found = self._listed([self._instance(server) for server in listed], include_untagged)
        if self.os.use_floating_ip:
            try:
                self.ips.sweep()
            except CloudAPIError as exc:
                log.warning("openstack: floating IP sweep failed: %s", exc)
        return found

    def _listed(self, infos: list[InstanceInfo], include_untagged: bool) -> list[InstanceInfo]:
        """What ``list_instances`` shows of the cloud's listing (servers or stacks)."""
        with self._lock:
            in_flight = set(self._in_flight)
        # One whose create call has not returned yet is left out: the pool cannot know it.
        return [i for i in infos if (i.tagged and i.name not in in_flight) or (include_untagged and not i.tagged)]

    def close(self) -> None:
        self._reach.close()
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
