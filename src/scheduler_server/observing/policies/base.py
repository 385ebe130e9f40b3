"""What every observing policy is.

A policy is a class with a name, a pydantic model of its configuration (whose
defaults are the policy's defaults), optional named presets, and a pure
``schedule`` method. Policies are found through the ``scheduler_server.policies``
entry-point group (see ``registry``), the built-in ones included.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

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


class PolicyFailure(Exception):
    """The policy could not produce a schedule it is willing to return (e.g. an unsafe one).

    The message is shown to the client as ``status: error``.
    """


class Policy(ABC):
    name: ClassVar[str]
    description: ClassVar[str] = ""
    Config: ClassVar[type[PolicyConfig]]
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    @abstractmethod
    def schedule(self, t0: datetime, t1: datetime, config: PolicyConfig) -> ScheduleResult:
        """Return the command script for [t0, t1] (both aware UTC datetimes, t0 < t1)."""
