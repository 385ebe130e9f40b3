"""The TCP socket under an SSH connection, tuned for small request/answer exchanges.

SSH to an instance is a conversation of small messages (handshake, channel
opens, launches, SFTP requests), and two TCP defaults make it stall:

- Nagle's algorithm on our side holds a small write until the peer ACKs the
  previous one: ``TCP_NODELAY``, set before the handshake, not after it.
- Nagle's algorithm on sshd's side (sshd sets ``TCP_NODELAY`` only for
  sessions with a terminal) holds its answer until we ACK its previous packet,
  and Linux delays that ACK (40 ms at least) once a connection looks
  interactive. After authentication sshd sends a packet of its own
  (``hostkeys-00@openssh.com``), so the answer to the first channel open
  waited for our delayed ACK every time. ``TCP_QUICKACK`` is not sticky (the
  kernel leaves quick-ACK mode when we send), so it is asked for again after
  each send.

What it saves on an SSH connect, authenticate and first session is measured by
bench/bench_ssh_connect.py (figures in bench/README.md).
"""

from __future__ import annotations

import socket

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only; elsewhere only TCP_NODELAY applies


def connect(address: str, port: int, timeout: float) -> PromptAckSocket:
    """A connected socket for ``paramiko.SSHClient.connect(sock=...)``; raises ``OSError``."""
    sock = socket.create_connection((address, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:  # not TCP after all (cannot happen for create_connection, but never fatal)
        pass
    return PromptAckSocket(sock)


class PromptAckSocket:
    """A socket that ACKs the next thing it receives at once; everything else is the socket's."""

    def __init__(self, sock: socket.socket):
        self._sock = sock

    def send(self, data) -> int:
        sent = self._sock.send(data)
        if _QUICKACK is not None:
            try:
                self._sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:  # closed meanwhile: the next recv or send reports it
                pass
        return sent

    def __getattr__(self, name):
        return getattr(self._sock, name)
