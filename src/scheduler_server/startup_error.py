"""``StartupError``: the service cannot start because something it needs is unusable.

A read-only, full or corrupt database, a schema this code cannot use, a key file
that cannot be read: the operator needs the file and the problem on one line, not
a traceback. It is a ``ConfigError`` so that every start path that already turns
a bad configuration into one line (``serve``, gunicorn's ``app``) does the same here.
"""

from __future__ import annotations

from scheduler_server.config import ConfigError


class StartupError(ConfigError):
    """A resource the service needs is unusable; the message names it and the problem."""
