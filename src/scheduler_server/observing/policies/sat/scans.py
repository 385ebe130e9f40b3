"""The visit itself: ``run.seq.scan`` (with its scan parameters) or a wiregrid run, and waits.

A scan that could not run (too little time left for its ``min_duration``, a wiregrid run without a spinning HWP
or below ``min_wiregrid_el``, or with ``disable_hwp``) is one ``Op`` named ``"skip"`` holding a comment: the
planner sees it and drops the block, the script says why, and sorunlib is never asked for a scan it would skip.
"""

from __future__ import annotations

from scheduler_server.observing.policies.sat import hwp
from scheduler_server.observing.policies.sat.hwp import direction_name
from scheduler_server.observing.policies.sat.ops_config import OpsConfig
from scheduler_server.observing.policies.sat.script import comment, iso, lit, num
from scheduler_server.observing.policies.sat.steps import Op, SatState, Visit

Ops = tuple[list[Op], SatState]
SUBTYPES = {"master": "cmb", "calibration": "cal", "wiregrid": "wiregrid"}


def wait(state: SatState, until: float, tolerance: float | None = None) -> Ops:
    """``run.wait_until(until[, tolerance])``; the state's time becomes ``until`` if it is later."""
    args = lit(iso(until)) + ("" if tolerance is None else f", tolerance={num(tolerance, 0)}")
    op = Op("wait", max(until - state.t, 0.0), (f"run.wait_until({args})",))
    return [op], state.at(t=max(state.t, until))


def scan_params(state: SatState, az_speed: float, az_accel: float, turnaround: str | None) -> Ops:
    """``set_scan_params`` when the speed, the acceleration or the turnaround method change."""
    if (state.az_speed, state.az_accel, state.turnaround_method) == (az_speed, az_accel, turnaround):
        return [], state
    args = f"az_speed={num(az_speed)}, az_accel={num(az_accel)}"
    if turnaround is not None:
        args += f", turnaround_method={lit(turnaround)}"
    op = Op("scan_params", 0.0, (f"run.acu.set_scan_params({args})",))
    return [op], state.at(az_speed=az_speed, az_accel=az_accel, turnaround_method=turnaround)


def skip(state: SatState, visit: Visit, why: str) -> Ops:
    return [Op("skip", 0.0, (comment(f"{visit.kind} {visit.name} not run: {why}"),), detail={"why": why})], state


def turnaround(visit: Visit) -> str:
    if visit.turnaround_method is not None:
        return visit.turnaround_method
    return "standard" if visit.scan_type == 1 else "standard_gen"


def scan(state: SatState, visit: Visit, cfg: OpsConfig) -> Ops:
    """The visit's scan from ``max(state.t, visit.t0)`` to ``visit.t1`` (noobs: nothing, the planner waits)."""
    if visit.kind == "noobs":
        return [], state
    if visit.kind == "wiregrid":
        return wiregrid(state, visit, cfg)
    ops: list[Op] = []
    if state.t < visit.t0:
        ops, state = wait(state, visit.t0)
    min_duration = cfg.min_duration if visit.min_duration is None else visit.min_duration
    if visit.t1 - state.t < max(min_duration, 1.0):
        return skip(state, visit, f"{num(visit.t1 - state.t, 0)} s left, min_duration {num(min_duration, 0)} s")
    if state.hwp_spinning and not hwp.in_hwp_range(visit.el, cfg, hwp.nod(visit)):
        return skip(state, visit, "its elevation nod leaves the HWP's range while it spins")
    speed = cfg.az_speed if visit.az_speed is None else visit.az_speed
    accel = cfg.az_accel if visit.az_accel is None else visit.az_accel
    more, state = scan_params(state, speed, accel, turnaround(visit))
    ops += more
    duration = visit.t1 - state.t
    ops.append(Op("scan", duration, (_scan_line(visit, min_duration),), detail={"kind": visit.kind}))
    end_az = visit.az + visit.az_drift * (visit.t1 - visit.t0)
    return ops, state.at(t=visit.t1, az=end_az, el=visit.el)


def _scan_line(visit: Visit, min_duration: float) -> str:
    subtype = visit.subtype or SUBTYPES.get(visit.kind, visit.kind)
    args = [
        f"description={lit(visit.name)}",
        f"stop_time={lit(iso(visit.t1))}",
        f"width={num(visit.throw)}",
        f"az_drift={num(visit.az_drift, 5)}",
        f"el_amp={num(visit.el_amp)}",
        f"el_freq={num(visit.el_freq)}",
        f"scan_type={int(visit.scan_type)}",
        f"subtype={lit(subtype)}",
        f"tag={lit(visit.tag)}",
        f"min_duration={num(min_duration, 0)}",
    ]
    if visit.scan_type == 3:
        args += ["az_start='mid_dec'", "step_time=0.05"]
    return f"run.seq.scan({', '.join(args)})"


def wiregrid(state: SatState, visit: Visit, cfg: OpsConfig) -> Ops:
    """A wiregrid run (the HWP must spin, el at least ``min_wiregrid_el``); time_constant reverses the HWP."""
    if cfg.disable_hwp:
        return skip(state, visit, "the HWP is disabled")
    if not state.hwp_spinning:
        return skip(state, visit, "the HWP is not spinning")
    if state.el < cfg.min_wiregrid_el:
        return skip(state, visit, f"el {num(state.el)} below min_wiregrid_el {num(cfg.min_wiregrid_el)}")
    ops: list[Op] = []
    if state.t < visit.t0:
        ops, state = wait(state, visit.t0)
    if visit.t1 <= state.t:
        return skip(state, visit, "its end has passed")
    end = f"run.wait_until({lit(iso(visit.t1))})"
    duration = visit.t1 - state.t
    kind = visit.wiregrid_kind or visit.name
    if kind == "wiregrid_gain":
        line = "run.wiregrid.calibrate(continuous=False, elevation_check=True, boresight_check=False, "
        line += "temperature_check=False)"
        ops.append(Op("wiregrid", duration, (line, end), detail={"wiregrid": kind}))
        return ops, state.at(t=visit.t1)
    if kind == "wiregrid_time_const":
        after = not state.hwp_dir
        note = comment(f"hwp direction reversed, now spinning {direction_name(after)}")
        detail = {"wiregrid": kind, "direction": None, "direction_after": direction_name(after)}
        lines = ("run.wiregrid.time_constant(num_repeats=1)", note, end)
        ops.append(Op("wiregrid", duration, lines, lane="hwp", state="spinning", detail=detail))
        return ops, state.at(t=visit.t1, hwp_dir=after)
    raise ValueError(f"unknown wiregrid kind {kind!r}")
