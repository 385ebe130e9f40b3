"""Where the observing scheduler keeps what it computed, between processes.

Two things are cached: hourly ephemeris tables (``sky/ephemerides.py``) and
generated master schedules (``master/generate.py``, as archives of
``master/archives.py``). Both are pure functions of their inputs, and every
file name carries the inputs and the versions of the code and data that made it,
so a stale file is never read: it is simply not found.

The directory is ``$SCHEDULER_SERVER_CACHE_DIR`` if set, else
``$XDG_CACHE_HOME/scheduler-server``, else ``~/.cache/scheduler-server``. When it
cannot be written the scheduler still works, it just recomputes.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import zipfile
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

ENV_CACHE_DIR = "SCHEDULER_SERVER_CACHE_DIR"
log = logging.getLogger(__name__)
_warned: set[str] = set()


def cache_root() -> Path:
    explicit = os.environ.get(ENV_CACHE_DIR)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "scheduler-server"


@cache
def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "none"


def load_array(relative: str) -> np.ndarray | None:
    path = cache_root() / relative
    try:
        with open(path, "rb") as handle:
            return np.load(handle, allow_pickle=False)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        # A truncated or foreign file: ignore it, it is rewritten below.
        log.warning("ignoring unreadable cache file %s: %s", path, exc)
        return None


def save_array(relative: str, array: np.ndarray) -> None:
    _write_atomically(cache_root() / relative, lambda handle: np.save(handle, array, allow_pickle=False))


def load_archive(relative: str) -> dict[str, np.ndarray] | None:
    """The arrays of an ``.npz`` file, all read while it is open; None if missing or broken."""
    path = cache_root() / relative
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("ignoring unreadable cache file %s: %s", path, exc)
        return None


def save_archive(relative: str, arrays: dict[str, np.ndarray]) -> None:
    _write_atomically(cache_root() / relative, lambda handle: np.savez(handle, **arrays))


def prune(relative: str, keep: int) -> None:
    """Keep only the ``keep`` most recently written entries of directory ``relative``.

    Requests may vary the inputs a cache key is made of (the site, the generator
    config), so without a bound a client could fill the disk one key at a time.
    """
    root = cache_root() / relative
    try:
        entries = sorted(root.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return  # no such directory yet, or unreadable: nothing to prune
    for old in entries[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def _write_atomically(path: Path, write) -> None:
    # Written to a temporary name and renamed, so that a concurrent reader (another
    # gunicorn thread or process) sees either no file or a whole one.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        root = str(cache_root())
        if root not in _warned:
            _warned.add(root)
            log.warning("cannot write the cache in %s (%s); results are recomputed each time", root, exc)
