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
from typing import Callable

from .openstack_calls import CloudAPIError, call


class ServerStatusBoard:
    def __init__(self, connection: Callable, retries: int):
        self._conn = connection
        self.retries = retries
        self._lock = threading.Lock()
        self._servers: dict[str, object] = {}
        self._taken_at = float("-inf")

    def get(self, server_id: str, max_age: float):
        """The server (an openstacksdk Server) as seen at most ``max_age`` seconds ago, or None if it does not exist."""
        with self._lock:
            if time.monotonic() - self._taken_at >= max_age:
                compute = self._conn().compute
                servers = call("list servers", lambda: list(compute.servers(details=True)), self.retries)
                self._servers = {s.id: s for s in servers}
                self._taken_at = time.monotonic()
            server = self._servers.get(server_id)
        if server is not None:
            return server
        compute = self._conn().compute
        try:
            return call("get server", lambda: compute.get_server(server_id), self.retries)
        except CloudAPIError as exc:
            if exc.status == 404:
                return None
            raise
