"""``SSHExecutor``: the ``Executor`` for any instance reached over SSH (ssh hosts, OpenStack servers).

One paramiko transport per instance, opened lazily and reopened once when it
broke; every command is its own channel, so several threads can run commands at
once. SFTP (uploads, log tails) shares one client behind a lock because
paramiko's SFTP client is not safe for concurrent use.

A launch needs a new SSH session (sshd forks and starts a shell: many times the
cost of an SFTP request on the open connection). ``prepare_launcher`` opens
that session ahead, running a launcher that waits for its job on stdin, so the
launch itself is one message on an open channel. It is reopened in the
background after each launch unless ``relaunch_ahead`` is off. The launcher
then stays, waiting for the job, and says when it ended: a thread holding the
channel calls the launch's ``on_exit``, so the end is seen at once, not at the
next poll.

Host keys: cloud instances are new machines whose keys nobody has seen, so by
default any key is accepted (and logged at DEBUG). Give ``known_hosts`` to
check keys instead.
"""

from __future__ import annotations

import io
import logging
import posixpath
import threading
import time
from pathlib import Path

import paramiko

from scheduler_server.pipelines.backend_errors import InstanceUnreachable
from scheduler_server.pipelines.clouds.executor import CommandResult, Executor
from scheduler_server.pipelines.clouds.ssh_transport import tcp as ssh_socket
from scheduler_server.pipelines.clouds.ssh_transport.channel import (
    communicate,
    describe,
    ended_code,
    read_reply,
    refusal,
    tar,
)
from scheduler_server.pipelines.jobdir import WAITING_LAUNCHER, launch_result

log = logging.getLogger(__name__)

#: Jobs whose files add up to at most this many bytes travel with the launch (one message);
#: bigger ones are uploaded over SFTP first.
INLINE_STAGING_MAX = 1 << 20
#: Jobs whose end is heard through their launcher's session, at most, per connection (sshd's
#: MaxSessions is 10 by default; SFTP, a launcher opened ahead and commands need some too).
#: Beyond it, a job's end is found by polling.
MAX_WATCHED = 5


class _AcceptNewHost(paramiko.MissingHostKeyPolicy):
    def missing_host_key(self, client, hostname, key):
        log.debug("accepting %s host key of %s", key.get_name(), hostname)


class SSHExecutor(Executor):
    def __init__(
        self,
        address: str,
        port: int = 22,
        user: str | None = None,
        *,
        key_file: Path | None = None,
        password: str | None = None,
        connect_timeout: float = 10.0,
        known_hosts: Path | None = None,
        relaunch_ahead: bool = True,
    ):
        self.address = address
        self.port = port
        self.user = user
        self.key_file = Path(key_file).expanduser() if key_file else None
        self._password = password
        self.connect_timeout = connect_timeout
        self.known_hosts = known_hosts
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._lock = threading.RLock()
        self._sftp_lock = threading.Lock()
        self._launcher: paramiko.Channel | None = None  # a WAITING_LAUNCHER session, opened ahead
        self._dirs: set[str] = set()  # remote directories known to exist (made or seen over SFTP)
        self._watching = 0  # launcher sessions held open until their job ends
        self.relaunch_ahead = relaunch_ahead  # False where an instance runs one job (VIRTUAL_SERVER_TTL 1)
        self._closed = False
        #: When the last connection attempt failed (monotonic), None once one succeeds: a host that
        #: does not answer is the last choice for new work.
        self.failed_at: float | None = None

    def __repr__(self) -> str:
        return f"SSHExecutor({self.user}@{self.address}:{self.port})"

    # --- connection -----------------------------------------------------------------

    def _transport(self) -> paramiko.Transport:
        with self._lock:
            if self._client is not None:
                transport = self._client.get_transport()
                if transport is not None and transport.is_active():
                    return transport
                self._drop()
            client = paramiko.SSHClient()
            if self.known_hosts:
                client.load_host_keys(str(self.known_hosts))
                client.set_missing_host_key_policy(paramiko.RejectPolicy())
            else:
                client.set_missing_host_key_policy(_AcceptNewHost())
            try:
                client.connect(
                    self.address,
                    port=self.port,
                    sock=ssh_socket.connect(self.address, self.port, self.connect_timeout),
                    username=self.user,
                    key_filename=str(self.key_file) if self.key_file else None,
                    password=self._password,
                    timeout=self.connect_timeout,
                    banner_timeout=self.connect_timeout,
                    auth_timeout=self.connect_timeout,
                    allow_agent=False,
                    look_for_keys=self.key_file is None and self._password is None,
                )
            except (OSError, paramiko.SSHException, EOFError) as exc:
                client.close()
                self.failed_at = time.monotonic()
                raise InstanceUnreachable(f"ssh {self.user}@{self.address}:{self.port}: {describe(exc)}") from None
            self.failed_at = None
            transport = client.get_transport()
            assert transport is not None
            transport.set_keepalive(15)
            self._client = client
            return transport

    def _drop(self) -> None:
        if self._launcher is not None:
            try:
                self._launcher.close()  # EOF: the waiting launcher exits without doing anything
            except Exception:  # noqa: BLE001 - on a dead connection the close itself raises (EOFError)
                pass
            self._launcher = None
        if self._sftp is not None:
            try:
                self._sftp.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
        if self._client is not None:
            self._client.close()
        self._sftp = None
        self._client = None

    def connect(self) -> None:
        """Open (or check) the SSH connection: reachable and authenticated; raises ``InstanceUnreachable``."""
        self._transport()

    def close(self) -> None:
        with self._lock:
            self._closed = True  # no launcher is prepared ahead any more
            self._drop()

    # --- commands -------------------------------------------------------------------

    def run(self, command: str, *, stdin: bytes | None = None, timeout: float | None = 60.0) -> CommandResult:
        return self._run_on(self._open_session(), command, stdin, timeout)

    def _open_session(self) -> paramiko.Channel:
        """A new session channel; reconnects once if the connection had died since its last use."""
        for attempt in (1, 2):
            transport = self._transport()
            try:
                return transport.open_session(timeout=self.connect_timeout)
            except (paramiko.SSHException, OSError, EOFError) as exc:
                if isinstance(exc, paramiko.ChannelException) and transport.is_active():
                    # Refused on a live connection (sshd's MaxSessions, say): dropping the connection
                    # would cut every other session on it.
                    raise InstanceUnreachable(
                        f"ssh {self.address}:{self.port}: session refused: {describe(exc)}"
                    ) from None
                with self._lock:
                    self._drop()
                if attempt == 2:
                    raise InstanceUnreachable(f"ssh {self.address}:{self.port}: {describe(exc)}") from None
        raise AssertionError("unreachable")

    def prepare_launcher(self) -> None:
        """Open a session running the waiting launcher now (connecting if need be), for the next launch.

        Raises ``InstanceUnreachable`` when that fails, so it doubles as a reachability probe."""
        channel = self._open_launcher()
        with self._lock:
            if self._closed:  # closed meanwhile (the instance is being deleted): leave no connection open
                old = channel
                self._drop()
            else:
                old, self._launcher = self._launcher, channel
        if old is not None:
            old.close()

    def _open_launcher(self) -> paramiko.Channel:
        """A new session running ``WAITING_LAUNCHER``."""
        if self._closed:
            raise InstanceUnreachable(f"ssh {self.address}:{self.port}: executor closed")
        return self._exec(self._open_session(), WAITING_LAUNCHER)

    def _exec(self, channel: paramiko.Channel, command: str) -> paramiko.Channel:
        """Start ``command`` on a new session channel."""
        try:
            channel.fileno()  # before any output can arrive, so select() sees all of it
            channel.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            channel.close()
            raise InstanceUnreachable(f"ssh {self.address}:{self.port}: {describe(exc)}") from None
        return channel

    def _take_launcher(self) -> paramiko.Channel | None:
        with self._lock:
            channel, self._launcher = self._launcher, None
        if channel is None:
            return None
        transport = channel.get_transport()
        if channel.closed or channel.exit_status_ready() or transport is None or not transport.is_active():
            channel.close()  # its connection broke or its shell died meanwhile: launch the usual way
            return None
        return channel

    def launch_detached(self, directory: str, script: str, stdin: bytes, on_exit=None) -> int:
        return self._launch(directory, script, b"", stdin, on_exit)

    def stage_and_launch(self, directory, files, script, stdin, on_exit=None) -> int:
        if sum(item.size() for item in files) > INLINE_STAGING_MAX:
            return super().stage_and_launch(directory, files, script, stdin, on_exit)
        return self._launch(directory, script, tar(files), stdin, on_exit)

    def _launch(self, directory: str, script: str, archive: bytes, stdin: bytes, on_exit) -> int:
        # Always through the waiting launcher (opened now if none was ready): it stays to tell the job's end.
        channel = self._take_launcher() or self._open_launcher()
        with self._lock:  # each watched job holds a session; sshd allows ten per connection by default
            watch = self._watching < MAX_WATCHED
            self._watching += watch
        head = b"\0".join(
            (directory.encode(), script.encode(), str(len(archive)).encode(), b"1" if watch else b"0", b"")
        )
        try:
            pid = self._launch_on(channel, head + archive + stdin, directory, on_exit if watch else None, watch)
        except BaseException:
            if watch:
                self._unwatch()
            raise
        if self.relaunch_ahead:  # for the next job on this instance, off the launch path
            threading.Thread(target=self._reprepare, name="ssh-launcher", daemon=True).start()
        return pid

    def _unwatch(self) -> None:
        with self._lock:
            self._watching -= 1

    def _launch_on(self, channel: paramiko.Channel, message: bytes, directory: str, on_exit, watch: bool) -> int:
        """Hand a job to a waiting launcher; return the pid it prints, then (``watch``) let a thread wait for its end."""
        try:
            line = read_reply(channel, message, f"ssh {self.address}:{self.port}")
            if not line.strip().isdigit():
                # It refused (92: launched before) or failed, and exits: its status says which.
                return launch_result(refusal(channel, line), directory)
            channel.settimeout(None)
        except FileExistsError:  # launched before (an OSError, but not a connection problem)
            raise
        except (paramiko.SSHException, OSError, EOFError) as exc:
            channel.close()
            raise InstanceUnreachable(f"ssh {self.address}:{self.port}: {describe(exc)}") from None
        except BaseException:
            channel.close()
            raise
        pid = int(line)
        if watch:
            threading.Thread(
                target=self._wait_for_end, args=(channel, on_exit), name=f"ssh-job-{pid}", daemon=True
            ).start()
        else:
            channel.close()  # the launcher exits after the pid: its job is polled as usual
        return pid

    def _wait_for_end(self, channel: paramiko.Channel, on_exit) -> None:
        """Hold a launcher's channel until it prints ``ended <rc>`` or closes (the job ended, or the
        connection or the instance went away), then tell ``on_exit`` (with ``rc`` if it came)."""
        try:
            code = ended_code(channel)
        finally:
            self._unwatch()
        if on_exit is not None:
            try:
                on_exit(code)
            except Exception:  # noqa: BLE001 - a callback's bug must not be silent, nor kill anything
                log.exception("the end-of-job callback failed")

    def _reprepare(self) -> None:
        if self._closed:
            return
        try:
            self.prepare_launcher()
        except InstanceUnreachable as exc:  # the next launch opens its own session
            log.debug("could not prepare a launcher on %s: %s", self, exc)

    def _run_on(
        self, channel: paramiko.Channel, command: str, stdin: bytes | None, timeout: float | None
    ) -> CommandResult:
        return communicate(self._exec(channel, command), stdin, timeout, f"ssh {self.address}:{self.port}")

    # --- files ----------------------------------------------------------------------

    def _with_sftp(self, action):
        for attempt in (1, 2):
            transport = self._transport()
            with self._sftp_lock:
                try:
                    if self._sftp is None or self._sftp.get_channel().get_transport() is not transport:
                        self._sftp = paramiko.SFTPClient.from_transport(transport)
                    return action(self._sftp)
                except FileNotFoundError:
                    raise
                except (OSError, paramiko.SSHException, EOFError) as exc:
                    if isinstance(exc, OSError) and exc.errno is not None:
                        raise
                    self._sftp = None
                    if attempt == 2:
                        raise InstanceUnreachable(f"sftp {self.address}:{self.port}: {describe(exc)}") from None
        raise AssertionError("unreachable")

    def _makedirs(self, sftp: paramiko.SFTPClient, directory: str) -> None:
        """Create ``directory`` and its parents. Each SFTP request is a round trip, so the usual case
        (a new job directory in an existing base) is one ``mkdir``, and a directory made or seen in
        this session is not asked for again (``remove_tree`` forgets it)."""
        if directory in ("", ".", "/") or directory in self._dirs:
            return
        try:
            sftp.mkdir(directory)
        except OSError:
            try:
                sftp.stat(directory)  # there already
            except FileNotFoundError:
                self._makedirs(sftp, posixpath.dirname(directory))
                try:
                    sftp.mkdir(directory)
                except OSError:
                    sftp.stat(directory)  # created concurrently is fine; anything else raises here
        self._dirs.add(directory)

    def _put(self, remote_path: str, mode: int, write) -> None:
        def action(sftp):
            self._makedirs(sftp, posixpath.dirname(remote_path))
            try:
                write(sftp)
            except FileNotFoundError:  # its directory went away behind our back: make it again
                self._dirs.clear()
                self._makedirs(sftp, posixpath.dirname(remote_path))
                write(sftp)
            sftp.chmod(remote_path, mode)

        self._with_sftp(action)

    def upload(self, local_path: Path, remote_path: str, mode: int = 0o644) -> None:
        # confirm=False: the chmod that follows fails if the file is not there.
        self._put(remote_path, mode, lambda sftp: sftp.put(str(local_path), remote_path, confirm=False))

    def write_file(self, remote_path: str, data: bytes, mode: int = 0o644) -> None:
        self._put(remote_path, mode, lambda sftp: sftp.putfo(io.BytesIO(data), remote_path, confirm=False))

    def read_file(self, remote_path: str, offset: int = 0, max_bytes: int = 1 << 20) -> bytes:
        def action(sftp):
            try:
                # A stat first: nothing new to read (an empty log, an unchanged tail) costs one round
                # trip instead of four (open, read, read to see the end, close).
                size = sftp.stat(remote_path).st_size or 0
                if size <= offset or max_bytes <= 0:
                    return b""
                with sftp.open(remote_path, "rb") as handle:
                    handle.seek(offset)
                    return handle.read(min(max_bytes, size - offset))
            except OSError as exc:
                if getattr(exc, "errno", None) == 2:
                    raise FileNotFoundError(remote_path) from None
                raise

        return self._with_sftp(action)

    def remove_tree(self, remote_path: str) -> None:
        super().remove_tree(remote_path)
        prefix = remote_path.rstrip("/")
        with self._sftp_lock:  # _makedirs and _put change it under this lock
            self._dirs = {d for d in self._dirs if d != prefix and not d.startswith(prefix + "/")}
