"""Floating IPs for servers, claimed safely by many threads (and schedulers) without a lock.

The seed serialised floating-IP handling behind one global lock. Here:

* Claiming a free address is a compare-and-swap: Neutron's
  ``If-Match: revision_number=N`` makes the association fail with 412 if
  anyone changed the address since we listed it, and we try the next one.
* A new address is allocated already associated with the server's port (one
  request), so our own addresses are never unassociated while in use; the
  description names this scheduler and the server.
* Hence an address with our description and no port has lost its server (a
  crash between deleting the server and the address): ``sweep`` deletes those.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from keystoneauth1 import exceptions as ks_exceptions
from openstack import exceptions as os_exceptions

from scheduler_server.pipelines.clouds.openstack.calls import CloudAPIError, call, describe

log = logging.getLogger(__name__)
DESCRIPTION_PREFIX = "scheduler-server "


@dataclass(frozen=True)
class Claim:
    id: str
    address: str
    #: True if this scheduler allocated the address (release deletes it); False if it reused a free one.
    allocated: bool


class FloatingIPs:
    def __init__(self, connection: Callable, scheduler_id: str, retries: int):
        self._conn = connection
        self.scheduler_id = scheduler_id
        self.retries = retries

    def description(self, server_id: str) -> str:
        return f"{DESCRIPTION_PREFIX}{self.scheduler_id} server {server_id}"

    def _ours(self, fip) -> bool:
        return (fip.description or "").startswith(f"{DESCRIPTION_PREFIX}{self.scheduler_id} ")

    def server_port(self, server_id: str):
        ports = call(
            "list ports of server", lambda: list(self._conn().network.ports(device_id=server_id)), self.retries
        )
        if not ports:
            raise CloudAPIError(f"server {server_id} has no network port to attach a floating IP to")
        return ports[0]

    def attach(self, pool_id: str, server_id: str, reuse: bool) -> Claim:
        """An address of ``pool_id`` associated with the server's port: reused if free, else allocated."""
        port = self.server_port(server_id)
        network = self._conn().network
        existing = self._on_port(pool_id, port.id)
        if existing is not None:  # a retry or a restart: the server already has one
            return existing
        if reuse:
            free = [
                f
                for f in call("list floating IPs", lambda: list(network.ips(floating_network_id=pool_id)), self.retries)
                if not f.port_id and not (f.description or "").startswith(DESCRIPTION_PREFIX)
            ]
            random.shuffle(free)  # concurrent claimers then rarely race for the same address
            for fip in free:
                try:
                    claimed = network.update_ip(fip.id, port_id=port.id, if_revision=fip.revision_number)
                except (
                    os_exceptions.PreconditionFailedException,
                    os_exceptions.ConflictException,
                    os_exceptions.NotFoundException,
                ):
                    continue  # someone else got it first
                except (os_exceptions.SDKException, ks_exceptions.ClientException) as exc:  # a refused connection
                    # too: the next address is tried, then the allocation (inside call(): retried, or one error)
                    log.warning("openstack: claiming floating IP %s failed: %s", fip.floating_ip_address, describe(exc))
                    continue
                return Claim(claimed.id, claimed.floating_ip_address, allocated=False)
        try:
            fip = call(
                f"allocate a floating IP from pool {pool_id}",
                lambda: network.create_ip(
                    floating_network_id=pool_id, port_id=port.id, description=self.description(server_id)
                ),
                self.retries,
                on_retry=lambda: self._on_port(pool_id, port.id),
            )
        except CloudAPIError as exc:
            if exc.status == 409 and "already has a floating IP" in str(exc):
                found = self._on_port(pool_id, port.id)
                if found is not None:
                    return found
            raise
        if isinstance(fip, Claim):
            return fip
        return Claim(fip.id, fip.floating_ip_address, allocated=True)

    def _on_port(self, pool_id: str, port_id: str) -> Claim | None:
        network = self._conn().network
        for fip in call(
            "list floating IPs", lambda: list(network.ips(floating_network_id=pool_id, port_id=port_id)), self.retries
        ):
            if fip.port_id == port_id:
                return Claim(fip.id, fip.floating_ip_address, allocated=self._ours(fip))
        return None

    def release(self, fip_id: str, allocated: bool, server_id: str) -> None:
        """Delete an address we allocated; give a reused one back to the pool."""
        if allocated:
            call(
                "delete floating IP", lambda: self._conn().network.delete_ip(fip_id, ignore_missing=True), self.retries
            )
            return
        fip = self._found(f"get floating IP {fip_id}", lambda: self._conn().network.get_ip(fip_id))
        if fip is None or not fip.port_id:
            return
        network = self._conn().network  # reached by the look-up
        port = self._found(f"get port {fip.port_id}", lambda: network.get_port(fip.port_id))
        if port is not None and port.device_id == server_id:
            try:
                call(
                    f"disassociate floating IP {fip.floating_ip_address}",
                    lambda: network.update_ip(fip_id, port_id=None, if_revision=fip.revision_number),
                    self.retries,
                )
            except CloudAPIError as exc:  # deleting the server disassociates it anyway
                log.info("openstack: floating IP not disassociated: %s", exc)

    def _found(self, what: str, fn: Callable):
        """``call(what, fn)``, None if the cloud answers 404."""
        try:
            return call(what, fn, self.retries)
        except CloudAPIError as exc:
            if exc.status == 404:
                return None
            raise

    def release_for_server(self, server_id: str) -> None:
        """Delete every address we allocated for ``server_id`` (found by description, so nothing is missed)."""
        wanted = self.description(server_id)
        listed = call("list floating IPs", lambda: list(self._conn().network.ips(description=wanted)), self.retries)
        network = self._conn().network  # reached by the listing
        for fip in listed:
            if fip.description == wanted:
                call("delete floating IP", lambda f=fip: network.delete_ip(f.id, ignore_missing=True), self.retries)

    def sweep(self) -> list[str]:
        """Delete our addresses that lost their server; return their addresses."""
        listed = call("list floating IPs", lambda: list(self._conn().network.ips()), self.retries)
        network = self._conn().network  # reached by the listing
        removed = []
        for fip in listed:
            if self._ours(fip) and not fip.port_id:
                try:
                    call("delete floating IP", lambda f=fip: network.delete_ip(f.id, ignore_missing=True), self.retries)
                    removed.append(fip.floating_ip_address)
                except CloudAPIError as exc:  # the next sweep tries again
                    log.warning("openstack: cannot delete orphan floating IP %s: %s", fip.floating_ip_address, exc)
        if removed:
            log.info("openstack: deleted %d orphan floating IP(s): %s", len(removed), ", ".join(removed))
        return removed
