"""Passwords at rest: encrypted with Fernet (the ``cryptography`` package), masked on the way out.

The key comes from ``pipelines.secret_key`` (or its environment variable
``SCHEDULER_SERVER__PIPELINES__SECRET_KEY``); without one, a key is generated
on first start into ``<data_dir>/pipelines.key`` with mode 0600 and reused.
Losing the key only loses the passwords of pipelines not yet started.

Replicas on one database must share the key: the database records its fingerprint (an HMAC-SHA256
of a fixed label under the key, truncated: not the key) on first start, and a process whose key's
fingerprint differs refuses to start (``check_shared``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

log = logging.getLogger(__name__)

MASK = "********"
KEY_FILE = "pipelines.key"
#: The meta row holding the key's fingerprint, and what is signed to make it.
FINGERPRINT_KEY = "secret_key_fingerprint"
FINGERPRINT_LABEL = b"scheduler-server secret key fingerprint v1"


class SecretError(Exception):
    """The key is malformed, or a stored secret cannot be decrypted with it."""


class SecretBox:
    def __init__(self, key: bytes | str, source: str = "pipelines.secret_key"):
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError):
            raise SecretError(f"{source}: not a Fernet key (32 url-safe base64-encoded bytes)") from None
        self.source = source
        raw = key.encode("ascii") if isinstance(key, str) else key
        self.fingerprint = hmac.new(raw, FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:16]

    @classmethod
    def from_config(
        cls, configured: str | None, data_path: Path, recorded: Callable[[str, str], str] | None = None
    ) -> SecretBox:
        """The configured key, else the data directory's key file; ``recorded`` (the store's
        ``meta_setdefault``), if given: its fingerprint is checked against the database's."""
        box = cls(configured.strip()) if configured else cls(_key_file(data_path), f"key file {data_path / KEY_FILE}")
        if recorded is not None:
            box.check_shared(recorded(FINGERPRINT_KEY, box.fingerprint))
        return box

    def check_shared(self, recorded: str) -> None:
        """SecretError (one line) unless ``recorded``, the database's fingerprint, is this key's."""
        if recorded != self.fingerprint:
            raise SecretError(
                f"the password encryption key ({self.source}, fingerprint {self.fingerprint}) is not the one "
                f"this database's other replicas use (fingerprint {recorded}): give every replica the same key "
                "in pipelines.secret_key or the environment variable SCHEDULER_SERVER__PIPELINES__SECRET_KEY"
            )

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise SecretError("a stored password cannot be decrypted: pipelines.secret_key changed?") from None


def _key_file(data_path: Path) -> bytes:
    """The key in ``data_path``'s key file, made on first use; SecretError naming the file if it cannot be read or made."""
    path = data_path / KEY_FILE
    try:
        return _read_or_create_key(path)
    except OSError as exc:
        raise SecretError(
            f"key file {path}: cannot {'read' if path.exists() else 'create'} it ({exc.strerror or exc})"
        ) from None


def _read_or_create_key(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _create_key(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s was readable by others (mode %o); setting it to 0600", path, mode)
        os.chmod(path, 0o600)
    return path.read_bytes().strip()


def _create_key(path: Path) -> None:
    """Write a new key complete under a temporary name and link it into place: workers starting
    together never read a half-written key, and only the first link wins."""
    key = Fernet.generate_key()
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(key + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)
        log.info("generated the password encryption key %s (mode 0600)", path)
    except FileExistsError:
        pass  # another process made it first: use theirs
    finally:
        temporary.unlink(missing_ok=True)


def mask_text(text: str, secrets: list[str]) -> str:
    """Replace every occurrence of each secret in ``text`` (a script may echo its -pwd argument)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text
