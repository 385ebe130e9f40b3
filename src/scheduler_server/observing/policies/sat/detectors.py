"""Detector operations on their cadences: relock, detector setup (IV, bias, bias step, noise), bias steps.

As schedlib's SAT policy (``tel.py``): a relock (15 min) when none was done since the script started or
``relock_cadence`` has passed, and it leaves the detectors unbiased; a detector setup (20 min) before every
calibration scan, when the detectors are not biased, when the elevation or the boresight moved by more than
1 deg since the last IV, or when ``iv_cadence`` has passed; a bias step (60 s) when the pointing moved since the
last one or ``bias_step_cadence`` has passed (no ``wait_until`` after it, unlike schedlib: see ``bias_step``).
The commands per platform are data (``ops_config.DetSetup``, ``Relock``), never script text from a config.
"""

from __future__ import annotations

from scheduler_server.observing.policies.sat.ops_config import OpsConfig
from scheduler_server.observing.policies.sat.steps import Op, SatState, Visit


def near(a: float, b: float) -> bool:
    """schedlib's ``np.isclose(a, b, atol=1)``: within a degree."""
    return abs(a - b) <= 1.0 + 1e-5 * abs(b)


def relock(state: SatState, cfg: OpsConfig, cadence: float | None) -> tuple[list[Op], SatState]:
    """A relock when none was done yet or ``cadence`` seconds have passed since the last one."""
    due = state.last_relock is None or (cadence is not None and state.t - state.last_relock > cadence)
    if not due:
        return [], state
    op = Op("relock", cfg.relock_duration, cfg.relock.commands(), lane="detectors", state="relock")
    return [op], state.at(t=state.t + cfg.relock_duration, last_relock=state.t, biased=False)


def pointing(state: SatState, visit: Visit, cfg: OpsConfig) -> tuple[float, float]:
    """(el, boresight) the detectors will see during ``visit``."""
    boresight = visit.boresight if (cfg.apply_boresight_rot and visit.boresight is not None) else state.boresight
    return (visit.el, boresight)


def _moved(at: tuple[float, float] | None, now: tuple[float, float], cfg: OpsConfig) -> bool:
    if at is None:
        return True
    return not near(at[0], now[0]) or (cfg.apply_boresight_rot and not near(at[1], now[1]))


def det_setup_due(state: SatState, visit: Visit, cfg: OpsConfig) -> bool:
    if visit.kind == "calibration" and cfg.det_setup_before_cal:
        return True
    if not state.biased or state.last_iv is None:
        return True
    if _moved(state.iv_at, pointing(state, visit, cfg), cfg):
        return True
    return cfg.iv_cadence is not None and state.t - state.last_iv > cfg.iv_cadence


def det_setup(state: SatState, visit: Visit, cfg: OpsConfig) -> tuple[list[Op], SatState]:
    if not det_setup_due(state, visit, cfg):
        return [], state
    where = pointing(state, visit, cfg)
    op = Op("det_setup", cfg.det_setup_duration, cfg.det_setup.commands(), lane="detectors", state="setup")
    after = state.at(
        t=state.t + cfg.det_setup_duration,
        biased=True,
        last_iv=state.t,
        iv_at=where,
        last_bias_step=state.t,
        bias_step_at=where,
    )
    return [op], after


def bias_step_due(state: SatState, visit: Visit, cfg: OpsConfig) -> bool:
    if state.last_bias_step is None:
        return True
    if _moved(state.bias_step_at, pointing(state, visit, cfg), cfg):
        return True
    return cfg.bias_step_cadence is not None and state.t - state.last_bias_step >= cfg.bias_step_cadence


def bias_step(state: SatState, visit: Visit, cfg: OpsConfig, *, force: bool = False) -> tuple[list[Op], SatState]:
    """A bias step on its cadence (``force``: whatever the cadence).

    schedlib follows each bias step with a ``wait_until`` to its planned end (60 s on). Not here: that wait holds
    nothing (the wait before the next scan holds the timeline) and is late whenever an operation before it ran
    longer than planned, which the sorun harness counts as a late wait.
    """
    if not (force or bias_step_due(state, visit, cfg)):
        return [], state
    op = Op(
        "bias_step",
        cfg.bias_step_duration,
        ("run.smurf.bias_step(concurrent=True)",),
        lane="detectors",
        state="bias_step",
    )
    after = state.at(
        t=state.t + cfg.bias_step_duration, last_bias_step=state.t, bias_step_at=pointing(state, visit, cfg)
    )
    return [op], after
