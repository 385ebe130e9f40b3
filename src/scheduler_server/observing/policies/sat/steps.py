"""The sat policy's timeline vocabulary: what is visited, the telescope's state, and the operations between.

The planner (``policy.py`` and its move planning) decides *where and when*: a list of ``Visit``s with their routes.
``operations.py`` decides *what the telescope must do* around each visit (HWP, boresight, detector setup on their
cadences) as ``Op``s with durations, moving a ``SatState`` forward. ``script.py`` writes ops as sorunlib calls,
``events.py`` as state lanes for plotting. Times are POSIX seconds (UTC), angles degrees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Visit:
    """One scan the telescope makes: a CMB patch, a calibration source, a wiregrid run, or a no-observation break."""

    kind: str  # "master" | "calibration" | "wiregrid" | "noobs"
    name: str
    t0: float  # the scan's planned start (seq.scan starts at or after this)
    t1: float  # its stop_time
    az: float  # az_min of the sweep at t0 (unwrapped, within the platform's az range)
    el: float
    throw: float = 0.0
    boresight: float | None = None
    hwp_dir: bool | None = None  # True: ccw (positive frequency); None: keep the current one
    az_drift: float = 0.0
    az_speed: float | None = None
    az_accel: float | None = None
    scan_type: int = 1
    el_amp: float = 0.0
    el_freq: float = 0.0
    subtype: str = ""
    tag: str = ""
    wiregrid_kind: str | None = None  # "wiregrid_gain" | "wiregrid_time_const" for kind "wiregrid"
    min_duration: float | None = None
    origin: str = ""
    turnaround_method: str | None = None  # None: "standard" for scan_type 1, "standard_gen" otherwise (schedlib's)


@dataclass(frozen=True)
class SatState:
    """The telescope as the script leaves it at time ``t``."""

    t: float
    az: float = 180.0
    el: float = 40.0
    boresight: float = 0.0
    hwp_spinning: bool = False
    hwp_dir: bool | None = None
    last_relock: float | None = None  # None: not since the script started (a relock is due)
    last_iv: float | None = None
    last_bias_step: float | None = None
    biased: bool = False  # detectors biased since the last relock
    iv_at: tuple[float, float] | None = None  # (el, boresight) of the last IV/bias
    bias_step_at: tuple[float, float] | None = None  # (el, boresight) of the last bias step
    az_speed: float | None = None  # the ACU's scan parameters as last set (None: unknown, set them)
    az_accel: float | None = None
    turnaround_method: str | None = None

    def at(self, **changes: Any) -> SatState:
        # dataclasses.replace re-runs __init__ (a few microseconds each; the planner calls this thousands of
        # times a day): a copy of the fields with the changes is the same value.
        unknown = changes.keys() - self.__dataclass_fields__.keys()
        if unknown:
            raise TypeError(f"SatState has no field {sorted(unknown)[0]!r}")
        new = object.__new__(SatState)
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new


@dataclass(frozen=True)
class Op:
    """One operation: ``commands`` are script lines (no trailing newline), ``duration`` seconds it takes."""

    name: str  # e.g. "hwp.spin_up", "hwp.spin_down", "boresight", "relock", "det_setup", "bias_step", "move",
    #            "scan", "wiregrid", "wait", "sleep", "comment"
    duration: float
    commands: tuple[str, ...] = ()
    lane: str | None = None  # "hwp" | "boresight" | "detectors" when it changes a plotted state
    state: str | None = None  # that lane's state during the op (e.g. "spin_up", "rotating", "iv")
    detail: dict[str, Any] = field(default_factory=dict)  # e.g. {"direction": "ccw"}, {"angle": 45.0}
