"""What talking to XNAT can go wrong with, as the pipeline service's kinds of refusal.

Each is a ``PipelineError`` kind, so ``web/errors.status_of`` maps it without a
new rule: ``XnatNotFound`` and ``XnatAuthError`` are 400s naming their field
(``project``, ``subject``, ``session``, ``host``; ``pwd`` or ``secret``),
``XnatUnavailable`` is a 503 with the reason (XNAT unreachable, a 5xx, a timeout,
a redirect that is not followed).
"""

from __future__ import annotations

from scheduler_server.pipelines.errors import InvalidInput, Unavailable


class XnatNotFound(InvalidInput):
    """The project, subject or session does not exist (or is of a type not configured as a session)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}", field)


class XnatAuthError(InvalidInput):
    """XNAT refused the credentials; ``field`` is ``pwd`` for a password, ``secret`` for an alias token."""

    def __init__(self, message: str, field: str = "pwd"):
        super().__init__(f"{field}: {message}", field)


class XnatUnavailable(Unavailable):
    """XNAT cannot be asked now: nothing was queued."""

    def __init__(self, reason: str):
        super().__init__(f"XNAT unavailable: {reason}")
        self.reason = reason
