"""What every observing policy is.

A policy is a class with a name, a pydantic model of its configuration (whose
defaults are the policy's defaults), optional named presets, and a pure
``schedule`` method. Policies are found through the ``scheduler_server.policies``
entry-point group (see ``registry``), the built-in ones included. What a policy
is given and returns (``PolicyConfig``, ``ScheduleResult``, ``Block``) and the
errors it may raise live in ``observing/types.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any, ClassVar

from scheduler_server.observing.types import PolicyConfig, ScheduleResult


class Policy(ABC):
    name: ClassVar[str]
    description: ClassVar[str] = ""
    Config: ClassVar[type[PolicyConfig]]
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    @abstractmethod
    def schedule(self, t0: datetime, t1: datetime, config: PolicyConfig) -> ScheduleResult:
        """Return the command script for [t0, t1] (both aware UTC datetimes, t0 < t1)."""
