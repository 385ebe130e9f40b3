"""The ``basic`` policy: master-schedule scans plus planet calibrations, sun-safe by construction and by check.

1. Master scans in the window, from a toast file or the generated default schedule.
2. Calibration scans of each target planet: observing windows, then the window
   rules (drift-mode, day-mod, alt-range, the starts sun-avoidance would cut,
   calibration-min-duration on the window, as schedlib 2023), one scan per window;
   a scan the moon cuts is dropped.
3. Calibration wins: master scans are cut where a calibration scan runs; then sun
   and moon cuts of the master scans, and min-duration over the master scans.
4. Slews and waits between scans are planned clear of the sun (``basic/slews.py``).
5. The script is written, then checked by the independent checker (``observing/safety/checker.py``):
   an unsafe script is never returned.

Imports of numpy and the sky code happen on first use, so listing policies (which
imports every policy) stays cheap.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime

from scheduler_server.observing.policies.base import Policy
from scheduler_server.observing.policies.basic.config import PRESETS, BasicConfig
from scheduler_server.observing.types import PolicyFailure, ScheduleInputError, ScheduleResult

log = logging.getLogger(__name__)
SITE_TOLERANCE_DEG = 0.01
MOON_STEP_SECONDS = 60
SKY_MARGIN_SECONDS = 1800  # sky sampled this far beyond the window; rarer needs are computed on the fly
LEAD_MARGIN_SECONDS = 60
NEAR_SECONDS = 6 * 3600  # calibration scans starting farther than this from a master scan cannot touch it


class BasicPolicy(Policy):
    name = "basic"
    description = (
        "Scans from a master schedule (a toast ground-schedule file, or one generated from sky patches)"
        " plus planet calibration scans, cut for sun and moon avoidance; slews and waits are routed clear"
        " of the sun and every script passes an independent sun-safety check."
    )
    Config = BasicConfig
    presets = PRESETS

    def schedule(self, t0: datetime, t1: datetime, config: BasicConfig) -> ScheduleResult:
        from scheduler_server.observing.policies.basic import script as commands
        from scheduler_server.observing.policies.basic.blocks import CALIBRATION
        from scheduler_server.observing.policies.basic.rules import Context
        from scheduler_server.observing.policies.basic.slews import SlewPlanner
        from scheduler_server.observing.safety import checker as safety
        from scheduler_server.observing.sky.ephemerides import Samples

        a, b = int(math.floor(t0.timestamp())), int(math.ceil(t1.timestamp()))
        _within_ephemeris(t0, t1)
        site = config.site.to_site()
        rules = config.rules
        sun_rule = rules.sun_avoidance
        horizon = b + sun_rule.min_sun_time + SKY_MARGIN_SECONDS
        sun = Samples("sun", site, a - SKY_MARGIN_SECONDS, horizon, sun_rule.time_step)
        moon = Samples("moon", site, a - SKY_MARGIN_SECONDS, b + SKY_MARGIN_SECONDS, MOON_STEP_SECONDS)
        ctx = Context(site, sun, moon, sun_rule.guard(sun), after_scan=config.telescope.bias_step_seconds)

        calibration = self._calibration(config, site, a, b, ctx)
        master = self._cuts(self._master(config, site, a, b), config, ctx)
        planner = SlewPlanner(
            ctx.guard, config.telescope, config.routing_elevations, start=a, min_durations=_min_durations(rules)
        )
        plan = planner.plan(self._merge(master, calibration, config))
        lost = {scan for scan, _ in plan.dropped if scan.kind == CALIBRATION}
        if lost:
            # A calibration scan the planner cannot reach would leave a hole where it cut
            # the master scans: take it out, merge again and plan again from just before
            # the first change (once; a second miss just stays a gap), until the plan
            # is back on the first one's track.
            calibration = [c for c in calibration if c not in lost]
            kept = plan.before(min(c.t0 for c in lost) - NEAR_SECONDS)
            resume = kept.kept[-1][0].t1 if kept.kept else float("-inf")
            plan = planner.plan(
                [s for s in self._merge(master, calibration, config) if s.t0 >= resume], prefix=kept, earlier=plan
            )
        text = commands.script(plan.kept, config.test_mode)
        report = safety.check_script(
            text, sun_rule.min_angle, config.telescope, site, start=a, step=sun_rule.time_step, sun=sun
        )
        if not report.safe:
            log.error("refusing an unsafe schedule for %s..%s: %s", t0, t1, "; ".join(report.lines()))
            raise PolicyFailure(
                "the schedule failed the independent sun-safety check: " + "; ".join(report.lines()[:3])
            )
        # A block is what is observed: seq.scan's span, which starts after the opening bias step.
        step = math.ceil(config.telescope.bias_step_seconds)
        return ScheduleResult(
            commands=text, blocks=[scan.replace(t0=scan.t0 + step).to_block() for scan, _ in plan.kept]
        )

    def _master(self, config: BasicConfig, site, a: int, b: int):
        from scheduler_server.observing.master.generate import generate
        from scheduler_server.observing.master.toast import MasterScheduleError, read
        from scheduler_server.observing.policies.basic.blocks import MASTER, Scan, hhmm

        if config.master_schedule is None:
            schedule = generate(a, b, config.master_generator, site)
        else:
            try:
                schedule = read(config.master_schedule)
            except MasterScheduleError as exc:
                raise ScheduleInputError("policy.config.master_schedule", str(exc)) from None
            if (
                abs(schedule.site.lat - site.lat) > SITE_TOLERANCE_DEG
                or abs(schedule.site.lon - site.lon) > SITE_TOLERANCE_DEG
            ):
                raise ScheduleInputError(
                    "policy.config.master_schedule",
                    f"the file's site ({schedule.site.lat}, {schedule.site.lon}) is not the configured site"
                    f" ({site.lat}, {site.lon}); set policy.config.site to match",
                )
        lo, hi = config.telescope.el_limits
        scans = []
        for row in schedule.between(a, b):
            if not lo <= row.el <= hi:
                log.info(
                    "master scan %s at %s dropped: el %g outside telescope.el_limits", row.name, hhmm(row.start), row.el
                )
                continue
            drift = "rising" if row.rising else "setting"
            scan = Scan(
                row.name,
                MASTER,
                row.start,
                row.stop,
                round(row.az_min, 2),
                round(row.el, 2),
                round(row.throw, 2),
                drift,
            )
            if scan.t0 < a or scan.t1 > b:
                scan = scan.replace(t0=max(scan.t0, a), t1=min(scan.t1, b), cuts=("trimmed to the requested window",))
            scans.append(scan)
        return scans

    def _calibration(self, config: BasicConfig, site, a: int, b: int, ctx):
        from scheduler_server.observing.policies.basic import planets

        rules = config.rules
        footprint = rules.make_source_plan.footprint()
        scans = []
        for target in config.calibration_targets:
            longest = rules.make_source_plan.max_obs_length
            windows = [
                w
                for w in planets.windows_near(target, site, a, b, footprint, longest)
                if w.t0 <= b and w.t1 + longest >= a
            ]
            for rule in (rules.drift_mode, rules.day_mod):
                if rule is not None:
                    windows = [w for w in windows if rule.keep(w)]
            if rules.alt_range is not None:
                windows = [piece for w in windows for piece in rules.alt_range.trim(w)]
            windows = [piece for w in windows for piece in rules.sun_avoidance.trim(w, ctx)]
            if rules.calibration_min_duration is not None:
                windows = rules.calibration_min_duration.windows(windows, "calibration-min-duration")
            for window in windows:
                scan = planets.pick_scan(window, rules.make_source_scan.preferred_length, within=(a, b))
                if scan.t1 > a and scan.t0 < b:
                    if scan.t0 < a or scan.t1 > b:
                        scan = scan.replace(
                            t0=max(scan.t0, a), t1=min(scan.t1, b), cuts=("trimmed to the requested window",)
                        )
                    scans.append(scan)
        scans = _first_come(sorted(scans, key=lambda s: (s.t0, s.name)))
        lo, hi = config.telescope.el_limits
        scans = [s for s in scans if lo <= s.el <= hi]
        whole = {id(scan) for scan in scans}
        return [s for s in self._cuts(scans, config, ctx) if id(s) in whole]  # a cut crossing is no calibration

    def _merge(self, master, calibration, config: BasicConfig):
        """Calibration wins: master scans give way to each calibration scan, with time to get there and back."""
        from bisect import bisect_left, bisect_right

        from scheduler_server.observing.policies.basic.blocks import MASTER

        model = config.telescope
        cal_starts = [c.t0 for c in calibration]
        scans = []
        for scan in master:
            pieces = [scan]
            near = calibration[
                bisect_left(cal_starts, scan.t0 - NEAR_SECONDS) : bisect_right(cal_starts, scan.t1 + NEAR_SECONDS)
            ]
            for cal in near:
                cut = []
                for piece in pieces:
                    into = (
                        model.bias_step_seconds
                        + model.slew_seconds((piece.az, piece.az_hi), piece.el, cal.az, cal.el)
                        + model.bias_dets_seconds
                    )
                    back = (
                        model.bias_step_seconds
                        + model.slew_seconds((cal.az, cal.az_hi), cal.el, piece.az, piece.el)
                        + model.bias_dets_seconds
                    )
                    cut += _cut(piece, cal.t0 - into - LEAD_MARGIN_SECONDS, cal.t1 + back, f"calibration {cal.name}")
                pieces = cut
            scans += pieces
        scans = sorted(calibration + scans, key=lambda s: (s.t0, s.t1))
        if config.rules.min_duration is not None:
            scans = config.rules.min_duration.apply(scans, "min-duration", kind=MASTER)
        return scans

    def _cuts(self, scans, config: BasicConfig, ctx):
        scans = config.rules.sun_avoidance.apply(scans, ctx)
        if config.rules.moon_avoidance is not None:
            scans = config.rules.moon_avoidance.apply(scans, ctx)
        return scans


def _within_ephemeris(t0: datetime, t1: datetime) -> None:

    from scheduler_server.observing.sky.ephemerides import COVERED

    first, last = (datetime.fromisoformat(d).replace(tzinfo=UTC) for d in COVERED)
    if t0 < first:
        raise ScheduleInputError(
            "t0", f"the basic policy's ephemeris starts at {COVERED[0]}; {t0:%Y-%m-%d} is too early"
        )
    if t1 > last:
        raise ScheduleInputError("t1", f"the basic policy's ephemeris ends at {COVERED[1]}; {t1:%Y-%m-%d} is too late")


def _min_durations(rules) -> dict[str, float]:
    """What a scan must keep when its setup makes it start late: the min-duration rules, by kind."""
    from scheduler_server.observing.policies.basic.blocks import CALIBRATION, MASTER

    every = rules.min_duration.min_duration if rules.min_duration is not None else 0.0
    # calibration-min-duration is about observing windows (rules.MinDuration.windows); a crossing lasts what it lasts
    return {MASTER: every, CALIBRATION: 0.0}


def _cut(scan, t0: float, t1: float, reason: str):
    if t1 <= scan.t0 or t0 >= scan.t1:
        return [scan]
    import numpy as np

    from scheduler_server.observing.policies.basic.blocks import cut_scan

    return cut_scan(scan, np.array([[int(t0), int(np.ceil(t1))]]), reason)


def _first_come(scans):
    """Calibration scans of different planets that overlap: the earlier one is kept."""
    kept = []
    for scan in scans:
        if kept and scan.t0 < kept[-1].t1:
            log.info(
                "calibration %s at %s dropped: overlaps calibration %s",
                scan.name,
                scan.to_block().t0.isoformat(),
                kept[-1].name,
            )
            continue
        kept.append(scan)
    return kept
