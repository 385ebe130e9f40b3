"""The operations' settings: durations, cadences, the HWP's limits and the platform's detector commands.

Defaults are schedlib's SAT figures (``sat.py``, ``tel.py``): HWP spin-up 7 min, spin-down 15 min, boresight
1 min, relock 15 min, detector setup 20 min, bias step 60 s; relock every 24 h, IV every 4 h, bias step every
30 min; the HWP spins between 40 and 60 deg elevation. The policy's config builds one (``policy.py``); the
detector commands are data (``DetSetup``, ``Relock``), never script text from a config, so a config chooses
among the observatory's variants but cannot write code into the script.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from scheduler_server.observing.policies.sat.script import lit, num

MINUTE = 60.0
HOUR = 3600.0
REINIT = ("with disable_trace():", "    run.initialize()")


@dataclass(frozen=True)
class DetSetup:
    """The detector setup's commands (satp1/satp2 by default; satp3: no iv_kwargs, 300 s settle, no noise)."""

    iv_kwargs: tuple[tuple[str, bool | int | float], ...] | None = (("run_serially", False), ("cool_wait", 300))
    rfrac: float | None = 0.5
    settle: float = 180.0  # time.sleep after bias_dets
    take_noise: bool = True

    def commands(self) -> tuple[str, ...]:
        return _det_setup_lines(self)

    def _lines(self) -> tuple[str, ...]:
        iv = "run.smurf.iv_curve(concurrent=True)"
        if self.iv_kwargs is not None:
            kwargs = ", ".join(f"{lit(k)}: {_value(v)}" for k, v in self.iv_kwargs)
            iv = f"run.smurf.iv_curve(concurrent=True, iv_kwargs={{{kwargs}}})"
        bias = "run.smurf.bias_dets(concurrent=True)"
        if self.rfrac is not None:
            bias = f"run.smurf.bias_dets(rfrac={num(self.rfrac)}, concurrent=True)"
        lines = ("# detector setup", *REINIT, iv, bias, f"time.sleep({num(self.settle, 0)})")
        lines += ("run.smurf.bias_step(concurrent=True)",)
        if self.take_noise:
            lines += ("run.smurf.take_noise(concurrent=True, tag='bias_check')",)
        return lines


@dataclass(frozen=True)
class Relock:
    """The relock's commands (the same on the three SATs today)."""

    zero_biases: bool = True
    settle: float = 120.0  # time.sleep after zero_biases

    def commands(self) -> tuple[str, ...]:
        return _relock_lines(self)

    def _lines(self) -> tuple[str, ...]:
        lines = ("# relock", *REINIT)
        if self.zero_biases:
            lines += ("run.smurf.zero_biases()", f"time.sleep({num(self.settle, 0)})")
        return (*lines, "run.smurf.uxm_relock(concurrent=True)")


@lru_cache(maxsize=32)
def _det_setup_lines(spec: DetSetup) -> tuple[str, ...]:
    return spec._lines()  # written once per spec: the planner asks for them at every dry run


@lru_cache(maxsize=32)
def _relock_lines(spec: Relock) -> tuple[str, ...]:
    return spec._lines()


def _value(v: bool | int | float) -> str:
    if isinstance(v, bool):
        return repr(v)
    if isinstance(v, int):
        return repr(int(v))
    return num(v)


@dataclass(frozen=True)
class OpsConfig:
    """The operations' settings (schedlib's names and defaults); 13C builds it from the policy config."""

    platform: str = "satp1"
    hwp_spin_up: float = 7 * MINUTE
    hwp_spin_down: float = 15 * MINUTE
    boresight_duration: float = 1 * MINUTE
    relock_duration: float = 15 * MINUTE
    det_setup_duration: float = 20 * MINUTE
    bias_step_duration: float = 1 * MINUTE
    relock_cadence: float | None = 24 * HOUR  # None: no relocks at all (schedlib's)
    relock_cadence_noobs: float | None = 4 * HOUR
    run_noobs: bool = False
    iv_cadence: float | None = 4 * HOUR
    bias_step_cadence: float | None = 0.5 * HOUR
    det_setup_before_cal: bool = True
    min_hwp_el: float = 40.0
    max_hwp_el: float = 60.0
    brake_hwp: bool = True
    disable_hwp: bool = False
    hwp_dir_default: bool = False  # when neither the plan nor the state says: cw, freq -2 (schedlib's effect)
    apply_boresight_rot: bool = True
    cryo_stabilization_time: float = 0.0
    min_wiregrid_el: float = 49.9
    az_speed: float = 0.5
    az_accel: float = 1.0
    min_duration: float = 600.0  # seq.scan's min_duration unless a visit has its own
    start_tolerance: float = 3600.0  # the script's first wait_until
    home_at_end: bool = False
    det_setup: DetSetup = field(default_factory=DetSetup)
    relock: Relock = field(default_factory=Relock)
    vent_check: bool = False  # satp3's readout fan shutter/vent check in the preamble
