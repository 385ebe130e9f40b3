"""The machine side of a simulated server: a real sshd, and floating-IP forwarding.

Each server's sshd (``devtools.sshd.SSHServer``) listens on the server's own
loopback address (``127.<block>.x.y``) on the simulator's common SSH port, so a
client reaches it exactly as it would a VM: by address, on one well-known port.
A floating IP is a TCP forwarder from its own loopback address to the server's.

All servers share this machine and its login user; "processes of a server" are
the ones whose ``SSH_CONNECTION`` names the server's address and port: sshd puts
it in every session's environment, and it survives ``setsid``/``nohup``, so
deleting a server can kill everything that ran on it, like a real VM going away.
A VM goes away all at once, so they are first frozen (SIGSTOP, looking again
until no new process shows up: a stopped process cannot fork) and only then
killed. Signalled one by one, a shell could see its child die before its own
signal arrived and carry on with its next command, which no vanished VM does.

Sessions start with ``SHLVL=1``: bash then skips this machine's ~/.bashrc,
which belongs to the host, not to the simulated server's image (and can cost
a quarter of a second per command).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path

from devtools.sshd import SSHServer

log = logging.getLogger(__name__)


class ServerHost:
    """A real sshd for one server, plus the means to kill everything that ran on it."""

    def __init__(self, address: str, port: int, authorized_keys: list[str]):
        self.address = address
        self.port = port
        self._sshd = SSHServer(authorized_keys=authorized_keys, host=address, port=port)

    def start(self) -> ServerHost:
        self._sshd.start()
        return self

    @property
    def pid(self) -> int | None:
        return self._sshd.process.pid if self._sshd.process else None

    def stop(self) -> None:
        """Stop the sshd, drop its open connections and kill every process that ran on this server."""
        listener = self.pid
        frozen = self._freeze(listener)
        if log.isEnabledFor(logging.INFO):  # describing reads /proc once more per process
            log.info(
                "server %s: killing sshd %s and %s",
                self.address,
                listener,
                [_describe(p) for p in sorted(frozen - {listener})],
            )
        for pid in frozen:
            _signal(pid, signal.SIGKILL)
        self._sshd.stop()  # reaps the listener, removes its files
        # Nothing frozen can fork; one late look is a safety net, not a need (each scan reads all of /proc).
        threading.Thread(target=self._sweep_late, name=f"late-kill-{self.address}", daemon=True).start()

    def _freeze(self, listener: int | None, rounds: int = 20) -> set[int]:
        """SIGSTOP the listener (no new connection is accepted) and every process of this server,
        rescanning until a scan finds nothing new."""
        frozen: set[int] = set()
        if listener:
            _signal(listener, signal.SIGSTOP)
            frozen.add(listener)
        for _ in range(rounds):
            found = self.processes() - frozen
            if not found:
                break
            for pid in found:
                _signal(pid, signal.SIGSTOP)
            frozen |= found
        return frozen

    def _sweep_late(self) -> None:
        time.sleep(1.0)
        late = self.processes()
        if late and log.isEnabledFor(logging.INFO):
            log.info("server %s: killing late %s", self.address, [_describe(p) for p in sorted(late)])
        for pid in late:
            _signal(pid, signal.SIGKILL)

    def processes(self) -> set[int]:
        """The sshd's children (connections) and every process started by a session on this server."""
        found = _descendants(self.pid) if self.pid else set()
        marker = f" {self.address} {self.port}"
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in found or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            for var in environ.split(b"\0"):
                if var.startswith(b"SSH_CONNECTION=") and var.decode(errors="replace").endswith(marker):
                    found.add(int(entry.name))
                    break
        return found


def _describe(pid: int) -> str:
    try:
        return (
            f"{pid} " + Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        )
    except OSError:
        return str(pid)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name in field 2 may contain spaces; the parent pid follows the closing ")".
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


class Forwarder:
    """Forwards TCP connections from a floating address to a server's fixed address."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]):
        self.listen = listen
        self.target = target
        self._server = socket.create_server(listen)
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        threading.Thread(target=self._accept, name=f"fip-{listen[0]}", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()  # like a VM whose sshd is not up: the connection is refused
                continue
            with self._lock:
                self._open.update((client, upstream))
            done = threading.Barrier(2, action=lambda c=client, u=upstream: self._close(c, u))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst, done), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, done: threading.Barrier) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        try:
            done.wait(timeout=3600)
        except threading.BrokenBarrierError:
            pass

    def _close(self, *socks: socket.socket) -> None:
        with self._lock:
            for s in socks:
                self._open.discard(s)
                s.close()

    def stop(self) -> None:
        # shutdown() wakes the thread blocked in accept(); close() alone would not.
        try:
            self._server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._server.close()
        with self._lock:
            for s in list(self._open):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
