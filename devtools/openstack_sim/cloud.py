"""The simulated cloud's state and the behaviour behind the APIs: boot, delete, ports, floating IPs.

One ``Cloud`` per simulator; every method is thread-safe (one re-entrant lock).
HTTP handlers call it and turn ``CloudError`` into each service's error body.
"""

from __future__ import annotations

import base64
import binascii
import collections
import dataclasses
import hashlib
import logging
import threading
import time

from .cloud_fips import FloatingIPs
from .config import SimConfig
from .faults import FaultBook
from .hosts import ServerHost
from .model import (
    DEFAULT_SG_ID,
    FLAVORS,
    IMAGES,
    PRIVATE_NET_ID,
    PUBLIC_NET_ID,
    CloudError,
    FloatingIP,
    Keypair,
    Network,
    Port,
    SecurityGroup,
    Server,
    new_id,
    now_iso,
)

log = logging.getLogger(__name__)


class Cloud(FloatingIPs):
    def __init__(self, config: SimConfig, faults: FaultBook | None = None):
        self.config = config
        self.faults = faults or FaultBook()
        self.lock = threading.RLock()
        self.project_id = new_id().replace("-", "")
        self.user_id = new_id().replace("-", "")
        self.images = {i.id: dataclasses.replace(i) for i in IMAGES}  # copies: each cloud changes its own
        self.flavors = {f.id: dataclasses.replace(f, extra_specs=dict(f.extra_specs)) for f in FLAVORS}
        block = config.address_block
        self.networks = {
            PRIVATE_NET_ID: Network(id=PRIVATE_NET_ID, name="private", external=False, cidr=f"127.{block}.0.0/17"),
            PUBLIC_NET_ID: Network(id=PUBLIC_NET_ID, name="public", external=True, cidr=f"127.{block}.200.0/21"),
        }
        self.security_groups = {DEFAULT_SG_ID: SecurityGroup(id=DEFAULT_SG_ID, name="default")}
        for name in config.security_groups:
            sg = SecurityGroup(id=new_id(), name=name)
            self.security_groups[sg.id] = sg
        self.keypairs: dict[str, Keypair] = {}
        self.servers: dict[str, Server] = {}
        self.ports: dict[str, Port] = {}
        self.floating_ips: dict[str, FloatingIP] = {}
        self._fixed_index = 0
        self._closing = threading.Event()
        self._boots: set[threading.Thread] = set()
        self.deleted_servers: collections.deque[Server] = collections.deque(maxlen=1000)  # for changes-since

    # --- keypairs ---------------------------------------------------------------------

    def import_keypair(self, name: str, public_key: str) -> Keypair:
        if not name or len(name) > 255:
            raise CloudError(400, "Keypair name must be string and between 1 and 255 characters long", "badRequest")
        parts = public_key.split()
        if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-")):
            raise CloudError(400, "Keypair data is invalid: failed to generate fingerprint", "badRequest")
        try:
            blob = base64.b64decode(parts[1], validate=True)
        except binascii.Error:
            raise CloudError(400, "Keypair data is invalid: failed to generate fingerprint", "badRequest") from None
        digest = hashlib.md5(blob).hexdigest()  # Nova's fingerprint format, not a security use
        with self.lock:
            if name in self.keypairs:
                raise CloudError(409, f"Key pair '{name}' already exists.", "conflictingRequest")
            kp = Keypair(
                name=name,
                public_key=public_key.strip(),
                fingerprint=":".join(digest[i : i + 2] for i in range(0, 32, 2)),
            )
            self.keypairs[name] = kp
            return kp

    def delete_keypair(self, name: str) -> None:
        with self.lock:
            if self.keypairs.pop(name, None) is None:
                raise CloudError(404, f"Keypair {name} not found.", "itemNotFound")

    # --- servers ----------------------------------------------------------------------

    def get_server(self, server_id: str) -> Server:
        with self.lock:
            server = self.servers.get(server_id)
            if server is None:
                raise CloudError(404, f"Instance {server_id} could not be found.", "itemNotFound")
            return server

    def create_server(self, body: dict) -> Server:
        return self.create_servers(body)[0]

    def create_servers(self, body: dict, min_count: int = 1, max_count: int = 1) -> list[Server]:
        """Boot between ``min_count`` and ``max_count`` servers, as many as the quota allows (Nova's rule).

        With more than one, each is named ``<name>-<n>`` (Nova's default display name template).
        """
        fields = self._server_fields(body)
        with self.lock:
            used = len(self.servers)
            count = min(max_count, self.config.max_servers - used)
            if count < min_count:
                raise CloudError(
                    403,
                    f"Quota exceeded for instances: Requested {min_count}, but already used {used} "
                    f"of {self.config.max_servers} instances",
                    "forbidden",
                )
            servers = []
            for n in range(1, count + 1):
                name = fields["name"] if count == 1 else f"{fields['name']}-{n}"
                servers.append(self._new_server(fields | {"name": name, "metadata": dict(fields["metadata"])}))
        for server in servers:
            boot = threading.Thread(target=self._boot, args=(server,), name=f"boot-{server.id[:8]}", daemon=True)
            with self.lock:
                self._boots.add(boot)
            boot.start()
        return servers

    def _server_fields(self, body: dict) -> dict:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise CloudError(400, "Invalid input for field/attribute name.", "badRequest")
        image_id = body.get("imageRef")
        if not isinstance(image_id, str) or image_id not in self.images:
            raise CloudError(400, f"Image {image_id} could not be found.", "badRequest")
        flavor_id = str(body.get("flavorRef"))
        if flavor_id not in self.flavors:
            raise CloudError(400, f"Flavor {flavor_id} could not be found.", "badRequest")
        key_name = body.get("key_name")
        if key_name is not None and key_name not in self.keypairs:
            raise CloudError(400, "Invalid key_name provided.", "badRequest")
        description = body.get("description")
        if description is not None and (not isinstance(description, str) or len(description) > 255):
            raise CloudError(400, "Invalid input for field/attribute description.", "badRequest")
        return {
            "name": name,
            "image_id": image_id,
            "flavor_id": flavor_id,
            "key_name": key_name,
            "description": description,
            "network_id": self._requested_network(body.get("networks")),
            "security_groups": self._requested_groups(body.get("security_groups")),
            "metadata": _checked_metadata(body.get("metadata") or {}),
            "user_data": _checked_user_data(body.get("user_data")),
        }

    def _new_server(self, fields: dict) -> Server:
        """A server record in BUILD with its port (under the lock)."""
        server = Server(id=new_id(), project_id=self.project_id, user_id=self.user_id, **fields)
        rule = self.faults.take_server_fate()
        if rule is not None:
            server.fate, server.fate_after = rule.kind, rule.after
        if server.network_id:
            self._attach_port(server, server.network_id)
        self.servers[server.id] = server
        return server

    def update_server(self, server_id: str, changes: dict) -> Server:
        """Rename a server or change its description (Nova's PUT /servers/{id})."""
        name = changes.get("name")
        if "name" in changes and (not isinstance(name, str) or not name.strip() or len(name) > 255):
            raise CloudError(400, "Invalid input for field/attribute name.", "badRequest")
        description = changes.get("description")
        if description is not None and (not isinstance(description, str) or len(description) > 255):
            raise CloudError(400, "Invalid input for field/attribute description.", "badRequest")
        with self.lock:
            server = self.get_server(server_id)
            if "name" in changes:
                server.name = name
            if "description" in changes:
                server.description = description
            server.updated = now_iso()
            return server

    def add_network(self, name: str) -> Network:
        """Another (internal) project network: a create without ``networks`` then is ambiguous (409)."""
        with self.lock:
            index = len(self.networks)
            net = Network(id=new_id(), name=name, external=False, cidr=f"127.{self.config.address_block}.{index}.0/24")
            self.networks[net.id] = net
            return net

    def _requested_groups(self, requested) -> list[str]:
        requested = requested or [{"name": "default"}]
        if not isinstance(requested, list) or not all(
            isinstance(g, dict) and isinstance(g.get("name"), str) for g in requested
        ):
            raise CloudError(400, "Invalid input for field/attribute security_groups.", "badRequest")
        groups = [g["name"] for g in requested]
        known = {sg.name for sg in self.security_groups.values()} | set(self.security_groups)
        for group in groups:
            if group not in known:
                raise CloudError(400, f"Security group {group} not found for project {self.project_id}.", "badRequest")
        return groups

    def _requested_network(self, networks) -> str | None:
        """The network a server gets: absent, ``[]`` or "auto" pick the project's only network (Nova)."""
        if networks in (None, "auto", []):
            with self.lock:
                own = [n.id for n in self.networks.values() if not n.external]
            if len(own) > 1:
                raise CloudError(
                    409,
                    "More than one possible network found. Specify network ID(s) to select which one(s) to connect to.",
                    "conflictingRequest",
                )
            return own[0] if own else None
        if networks == "none":
            return None
        if not isinstance(networks, list) or len(networks) != 1:
            raise CloudError(400, "The simulator supports exactly one requested network.", "badRequest")
        wanted = networks[0].get("uuid") if isinstance(networks[0], dict) else None
        if wanted not in self.networks or self.networks[wanted].external:
            raise CloudError(400, f"Network {wanted} could not be found.", "badRequest")
        return wanted

    def _attach_port(self, server: Server, network_id: str) -> None:
        address = self.config.fixed_ip(self._fixed_index)
        self._fixed_index += 1
        mac = "fa:16:3e:{:02x}:{:02x}:{:02x}".format(*tuple(bytes.fromhex(server.id[:6])))
        port = Port(
            id=new_id(),
            network_id=network_id,
            device_id=server.id,
            ip_address=address,
            subnet_id=self.networks[network_id].subnet_id,
            mac_address=mac,
        )
        self.ports[port.id] = port
        server.port_id, server.fixed_ip = port.id, address

    def _boot(self, server: Server) -> None:
        try:
            self._settle(server)
        finally:
            with self.lock:
                self._boots.discard(threading.current_thread())

    def _settle(self, server: Server) -> None:
        """Start the server's sshd while it is in BUILD, then settle its fate after the boot delay."""
        host = None
        if server.fate == "ok" or server.fate == "server_vanish":
            keys = [self.keypairs[server.key_name].public_key] if server.key_name in self.keypairs else []
            try:
                if server.fixed_ip:
                    host = ServerHost(server.fixed_ip, self.config.ssh_port, keys).start()
            except Exception as exc:  # a broken sshd is a broken VM: ERROR, with the cause as fault
                log.warning("server %s: sshd failed: %s", server.id, exc)
                server.fate, server.fate_after = "server_error", 0.0
                host = None
        after = (
            server.fate_after
            if server.fate == "server_error" and server.fate_after is not None
            else self.config.boot_delay
        )
        self._closing.wait(max(0.0, server.created_mono + after - time.monotonic()))
        with self.lock:
            if server.deleted or self._closing.is_set():
                if host:
                    host.stop()
                return
            server.updated = now_iso()
            if server.fate == "server_stuck":
                return
            if server.fate == "server_error":
                server.status, server.task_state = "ERROR", None
                server.fault = {
                    "code": 500,
                    "message": "No valid host was found. There are not enough hosts available.",
                    "created": now_iso(),
                }
                return
            server.status, server.task_state, server.launched_at, server.host = "ACTIVE", None, now_iso(), host
        if server.fate == "server_vanish":
            if not self._closing.wait(server.fate_after if server.fate_after is not None else 1.0):
                self.vanish_server(server.id)

    def delete_server(self, server_id: str) -> None:
        """Nova deletes asynchronously: the server lists with task_state 'deleting' for delete_delay seconds."""
        with self.lock:
            server = self.get_server(server_id)
            if server.task_state == "deleting":
                return
            server.task_state = "deleting"
        timer = threading.Timer(self.config.delete_delay, self._remove_server, args=(server_id,))
        timer.daemon = True
        timer.start()

    def vanish_server(self, server_id: str) -> None:
        """The server is gone behind the client's back (host failure, another admin)."""
        self._remove_server(server_id)

    def _remove_server(self, server_id: str) -> None:
        with self.lock:
            server = self.servers.pop(server_id, None)
            if server is None:
                return
            server.deleted = True
            host, server.host = server.host, None
            self.deleted_servers.append(
                dataclasses.replace(server, status="DELETED", task_state=None, updated=now_iso(), host=None)
            )
            if server.port_id:
                self._delete_port(server.port_id)
        if host is not None:
            host.stop()

    # --- shutdown ---------------------------------------------------------------------

    def close(self) -> None:
        """Stop every sshd and forwarder (the simulator is shutting down)."""
        self._closing.set()
        with self.lock:
            boots = list(self._boots)
        for boot in boots:  # each stops the sshd it may just have started
            boot.join(timeout=15)
        with self.lock:
            hosts = [s.host for s in self.servers.values() if s.host]
            for s in self.servers.values():
                s.host = None
            for fip in self.floating_ips.values():
                if fip.forwarder:
                    fip.forwarder.stop()
                    fip.forwarder = None
        for host in hosts:
            host.stop()


def _checked_metadata(metadata) -> dict:
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and 0 < len(k) <= 255 and len(v) <= 255 for k, v in metadata.items()
    ):
        raise CloudError(400, "Invalid input for field/attribute metadata.", "badRequest")
    return metadata


def _checked_user_data(user_data):
    if user_data is not None:
        try:
            base64.b64decode(user_data, validate=True)
        except (binascii.Error, TypeError):
            raise CloudError(400, "User data needs to be valid base 64.", "badRequest") from None
        if len(user_data) > 65535:
            raise CloudError(400, "User data too large.", "badRequest")
    return user_data
