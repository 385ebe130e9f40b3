"""A TCP proxy that cuts connections where a test says: between the service and a real sshd.

SSH is encrypted, so a cut cannot be placed by what the bytes say; it is placed by
direction and count from the moment the test arms it, when the test knows what
travels next (e.g. the launch message on a launcher session opened ahead):

* ``cut("up", 0)``: the next bytes to the server are dropped and the connection cut
  (the message never arrives);
* ``cut("up", n)``: ``n`` more bytes reach the server, then the cut (part of a message);
* ``cut("down", 0)``: the server's next answer is dropped and the connection cut (the
  message arrived and was acted on; the client never hears);
* ``cut("down", chunks=1)``: the next answer reaches the client, then the cut.

``go_away()`` cuts every connection and refuses new ones (a host that is down);
``come_back()`` accepts again. A cut closes both sides at once, as a dead link
followed by a timeout would.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass


@dataclass
class _Cut:
    direction: str  # "up" (client -> server) or "down"
    after_bytes: int | None
    after_chunks: int | None


class FaultyProxy:
    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self._listener = socket.create_server((host, 0))
        self.host, self.port = self._listener.getsockname()[:2]
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._cut: _Cut | None = None
        self._refusing = False
        self._closed = False
        self.cuts = 0  # how many cuts happened (armed ones and go_away)
        threading.Thread(target=self._accept, name="faulty-proxy", daemon=True).start()

    # --- what a test does -------------------------------------------------------------

    def cut(self, direction: str, after_bytes: int | None = None, chunks: int | None = None) -> None:
        """Arm one cut (see the module docstring); it fires once."""
        assert direction in ("up", "down")
        with self._lock:
            self._cut = _Cut(direction, after_bytes if chunks is None else None, chunks)

    @property
    def armed(self) -> bool:
        with self._lock:
            return self._cut is not None

    def go_away(self) -> None:
        with self._lock:
            self._refusing = True
            pairs = list(self._pairs)
            self.cuts += 1
        for pair in pairs:
            self._close(pair)

    def come_back(self) -> None:
        with self._lock:
            self._refusing = False

    def close(self) -> None:
        self._closed = True
        self.go_away()
        self._listener.close()

    # --- the proxy --------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refusing = self._refusing
            if refusing:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = (client, upstream)
            with self._lock:
                self._pairs.add(pair)
            threading.Thread(target=self._pump, args=(pair, client, upstream, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(pair, upstream, client, "down"), daemon=True).start()

    def _pump(self, pair, source: socket.socket, target: socket.socket, direction: str) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                forward, cut_now = self._decide(direction, len(data))
                if forward:
                    target.sendall(data[:forward])
                if cut_now:
                    self._close(pair)
                    return
        except OSError:
            pass
        self._close(pair)

    def _decide(self, direction: str, size: int) -> tuple[int, bool]:
        """How many of ``size`` bytes to forward, and whether to cut after them."""
        with self._lock:
            cut = self._cut
            if cut is None or cut.direction != direction:
                return size, False
            if cut.after_chunks is not None:
                cut.after_chunks -= 1
                if cut.after_chunks > 0:
                    return size, False
                self._cut = None
                self.cuts += 1
                return size, True
            if cut.after_bytes is not None and cut.after_bytes >= size:
                cut.after_bytes -= size
                return size, False
            forward = cut.after_bytes or 0
            self._cut = None
            self.cuts += 1
            return forward, True

    def _close(self, pair) -> None:
        with self._lock:
            self._pairs.discard(pair)
        for sock in pair:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
