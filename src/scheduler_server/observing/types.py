"""The observing scheduler's shared vocabulary: what a policy is given and returns, and the errors.

Everything here is a leaf: the service, the policies, the checker and the sky code
import it, and it imports none of them, so no arrow runs back up.

The errors are domain errors: they say what went wrong (the input is invalid, a
named thing does not exist, the policy refused), never how a client is told.
``web/schedule.py`` maps them to HTTP statuses and the seed's error shape, the CLI
to its exit codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class PolicyConfig(BaseModel):
    """Base of every policy's config model: unknown keys are errors, values are checked."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)


@dataclass
class Block:
    """One scheduled piece of work, returned for plotting when a request asks for format=json."""

    name: str
    kind: str
    t0: datetime
    t1: datetime
    az: float | None = None
    el: float | None = None
    throw: float | None = None
    cuts: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "t0": self.t0.isoformat(),
            "t1": self.t1.isoformat(),
            "az": self.az,
            "el": self.el,
            "throw": self.throw,
            "cuts": list(self.cuts),
        }


@dataclass
class ScheduleResult:
    commands: str
    blocks: list[Block] | None = None
    #: State lanes for plotting (HWP, boresight, detector operations), each a JSON-ready dict
    #: ``{"lane", "t0", "t1", "state", ...}`` as docs/observing.md documents; None when a policy has none.
    events: list[dict[str, Any]] | None = None


class ObservingError(Exception):
    """Base of the errors the observing service raises on purpose."""


class ScheduleInputError(ObservingError, ValueError):
    """Invalid input, a client mistake; ``field`` is the dotted name of the offending input."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class WindowError(ScheduleInputError):
    """The window [t0, t1] is not one the service schedules (empty, reversed or too long)."""


class PolicyNotFound(ScheduleInputError):
    """No installed policy has the requested name.

    An input error too: the name comes inside a request body, not a path, so a
    client that sends one is told which field is wrong, as for any other value.
    """


class PresetNotFound(ScheduleInputError):
    """The policy has no preset of the requested name."""


class PolicyFailure(ObservingError):
    """The policy could not produce a schedule it is willing to return (e.g. an unsafe one).

    The message is shown to the client as ``status: error``.
    """
