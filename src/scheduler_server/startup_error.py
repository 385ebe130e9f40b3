"""Why the service cannot start: a bad configuration (``ConfigError``) or an unusable resource (``StartupError``).

A shared leaf (it imports nothing of the project): the configuration raises ``ConfigError``, the
services raise ``StartupError``, and every start path (``serve``, gunicorn's ``app``, the CLI)
turns either into one line.

A read-only, full or corrupt database, a schema this code cannot use, a key file
that cannot be read: the operator needs the file and the problem on one line, not
a traceback. It is a ``ConfigError`` so that every start path that already turns
a bad configuration into one line does the same here.
"""

from __future__ import annotations


class ConfigError(Exception):
    """A configuration problem, described on one line."""


class StartupError(ConfigError):
    """A resource the service needs is unusable; the message names it and the problem."""
