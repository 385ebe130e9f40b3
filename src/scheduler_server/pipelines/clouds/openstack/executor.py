"""SSH to an OpenStack server, telling "unreachable for now" from "the server is gone".

When a connection fails, one API call asks Nova whether the server still
exists; if not, the failure becomes ``InstanceGone`` and the pipeline is
retried on a new server at once instead of after the unreachable grace period.

A launched job is also recorded in the server's metadata
(``scheduler_server_job: job-<pipeline>-<attempt>``), so the cloud's own tools
show which pipeline a server runs.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable

from scheduler_server.pipelines.backend_errors import BackendError, InstanceGone, InstanceUnreachable
from scheduler_server.pipelines.clouds.ssh_transport.executor import SSHExecutor

log = logging.getLogger(__name__)


class OpenStackExecutor(SSHExecutor):
    def __init__(self, *args, exists: Callable[[], bool], launched: Callable[[str], None], server_name: str, **kwargs):
        super().__init__(*args, **kwargs)
        self._exists = exists
        self._launched = launched  # told the job's name after each launch (the backend tags the server)
        self.server_name = server_name

    def _launch(self, directory, script, archive, stdin, on_exit):
        try:
            pid = super()._launch(directory, script, archive, stdin, on_exit)
        except InstanceUnreachable as exc:
            raise self._gone_or(exc) from None
        self._launched(posixpath.basename(directory.rstrip("/")))
        return pid

    def connect(self):
        try:
            return super().connect()
        except InstanceUnreachable as exc:
            raise self._gone_or(exc) from None

    def prepare_launcher(self):
        try:
            return super().prepare_launcher()
        except InstanceUnreachable as exc:
            raise self._gone_or(exc) from None

    def _gone_or(self, exc: InstanceUnreachable) -> BackendError:
        try:
            if not self._exists():
                return InstanceGone(f"server {self.server_name} no longer exists ({exc})")
        except BackendError as check:  # the API is down too: stay with "unreachable"
            log.info("cannot check whether server %s exists: %s", self.server_name, check)
        return exc

    def run(self, command, *, stdin=None, timeout=60.0):
        try:
            return super().run(command, stdin=stdin, timeout=timeout)
        except InstanceUnreachable as exc:
            raise self._gone_or(exc) from None

    def upload(self, local_path, remote_path, mode=0o644):
        try:
            return super().upload(local_path, remote_path, mode)
        except InstanceUnreachable as exc:
            raise self._gone_or(exc) from None

    def write_file(self, remote_path, data, mode=0o644):
        try:
            return super().write_file(remote_path, data, mode)
        except InstanceUnreachable as exc:
            raise self._gone_or(exc) from None

    def read_file(self, remote_path, offset=0, max_bytes=1 << 20):
        try:
            return super().read_file(remote_path, offset, max_bytes)
        except InstanceUnreachable as exc:
            raise self._gone_or(exc) from None
