"""The simulator's knobs: where it listens, how slow servers boot, what the quotas are.

One mutable object shared by the HTTP handlers and the boot threads; the admin
API (``PATCH /_sim/config``) changes it while the simulator runs.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, fields


@dataclass
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 0
    #: Seconds a server stays in BUILD before it turns ACTIVE (its sshd starts meanwhile).
    boot_delay: float = 1.0
    #: Seconds between ``DELETE /servers/{id}`` and the server leaving the listing (Nova deletes asynchronously).
    delete_delay: float = 0.2
    #: Nova quota on instances per project (403 "Quota exceeded" beyond it).
    max_servers: int = 50
    #: Addresses in the external network's floating-IP pool (409 "No more IP addresses" beyond it).
    fip_pool_size: int = 50
    username: str = "demo"
    password: str = "secret"
    project_name: str = "demo"
    region: str = "RegionOne"
    #: Port every simulated server's sshd listens on, each on its own loopback address 127.<block>.x.y.
    ssh_port: int = 0
    #: Second octet of the loopback addresses servers and floating IPs get (random by default,
    #: so several simulators on one machine do not collide).
    address_block: int = field(default_factory=lambda: random.randint(100, 250))
    #: Security group names that exist besides "default".
    security_groups: list[str] = field(default_factory=list)
    #: Whether the catalogue lists Heat (a cloud without the orchestration service: False).
    orchestration: bool = True

    MUTABLE = ("boot_delay", "delete_delay", "max_servers", "fip_pool_size")

    def update(self, values: dict) -> None:
        """Change the run-time knobs; anything else is a ValueError naming the key."""
        types = {f.name: f.type for f in fields(self)}
        for key, value in values.items():
            if key not in self.MUTABLE:
                raise ValueError(f"{key}: not changeable at run time (changeable: {', '.join(self.MUTABLE)})")
            cast = float if types[key] in ("float", float) else int
            try:
                number = cast(value)
                if number != number or abs(number) == float("inf"):  # NaN, Infinity
                    raise ValueError(value)
            except (TypeError, ValueError, OverflowError):
                raise ValueError(f"{key}: expected a number, got {value!r}") from None
            if number < 0:
                raise ValueError(f"{key}: must not be negative")
            setattr(self, key, number)

    def public(self) -> dict:
        data = asdict(self)
        data.pop("password")
        return data

    # --- addresses -------------------------------------------------------------------

    def fixed_ip(self, index: int) -> str:
        """The private-network address of the ``index``-th server ever created (never reused)."""
        return f"127.{self.address_block}.{1 + index // 250}.{2 + index % 250}"

    def floating_ip(self, index: int) -> str:
        return f"127.{self.address_block}.{200 + index // 250}.{2 + index % 250}"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"
