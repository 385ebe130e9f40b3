"""The sun rule's trim of planet windows judges all start times as one array (SunGuard.clear_arcs):
it keeps exactly the starts that testing each start's scan on its own (as the rule cuts a scan) keeps."""

from __future__ import annotations

import numpy as np
import pytest

from scheduler_server.observing.policies.basic import blocks, planets
from scheduler_server.observing.policies.basic.avoidance import SunGuard
from scheduler_server.observing.policies.basic.config import BasicConfig
from scheduler_server.observing.policies.basic.rules import Context
from scheduler_server.observing.sky.ephemerides import ATACAMA, Samples
from scheduler_server.observing.sky.geometry import cos_distance_to_box
from tests.observing.conftest import constructed_sky, utc


def _each_arc(guard: SunGuard, az_lo, az_hi, el, starts, stops) -> np.ndarray:
    clear = []
    for k in range(len(starts)):
        _, _, _, trig = guard.sun.window_with_trig(starts[k], stops[k])
        clear.append(not np.any(cos_distance_to_box(*trig, (az_lo[k], az_hi[k], el[k], el[k])) > guard._cos_limit))
    return np.array(clear)


def _arcs_near_the_sun(sun: Samples, rng, t0: float, n: int, spread: float):
    starts = np.sort(np.round(rng.uniform(t0, t0 + 20 * 3600, n)))
    at = np.interp(starts, sun.t, np.arange(len(sun.t))).astype(int)
    az_lo = np.round((sun.az[at] + rng.uniform(-spread, spread, n)) % 360.0, 2)
    el = np.round(np.clip(sun.el[at] + rng.uniform(-spread, spread, n), 0, 90), 2)
    az_hi = az_lo + np.round(rng.choice([0.0, 10.0, 40.0, 400.0], n), 2)
    stops = starts + rng.uniform(0, 4000, n)
    return az_lo, az_hi, el, starts, stops


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_clear_arcs_is_testing_each_arc_on_the_real_sun(seed):
    t0 = utc(2024, 12, 20)
    sun = Samples("sun", ATACAMA, t0 - 1800, t0 + 18 * 3600, 10)  # spans past the grid are computed on the fly
    guard = SunGuard(sun, 41.0, 1980.0, 30.0)
    arcs = _arcs_near_the_sun(sun, np.random.default_rng(seed), t0, 300, 70.0)
    got = guard.clear_arcs(*arcs)
    assert got.tolist() == _each_arc(guard, *arcs).tolist()
    assert 0.1 < got.mean() < 0.9  # both answers, many times


def test_clear_arcs_at_the_limit_on_a_constructed_sky():
    # A sun moving fast and arcs placed right about the limit from it: the hull's slack decides nothing.
    sun = constructed_sky("sun", 1.7e9, 6, 10, 90.0, 30.0, daz_per_min=0.8, del_per_min=0.2)
    guard = SunGuard(sun, 20.0, 300.0, 0.0)
    rng = np.random.default_rng(7)
    starts = np.sort(np.round(rng.uniform(1.7e9, 1.7e9 + 5 * 3600, 400)))
    at = np.interp(starts, sun.t, np.arange(len(sun.t))).astype(int)
    el = np.round(sun.el[at] + rng.choice([-1, 1], 400) * (20.1 + rng.uniform(-0.3, 0.3, 400)), 2)
    az_lo = np.round(sun.az[at] % 360.0 - 5.0, 2)
    arcs = (az_lo, az_lo + 10.0, el, starts, starts + rng.uniform(0, 1200, 400))
    got = guard.clear_arcs(*arcs)
    assert got.tolist() == _each_arc(guard, *arcs).tolist()
    assert got.any() and not got.all()
    assert guard.clear_arcs(*(a[:0] for a in arcs)).tolist() == []


def _scan_by_scan(rule, window, ctx) -> list[list[int]]:
    """The rule's trim as it was: each start's scan cut by the rule, kept when no cut meets it."""
    keep = [len(blocks.overlaps(s.t0, s.t1, rule._cuts(s, ctx))) == 0 for s in map(window.scan_at, window.t)]
    return [w.t.tolist() for w in window.trimmed(np.array(keep, dtype=bool))]


@pytest.mark.parametrize("day", [utc(2024, 3, 4), utc(2024, 8, 1), utc(2025, 6, 10), utc(2025, 9, 1)])
def test_trim_keeps_the_starts_the_scan_by_scan_test_keeps(day):
    config = BasicConfig()
    rules, site = config.rules, config.site.to_site()
    sun = Samples("sun", site, day - 1800, day + 2 * 86400, rules.sun_avoidance.time_step)
    moon = Samples("moon", site, day - 1800, day + 2 * 86400, 60)
    ctx = Context(site, sun, moon, rules.sun_avoidance.guard(sun), after_scan=config.telescope.bias_step_seconds)
    footprint, longest = rules.make_source_plan.footprint(), rules.make_source_plan.max_obs_length
    trimmed, partly = 0, 0
    for target in ("saturn", "uranus", "jupiter", "mars", "venus", "neptune"):
        windows = planets.windows_near(target, site, day, day + 86400, footprint, longest)
        for window in [w for w in windows if day - 3600 <= w.t0 <= day + 86400]:
            got = [w.t.tolist() for w in rules.sun_avoidance.trim(window, ctx)]
            assert got == _scan_by_scan(rules.sun_avoidance, window, ctx), (target, window.t0)
            trimmed += got != [window.t.tolist()]
            partly += got not in ([window.t.tolist()], [])
    assert trimmed  # the sun removed starts somewhere in each case
    assert partly or day in (utc(2024, 3, 4), utc(2025, 6, 10))  # and some windows only in part


def test_scan_arrays_round_as_scan_at_does():
    from scheduler_server.observing.policies.basic.rules import _round2

    rng = np.random.default_rng(5)
    values = np.concatenate([rng.uniform(-400, 400, 50000), np.arange(0, 400, 0.005), np.arange(0, 1, 0.125)])
    assert _round2(values).tolist() == [round(float(v), 2) for v in values]  # halves included (0.125, 0.005 ...)
