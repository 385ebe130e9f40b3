"""State lanes for plotting: the HWP, the boresight and the detector operations over the schedule.

``lanes(start_state, timed_ops)`` turns the ops as the planner laid them on the timeline (``(t0, Op)`` pairs)
into ``ScheduleResult.events``: one dict per state interval, sorted by ``t0``, in docs/observing.md's shape:

- ``{"lane": "hwp", "t0", "t1", "state": "stopped"|"spin_up"|"spinning"|"spin_down", "direction": "ccw"|"cw"|None}``
- ``{"lane": "boresight", "t0", "t1", "state": "fixed"|"rotating", "angle": float}``
- ``{"lane": "detectors", "t0", "t1", "state": "relock"|"setup"|"iv"|"bias"|"bias_step"|"noise"}``

The HWP and boresight lanes cover the whole span (from the start state's time, or the first op if earlier, to
the end of the last op, or ``t1`` if later); the detector lane has an interval only while an operation runs.
Adjacent intervals in the same state are merged; empty ones are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from scheduler_server.observing.policies.sat.hwp import direction_name
from scheduler_server.observing.policies.sat.steps import Op, SatState

LANE_ORDER = {"hwp": 0, "boresight": 1, "detectors": 2}
AFTER = {"spin_up": "spinning", "spin_down": "stopped", "rotating": "fixed"}


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).isoformat()


class _Lane:
    """One lane's intervals as (t0, t1, values), built by setting the state at increasing times."""

    def __init__(self, name: str, t: float, values: dict[str, Any] | None):
        self.name = name
        self.done: list[tuple[float, float, dict[str, Any]]] = []
        self.t = t
        self.values = values

    def set(self, t: float, values: dict[str, Any] | None) -> None:
        t = max(t, self.t)  # ops laid out of order never make time run backwards in a lane
        if self.values is not None and t > self.t:
            self.done.append((self.t, t, self.values))
        self.t, self.values = t, values

    def close(self, t: float) -> list[dict[str, Any]]:
        self.set(t, None)
        merged: list[tuple[float, float, dict[str, Any]]] = []
        for t0, t1, values in self.done:
            if merged and merged[-1][2] == values and merged[-1][1] == t0:
                merged[-1] = (merged[-1][0], t1, values)
            else:
                merged.append((t0, t1, values))
        return [{"lane": self.name, "t0": t0, "t1": t1, **values} for t0, t1, values in merged]


def _hwp_values(op: Op) -> tuple[dict[str, Any], dict[str, Any]]:
    direction = op.detail.get("direction")
    during = {"state": op.state, "direction": direction}
    state = AFTER.get(op.state or "", op.state)
    after_dir = op.detail.get("direction_after", None if state == "stopped" else direction)
    return during, {"state": state, "direction": after_dir}


def _boresight_values(op: Op, angle: float) -> tuple[dict[str, Any], dict[str, Any]]:
    target = float(op.detail.get("angle", angle))
    state = AFTER.get(op.state or "", op.state)
    return {"state": op.state, "angle": target}, {"state": state, "angle": target}


def lanes(start_state: SatState, timed_ops: Iterable[tuple[float, Op]], t1: float | None = None) -> list[dict]:
    timed = [(float(t0), op) for t0, op in timed_ops]
    begin = min([start_state.t, *(t0 for t0, _ in timed)])
    end = max([begin if t1 is None else t1, *(t0 + op.duration for t0, op in timed)])
    spinning = start_state.hwp_spinning
    hwp = _Lane(
        "hwp",
        begin,
        {
            "state": "spinning" if spinning else "stopped",
            "direction": direction_name(start_state.hwp_dir) if spinning else None,
        },
    )
    angle = float(start_state.boresight)
    bore = _Lane("boresight", begin, {"state": "fixed", "angle": angle})
    detectors: list[dict[str, Any]] = []
    for t0, op in timed:
        if op.lane == "hwp":
            during, after = _hwp_values(op)
            hwp.set(t0, during)
            hwp.set(t0 + op.duration, after)
        elif op.lane == "boresight":
            during, after = _boresight_values(op, angle)
            angle = after["angle"]
            bore.set(t0, during)
            bore.set(t0 + op.duration, after)
        elif op.lane == "detectors" and op.duration > 0:
            detectors.append({"lane": "detectors", "t0": t0, "t1": t0 + op.duration, "state": op.state})
    events = hwp.close(end) + bore.close(end) + detectors
    events.sort(key=lambda e: (e["t0"], LANE_ORDER[e["lane"]]))
    return [{**e, "t0": _iso(e["t0"]), "t1": _iso(e["t1"])} for e in events]
