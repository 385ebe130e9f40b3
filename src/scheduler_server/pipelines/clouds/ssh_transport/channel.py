"""What happens on one SSH session channel: a command's whole exchange, a launcher's reply, a job's end.

Functions of a paramiko channel only (no connection handling, which stays in ``SSHExecutor``);
``where`` names the instance in error messages.
"""

from __future__ import annotations

import io
import select
import tarfile
import time

import paramiko

from scheduler_server.pipelines.backend_errors import InstanceUnreachable
from scheduler_server.pipelines.clouds.executor import CommandResult
from scheduler_server.pipelines.jobdir import JobFile

#: After the exit status, how long to wait for the rest of the output (EOF) before giving up on it.
EOF_GRACE = 0.5
#: How long a waiting launcher may take to answer a job with its pid.
REPLY_TIMEOUT = 30


def communicate(channel: paramiko.Channel, stdin: bytes | None, timeout: float | None, where: str) -> CommandResult:
    """Send ``stdin`` to a started command, then read its output to the end and its exit status."""
    deadline = None if timeout is None else time.monotonic() + timeout
    out, err = bytearray(), bytearray()
    try:
        wakeup = channel.fileno()  # readable whenever output or EOF arrives: no sleeping poll loop
        if stdin:
            channel.sendall(stdin)
        channel.shutdown_write()
        # Read to EOF, not just to the exit status: sshd may send the exit status before it
        # has drained the command's last output (a launcher's pid once came back as "").
        # A background child that keeps stdout open delays EOF; EOF_GRACE bounds that wait.
        exited_at = None
        while True:
            while channel.recv_ready():
                out += channel.recv(65536)
            while channel.recv_stderr_ready():
                err += channel.recv_stderr(65536)
            if channel.eof_received or channel.closed:
                break
            if exited_at is None and channel.status_event.is_set():
                exited_at = time.monotonic()
            if exited_at is not None and time.monotonic() - exited_at > EOF_GRACE:
                break
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise InstanceUnreachable(f"{where}: command timed out after {timeout} s")
            wait = EOF_GRACE / 4 if exited_at is not None else 1.0  # the status sets no wakeup
            select.select([wakeup], [], [], wait if left is None else min(left, wait))
        while channel.recv_ready():  # what came with the EOF
            out += channel.recv(65536)
        while channel.recv_stderr_ready():
            err += channel.recv_stderr(65536)
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not channel.status_event.wait(left):
            raise InstanceUnreachable(f"{where}: no exit status after {timeout} s")
        code = channel.recv_exit_status()
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise InstanceUnreachable(f"{where}: {describe(exc)}") from None
    finally:
        channel.close()
    return CommandResult(code, bytes(out), bytes(err))


def read_reply(channel: paramiko.Channel, message: bytes, where: str) -> bytes:
    """Send ``message`` to a waiting launcher and return the first line it prints (its pid, if it launched)."""
    deadline = time.monotonic() + REPLY_TIMEOUT
    out = bytearray()
    channel.settimeout(REPLY_TIMEOUT)  # a launcher that stopped reading must not block sendall for good
    channel.sendall(message)
    wakeup = channel.fileno()
    exited_at = None
    while b"\n" not in out and not (channel.eof_received or channel.closed):
        # The exit status can come before the last output: after it, wait a little for the rest.
        if exited_at is None and channel.status_event.is_set():
            exited_at = time.monotonic()
        if exited_at is not None and time.monotonic() - exited_at > EOF_GRACE:
            break
        left = deadline - time.monotonic()
        if left <= 0:
            raise InstanceUnreachable(f"{where}: no pid from the launcher after {REPLY_TIMEOUT} s")
        select.select([wakeup], [], [], min(left, 1.0 if exited_at is None else EOF_GRACE / 4))
        while channel.recv_ready():
            out += channel.recv(65536)
    while channel.recv_ready():  # what came with the EOF
        out += channel.recv(65536)
    return bytes(out).split(b"\n", 1)[0]


def refusal(channel: paramiko.Channel, line: bytes) -> CommandResult:
    """A launcher that printed no pid: its exit status and complaint (e.g. tar's); closes the channel."""
    code = channel.recv_exit_status() if channel.status_event.wait(EOF_GRACE) else -1
    err = bytearray()
    while channel.recv_stderr_ready():
        err += channel.recv_stderr(65536)
    channel.close()
    return CommandResult(code, line, bytes(err))


def ended_code(channel: paramiko.Channel) -> int | None:
    """Hold a launcher's channel until it prints ``ended <rc>`` or closes; ``rc`` if it came. Closes the channel."""
    tail = b""
    try:
        while chunk := channel.recv(1024):
            tail = (tail + chunk)[-256:]
    except (paramiko.SSHException, OSError, EOFError):
        pass
    finally:
        channel.close()
    words = tail.split(b"\n")[-2:-1] or [b""]  # the last complete line: "ended <rc>"
    code = words[0].split()[1:2]
    return int(code[0]) if code and code[0].lstrip(b"-").isdigit() else None


def tar(files: list[JobFile]) -> bytes:
    """The job's files as one tar archive, unpacked by the waiting launcher."""
    buffer = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for item in files:
            content = item.content()
            info = tarfile.TarInfo(item.name)
            info.size, info.mode, info.mtime = len(content), item.mode, now
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]
