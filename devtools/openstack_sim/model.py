"""The simulated cloud's resources as plain records, and the fixed catalogue it starts with."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .hosts import Forwarder, ServerHost


def new_id() -> str:
    return str(uuid.uuid4())


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CloudError(Exception):
    """A request the cloud refuses. ``kind`` is Neutron's error type / Nova's error key."""

    def __init__(self, status: int, message: str, kind: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


@dataclass
class Image:
    id: str
    name: str
    status: str = "active"
    created_at: str = field(default_factory=now_iso)


@dataclass
class Flavor:
    id: str
    name: str
    vcpus: int
    ram: int
    disk: int
    extra_specs: dict[str, str] = field(default_factory=dict)


@dataclass
class Network:
    id: str
    name: str
    external: bool
    subnet_id: str = field(default_factory=new_id)
    cidr: str = ""


@dataclass
class SecurityGroup:
    id: str
    name: str


@dataclass
class Keypair:
    name: str
    public_key: str
    fingerprint: str
    type: str = "ssh"
    created_at: str = field(default_factory=now_iso)


@dataclass
class Port:
    id: str
    network_id: str
    device_id: str
    ip_address: str
    subnet_id: str
    mac_address: str
    device_owner: str = "compute:nova"
    status: str = "ACTIVE"
    created_at: str = field(default_factory=now_iso)


@dataclass
class FloatingIP:
    id: str
    floating_network_id: str
    floating_ip_address: str
    project_id: str
    description: str = ""
    port_id: str | None = None
    fixed_ip_address: str | None = None
    revision_number: int = 0
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    forwarder: Forwarder | None = None

    @property
    def status(self) -> str:
        return "ACTIVE" if self.port_id else "DOWN"


@dataclass
class Server:
    id: str
    name: str
    project_id: str
    user_id: str
    image_id: str
    flavor_id: str
    key_name: str | None
    network_id: str | None
    security_groups: list[str]
    metadata: dict[str, str]
    user_data: str | None
    description: str | None = None
    fate: str = "ok"  # ok | server_error | server_stuck | server_vanish
    fate_after: float | None = None
    status: str = "BUILD"
    task_state: str | None = "spawning"
    fault: dict | None = None
    port_id: str | None = None
    fixed_ip: str | None = None
    created: str = field(default_factory=now_iso)
    updated: str = field(default_factory=now_iso)
    launched_at: str | None = None
    created_mono: float = field(default_factory=time.monotonic)
    deleted: bool = False
    host: ServerHost | None = None

    @property
    def vm_state(self) -> str:
        return {"BUILD": "building", "ACTIVE": "active", "ERROR": "error"}.get(self.status, "deleted")


IMAGES = [
    Image(id="6d4a4b3c-1f0e-4e3e-9a63-0c6b1d2e3f40", name="ubuntu-22.04"),
    Image(id="0b1f5a4e-7c9d-4a2b-8e6f-5d3c2b1a0f9e", name="cirros-0.6.2"),
]
FLAVORS = [
    Flavor(id="1", name="m1.tiny", vcpus=1, ram=512, disk=1),
    Flavor(id="2", name="m1.small", vcpus=1, ram=2048, disk=20),
    Flavor(id="3", name="m1.medium", vcpus=2, ram=4096, disk=40),
    Flavor(id="4", name="m1.large", vcpus=4, ram=8192, disk=80),
]
PRIVATE_NET_ID = "3f0a8b52-55c3-4b0e-9d4e-2a1f6c7d8e90"
PUBLIC_NET_ID = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
DEFAULT_SG_ID = "5c4b3a29-1807-4f6e-8d5c-4b3a29180706"
