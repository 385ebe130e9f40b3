"""The ``sat`` policy: what Simons Observatory's small aperture telescopes run, as schedlib's SATPolicy has it.

1. The plans: the CMB plan (bundled, a site file or the request's text), the calibration-target plan and
   ``cal_targets``, the wiregrid plan (``inputs.py``); a plan ending before t0 is refused.
2. Calibration scans (``calibration.py``) and wiregrid runs; calibration beats wiregrid beats CMB, CMB blocks
   are cut for the sun and divided, min-duration drops what is left too short (``merge.py``).
3. The timeline (``timeline.py``): the ops before each scan, sun-safe moves, waits and parking; late starts
   and drops with their reasons.
4. The script (``script.py``) with its provenance header and platform checks, the event lanes, and the
   independent checker (``observing/safety``): an unsafe script is never returned.

Imports of numpy and the sky code happen on first use, so listing policies stays cheap.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from functools import lru_cache

from scheduler_server.observing.policies.base import Policy
from scheduler_server.observing.policies.sat.config import SatConfig
from scheduler_server.observing.policies.sat.presets import PRESETS
from scheduler_server.observing.types import Block, PolicyFailure, ScheduleInputError, ScheduleResult

log = logging.getLogger(__name__)
SKY_MARGIN_SECONDS = 3600
SLACK_SECONDS = 2 * 3600  # the timeline may run past t1 by its wrap-up; the sun is sampled that far
ALIGN_SECONDS = 6 * 3600  # sun samples cover whole quarter-days, so nearby windows share them (``_sun``)


class SatPolicy(Policy):
    name = "sat"
    description = (
        "Simons Observatory's SAT scheduling (schedlib's SATPolicy): a CMB plan (the SATp1 baseline bundled),"
        " calibration targets and wiregrid runs, the HWP, boresight and detector operations on their cadences,"
        " sun-safe moves and waits; presets satp1, satp2, satp3; every script passes an independent check."
    )
    Config = SatConfig
    presets = PRESETS

    def schedule(self, t0: datetime, t1: datetime, config: SatConfig) -> ScheduleResult:
        from scheduler_server.observing.policies.basic.avoidance import SunGuard
        from scheduler_server.observing.policies.sat import events, inputs, merge, settings
        from scheduler_server.observing.policies.sat.timeline import Planner
        from scheduler_server.observing.safety import checker as safety

        a, b = int(math.floor(t0.timestamp())), int(math.ceil(t1.timestamp()))
        _within_ephemeris(t0, t1)
        inputs.check_state(config, a)
        site = config.site.to_site()
        sun_policy = config.sun_policy()
        sun = _sun(
            site,
            _align(a - SKY_MARGIN_SECONDS, -1),
            _align(b + sun_policy.min_sun_time + SLACK_SECONDS, 1),
            sun_policy.time_step,
        )
        guard = SunGuard(sun, sun_policy.min_angle, lookahead=sun_policy.min_sun_time)
        plans = inputs.read_plans(config, a, b)
        dropped: list = []
        items = _items(plans, config, site, a, b, guard, dropped)

        cfg = settings.ops_config(config)
        model = settings.slew_model(config)
        start = settings.start_state(config, a)
        stow = config.stow_position
        planner = Planner(
            guard,
            model,
            cfg,
            settings.park_elevations(config),
            settings.min_durations(config),
            config.wait_tolerance,
            stow=None if stow.az_stow is None or stow.el_stow is None else (stow.az_stow, stow.el_stow),
        )
        timeline = planner.plan(items, start, b)
        dropped += timeline.dropped
        for item, why in dropped:
            log.info("%s %s at %s dropped: %s", item.visit.kind, item.visit.name, merge.hhmm(item.visit.t0), why)

        text = _script(config, plans, start, sun_policy, cfg, timeline) + _drop_notes(dropped)
        report = safety.check_script(
            text, sun_policy.min_angle, model, site, start=a, step=sun_policy.time_step, sun=sun
        )
        if not report.safe:
            log.error("refusing an unsafe sat schedule for %s..%s: %s", t0, t1, "; ".join(report.lines()))
            raise PolicyFailure("the schedule failed the independent safety check: " + "; ".join(report.lines()[:3]))
        blocks = _with_drops([_block(laid.visit, laid.cuts) for laid in timeline.laid], dropped)
        return ScheduleResult(commands=text, blocks=blocks, events=events.lanes(start, timeline.timed, b))


def _items(plans, config: SatConfig, site, a: int, b: int, guard, dropped: list):
    """The visits in priority order: CMB cut for the sun and divided, calibration and wiregrid runs first."""
    from scheduler_server.observing.policies.sat import inputs, merge

    cmb = inputs.sun_cut(inputs.cmb_items(plans.cmb, config, a, b), guard, dropped)
    cal = inputs.calibration_items(plans, config, site, a, b, guard, dropped)
    wiregrid = inputs.wiregrid_items(plans, config, a, b, dropped)
    items = merge.by_priority(merge.divide(cmb, config.max_cmb_scan_duration), cal, wiregrid, 0.0, dropped)
    rule = config.rules.min_duration
    items = merge.min_duration(items, rule.min_duration if rule is not None else None, dropped)
    return inputs.offset(items, config)


def _script(config: SatConfig, plans, start, sun_policy, cfg, timeline) -> str:
    """The script: provenance header, imports and platform checks (``operations.preamble``), then the ops."""
    from scheduler_server.observing.policies.sat import operations, script, settings

    header = script.Header(
        version=settings.version(),
        preset=settings.preset_of(config),
        platform=config.platform,
        cmb_plan=plans.cmb_name,
        cal_plan=plans.cal_name,
        wiregrid_plan=plans.wiregrid_name,
        config_digest=settings.digest(config),
    )
    preamble = operations.preamble(start, config.platform, sun_policy, header, vent_check=cfg.vent_check)
    return script.render([], preamble, [op for _, op in timeline.timed])


def _drop_notes(dropped: list) -> str:
    """Trailing comment lines, one per dropped visit and why, so the script says it even with no block left."""
    from scheduler_server.observing.policies.sat.merge import hhmm
    from scheduler_server.observing.policies.sat.script import comment

    notes = sorted(dropped, key=lambda d: d[0].visit.t0)
    return "".join(
        comment(f"dropped: {i.visit.kind} {i.visit.name} at {hhmm(i.visit.t0)}: {why}") + "\n" for i, why in notes
    )


def _with_drops(blocks: list[Block], dropped: list) -> list[Block]:
    """Each dropped visit said in the cuts of the first block after it (or the last one), so an answer shows it."""
    from bisect import bisect_left

    from scheduler_server.observing.policies.sat.merge import hhmm

    starts = [b.t0.timestamp() for b in blocks]
    for item, why in sorted(dropped, key=lambda d: d[0].visit.t0):
        if not blocks:
            break
        v = item.visit
        at = min(bisect_left(starts, v.t0), len(blocks) - 1)
        blocks[at].cuts.append(f"dropped before it: {v.kind} {v.name} at {hhmm(v.t0)}: {why}")
    return blocks


def _block(visit, cuts) -> Block:
    return Block(
        name=visit.name,
        kind=visit.kind,
        t0=datetime.fromtimestamp(visit.t0, tz=UTC),
        t1=datetime.fromtimestamp(visit.t1, tz=UTC),
        az=round(visit.az, 3),
        el=round(visit.el, 3),
        throw=round(visit.throw, 3),
        cuts=[c for c in cuts if c],
    )


def _align(t: float, direction: int) -> int:
    return int(math.floor(t / ALIGN_SECONDS) if direction < 0 else math.ceil(t / ALIGN_SECONDS)) * ALIGN_SECONDS


@lru_cache(maxsize=16)
def _sun(site, start: int, stop: int, step: int):
    """The sun's samples over [start, stop]: read-only, shared by the requests that fall in the same span."""
    from scheduler_server.observing.sky.ephemerides import Samples

    return Samples("sun", site, start, stop, step)


def _within_ephemeris(t0: datetime, t1: datetime) -> None:
    from scheduler_server.observing.sky.ephemerides import COVERED

    first, last = (datetime.fromisoformat(d).replace(tzinfo=UTC) for d in COVERED)
    if t0 < first:
        raise ScheduleInputError("t0", f"the sat policy's ephemeris starts at {COVERED[0]}; {t0:%Y-%m-%d} is too early")
    if t1 > last:
        raise ScheduleInputError("t1", f"the sat policy's ephemeris ends at {COVERED[1]}; {t1:%Y-%m-%d} is too late")
