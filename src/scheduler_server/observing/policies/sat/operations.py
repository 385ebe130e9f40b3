"""What the telescope must do around each visit, as ``Op``s moving a ``SatState`` forward. Pure and cheap.

Every function takes the state the script leaves the telescope in (``state.t`` is when the first op starts),
returns the ops in order and the state after them (``t`` advanced by their durations). The order and the rules
are schedlib's SAT policy's (``make_operations``):

- CMB ("master"): relock on its cadence, boresight, detector setup, HWP spin-up, bias step on its cadence;
- calibration: relock, boresight, detector setup (always), HWP spin-up; after the scan a bias step on its cadence;
- wiregrid: boresight, detector setup, HWP spin-up (none of it, and no wiregrid run, with ``disable_hwp``);
- noobs: a comment and, with ``run_noobs``, a relock on ``relock_cadence_noobs``.

``move`` spins the HWP down first when the target elevation leaves ``min_hwp_el..max_hwp_el``; a boresight
move spins it down first too. Durations are schedlib's figures unless the config says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scheduler_server.observing.policies.sat import detectors, hwp
from scheduler_server.observing.policies.sat.ops_config import DetSetup, OpsConfig, Relock
from scheduler_server.observing.policies.sat.scans import scan, scan_params, wait
from scheduler_server.observing.policies.sat.script import IMPORTS, comment, iso, lit, num
from scheduler_server.observing.policies.sat.steps import Op, SatState, Visit

__all__ = [
    "OpsConfig", "DetSetup", "Relock", "preamble", "start", "before_scan", "scan", "after_scan",
    "move", "wait", "wrap_up", "scan_params", "boresight",
]  # fmt: skip


Ops = tuple[list[Op], SatState]


def _chain(state: SatState, *steps: Any) -> Ops:
    """Run ``steps`` (functions of a state returning ``(ops, state)``) one after another."""
    out: list[Op] = []
    for step in steps:
        ops, state = step(state)
        out += ops
    return out, state


def min_sun_angle(sun_policy: float | Mapping[str, Any] | Any) -> float:
    if isinstance(sun_policy, int | float):
        return float(sun_policy)
    if isinstance(sun_policy, Mapping):
        return float(sun_policy["min_angle"])
    return float(sun_policy.min_angle)


def preamble(
    state: SatState, platform: str, sun_policy: Any, header: Any = None, *, vent_check: bool = False
) -> list[str]:
    """The script's beginning: ``header``'s lines (a ``script.Header``; None: none), the imports, the checks.

    The checks are schedlib's: the host is the platform's sequencer, the elevation and boresight are the ones
    the plan starts from, the HWP spins (in its direction) or is ungripped, the ACU's sun exclusion radius is
    no wider than the policy's minimum angle.
    """
    lines = list(header.lines()) if header is not None else []
    lines += IMPORTS
    lines += [
        "acu = run.CLIENTS['acu']",
        comment("platform checks"),
        f"assert socket.gethostname() == {lit(f'daq-{platform}-sequencer')}, 'platform check failed'",
        "acu_data = acu.monitor.status().session['data']",
        "sun_data = acu.monitor_sun.status().session['data']",
        "hwp_state = run.CLIENTS['hwp'].monitor.status().session['data']['hwp_state']",
        "assert np.isclose(acu_data['StatusDetailed']['Elevation current position'], "
        f"{num(state.el)}, atol=1, rtol=0), 'Elevation check failed'",
        "assert np.isclose(acu_data['StatusDetailed']['Boresight current position'], "
        f"{num(state.boresight)}, atol=0.1, rtol=0), 'Boresight angle check failed'",
        f"assert hwp_state['is_spinning'] == {bool(state.hwp_spinning)}, 'HWP spinning check failed'",
    ]
    if state.hwp_spinning and state.hwp_dir is None:
        lines.append(comment("hwp spinning in a direction not given: not checked"))
    elif state.hwp_spinning:
        lines.append(f"assert (hwp_state['direction'] == 'ccw') == {bool(state.hwp_dir)}, 'HWP direction check failed'")
    else:
        lines.append("assert hwp_state['gripper']['grip_state'] == 'ungripped', 'HWP gripper check failed'")
    limit = num(min_sun_angle(sun_policy))
    lines.append(f"assert sun_data['policy']['exclusion_radius'] <= {limit}, 'sun avoidance angle too small'")
    if vent_check:
        lines += [
            "from ocs.ocs_client import OCSClient",
            "assert OCSClient('power-iboot-smurf-1').acq().session['data']['outletStatus_0']['status'] == 1, "
            "'Readout fan shutter/vent is not open'",
        ]
    return [*lines, comment("checks over"), ""]


def start(state: SatState, cfg: OpsConfig) -> Ops:
    """The session's first ops: wait for the start (within ``start_tolerance``), relock if due, scan params."""
    first = Op("wait", 0.0, (f"run.wait_until({lit(iso(state.t))}, tolerance={num(cfg.start_tolerance, 0)})",))
    rest, state = _chain(
        state,
        lambda s: detectors.relock(s, cfg, cfg.relock_cadence) if cfg.relock_cadence is not None else ([], s),
        lambda s: scan_params(s, cfg.az_speed, cfg.az_accel, None),
    )
    return [first, *rest], state


def boresight(state: SatState, visit: Visit, cfg: OpsConfig) -> Ops:
    """Rotate to the visit's boresight (HWP spun down first), then the cryostat's stabilisation time."""
    if not cfg.apply_boresight_rot or visit.boresight is None or detectors.near(state.boresight, visit.boresight):
        return [], state
    ops, state = hwp.spin_down(state, cfg, "before a boresight rotation")
    angle = float(visit.boresight)
    rot = Op(
        "boresight",
        cfg.boresight_duration,
        (f"run.acu.set_boresight({num(angle)})",),
        lane="boresight",
        state="rotating",
        detail={"angle": round(angle, 3)},
    )
    ops.append(rot)
    state = state.at(t=state.t + cfg.boresight_duration, boresight=angle)
    if cfg.cryo_stabilization_time > 0:
        wait = cfg.cryo_stabilization_time
        ops.append(Op("sleep", wait, (f"time.sleep({num(wait, 0)})",)))
        state = state.at(t=state.t + wait)
    return ops, state


def before_scan(state: SatState, visit: Visit, cfg: OpsConfig) -> Ops:
    """The ops before ``visit``'s scan, in schedlib's order for its kind (the telescope already at the visit)."""
    relock = (lambda s: detectors.relock(s, cfg, cfg.relock_cadence)) if cfg.relock_cadence is not None else None
    bore = lambda s: boresight(s, visit, cfg)  # noqa: E731
    setup = lambda s: detectors.det_setup(s, visit, cfg)  # noqa: E731
    spin = lambda s: hwp.spin_up(s, visit.hwp_dir, cfg, hwp.nod(visit))  # noqa: E731
    if visit.kind == "master":
        steps = [relock, bore, setup, spin, lambda s: detectors.bias_step(s, visit, cfg)]
    elif visit.kind == "calibration":
        steps = [relock, bore, setup, spin]
    elif visit.kind == "wiregrid":
        steps = [] if cfg.disable_hwp else [bore, setup, spin]
    elif visit.kind == "noobs":
        steps = [lambda s: ([Op("comment", 0.0, ("", comment(f"sun break: {visit.name}")))], s)]
        if cfg.run_noobs and cfg.relock_cadence_noobs is not None:
            steps.append(lambda s: detectors.relock(s, cfg, cfg.relock_cadence_noobs))
    else:
        raise ValueError(f"unknown visit kind {visit.kind!r}")
    return _chain(state, *[step for step in steps if step is not None])


def after_scan(state: SatState, visit: Visit, cfg: OpsConfig) -> Ops:
    """After a calibration scan a bias step on its cadence; after a sun break its closing comment."""
    if visit.kind == "calibration":
        return detectors.bias_step(state, visit, cfg)
    if visit.kind == "noobs":
        return [Op("comment", 0.0, (comment("sun break over"), ""))], state
    return [], state


def move(state: SatState, az: float, el: float, cfg: OpsConfig, *, duration: float = 0.0, force: bool = False) -> Ops:
    """Point at (az, el): HWP spun down first when ``el`` is outside its range; ``duration`` is the slew's."""
    if not force and (state.az, state.el) == (az, el):
        return [], state
    ops: list[Op] = []
    if state.hwp_spinning and not hwp.in_hwp_range(el, cfg):
        ops, state = hwp.spin_down(state, cfg, f"el {num(el)} outside the HWP's range")
    line = f"run.acu.move_to(az={num(az)}, el={num(el)})"
    ops.append(Op("move", duration, (line,), detail={"az": az, "el": el}))
    return ops, state.at(t=state.t + duration, az=az, el=el)


def wrap_up(state: SatState, cfg: OpsConfig, *, stow: tuple[float, float] | None = None, duration: float = 0.0) -> Ops:
    """The end: the HWP spun down with ``home_at_end``, then the stow move if one is given."""
    ops: list[Op] = []
    if cfg.home_at_end:
        ops, state = hwp.spin_down(state, cfg, "end of the schedule")
    if stow is not None:
        more, state = move(state, stow[0], stow[1], cfg, duration=duration)
        ops += more
    return ops, state
