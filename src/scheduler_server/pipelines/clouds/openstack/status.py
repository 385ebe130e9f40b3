"""Status of booting servers from one shared listing, instead of one GET per server per poll.

Twenty servers booting at once would otherwise cost twenty requests per poll
interval (clouds rate-limit their APIs, and openstacksdk is not cheap per
call). Here the first waiter whose snapshot is older than the interval lists
all servers once; the others read that snapshot. A server missing from a
snapshot is asked for directly (it may be newer than the snapshot, or gone).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from openstack import exceptions as os_exceptions

from scheduler_server.pipelines.clouds.openstack.calls import CloudAPIError, call


@dataclass(frozen=True)
class ServerStatus:
    """What waiting for a server needs from Nova's listing."""

    id: str
    status: str | None
    fault: dict | None = None
    addresses: dict = field(default_factory=dict)


def _list_statuses(compute) -> list[ServerStatus]:
    """GET /servers/detail (every page) through the SDK's authenticated adapter, read as plain
    JSON: building an SDK Server per entry costs CPU, most of a poll's cost when many servers
    boot at once, and it slows the SSH handshakes of the ones just ready."""
    found: list[ServerStatus] = []
    url: str | None = "/servers/detail"
    while url:
        response = compute.get(url, raise_exc=False)
        os_exceptions.raise_from_response(response)
        body = response.json()
        for entry in body.get("servers", []):
            found.append(
                ServerStatus(entry["id"], entry.get("status"), entry.get("fault"), entry.get("addresses") or {})
            )
        url = next((link["href"] for link in body.get("servers_links", []) if link.get("rel") == "next"), None)
    return found


class ServerStatusBoard:
    def __init__(self, connection: Callable, retries: int):
        self._conn = connection
        self.retries = retries
        self._lock = threading.Lock()
        self._servers: dict[str, object] = {}
        self._taken_at = float("-inf")

    def get(self, server_id: str, max_age: float):
        """The server (a ``ServerStatus`` from the shared listing, or an SDK Server when fetched alone) as
        seen at most ``max_age`` seconds ago, or None if it does not exist."""
        with self._lock:
            if time.monotonic() - self._taken_at >= max_age:
                servers = call("list servers", lambda: _list_statuses(self._conn().compute), self.retries)
                self._servers = {s.id: s for s in servers}
                self._taken_at = time.monotonic()
            server = self._servers.get(server_id)
        if server is not None:
            return server
        try:
            return call("get server", lambda: self._conn().compute.get_server(server_id), self.retries)
        except CloudAPIError as exc:
            if exc.status == 404:
                return None
            raise
