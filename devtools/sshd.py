"""A real OpenSSH server on a free loopback port, for tests and the OpenStack simulator.

It runs unprivileged-style from a private directory: its own host key, its own
authorized_keys, no PAM, listening only on the given loopback address. Commands
run as the current user (sshd requires the login user to be that user unless
it runs as root, and then it may be any local user).
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def generate_keypair(path: Path, kind: str = "ed25519") -> Path:
    """Write an OpenSSH private key at ``path`` and its public key at ``path.pub``."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "scheduler-server-test", "-f", str(path)],
        check=True,
    )
    return path


@dataclass
class SSHServer:
    """One sshd process. Use as a context manager, or call start()/stop()."""

    authorized_keys: list[str]
    host: str = "127.0.0.1"
    port: int = 0
    workdir: Path | None = None
    user: str = field(default_factory=getpass.getuser)
    extra_config: list[str] = field(default_factory=list)  # more sshd_config lines
    process: subprocess.Popen | None = None
    _own_workdir: bool = False

    def start(self, timeout: float = 10.0) -> SSHServer:
        if not Path(SSHD).exists():
            raise RuntimeError(f"{SSHD} not found: install Debian's openssh-server (scripts/setup.sh test does)")
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="sshd-"))
            self._own_workdir = True
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o700)
        if not self.port:
            self.port = free_port(self.host)
        host_key = self.workdir / "host_key"
        if not host_key.exists():
            generate_keypair(host_key)
        auth = self.workdir / "authorized_keys"
        auth.write_text("".join(k.strip() + "\n" for k in self.authorized_keys))
        os.chmod(auth, 0o600)
        config = self.workdir / "sshd_config"
        config.write_text(self._config_text(host_key, auth))
        # sshd insists on an absolute path and on its privilege-separation directory.
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "sshd.log", "ab"),
            start_new_session=True,
        )
        return self._wait_until_answering(timeout)

    def _config_text(self, host_key: Path, auth: Path) -> str:
        return "\n".join(
            [
                f"ListenAddress {self.host}:{self.port}",
                f"HostKey {host_key}",
                f"AuthorizedKeysFile {auth}",
                f"PidFile {self.workdir / 'sshd.pid'}",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "UsePAM no",
                "StrictModes no",
                "PermitRootLogin yes",
                f"AllowUsers {self.user}",
                "Subsystem sftp internal-sftp",
                "MaxStartups 100:30:200",
                "MaxSessions 50",
                "LogLevel ERROR",
                # bash sources ~/.bashrc for commands run by sshd unless SHLVL says it is
                # nested; a ~/.bashrc may run pyenv (slow on every command, and a
                # stale pyenv lock can hang every login), which a test host must not depend on.
                "SetEnv SHLVL=1",
                *self.extra_config,
                "",
            ]
        )

    def _wait_until_answering(self, timeout: float) -> SSHServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.workdir / "sshd.log").read_text(errors="replace")
                raise RuntimeError(f"sshd exited with {self.process.returncode}: {log.strip()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not answer on {self.host}:{self.port} within {timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> SSHServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
