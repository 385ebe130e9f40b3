"""The simulated cloud's floating IPs and port bookkeeping (a part of ``Cloud``).

Neutron's behaviour: a floating IP comes from the external network's pool (a
requested ``floating_ip_address`` must be a free pool address: 409 if taken,
400 if not one of the pool's), associates with at most one port per fixed IP,
forwards its SSH port to the port's address while associated, and is
disassociated (not deleted) when its port goes away.
"""

from __future__ import annotations

import ipaddress
import logging

from .hosts import Forwarder
from .model import CloudError, FloatingIP, Port, new_id, now_iso

log = logging.getLogger(__name__)


class FloatingIPs:
    """Mixed into ``Cloud``: uses its ``lock``, ``config``, ``networks``, ``ports`` and ``floating_ips``."""

    def _delete_port(self, port_id: str) -> None:
        self.ports.pop(port_id, None)
        for fip in self.floating_ips.values():
            if fip.port_id == port_id:  # Neutron disassociates, it does not delete the floating IP
                self._associate(fip, None)

    def get_fip(self, fip_id: str) -> FloatingIP:
        with self.lock:
            fip = self.floating_ips.get(fip_id)
            if fip is None:
                raise CloudError(404, f"Floating IP {fip_id} could not be found", "FloatingIPNotFound")
            return fip

    def create_fip(
        self, network_id: str | None, port_id: str | None, description: str, floating_ip_address: str | None = None
    ) -> FloatingIP:
        with self.lock:
            net = self.networks.get(network_id or "")
            if net is None:
                raise CloudError(404, f"Network {network_id} could not be found.", "NetworkNotFound")
            if not net.external:
                raise CloudError(
                    400, f"Bad floatingip request: Network {network_id} is not a valid external network.", "BadRequest"
                )
            address = self._free_address(net, floating_ip_address)
            fip = FloatingIP(
                id=new_id(),
                floating_network_id=net.id,
                floating_ip_address=address,
                project_id=self.project_id,
                description=description or "",
            )
            self.floating_ips[fip.id] = fip
            if port_id:
                self.update_fip(fip.id, {"port_id": port_id}, None)
            return fip

    def _free_address(self, net, wanted: str | None) -> str:
        """The address a new floating IP gets: ``wanted`` if it is a free pool address, else the first free one."""
        used = {f.floating_ip_address for f in self.floating_ips.values()}
        pool = [self.config.floating_ip(i) for i in range(self.config.fip_pool_size)]
        if wanted is not None:
            try:
                ipaddress.IPv4Address(wanted)
            except ValueError:
                raise CloudError(
                    400,
                    f"Invalid input for floating_ip_address. Reason: '{wanted}' is not a valid IP address.",
                    "HTTPBadRequest",
                ) from None
            if wanted not in pool:
                raise CloudError(
                    400,
                    f"IP address {wanted} is not a valid IP for any of the subnets on the specified network.",
                    "InvalidIpForNetwork",
                )
            if wanted in used:
                raise CloudError(
                    409, f"IP address {wanted} already allocated in subnet {net.subnet_id}", "IpAddressAlreadyAllocated"
                )
            return wanted
        free = [a for a in pool if a not in used]
        if not free:
            raise CloudError(409, f"No more IP addresses available on network {net.id}.", "IpAddressGenerationFailure")
        return free[0]

    def update_fip(self, fip_id: str, changes: dict, if_revision: int | None) -> FloatingIP:
        with self.lock:
            fip = self.get_fip(fip_id)
            if if_revision is not None and if_revision != fip.revision_number:
                raise CloudError(
                    412,
                    f"Constrained to revision {if_revision} but current revision is {fip.revision_number}.",
                    "RevisionNumberConstraintFailed",
                )
            if "port_id" in changes:
                port_id = changes["port_id"]
                port = None
                if port_id is not None:
                    port = self.ports.get(port_id)
                    if port is None:
                        raise CloudError(404, f"Port {port_id} could not be found.", "PortNotFound")
                    holder = next(
                        (f for f in self.floating_ips.values() if f.port_id == port_id and f.id != fip.id), None
                    )
                    if holder is not None:
                        raise CloudError(
                            409,
                            f"Cannot associate floating IP {fip.floating_ip_address} ({fip.id}) with port {port_id} "
                            f"using fixed IP {port.ip_address}, as that fixed IP already has a floating IP on external "
                            f"network {fip.floating_network_id}.",
                            "FloatingIPPortAlreadyAssociated",
                        )
                self._associate(fip, port)
            if "description" in changes:
                fip.description = changes["description"] or ""
            fip.revision_number += 1
            fip.updated_at = now_iso()
            return fip

    def _associate(self, fip: FloatingIP, port: Port | None) -> None:
        if fip.forwarder is not None:
            fip.forwarder.stop()
            fip.forwarder = None
        fip.port_id = port.id if port else None
        fip.fixed_ip_address = port.ip_address if port else None
        if port is not None:
            try:
                fip.forwarder = Forwarder(
                    (fip.floating_ip_address, self.config.ssh_port), (port.ip_address, self.config.ssh_port)
                )
            except OSError as exc:
                log.warning("floating IP %s: cannot forward: %s", fip.floating_ip_address, exc)

    def delete_fip(self, fip_id: str) -> None:
        with self.lock:
            fip = self.get_fip(fip_id)
            self._associate(fip, None)
            del self.floating_ips[fip_id]
