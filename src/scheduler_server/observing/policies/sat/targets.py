"""What the `sat` policy's plans say, read and checked: the shared vocabulary of its readers, planners and writer.

Times are POSIX seconds (UTC); angles are degrees. ``origin`` is ``"<plan name>:<line>"``, so a rule that
later refuses a row can name where it came from. Field names follow schedlib's, where it has one, so an
operator reading both sees the same words.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CmbBlock:
    """One row of a CMB plan: a constant-elevation scan of a patch (or, with ``subtype='noobs'``, a break)."""

    name: str  # the patch
    t0: float
    t1: float
    az_min: float
    az_max: float
    el: float
    boresight: float  # schedlib's rotation / boresight_angle
    hwp_dir: bool | None = None  # True: ccw seen from the sky (positive frequency); None: keep what spins
    az_speed: float | None = None  # None: the policy's az_speed
    az_accel: float | None = None
    priority: float = 0.0
    scan_type: int = 1  # 1 constant el, 2 el nod (el_amp/el_freq), 3 ... as sorunlib's seq.scan
    el_amp: float = 0.0
    el_freq: float = 0.0
    subtype: str = "cmb"  # "cmb" or "noobs"
    tag: str = ""  # schedlib's uid
    pass_: int | None = None
    sub_pass: int | None = None
    origin: str = ""

    @property
    def throw(self) -> float:
        return abs(self.az_max - self.az_min)


@dataclass(frozen=True)
class CalTarget:
    """A calibration source to scan, from a calibration-target plan row or the config's ``cal_targets``."""

    source: str  # a planet name ('jupiter', 'saturn', 'moon', ...) or a fixed source with ra/dec
    array_query: str  # wafer focus: 'left' | 'middle' | 'right' | 'bottom' | 'all', or wafers 'ws0,ws3'
    el_bore: float
    tag: str = ""
    t0: float | None = None  # a plan row's window; None: anywhere in the schedule's window
    t1: float | None = None
    ra: float | None = None
    dec: float | None = None
    boresight: float | None = None  # None: the nearest CMB block's
    allow_partial: bool = False
    drift: bool = True
    az_branch: float | None = None
    az_speed: float | None = None
    az_accel: float | None = None
    source_direction: str | None = None  # 'rising' | 'setting' | None (either)
    origin: str = ""


@dataclass(frozen=True)
class WiregridTarget:
    """A wiregrid run: ``kind`` 'wiregrid_gain' (calibrate) or 'wiregrid_time_const' (reverses the HWP)."""

    kind: str
    t0: float
    t1: float
    az: float
    el: float
    origin: str = ""


@dataclass(frozen=True)
class SourceScan:
    """A planned calibration scan: what ``calibration.py`` makes of a CalTarget at its crossing."""

    source: str
    t0: float
    t1: float
    az: float  # the scan's starting az_min (drifting by az_drift deg/s from t0)
    throw: float
    el: float
    boresight: float
    az_drift: float = 0.0
    az_speed: float | None = None
    az_accel: float | None = None
    array_query: str = ""
    tag: str = ""
    partial: bool = False
    origin: str = ""
    direction: str = ""  # "rising" | "setting": how the source crossed the wafer set
