"""Each rule on constructed cases whose answer is known by hand."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from scheduler_server.observing.policies.basic import planets
from scheduler_server.observing.policies.basic.blocks import CALIBRATION, MASTER, Scan
from scheduler_server.observing.policies.basic.planets import Footprint, Window
from scheduler_server.observing.policies.basic.rules import (
    AltRange,
    Context,
    DayMod,
    DriftMode,
    MinDuration,
    MoonAvoidance,
    SunAvoidance,
)
from scheduler_server.observing.sky.ephemerides import ATACAMA
from tests.observing.conftest import constructed_sky, utc

T0 = utc(2024, 6, 1)
MINUTE = 60


def scan(t0=T0, hours=8.0, az=200.0, el=40.0, throw=30.0, kind=MASTER, name="field"):
    return Scan(name, kind, t0, t0 + int(hours * 3600), az, el, throw)


def context(rule: SunAvoidance, sun_az_per_min=0.5, moon=None, after_scan=0.0):
    # The sun at el 40, az 100 at T0, moving +0.5 deg of azimuth a minute.
    sun = constructed_sky("sun", T0, 10, rule.time_step, 100.0, 40.0, sun_az_per_min)
    moon = moon or constructed_sky("moon", T0, 10, 60, 0.0, -60.0)
    return Context(ATACAMA, sun, moon, rule.guard(sun), after_scan=after_scan)


def gap_at_distance(angle: float, el: float = 40.0) -> float:
    """Azimuth gap at which two points at elevation ``el`` are ``angle`` apart."""
    e = math.radians(el)
    return math.degrees(math.acos((math.cos(math.radians(angle)) - math.sin(e) ** 2) / math.cos(e) ** 2))


def test_sun_avoidance_cuts_the_scan_when_the_sun_comes_within_min_angle():
    rule = SunAvoidance(min_angle=41, min_sun_time=0, n_buffer=0)
    g = gap_at_distance(41)  # 54.4 deg
    enters = T0 + (100.0 - g) / 0.5 * MINUTE  # sun az reaches 200 - g: 91.2 min
    leaves = T0 + (130.0 + g) / 0.5 * MINUTE  # sun az passes 230 + g: 368.8 min
    first, second = rule.apply([scan()], context(rule))
    assert first.t0 == T0 and enters - 60 <= first.t1 <= enters
    assert leaves <= second.t0 <= leaves + 60 and second.t1 == T0 + 8 * 3600
    assert first.cuts == second.cuts and first.cuts[0].startswith("sun-avoidance: removed 2024-06-01 01:3")


def test_min_sun_time_ends_the_scan_that_much_earlier():
    rule = SunAvoidance(min_angle=41, min_sun_time=1800, n_buffer=0)
    enters = T0 + (100.0 - gap_at_distance(41)) / 0.5 * MINUTE - 1800
    first = rule.apply([scan()], context(rule))[0]
    assert enters - 60 <= first.t1 <= enters


def test_the_buffer_widens_each_unsafe_span_by_n_samples():
    plain = SunAvoidance(min_angle=41, min_sun_time=0, n_buffer=0)
    padded = SunAvoidance(min_angle=41, min_sun_time=0, n_buffer=6, time_step=10)
    a = plain.apply([scan()], context(plain))
    b = padded.apply([scan()], context(padded))
    assert a[0].t1 - b[0].t1 == 60 and b[1].t0 - a[1].t0 == 60


def test_time_on_the_arc_after_the_stop_time_is_protected_too():
    rule = SunAvoidance(min_angle=41, min_sun_time=0, n_buffer=0)
    a = rule.apply([scan()], context(rule))
    b = rule.apply([scan()], context(rule, after_scan=120))
    assert a[0].t1 - b[0].t1 == 120  # the first piece ends early enough for the bias step after it


def test_box_mode_is_the_seeds_test():
    # Seed: unsafe where |d_az| - throw <= 6 and |d_alt| <= 6, d_az from the scan's start az.
    # Same elevation, so only azimuth matters: |200 - az_sun| <= 36, i.e. az_sun in 164..236.
    rule = SunAvoidance(mode="box", min_angle=0, min_sun_time=0, n_buffer=0, min_angle_az=6, min_angle_alt=6)
    first, second = rule.apply([scan()], context(rule))
    assert first.t1 == pytest.approx(T0 + (164 - 100) / 0.5 * MINUTE - 10, abs=10)
    assert second.t0 == pytest.approx(T0 + (236 - 100) / 0.5 * MINUTE + 10, abs=10)


def test_box_mode_misses_what_the_angular_floor_catches():
    # The sun 1 deg higher than the box allows, right on the scan: the seed's box test
    # passes it, the angular floor (min_angle) does not.
    rule = SunAvoidance(mode="box", min_angle=0, min_sun_time=0, n_buffer=0, min_angle_alt=6)
    high = scan(el=33.0)  # |dalt| = 7 > 6
    assert rule.apply([high], context(rule)) == [high]
    floor = SunAvoidance(mode="box", min_angle=10, min_sun_time=0, n_buffer=0, min_angle_alt=6)
    assert len(floor.apply([high], context(floor))) == 2


def test_a_scan_the_sun_never_nears_is_left_alone():
    rule = SunAvoidance()
    far = scan(az=300.0, hours=1.0)  # the sun is at az 100..130 during this hour
    assert rule.apply([far], context(rule)) == [far]


def test_moon_avoidance_cuts_at_its_own_angle():
    moon = constructed_sky("moon", T0, 10, 60, 100.0, 40.0, 0.5)  # the sun's track of the tests above
    sun = constructed_sky("sun", T0, 10, 10, 0.0, -80.0)  # and the sun out of the way
    ctx = Context(ATACAMA, sun, moon, SunAvoidance().guard(sun), 0)
    g = gap_at_distance(20)
    first, second = MoonAvoidance(min_angle=20).apply([scan()], ctx)
    assert T0 + (100 - g) / 0.5 * MINUTE - 120 <= first.t1 <= T0 + (100 - g) / 0.5 * MINUTE
    assert "moon-avoidance" in first.cuts[0]


def test_min_duration_drops_short_scans_of_the_kind_asked():
    short_cal = scan(hours=0.05, kind=CALIBRATION)  # 180 s
    short_master = scan(hours=0.05)
    long = scan(hours=1)
    rule = MinDuration(min_duration=300)
    assert rule.apply([short_cal, short_master, long], "calibration-min-duration", kind=CALIBRATION) == [
        short_master,
        long,
    ]
    assert rule.apply([short_cal, short_master, long], "min-duration") == [long]


def window(t0: int, mode="rising", el=(30.0, 31.0, 32.0)) -> Window:
    n = len(el)
    return Window(
        "uranus", mode, t0 + 120.0 * np.arange(n), np.full(n, 600.0), np.full(n, 80.0), np.array(el), np.full(n, 2.0)
    )


def test_day_mod_keeps_every_nth_sidereal_day():
    ref = datetime(2024, 1, 1, tzinfo=UTC)
    rule = DayMod(day=1, day_mod=3, day_ref=ref)
    sidereal = 86164.0905
    starts = [int(ref.timestamp() + k * sidereal + 3600) for k in range(9)]
    kept = [k for k, t in enumerate(starts) if rule.keep(window(t))]
    assert kept == [1, 4, 7]
    assert DayMod().keep(window(starts[0]))  # the default: every day


def test_day_mod_rejects_a_day_outside_the_cycle():
    with pytest.raises(ValueError, match="day .* must be less than day_mod"):
        DayMod(day=3, day_mod=3)


def test_drift_mode_keeps_the_asked_direction():
    rising, setting = window(T0, "rising"), window(T0, "setting")
    assert [DriftMode(mode="rising").keep(w) for w in (rising, setting)] == [True, False]
    assert [DriftMode(mode="setting").keep(w) for w in (rising, setting)] == [False, True]
    assert [DriftMode().keep(w) for w in (rising, setting)] == [True, True]


def test_alt_range_trims_windows_to_the_allowed_elevations():
    w = window(T0, el=(10.0, 15.0, 25.0, 30.0, 35.0, 18.0, 22.0))
    pieces = AltRange(alt_range=(20, 32)).trim(w)
    assert [p.el.tolist() for p in pieces] == [[25.0, 30.0], [22.0]]
    assert pieces[0].t0 == T0 + 240


def test_footprint_extent_across_a_tilted_track():
    ellipse = Footprint(((-0.5, 0.5, -0.5, 0.5),), "ellipse")
    box = Footprint(((-0.5, 0.5, -0.5, 0.5),), "box")

    def extent(fp, tan):
        return np.ravel(fp.x_extent(np.array([tan])))

    assert np.allclose(extent(ellipse, 0.0), (-0.5, 0.5))
    assert np.allclose(extent(ellipse, 1.0), (-math.sqrt(0.5), math.sqrt(0.5)))
    assert np.allclose(extent(box, 1.0), (-1.0, 1.0))
    shifted = Footprint(((0.5, 1.5, -0.5, 0.5),), "box")  # array right of the boresight: the boresight goes left
    assert np.allclose(extent(shifted, 0.0), (-1.5, -0.5))


def test_a_calibration_scan_follows_the_planet_through_the_footprint():
    """The planet enters the array at the bottom edge when the scan starts and leaves at the
    top when it stops, in the middle of the azimuth throw; checked with astropy."""
    from tests.observing.test_sky import astropy_altaz

    fp = Footprint(((-0.5, 0.5, -0.5, 0.5),), "ellipse")
    found = [
        w
        for w in planets.windows_near("uranus", ATACAMA, utc(2024, 10, 1), utc(2024, 10, 2), fp, 6000)
        if w.mode == "rising"
    ]
    cal = planets.pick_scan(found[0], 1800)
    assert cal.kind == CALIBRATION and 100 < cal.duration < 6000
    az, el = astropy_altaz("uranus", np.array([cal.t0, cal.t1, (cal.t0 + cal.t1) / 2], dtype=float))
    assert el[0] == pytest.approx(cal.el - 0.5, abs=0.02)
    assert el[1] == pytest.approx(cal.el + 0.5, abs=0.02)
    assert az[2] == pytest.approx(cal.az + cal.throw / 2, abs=0.05)


def test_the_start_within_a_window_depends_on_the_day_only():
    fp = Footprint(((-0.5, 0.5, -0.5, 0.5),), "ellipse")
    a = planets.windows_near("saturn", ATACAMA, utc(2024, 10, 1), utc(2024, 10, 2), fp, 6000)
    b = planets.windows_near("saturn", ATACAMA, utc(2024, 10, 1, 13), utc(2024, 10, 3), fp, 6000)
    common = {w.t0 for w in a} & {w.t0 for w in b}
    assert common
    scans_a = {planets.pick_scan(w, 1800) for w in a if w.t0 in common}
    scans_b = {planets.pick_scan(w, 1800) for w in b if w.t0 in common}
    assert scans_a == scans_b
    starts = [planets.pick_scan(w, 1800).t0 - w.t0 for w in a]
    assert len(set(starts)) > 1  # the offsets really are drawn, not all zero
