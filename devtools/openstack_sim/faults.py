"""Faults the simulator injects: one rule per kind of cloud misbehaviour.

A rule fires ``count`` times (``-1``: forever) and is then used up.

========================  ===================================================================
kind                      effect
========================  ===================================================================
``server_error``          the next created server goes to ERROR ("No valid host was found")
                          ``after`` seconds after creation (default: the boot delay)
``server_stuck``          the next created server stays in BUILD forever
``server_vanish``         the next created server disappears ``after`` seconds after it turned
                          ACTIVE: gone from the API, its sshd and every process on it killed
``stack_error``           the next created Heat stack goes to CREATE_FAILED ("Simulated fault:
                          stack_error") ``after`` seconds after creation (default 0)
``stack_stuck``           the next created Heat stack stays in CREATE_IN_PROGRESS until deleted
``api_error``             requests matching ``method`` and ``path`` (a regular expression
                          searched in the URL path) get HTTP ``status`` (default 500)
``api_timeout``           matching requests hang ``seconds`` (default 30): with ``phase=before``
                          (default) before they are served, so a client with a shorter timeout
                          gives up and the action happens later; with ``phase=after`` after the
                          action is done, so the client gives up on something that did happen
========================  ===================================================================

On the command line a rule is ``KIND[:key=value,...]``, e.g.
``api_error:method=POST,path=/servers$,status=503,count=2``.
"""

from __future__ import annotations

import re
import threading
from dataclasses import asdict, dataclass
from typing import Literal

FaultKind = Literal[
    "server_error", "server_stuck", "server_vanish", "stack_error", "stack_stuck", "api_error", "api_timeout"
]
KINDS: tuple[str, ...] = FaultKind.__args__  # type: ignore[attr-defined]
SERVER_FATES = ("server_error", "server_stuck", "server_vanish")
STACK_FATES = ("stack_error", "stack_stuck")


@dataclass
class FaultRule:
    kind: str
    count: int = 1
    method: str | None = None
    path: str | None = None
    status: int = 500
    seconds: float = 30.0
    after: float | None = None
    phase: str = "before"
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind: unknown fault {self.kind!r} (known: {', '.join(KINDS)})")
        if self.path is not None:
            try:
                re.compile(self.path)
            except re.error as exc:
                raise ValueError(f"path: not a regular expression: {exc}") from None
        if not 400 <= self.status <= 599:
            raise ValueError(f"status: {self.status} is not an HTTP error status")
        if self.phase not in ("before", "after"):
            raise ValueError(f"phase: must be 'before' or 'after', not {self.phase!r}")
        if self.method:
            self.method = self.method.upper()

    @property
    def exhausted(self) -> bool:
        return self.count >= 0 and self.fired >= self.count

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method != method.upper():
            return False
        return self.path is None or re.search(self.path, path) is not None


def parse_rule(text: str) -> FaultRule:
    """``KIND[:key=value,...]`` -> FaultRule; ValueError naming the bad part."""
    kind, _, rest = text.partition(":")
    values: dict[str, object] = {}
    casts = {"count": int, "status": int, "seconds": float, "after": float, "method": str, "path": str, "phase": str}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or key not in casts:
            raise ValueError(f"fault {text!r}: expected key=value with key in {', '.join(casts)}, got {item!r}")
        try:
            values[key] = casts[key](value)
        except ValueError:
            raise ValueError(f"fault {text!r}: {key} must be a {casts[key].__name__}, got {value!r}") from None
    return FaultRule(kind=kind.strip(), **values)  # type: ignore[arg-type]


class FaultBook:
    """The active rules. Thread-safe: handlers on many threads consume them."""

    def __init__(self, rules: list[FaultRule] | None = None):
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = list(rules or [])

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def list(self) -> list[dict]:
        with self._lock:
            return [asdict(r) for r in self._rules]

    def take_request_fault(self, method: str, path: str) -> FaultRule | None:
        """The first live api_error/api_timeout rule matching this request, counted as fired."""
        return self._take(lambda r: r.kind in ("api_error", "api_timeout") and r.matches(method, path))

    def take_server_fate(self) -> FaultRule | None:
        """The first live server_* rule, counted as fired: decides how a new server's boot goes."""
        return self._take(lambda r: r.kind in SERVER_FATES)

    def take_stack_fate(self) -> FaultRule | None:
        """The first live stack_* rule, counted as fired: decides how a new stack's create goes."""
        return self._take(lambda r: r.kind in STACK_FATES)

    def _take(self, predicate) -> FaultRule | None:
        with self._lock:
            for rule in self._rules:
                if not rule.exhausted and predicate(rule):
                    rule.fired += 1
                    return rule
        return None
