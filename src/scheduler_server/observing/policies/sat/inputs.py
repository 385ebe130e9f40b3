"""The ``sat`` policy's inputs turned into visits and settings: plans, overrides, the start state, the ops' config.

What schedlib does in ``init_cmb_seqs``/``init_cal_seqs``/``apply_overrides``: the plans read and cut to the
window (a plan ending before t0 refused, naming it), the overrides applied (boresight, HWP direction,
elevation, az branch, drift), calibration targets and wiregrid runs given the boresight and HWP direction of
the nearest CMB block, and CMB blocks cut where the sun would come too near their sweep.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from typing import Any

from scheduler_server.observing.policies.sat import merge
from scheduler_server.observing.policies.sat.config import SatConfig
from scheduler_server.observing.policies.sat.merge import CALIBRATION, MASTER, NOOBS, WIREGRID, Item
from scheduler_server.observing.policies.sat.settings import ops_config, slew_model
from scheduler_server.observing.policies.sat.steps import Visit
from scheduler_server.observing.types import ScheduleInputError

log = logging.getLogger(__name__)
__all__ = ["ops_config", "slew_model"]  # also here: the sorun tests build them from a config as the policy does
FIELD = "policy.config."
WIREGRID_OVERHEAD_SECONDS = 900  # sorunlib's time_constant besides the HWP: the grid in and out, bias steps


@dataclass
class Plans:
    cmb: list = field(default_factory=list)
    cmb_name: str | None = None
    cal: list = field(default_factory=list)
    cal_name: str | None = None
    wiregrid: list = field(default_factory=list)
    wiregrid_name: str | None = None


def check_state(config: SatConfig, t0: float | None = None) -> None:
    """The telescope's state must be one the platform can be in (schedlib's check_state), else a 400. A stopped
    HWP lets the telescope stand anywhere in the platform's elevation range (the planner moves it up first)."""
    from scheduler_server.observing.policies.sat.config import EL_RANGE

    if config.min_hwp_el > config.max_hwp_el:
        raise ScheduleInputError(
            FIELD + "min_hwp_el", f"{config.min_hwp_el:g} is above max_hwp_el {config.max_hwp_el:g}"
        )
    state, moves = config.state, config.stages.build_op.plan_moves
    lo, hi = moves.el_limits
    if config.force_max_hwp_el and not config.disable_hwp:
        hi = min(hi, config.max_hwp_el)
    if not state.hwp_spinning:
        lo = min(lo, EL_RANGE[0])
    for key in ("last_relock", "last_iv"):
        when = getattr(state, key)
        if t0 is not None and when is not None and when.timestamp() > t0:
            raise ScheduleInputError(f"{FIELD}state.{key}", f"{when.isoformat()} is later than t0")
    if not lo <= state.el <= hi:
        raise ScheduleInputError(FIELD + "state.el", f"{state.el:g} is outside the elevation limits {lo:g}..{hi:g}")
    lo, hi = moves.az_limits
    if not lo <= state.az <= hi:
        raise ScheduleInputError(FIELD + "state.az", f"{state.az:g} is outside the azimuth limits {lo:g}..{hi:g}")
    if state.hwp_spinning and not config.min_hwp_el <= state.el <= config.max_hwp_el:
        raise ScheduleInputError(
            FIELD + "state.hwp_spinning",
            f"the HWP cannot spin at el {state.el:g} (min_hwp_el..max_hwp_el {config.min_hwp_el:g}..{config.max_hwp_el:g})",
        )
    _check_stow(config)


def _check_stow(config: SatConfig) -> None:
    """The stow position must be one the platform can point at (the preset's copy of its limits)."""
    stow, moves = config.stow_position, config.stages.build_op.plan_moves
    for key, value, (lo, hi) in (
        ("az_stow", stow.az_stow, moves.az_limits),
        ("el_stow", stow.el_stow, moves.el_limits),
    ):
        if value is not None and not lo <= value <= hi:
            raise ScheduleInputError(
                f"{FIELD}stow_position.{key}", f"{value:g} is outside the platform's limits {lo:g}..{hi:g}"
            )


def read_plans(config: SatConfig, a: float, b: float) -> Plans:
    from scheduler_server.observing.policies.sat import plans as readers

    out = Plans()
    found = _source(config, "cmb")
    if found is None:
        raise ScheduleInputError(
            FIELD + "cmb_plan", "a CMB plan is required (cmb_plan, cmb_plan_file or cmb_plan_text)"
        )
    out.cmb_name, text, where = found
    out.cmb = readers.plan_window(readers.read_cmb_plan(text, where), a, b, where)
    found = _source(config, "cal")
    if found is not None:
        out.cal_name, text, where = found
        out.cal = readers.plan_window(readers.read_cal_plan(text, where), a, b, where)
    found = _source(config, "wiregrid")
    if found is not None and not config.disable_hwp:
        out.wiregrid_name, text, where = found
        out.wiregrid = readers.plan_window(readers.read_wiregrid_plan(text, where), a, b, where)
    return out


def _source(config: SatConfig, kind: str) -> tuple[str, str, str] | None:
    """(name for the header, text, name for errors) of a plan: the request's text, a site file or a bundled one."""
    from scheduler_server.observing.policies.sat import plans as readers

    text, path, name = (getattr(config, f"{kind}_plan{suffix}") for suffix in ("_text", "_file", ""))
    if text is not None:
        return "request", text, f"{FIELD}{kind}_plan_text"
    if path is not None:
        try:
            with open(path, encoding="utf-8") as handle:
                return os.path.basename(path), handle.read(), os.path.basename(path)
        except (OSError, UnicodeDecodeError) as exc:
            # the path is the site's, not the client's: the answer names the file, the log says where
            log.error("sat %s plan file %s unreadable: %s", kind, path, exc)
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise ScheduleInputError(
                f"{FIELD}{kind}_plan_file", f"the server cannot read its plan file {os.path.basename(path)!r}: {reason}"
            ) from None
    if name is not None:
        return name, readers.bundled(name, f"{FIELD}{kind}_plan"), name
    return None


def cmb_items(blocks: list, config: SatConfig, a: float, b: float) -> list[Item]:
    lo, hi = config.el_limits()
    _check_type(config)
    items = []
    for block in blocks:
        kind = NOOBS if block.subtype == "noobs" else MASTER
        el = config.elevation_override if config.elevation_override is not None else block.el
        if kind == MASTER and not lo - 1e-6 <= el <= hi + 1e-6:
            log.info("CMB block %s at %s dropped: el %g outside %g..%g", block.name, merge.hhmm(block.t0), el, lo, hi)
            continue
        scan_type = config.scan_type if kind == MASTER else block.scan_type
        el_amp, el_freq = (config.el_amp, config.el_freq) if kind == MASTER else (block.el_amp, block.el_freq)
        if kind == MASTER and block.t1 > a and block.t0 < b:
            _check_nod(config, block.name, el, lo, hi)
        turnaround = getattr(config.turnaround_method.cmb, f"type{scan_type}", None)
        tag = ",".join(t for t in (block.tag, f"{block.az_min:.0f}-{block.az_max:.0f}", config.scan_tag) if t)
        visit = Visit(
            kind=kind,
            name=block.name,
            t0=block.t0,
            t1=block.t1,
            az=block.az_min,
            el=el,
            throw=block.throw,
            boresight=_boresight(config, block.boresight),
            hwp_dir=_hwp(config, block.hwp_dir),
            az_speed=block.az_speed,
            az_accel=block.az_accel,
            scan_type=scan_type,
            el_amp=el_amp,
            el_freq=el_freq,
            subtype="cmb" if kind == MASTER else "noobs",
            tag=f"{tag},type{scan_type}",
            origin=block.origin,
            turnaround_method=turnaround,
        )
        items.append(Item(visit))
    return merge.window(items, a, b)


def _check_type(config: SatConfig) -> None:
    """A 400 naming el_amp or el_freq when they are given without scan_type 3, or a nod without its frequency."""
    amp = config.el_amp
    if amp > 0 and config.scan_type != 3:
        raise ScheduleInputError(f"{FIELD}el_amp", f"{amp:g}: an elevation nod is scan_type 3's only")
    if config.el_freq > 0 and config.scan_type != 3:
        raise ScheduleInputError(f"{FIELD}el_freq", f"{config.el_freq:g}: an elevation nod is scan_type 3's only")
    if amp > 0 and config.el_freq <= 0:
        raise ScheduleInputError(f"{FIELD}el_freq", f"give the nod's frequency (Hz) with el_amp {amp:g}")


def _check_nod(config: SatConfig, name: str, el: float, lo: float, hi: float) -> None:
    """A 400 naming el_amp when a CMB block's type-3 nod would leave the elevations it may use."""
    amp = config.el_amp
    if amp == 0:
        return
    ranges = [("plan_moves.el_limits", lo, hi)]
    if not config.disable_hwp:
        ranges.append(("min_hwp_el..max_hwp_el, the HWP's range", config.min_hwp_el, config.max_hwp_el))
    for what, a, b in ranges:
        if not (a - 1e-6 <= el - amp and el + amp <= b + 1e-6):
            raise ScheduleInputError(
                f"{FIELD}el_amp",
                f"{amp:g} takes CMB block {name!r} (el {el:g}) over el {el - amp:g}..{el + amp:g},"
                f" outside {what} {a:g}..{b:g}",
            )


def sun_cut(items: list[Item], guard, dropped: list) -> list[Item]:
    """CMB items without the times their sweep would be too near the sun (with the look-ahead)."""
    out = []
    for item in items:
        v = item.visit
        if v.kind != MASTER:
            out.append(item)
            continue
        box = (v.az, v.az + v.throw, v.el - v.el_amp, v.el + v.el_amp)
        spans = [(float(s0), float(s1)) for s0, s1 in guard.unsafe(box, v.t0, v.t1)]
        if not spans:
            out.append(item)
            continue
        pieces = merge.subtract(item, spans, "sun avoidance")
        if not pieces:
            dropped.append((item, "sun avoidance: too near the sun throughout"))
        out += pieces
    return out


def calibration_items(plans: Plans, config: SatConfig, site, a: float, b: float, guard, dropped: list) -> list[Item]:
    targets = [_override_target(config, t) for t in [*plans.cal, *_config_targets(config)]]
    if not targets:
        return []
    try:
        scans = _plan(targets, plans, config, site, a, b, guard)
    except ScheduleInputError as exc:
        raise _config_names(exc) from None
    for lost in scans.dropped:
        target = lost.target
        log.info("calibration target %s (%s) dropped: %s", target.source, lost.origin, lost.reason)
        when = target.t0 if target.t0 is not None else a
        gone = Visit(kind=CALIBRATION, name=target.source, t0=when, t1=target.t1 or when, az=0.0, el=target.el_bore)
        dropped.append((Item(gone), lost.reason))
    lo, hi = config.el_limits()
    items = []
    for scan in scans:
        if not lo - 1e-6 <= scan.el <= hi + 1e-6:
            log.info(
                "calibration %s at %s dropped: el %g outside %g..%g", scan.source, merge.hhmm(scan.t0), scan.el, lo, hi
            )
            continue
        items.append(Item(_cal_visit(scan, plans, config), ("partial crossing",) if scan.partial else ()))
    return merge.window(items, a, b)


def _plan(targets: list, plans: Plans, config: SatConfig, site, a: float, b: float, guard):
    from scheduler_server.observing.policies.sat.calibration import plan_calibration

    rule = config.rules.min_duration
    return plan_calibration(
        targets,
        plans.cmb,
        site,
        a,
        b,
        platform=config.platform,
        xi_offset=config.xi_offset,
        eta_offset=config.eta_offset,
        sun_guard=guard,
        min_duration=rule.min_duration if rule is not None else config.stages.build_op.min_duration,
        ignore_wafers=config.ignore_wafers,
        az_speed=config.az_speed,
        az_accel=config.az_accel,
        az_limits=config.stages.build_op.plan_moves.az_limits,
    )


def _config_names(exc: ScheduleInputError) -> ScheduleInputError:
    """A config target's field by the config's key names (``focus``, ``elevation``), not the target's."""
    field = exc.field
    if field.startswith(FIELD + "cal_targets."):
        for theirs, ours in ((".array_query", ".focus"), (".el_bore", ".elevation")):
            if field.endswith(theirs):
                return ScheduleInputError(field[: -len(theirs)] + ours, exc.problem)
    return exc


def _cal_visit(scan, plans: Plans, config: SatConfig) -> Visit:
    return Visit(
        kind=CALIBRATION,
        name=scan.source,
        t0=scan.t0,
        t1=scan.t1,
        az=scan.az,
        el=scan.el,
        throw=scan.throw,
        boresight=scan.boresight,
        hwp_dir=_hwp(config, None) if config.hwp_override else _nearest(plans.cmb, scan.t0, "hwp_dir"),
        az_drift=scan.az_drift,
        az_speed=scan.az_speed if scan.az_speed is not None else config.az_speed,
        az_accel=scan.az_accel if scan.az_accel is not None else config.az_accel,
        subtype="cal",
        tag=scan.tag,
        min_duration=config.stages.build_op.min_duration,
        origin=scan.origin,
        turnaround_method=config.turnaround_method.cal,
    )


def offset(items: list[Item], config: SatConfig) -> list[Item]:
    """schedlib's ``az_offset``/``el_offset`` added to every pointing the script commands (and is checked at)."""
    if not (config.az_offset or config.el_offset):
        return items
    return [
        Item(replace(i.visit, az=i.visit.az + config.az_offset, el=i.visit.el + config.el_offset), i.cuts)
        for i in items
    ]


def wiregrid_items(plans: Plans, config: SatConfig, a: float, b: float, dropped: list) -> list[Item]:
    """The wiregrid runs wholly inside the window (schedlib's rule). A time-constant run lasts at least what
    sorunlib's ``time_constant`` does: the HWP braked and spun up the other way, plus the grid's moves and bias
    steps (``WIREGRID_OVERHEAD_SECONDS``); a plan row shorter than that is lengthened, and says so."""
    ops = ops_config(config)
    reversal = ops.hwp_spin_down + ops.hwp_spin_up + WIREGRID_OVERHEAD_SECONDS
    items = []
    for target in plans.wiregrid:
        t1, cuts = target.t1, ()
        if target.kind == "wiregrid_time_const" and t1 - target.t0 < reversal:
            t1, cuts = target.t0 + reversal, (f"lengthened to {reversal:g} s, what reversing the HWP takes",)
        if target.t0 < a or t1 > b:
            continue  # schedlib keeps only the runs wholly inside the window
        az, el = (config.wiregrid_az, config.wiregrid_el) if config.wiregrid_override else (target.az, target.el)
        if config.elevation_override is not None:
            el = config.elevation_override
        visit = Visit(
            kind=WIREGRID,
            name=target.kind,
            t0=target.t0,
            t1=t1,
            az=az,
            el=el,
            boresight=_boresight(config, _nearest(plans.cmb, target.t0, "boresight")),
            hwp_dir=_hwp(config, None) if config.hwp_override else _nearest(plans.cmb, target.t0, "hwp_dir"),
            subtype="wiregrid",
            wiregrid_kind=target.kind,
            min_duration=config.stages.build_op.min_duration,
            origin=target.origin,
        )
        items.append(Item(visit, cuts))
    return items


def _config_targets(config: SatConfig) -> list:
    from scheduler_server.observing.policies.sat.targets import CalTarget

    return [
        CalTarget(
            source=t.source.lower(),
            array_query=t.focus.lower(),
            el_bore=t.elevation,
            tag=t.focus.lower(),
            boresight=t.boresight,
            allow_partial=t.allow_partial,
            drift=t.drift,
            az_branch=t.az_branch if t.az_branch is not None else 180.0,
            az_speed=t.az_speed,
            az_accel=t.az_accel,
            source_direction=t.direction,
            origin=f"{FIELD}cal_targets.{i}",  # dotted as pydantic names it (cal_targets.0.focus), as basic does
        )
        for i, t in enumerate(config.cal_targets)
    ]


def _override_target(config: SatConfig, target):
    changes: dict[str, Any] = {}
    if config.boresight_override is not None and config.platform != "satp3":
        changes["boresight"] = config.boresight_override
    if config.az_branch_override is not None:
        changes["az_branch"] = config.az_branch_override
    if config.elevation_override is not None:
        changes["el_bore"] = config.elevation_override
    if config.drift_override is not None:
        changes["drift"] = config.drift_override
    if config.allow_partial_override:
        changes["allow_partial"] = True
    return replace(target, **changes) if changes else target


def _boresight(config: SatConfig, angle: float | None) -> float | None:
    if config.boresight_override is not None and config.platform != "satp3":  # schedlib: no override on SATp3
        return config.boresight_override
    return angle


def _hwp(config: SatConfig, hwp_dir: bool | None) -> bool | None:
    if config.hwp_override is not None:
        return config.hwp_override == "ccw"
    return hwp_dir


def _nearest(blocks: list, when: float, attr: str):
    """schedlib's choice for a calibration or wiregrid run: the last CMB block starting before it, else the first."""
    cmb = [blk for blk in blocks if blk.subtype != "noobs"]
    before = [blk for blk in cmb if blk.t0 < when]
    if before:
        return getattr(max(before, key=lambda blk: blk.t0), attr)
    after = [blk for blk in cmb if blk.t0 > when]
    return getattr(min(after, key=lambda blk: blk.t0), attr) if after else None
