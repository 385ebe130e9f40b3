"""The rules of the ``basic`` policy: one small frozen class per rule, its config and its effect.

Each class is also the pydantic model of its config section (unknown keys are
rejected, values checked), so a rule and its parameters cannot drift apart.
Scan rules map a list of scans to a list of scans, cutting or dropping and saying
why; window rules decide which planet observing windows may be used.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from scheduler_server.observing.types import PolicyConfig

if TYPE_CHECKING:  # the computing modules load numpy: imported where used, so configs stay light
    import numpy as np

    from scheduler_server.observing.policies.basic.avoidance import SunGuard
    from scheduler_server.observing.policies.basic.blocks import Scan
    from scheduler_server.observing.policies.basic.planets import Footprint, Window
    from scheduler_server.observing.sky.ephemerides import Samples, Site

log = logging.getLogger(__name__)
SIDEREAL_DAY_SECONDS = 86164.0905


@dataclass(frozen=True)
class Context:
    """What the scan rules look at: the sun and moon over the schedule, sampled every time_step."""

    site: Site
    sun: Samples
    moon: Samples
    guard: SunGuard
    after_scan: float  # seconds the telescope stays on a scan's arc after its stop time


class SunAvoidance(PolicyConfig):
    """Cut every part of a scan that is, or within min_sun_time will be, too near the sun."""

    mode: Literal["angular", "box"] = Field(
        "angular",
        description="'angular': true angular distance; 'box': the seed's az/alt box test (plus the min_angle floor).",
    )
    min_angle: float = Field(
        41.0,
        ge=0,
        le=90,
        description="Least angular distance (deg) from the sun to any point a scan, slew or wait occupies.",
    )
    min_sun_time: float = Field(
        1980.0, ge=0, description="Seconds the sun must stay farther than min_angle from wherever the telescope points."
    )
    min_angle_az: float = Field(6.0, ge=0, description="Box mode: unsafe where |d_az| - throw <= this (deg) ...")
    min_angle_alt: float = Field(6.0, ge=0, description="... and |d_alt| <= this (deg).")
    time_step: int = Field(10, ge=1, le=60, description="Seconds between sun samples.")
    n_buffer: int = Field(3, ge=0, description="Unsafe spans are widened by this many samples on each side.")

    def guard(self, sun: Samples) -> SunGuard:
        from scheduler_server.observing.policies.basic.avoidance import SunGuard

        return SunGuard(sun, self.min_angle, self.min_sun_time, self.n_buffer * self.time_step)

    def apply(self, scans: list[Scan], ctx: Context) -> list[Scan]:

        from scheduler_server.observing.policies.basic import blocks

        out: list[Scan] = []
        for scan in scans:
            out += _log_cut(blocks.cut_scan(scan, self._cuts(scan, ctx), "sun-avoidance"), scan, "sun-avoidance")
        return out

    def _cuts(self, scan: Scan, ctx: Context) -> np.ndarray:
        import numpy as np

        from scheduler_server.observing.policies.basic import blocks

        unsafe = ctx.guard.unsafe((scan.az, scan.az_hi, scan.el, scan.el), scan.t0, scan.t1 + ctx.after_scan)
        if self.mode == "box":
            unsafe = blocks.union(np.concatenate([unsafe, self._box_unsafe(scan, ctx)]))
        # The telescope stays on the arc after the stop time: end pieces that long before danger.
        cuts = unsafe.copy()
        cuts[:, 0] -= int(np.ceil(ctx.after_scan))
        return cuts

    def trim(self, window: Window, ctx: Context) -> list[Window]:
        """The runs of start times whose whole scan the rule leaves untouched (schedlib's order: sun, then pick)."""

        box = (
            float(window.az.min()),
            float((window.az + window.throw).max()),
            float(window.el.min()),
            float(window.el.max()),
        )
        end = window.t1 + float(window.length.max()) + ctx.after_scan
        # One look at the window's whole extent settles the common case: in angular mode the
        # one-sample shortcut only (past it, judging the starts as arrays is cheaper).
        if self.mode == "box":
            if len(ctx.guard.unsafe(box, window.t0, end)) == 0 and self._box_clear(box, window.t0, end, ctx):
                return [window]
        elif ctx.guard.surely_clear(box, window.t0, end):
            return [window]
        keep = self._keep_starts(window, ctx)
        if keep.all():
            return [window]
        log.info(
            "sun-avoidance: %d of %d starts of the %s %s window at %s removed",
            (~keep).sum(),
            len(keep),
            window.target,
            window.mode,
            _hhmm(window.t0),
        )
        return window.trimmed(keep)

    def _keep_starts(self, window: Window, ctx: Context) -> np.ndarray:
        """Which starts' scans ``_cuts`` leaves whole. A cut meets a scan exactly when some sun
        sample of its span (t0 .. t1 + after_scan + min_sun_time) is too near its arc: a cut
        from a sample at time s starts lookahead + pad + step before it, ends pad + step after
        it, and its start is moved after_scan earlier. So in angular mode the starts are judged
        together (``SunGuard.clear_arcs``), as one array; box mode tests each start's scan."""
        import numpy as np

        t0, t1, az, az_hi, el = _scan_arrays(window)
        if self.mode == "box" or bool((t1 <= t0).any()):
            from scheduler_server.observing.policies.basic import blocks

            scans = [window.scan_at(t) for t in window.t]
            return np.array([len(blocks.overlaps(s.t0, s.t1, self._cuts(s, ctx))) == 0 for s in scans], dtype=bool)
        stops = (t1.astype(float) + ctx.after_scan) + ctx.guard.lookahead
        return ctx.guard.clear_arcs(az, az_hi, el, t0.astype(float), stops)

    def _box_clear(self, box: tuple[float, float, float, float], t0: float, t1: float, ctx: Context) -> bool:
        """Box mode: the sun stays farther than min_angle_alt (plus a margin) from the box's elevations."""
        if self.mode != "box":
            return True
        _, _, el = ctx.sun.window(t0, t1)
        return bool(((el < box[2] - self.min_angle_alt - 1.0) | (el > box[3] + self.min_angle_alt + 1.0)).all())

    def _box_unsafe(self, scan: Scan, ctx: Context) -> np.ndarray:
        import numpy as np

        from scheduler_server.observing.policies.basic import blocks
        from scheduler_server.observing.sky.geometry import wrap180

        t, az, el = ctx.sun.window(scan.t0, scan.t1 + ctx.after_scan)
        d_az = np.abs(wrap180(scan.az - az)) - scan.throw
        d_alt = np.abs(scan.el - el)
        bad = (d_az <= self.min_angle_az) & (d_alt <= self.min_angle_alt)
        reach = self.n_buffer * self.time_step + self.time_step
        return blocks.pad(blocks.from_mask(t, bad), reach, reach)


class MoonAvoidance(PolicyConfig):
    """Cut every part of a scan closer to the moon than min_angle (toast's ground scheduler uses 20 deg)."""

    min_angle: float = Field(20.0, ge=0, le=90, description="Least angular distance (deg) from the moon to a scan.")

    def apply(self, scans: list[Scan], ctx: Context) -> list[Scan]:
        import numpy as np

        from scheduler_server.observing.policies.basic import blocks
        from scheduler_server.observing.sky.geometry import cos_distance_to_box

        limit = np.cos(np.radians(self.min_angle))
        out: list[Scan] = []
        for scan in scans:
            t, _, el, trig = ctx.moon.window_with_trig(scan.t0, scan.t1)
            if scan.el - el.max() >= self.min_angle:
                out.append(scan)  # the moon is too low to matter: elevation difference bounds the distance
                continue
            near = cos_distance_to_box(*trig, (scan.az, scan.az_hi, scan.el, scan.el)) > limit
            cuts = blocks.pad(blocks.from_mask(t, near), ctx.moon.step, ctx.moon.step)
            out += _log_cut(blocks.cut_scan(scan, cuts, "moon-avoidance"), scan, "moon-avoidance")
        return out


class MinDuration(PolicyConfig):
    """Drop scans (or, as calibration-min-duration, observing windows) shorter than min_duration."""

    min_duration: float = Field(300.0, ge=0, description="Shortest scan (or window) kept, seconds.")

    def windows(self, windows: list[Window], rule: str) -> list[Window]:
        """The observing windows whose start times span at least min_duration (schedlib 2023's use)."""
        kept = []
        for window in windows:
            if window.t1 - window.t0 < self.min_duration:
                log.info(
                    "%s: dropped the %s %s window at %s (%d s of starts < %g s)",
                    rule,
                    window.target,
                    window.mode,
                    _hhmm(window.t0),
                    window.t1 - window.t0,
                    self.min_duration,
                )
                continue
            kept.append(window)
        return kept

    def apply(self, scans: list[Scan], rule: str, kind: str | None = None) -> list[Scan]:
        kept = []
        for scan in scans:
            if (kind is None or scan.kind == kind) and scan.duration < self.min_duration:
                log.info(
                    "%s: dropped %s %s at %s (%d s < %g s)",
                    rule,
                    scan.kind,
                    scan.name,
                    _hhmm(scan.t0),
                    scan.duration,
                    self.min_duration,
                )
                continue
            kept.append(scan)
        return kept


class DayMod(PolicyConfig):
    """Calibrate only on sidereal days whose index since day_ref, modulo day_mod, is day."""

    day: int = Field(0, ge=0, description="Which day of the cycle (0-based).")
    day_mod: int = Field(1, ge=1, description="Length of the cycle in sidereal days; 1 is every day.")
    day_ref: datetime = Field(
        datetime(2014, 1, 1, tzinfo=UTC), description="Start of day 0 (UTC if no offset is given)."
    )

    @field_validator("day_ref")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _in_cycle(self):
        if self.day >= self.day_mod:
            raise ValueError(f"day ({self.day}) must be less than day_mod ({self.day_mod})")
        return self

    def keep(self, window: Window) -> bool:
        index = math.floor((window.t0 - self.day_ref.timestamp()) / SIDEREAL_DAY_SECONDS)
        return index % self.day_mod == self.day


class DriftMode(PolicyConfig):
    """Calibrate on planets rising, setting or both."""

    mode: Literal["rising", "setting", "both"] = Field("both", description="Which drift direction to use.")

    def keep(self, window: Window) -> bool:
        return self.mode in ("both", window.mode)


class AltRange(PolicyConfig):
    """Calibration scans only at boresight elevations within alt_range."""

    alt_range: tuple[float, float] = Field((20.0, 90.0), description="Lowest and highest elevation (deg).")

    @field_validator("alt_range")
    @classmethod
    def _ordered(cls, value):
        if not 0 <= value[0] < value[1] <= 90:
            raise ValueError("must be [low, high] with 0 <= low < high <= 90")
        return value

    def trim(self, window: Window) -> list[Window]:
        return window.trimmed((window.el >= self.alt_range[0]) & (window.el <= self.alt_range[1]))


class Spec(PolicyConfig):
    bounds_x: tuple[float, float] = Field((-0.5, 0.5), description="Cross-elevation extent of the array (deg).")
    bounds_y: tuple[float, float] = Field((-0.5, 0.5), description="Elevation extent of the array (deg).")

    @model_validator(mode="after")
    def _ordered(self):
        if self.bounds_x[0] >= self.bounds_x[1] or self.bounds_y[0] >= self.bounds_y[1]:
            raise ValueError("bounds must be [low, high] with low < high")
        return self


class MakeSourcePlan(PolicyConfig):
    """Where and how long a planet takes to drift through the array footprint."""

    specs: tuple[Spec, ...] = Field(
        (Spec(),), min_length=1, max_length=64, description="Array footprint(s): bounds_x, bounds_y in deg."
    )
    spec_shape: Literal["ellipse", "box"] = Field("ellipse", description="Shape of each footprint.")
    max_obs_length: float = Field(6000.0, gt=0, description="Longest calibration scan, seconds.")

    def footprint(self) -> Footprint:
        from scheduler_server.observing.policies.basic.planets import Footprint

        return Footprint(tuple((*s.bounds_x, *s.bounds_y) for s in self.specs), self.spec_shape)


class MakeSourceScan(PolicyConfig):
    """Which start to use in each observing window."""

    preferred_length: float = Field(
        1800.0, gt=0, description="The random start offset leaves this much of the window (s)."
    )


def _scan_arrays(window: Window):
    """``window.scan_at`` of every start as arrays (t0, t1, az, az_hi, el), with its roundings exactly."""
    import numpy as np

    length, az, el, throw = (
        np.interp(window.t, window.t, arr) for arr in (window.length, window.az, window.el, window.throw)
    )
    t0 = np.rint(window.t).astype(np.int64)  # round() of a float: half to even, as rint
    t1 = t0 + np.rint(length).astype(np.int64)
    az_r = _round2(np.remainder(az, 360.0))  # numpy's float remainder is Python's %
    return t0, t1, az_r, az_r + _round2(throw), _round2(el)


def _round2(values):
    """``round(x, 2)`` of each value exactly: rint(100 x) / 100 except where 100 x is within rounding
    of a half, where the product's rounding could differ from the exact decimal rounding Python does."""
    import numpy as np

    scaled = values * 100.0
    out = np.rint(scaled) / 100.0
    for i in np.flatnonzero(np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6):
        out[i] = round(float(values[i]), 2)
    return out


def _log_cut(pieces: list[Scan], original: Scan, rule: str) -> list[Scan]:
    if not pieces:
        log.info("%s: dropped %s %s at %s entirely", rule, original.kind, original.name, _hhmm(original.t0))
    elif len(pieces) != 1 or pieces[0] is not original:
        log.info("%s %s at %s: %s", original.kind, original.name, _hhmm(original.t0), pieces[0].cuts[-1])
    return pieces


def _hhmm(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
