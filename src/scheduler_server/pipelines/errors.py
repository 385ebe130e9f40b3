"""What the pipeline service refuses, by kind: the web layer maps each kind to its HTTP answer.

No HTTP status lives here: the CLI raises the same errors as the APIs, and each
API decides its own status and shape (``web/errors.py``).
"""

from __future__ import annotations


class PipelineError(Exception):
    """A request the pipeline service refuses; ``field`` names the offending field, when there is one."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message, self.field = message, field


class InvalidInput(PipelineError):
    """The request itself is wrong (a field's value, a script outside the folder, a forbidden variable)."""


class NotFound(PipelineError):
    """No pipeline or live instance with that id."""


class Conflict(PipelineError):
    """The thing exists but is in a state that does not allow the change (e.g. cancelling a finished pipeline)."""


class Unavailable(PipelineError):
    """The request is fine but cannot be served now (an unreachable instance or backend, a full disk)."""
