"""Token auth for the pipeline API, as the pipeline seed's later version had it.

Tokens live in ``pipelines.tokens_file``, one per line (blank lines and ``#``
comments ignored); the file is re-read when it changes. A request presents one
with ``Authorization: Bearer <token>`` or ``?token=<token>``. Every configured
token is compared in constant time, so the answer's timing does not tell how
much of a guess was right. Without a tokens file the API is open, and the
service says so loudly at start: once per process, or once for all the workers of
one master (``serve --workers N``'s master says it before it forks; of gunicorn's
workers, the first of each master).
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from pathlib import Path

from flask import Request

from scheduler_server.metrics import directory

log = logging.getLogger("scheduler_server.web.auth")

OPEN_WARNING = (
    "\n" + "!" * 78 + "\n"
    "!! pipelines.tokens_file is not set: the pipeline API (/pipeline, /instance, /config,\n"
    "!! /api/v1/pipelines, /api/v1/instances) accepts requests from ANYONE who can reach this port.\n"
    "!! Put tokens in a file, one per line, and set pipelines.tokens_file (seed: TOKENS_FILE).\n" + "!" * 78
)


class AuthError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class TokenAuth:
    def __init__(self, path_source):
        self._path_source = path_source  # callable -> Path | None; settings can be reloaded
        self._lock = threading.Lock()
        self._cache: tuple[Path, float, list[bytes]] | None = None

    def configured(self) -> bool:
        return self._path_source() is not None

    def _tokens(self, path: Path) -> list[bytes]:
        try:
            mtime = path.stat().st_mtime
        except OSError as exc:
            log.error("tokens file %s cannot be read (%s): refusing every pipeline API request", path, exc.strerror)
            return []
        with self._lock:
            if self._cache and self._cache[0] == path and self._cache[1] == mtime:
                return self._cache[2]
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            tokens = [line.strip().encode() for line in lines if line.strip() and not line.lstrip().startswith("#")]
            if not tokens:
                log.error("tokens file %s holds no token: refusing every pipeline API request", path)
            self._cache = (path, mtime, tokens)
            return tokens

    def check(self, request: Request) -> None:
        """Raise AuthError (401) unless the request carries a configured token; no-op when auth is off."""
        path = self._path_source()
        if path is None:
            return
        presented = presented_token(request)
        if presented is None:
            raise AuthError(401, "missing token: send 'Authorization: Bearer <token>' or ?token=<token>")
        tokens = self._tokens(Path(path).expanduser())
        given = presented.encode()
        matched = False
        for token in tokens:  # no early exit: every token costs the same time
            matched |= hmac.compare_digest(token, given)
        if not matched:
            raise AuthError(401, "invalid token")


def presented_token(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.args.get("token") or None


class _Said:
    by_master = False  # ``serve --workers N``'s master warned: its workers (forked after) stay quiet


def warn_for_workers(tokens_file: object) -> None:
    """``serve --workers N``'s master, before it forks: the warning once, for every worker it starts."""
    if tokens_file is None:
        log.warning(OPEN_WARNING)
    _Said.by_master = True


def warn_if_open(auth: TokenAuth) -> None:
    """When the app is built: unless the master warned for this worker already (``warn_for_workers``)."""
    if not auth.configured() and not _Said.by_master and _first_of_gunicorn_master():
        log.warning(OPEN_WARNING)


#: In the multiprocess directory of gunicorn's workers (metrics/directory.py: one per master, removed
#: with it): made by the first worker to warn, so the others of that master (and respawned ones) do
#: not. Named by the master (pid and start time): an operator's directory left from an earlier master
#: must not keep the next one quiet.
_GUNICORN_MARK = "open-api-warned-{master}"


def _first_of_gunicorn_master() -> bool:
    """True but in a gunicorn worker that finds the mark of another worker of its master."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")  # set by metrics.setup, before the app is built
    master = directory.gunicorn_master()
    if master is None or not folder:
        return True
    try:
        mark = os.path.join(folder, _GUNICORN_MARK.format(master=master))
        os.close(os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return False
    except OSError:
        return True  # no mark to leave: better said by each worker than by none
    return True
