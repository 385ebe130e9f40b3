"""An independent safety check of a command *script*.

It does not look at the blocks or routes that produced a script, only at the
script's text: it reads its calls (``script_reader``), replays them
(``replay.SeedReplay`` with the timing model ``telescope.TelescopeModel`` for the
seed's shape; ``sat_replay.SatReplay`` with the checker's own platform data,
``platforms.yaml``, for the sequencer's ``import sorunlib as run`` shape, which also
reports the SAT's hazards: the HWP, the boresight, the detectors' bias, time and
ranges), and so reconstructs what the
telescope occupies at every moment: a point while it holds still, the swept arc
during a scan (its whole throw, and the drift), the az/el rectangle spanned by a
slew's two ends (whatever the axis speeds, the path stays inside it). Then it
samples every span and reports every moment the sun is closer than ``min_angle``.

The geometry is done here again, in its own form, rather than borrowed from the
policy's own code. What cannot be known is said, not guessed: before the first
``acu.move_to`` the pointing is unknown and nothing is checked; without a start
time, the timeline begins at the first ``wait_until``. A statement the checker
does not understand makes the script fail, since its effect on the telescope is
unknown.
"""

from __future__ import annotations

import numpy as np

from scheduler_server.observing.safety import platforms
from scheduler_server.observing.safety.findings import Report, Span, Violation
from scheduler_server.observing.safety.replay import SeedReplay
from scheduler_server.observing.safety.sat_replay import SatReplay
from scheduler_server.observing.safety.script_reader import Reading, read_script
from scheduler_server.observing.sky import ephemerides as sky
from scheduler_server.observing.sky.site import Site
from scheduler_server.observing.telescope import TelescopeModel

__all__ = ["Report", "Span", "Violation", "check_script"]

MAX_SAMPLES = 1_000_000  # moments judged at once: 116 days at 10 s, some hundred MB of arrays


def check_script(
    text: str,
    min_angle: float,
    model: TelescopeModel | None,
    site: sky.Site,
    start: float | None = None,
    step: int = 10,
    sun: sky.Samples | None = None,
) -> Report:
    """Replay ``text`` and judge every ``step`` seconds of it (and every span's ends).

    A seed-shaped script is replayed with ``model``'s durations (the default model if None) and held to
    ``min_angle``. A sequencer-shaped one (``import sorunlib as run``) with the checker's own platform data,
    for the platform its ``# platform:`` header names, and held to the larger of ``min_angle`` and that
    platform's (or its header's) sun limit, and judged at that platform's site (its data's, never ``site``,
    which is the caller's: only a platform the data does not place is judged at ``site``). ``sun`` may hold
    sun positions already sampled (on any grid) to save work; they are used only if taken at the site judged.
    """
    reading = read_script(text)
    report = Report(min_angle, problems=list(reading.problems))
    if reading.shape == "run":
        replay = _sat_replay(reading, start, report)
        site = _platform_site(replay.platform, site)
    else:
        replay = SeedReplay(model or TelescopeModel(), start, report)
    spans = replay.run(reading.calls)
    report.spans = len(spans)
    if spans and _judgeable(spans, step, report):
        try:
            _judge(spans, report.min_angle, site, step, sun, report)
        except ValueError as exc:
            if type(exc).__name__ != "EphemerisRangeError":
                raise
            report.problems.append(f"line {spans[0].line}: the script's times reach outside the ephemeris ({exc})")
    return report


def _judgeable(spans: list[Span], step: int, report: Report) -> bool:
    """A timeline of at most ``MAX_SAMPLES`` moments ``step`` apart (they must fit in memory); else a problem."""
    first, last = min(s.t0 for s in spans), max(s.t1 for s in spans)
    if (last - first) / step <= MAX_SAMPLES:
        return True
    report.problems.append(
        f"line {spans[0].line}: the script's timeline runs {(last - first) / 86400.0:.3g} days, more than the"
        f" {MAX_SAMPLES * step / 86400.0:.3g} the checker judges at once every {step} s: check it in parts"
    )
    return False


def _platform_site(platform: platforms.Platform, site: sky.Site) -> sky.Site:
    """Where the platform stands, from the checker's data; ``site`` if the data does not say."""
    if platform.site is None:
        return site
    return Site(platform.name, platform.name, *platform.site)


def _sat_replay(reading: Reading, start: float | None, report: Report) -> SatReplay:
    name = reading.header.get("platform")
    known = platforms.platform(name) if name else None
    if known is None:
        listed = ", ".join(platforms.names())
        report.problems.append(
            f"line 1: unknown platform {name!r}: its limits are not known (known: {listed})"
            if name
            else f"line 1: no '# platform: <name>' header line: the telescope's limits are unknown (known: {listed})"
        )
        known = platforms.platform(name or "?", known=False)
    platform, problems = platforms.narrowed(known, reading.header)
    report.problems.extend(f"line 1: {p}" for p in problems)
    report.platform = platform.name
    report.min_angle = max(report.min_angle, platform.sun_min_angle)
    return SatReplay(platform, start, report)


def _judge(
    spans: list[Span], min_angle: float, site: sky.Site, step: int, sun: sky.Samples | None, report: Report
) -> None:
    t, owner = _sample_times(spans, step)
    sun_az, sun_el = _sun(t, site, sun)
    boxes = np.array([(s.az[0], s.az[1], s.el[0], s.el[1]) for s in spans])
    # The elevation difference bounds the distance from below: only where it does
    # not settle the question is a sample a candidate (the closest approach is
    # reported among those). The distance per minute is the least over those, the
    # first sample of each minute and every span's ends (elsewhere the sun is
    # farther than the limit, and moves 0.25 deg a minute at most).
    near_mask = boxes[owner, 2] - sun_el < min_angle
    minute = np.floor(t / 60.0)
    change = owner[1:] != owner[:-1]
    keep = np.flatnonzero(
        near_mask | np.r_[True, minute[1:] != minute[:-1]] | np.r_[True, change] | np.r_[change, True]
    )
    t, owner, sun_az, sun_el = t[keep], owner[keep], sun_az[keep], sun_el[keep]
    all_dot = _cos_to_box(sun_az, sun_el, boxes[owner])
    report.sun_samples = _per_minute(t, all_dot)
    near = np.flatnonzero(near_mask[keep])
    if len(near) == 0:
        return
    who, dot = owner[near], all_dot[near]
    report.closest = float(np.degrees(np.arccos(min(1.0, dot.max()))))
    bad = dot > np.cos(np.radians(min_angle))
    if not bad.any():
        return
    distance = np.degrees(np.arccos(np.clip(dot, -1.0, 1.0)))
    for i in np.unique(who[bad]):
        sel = np.flatnonzero(bad & (who == i))
        worst = sel[np.argmin(distance[sel])]
        span, moments = spans[i], t[near][sel]
        report.violations.append(
            Violation(
                span.line,
                span.what,
                float(moments.min()),
                float(moments.max()),
                float(distance[worst]),
                float(sun_az[near][worst]),
                float(sun_el[near][worst]),
            )
        )


def _per_minute(t: np.ndarray, dot: np.ndarray) -> list[tuple[float, float]]:
    """The largest cosine (least distance) of each minute the samples ``t`` touch, as (minute, deg)."""
    order = np.argsort(t, kind="stable")  # spans follow each other: already sorted but for equal ends
    t, dot = t[order], dot[order]
    minute = np.floor(t / 60.0)
    starts = np.flatnonzero(np.r_[True, minute[1:] != minute[:-1]])
    best = np.maximum.reduceat(dot, starts)
    degrees = np.degrees(np.arccos(np.clip(best, -1.0, 1.0)))
    return list(zip((minute[starts] * 60.0).tolist(), np.round(degrees, 3).tolist()))


def _sample_times(spans: list[Span], step: int) -> tuple[np.ndarray, np.ndarray]:
    """Each span's start, every multiple of ``step`` inside it, and its end; with the span's index."""
    t0 = np.array([s.t0 for s in spans])
    t1 = np.array([s.t1 for s in spans])
    first = np.ceil(t0 / step) * step
    inner = np.maximum(0, np.ceil((t1 - first) / step)).astype(np.int64)  # grid points in [first, t1)
    counts = inner + 2
    owner = np.repeat(np.arange(len(spans)), counts)
    starts = np.cumsum(counts) - counts
    position = np.arange(len(owner)) - starts[owner]  # 0 .. counts-1 within each span
    t = first[owner] + (position - 1) * step
    t[position == 0] = t0
    last = starts + counts - 1
    t[last] = t1
    return t, owner


def _sun(t: np.ndarray, site: sky.Site, sun: sky.Samples | None) -> tuple[np.ndarray, np.ndarray]:
    """Sun positions at ``t``: from ``sun``'s grid where it covers them (linear in between:
    the sun moves 0.04 deg in 10 s), else computed."""
    if sun is None or getattr(sun, "site", None) is None or sun.site.key != site.key:
        return sky.altaz("sun", site, t)
    position = (t - sun.t[0]) / sun.step
    i = np.clip(np.floor(position).astype(np.int64), 0, len(sun.t) - 1)
    covered = (position >= 0) & (position <= len(sun.t) - 1)
    # Most sample times are grid times (both are multiples of the step): read them;
    # the others lie between two grid times, the shorter way round in azimuth.
    az, el = sun.az[i], sun.el[i]
    b = np.flatnonzero(covered & (position != i))
    if len(b):
        frac, lo = position[b] - i[b], i[b]
        turn = (sun.az[lo + 1] - az[b] + 180.0) % 360.0 - 180.0
        az[b] = (az[b] + frac * turn) % 360.0
        el[b] = el[b] + frac * (sun.el[lo + 1] - el[b])
    if not covered.all():
        az[~covered], el[~covered] = sky.altaz("sun", site, t[~covered])
    return az, el


def _cos_to_box(az, el, boxes) -> np.ndarray:
    """Cosine of the angle from each direction (az, el) to the nearest point of its box
    (rows of az_lo, az_hi, el_lo, el_hi).

    The nearest azimuth of the box is the one nearest ``az``, ``gap`` away. Along
    that meridian the cosine of the angle to elevation x is
    sin(el) sin(x) + cos(el) cos(gap) cos(x) = R cos(x - x_top), with
    R = hypot(sin el, cos el cos gap) and x_top = atan2(sin el, cos el cos gap):
    its largest value over the box's elevations is R where x_top lies inside them,
    else at one of their two ends (the nearer one, which for a sun behind the
    zenith is not always the one x_top is clamped to).
    """
    az_lo, az_hi, el_lo, el_hi = (np.radians(boxes[:, k]) for k in range(4))
    a, e = np.radians(az), np.radians(el)
    width = az_hi - az_lo
    into = (a - az_lo) % (2 * np.pi)
    inside = (into <= width) | (width >= 2 * np.pi)
    cos_gap = np.cos(np.where(inside, 0.0, np.minimum(into - width, 2 * np.pi - into)))
    sin_e, across = np.sin(e), np.cos(e) * cos_gap
    at_ends = np.maximum(sin_e * np.sin(el_lo) + across * np.cos(el_lo), sin_e * np.sin(el_hi) + across * np.cos(el_hi))
    top = np.arctan2(sin_e, across)
    return np.where((top >= el_lo) & (top <= el_hi), np.hypot(sin_e, across), at_ends)
