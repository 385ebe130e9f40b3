"""The ``sat`` policy's settings derived from its config: the ops' config, the slew model, the start state,
parking elevations, minimum scan lengths, and the script header's provenance (version, preset, digest)."""

from __future__ import annotations

import hashlib
import json

from scheduler_server.observing.policies.sat.config import SatConfig
from scheduler_server.observing.policies.sat.merge import CALIBRATION, MASTER, NOOBS, WIREGRID
from scheduler_server.observing.policies.sat.steps import SatState


def ops_config(config: SatConfig):
    from scheduler_server.observing.policies.sat.ops_config import DetSetup, OpsConfig

    satp3 = config.platform == "satp3"
    return OpsConfig(
        platform=config.platform,
        relock_cadence=config.relock_cadence,
        relock_cadence_noobs=config.relock_cadence_noobs,
        run_noobs=config.run_noobs,
        iv_cadence=config.iv_cadence,
        bias_step_cadence=config.bias_step_cadence,
        min_hwp_el=config.min_hwp_el,
        max_hwp_el=config.max_hwp_el,
        brake_hwp=config.brake_hwp,
        disable_hwp=config.disable_hwp,
        apply_boresight_rot=config.apply_boresight_rot,
        cryo_stabilization_time=config.cryo_stabilization_time,
        det_setup_duration=config.det_setup_duration,
        min_wiregrid_el=config.min_wiregrid_el,
        az_speed=config.az_speed,
        az_accel=config.az_accel,
        min_duration=config.stages.build_op.min_cmb_duration,
        start_tolerance=config.wait_tolerance,
        home_at_end=config.home_at_end,
        det_setup=DetSetup(iv_kwargs=None, settle=300.0, take_noise=False) if satp3 else DetSetup(),
        vent_check=satp3,
    )


def slew_model(config: SatConfig):
    from scheduler_server.observing.telescope import TelescopeModel

    moves = config.stages.build_op.plan_moves
    return TelescopeModel(
        az_speed=config.slew.az_speed,
        el_speed=config.slew.el_speed,
        settle_seconds=config.slew.settle_seconds,
        az_limits=moves.az_limits,
        el_limits=moves.el_limits,
    )


def start_state(config: SatConfig, a: float) -> SatState:
    """The state at t0. An IV taken after the last relock (both given) left the detectors biased, at the
    state's elevation and boresight; otherwise they are not, and the first scan sets them up."""
    s = config.state
    relock = s.last_relock.timestamp() if s.last_relock is not None else None
    iv = s.last_iv.timestamp() if s.last_iv is not None else None
    biased = relock is not None and iv is not None and iv >= relock
    return SatState(
        t=float(a),
        az=s.az,
        el=s.el,
        boresight=s.boresight,
        hwp_spinning=s.hwp_spinning,
        hwp_dir=None if s.hwp_dir is None else s.hwp_dir == "ccw",
        last_relock=relock,
        last_iv=iv,
        biased=biased,
        iv_at=(s.el, s.boresight) if biased else None,
    )


def park_elevations(config: SatConfig) -> tuple[float, ...]:
    """Elevations for detours and parking, every ``alt_step`` from the top of the range down; the planner
    prefers those inside the HWP's range (no spin-down) and goes lower only when the sun leaves no other."""
    lo, hi = config.el_limits()
    step = config.stages.build_op.plan_moves.alt_step
    els = [hi]
    while els[-1] - step >= lo - 1e-9:
        els.append(els[-1] - step)
    if els[-1] > lo:
        els.append(lo)
    return tuple(dict.fromkeys(round(e, 3) for e in els))


def min_durations(config: SatConfig) -> dict[str, float]:
    build = config.stages.build_op
    return {MASTER: build.min_cmb_duration, CALIBRATION: build.min_duration, WIREGRID: build.min_duration, NOOBS: 0.0}


def version() -> str:
    from scheduler_server.observing.sky.cache import package_version

    return package_version("scheduler-server")


def digest(config: SatConfig) -> str:
    text = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def preset_of(config: SatConfig) -> str | None:
    """The preset the config follows (every key the preset sets has its value), the most specific one."""
    from scheduler_server.observing.policies.sat.presets import PRESETS

    dumped = config.model_dump()
    matching = [(len(json.dumps(p)), name) for name, p in PRESETS.items() if _holds(dumped, p)]
    return max(matching)[1] if matching else None


def _holds(values: dict, wanted: dict) -> bool:
    for key, want in wanted.items():
        have = values.get(key)
        if isinstance(want, dict):
            if not isinstance(have, dict) or not _holds(have, want):
                return False
        elif have != want:
            return False
    return True
