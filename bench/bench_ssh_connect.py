"""Time to reach a fresh instance over SSH: connect, authenticate, open the first session.

A real OpenSSH server on loopback (devtools/sshd.py, as the OpenStack
simulator's servers use), paramiko as the service uses it. Two ways of
connecting, alternated so both see the same machine load:

- "paramiko's socket": ``SSHClient.connect`` opens the socket itself (the
  service did this before; TCP_NODELAY was set only after authentication);
- "ssh_socket": the socket ``clouds/ssh_socket.py`` makes (TCP_NODELAY before
  the handshake, an immediate ACK after each send), as the service does now.

Prints the median and the range over the runs, in milliseconds, for the
handshake + authentication and for opening the first session and starting a
command in it (what an instance's first launch waits for).

Usage: .venv/bin/python bench/bench_ssh_connect.py [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import paramiko

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))
from devtools.sshd import SSHServer, generate_keypair  # noqa: E402
from scheduler_server.pipelines.clouds.ssh_transport import tcp as ssh_socket  # noqa: E402


def reach(server: SSHServer, key: Path, tuned: bool) -> tuple[float, float]:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    started = time.perf_counter()
    sock = ssh_socket.connect(server.host, server.port, timeout=10) if tuned else None
    client.connect(
        server.host,
        port=server.port,
        username=server.user,
        key_filename=str(key),
        sock=sock,
        allow_agent=False,
        look_for_keys=False,
        timeout=10,
    )
    connected = time.perf_counter()
    channel = client.get_transport().open_session()
    channel.exec_command("true")
    session = time.perf_counter()
    channel.recv_exit_status()
    client.close()
    return (connected - started) * 1000, (session - connected) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ssh-") as tmp:
        key = generate_keypair(Path(tmp) / "id_ed25519")
        with SSHServer(authorized_keys=[key.with_suffix(".pub").read_text()], workdir=Path(tmp) / "sshd") as server:
            times: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
            for _ in range(args.runs):
                for tuned in (False, True):
                    times[tuned].append(reach(server, key, tuned))
                    time.sleep(0.05)  # let the previous connection's sshd go before the next one
    print(f"{args.runs} runs each, milliseconds: median (min-max)\n")
    print(f"{'socket':<20} {'connect + auth':>22} {'first session':>22} {'total':>22}")
    for tuned, name in ((False, "paramiko's socket"), (True, "ssh_socket")):
        rows = times[tuned]
        columns = [[r[0] for r in rows], [r[1] for r in rows], [r[0] + r[1] for r in rows]]
        cells = [f"{statistics.median(c):7.1f} ({min(c):5.1f}-{max(c):5.1f})" for c in columns]
        print(f"{name:<20} {cells[0]:>22} {cells[1]:>22} {cells[2]:>22}")


if __name__ == "__main__":
    main()
