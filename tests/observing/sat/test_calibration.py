"""The sat policy's calibration scans: the source really crosses the wafer set during the scan.

Every scan is checked against a second computation written here: the source's position from astropy (its
own ephemeris and frames), and the wafers put on the sky from their (xi, eta) with the basis vectors of the
boresight (xi along increasing azimuth, eta along increasing elevation, the focal plane turned
counter-clockwise by the boresight angle: the convention the platforms' focus tables agree with, tested
below). A wafer is crossed when the source comes within its radius of the wafer's centre for some boresight
azimuth the sweep holds at that moment.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import pytest

from scheduler_server.observing.policies.basic.avoidance import SunGuard
from scheduler_server.observing.policies.sat import focalplane
from scheduler_server.observing.policies.sat.calibration import plan_calibration
from scheduler_server.observing.policies.sat.targets import CalTarget, CmbBlock
from scheduler_server.observing.sky.ephemerides import ATACAMA, Samples
from scheduler_server.observing.sky.geometry import angular_distance
from scheduler_server.observing.types import ScheduleInputError
from tests.observing.conftest import utc

DAY = 86400
T0 = utc(2023, 11, 10)  # Jupiter a week after opposition (up all night), Saturn in the evening
REACH = focalplane.COVER_MARGIN * focalplane.WAFER_RADIUS / np.cos(np.pi / focalplane.COVER_POINTS)


def target(source="jupiter", query="ws0", el=45.0, **kw) -> CalTarget:
    kw.setdefault("boresight", 0.0)
    kw.setdefault("origin", "cal_targets[0]")
    return CalTarget(source, query, el, **kw)


def plan(targets, t0=T0, t1=T0 + DAY, platform="satp1", **kw):
    return plan_calibration(list(targets), kw.pop("cmb", []), ATACAMA, t0, t1, platform=platform, **kw)


def astropy_altaz(source: str, times, radec=None):
    from astropy import units as u
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord, get_body, solar_system_ephemeris
    from astropy.time import Time
    from astropy.utils import iers

    iers.conf.auto_download = False
    iers.conf.auto_max_age = None
    where = EarthLocation.from_geodetic(ATACAMA.lon * u.deg, ATACAMA.lat * u.deg, ATACAMA.elevation * u.m)
    when = Time(np.asarray(times, float), format="unix", scale="utc")
    with solar_system_ephemeris.set("builtin"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = AltAz(obstime=when, location=where, pressure=0 * u.hPa)
        body = SkyCoord(radec[0] * u.deg, radec[1] * u.deg) if radec else get_body(source, when, where)
        seen = body.transform_to(frame)
    return seen.az.deg, seen.alt.deg


@lru_cache(maxsize=64)
def wafer_on_sky(wafer: str, boresight: float, el_bore: float, offsets=(0.0, 0.0)) -> tuple[float, float]:
    """Azimuth offset from the boresight and elevation of a wafer centre, the boresight at (0, el_bore)."""
    xi0, eta0 = np.add(focalplane.WAFERS[wafer], offsets)
    r = np.radians(boresight)
    xi, eta = np.radians([xi0 * np.cos(r) - eta0 * np.sin(r), xi0 * np.sin(r) + eta0 * np.cos(r)])
    e = np.radians(el_bore)
    forward = np.array([np.cos(e), 0.0, np.sin(e)])  # (north, east, up) of the boresight at azimuth 0
    east, up = np.array([0.0, 1.0, 0.0]), np.array([-np.sin(e), 0.0, np.cos(e)])
    p = np.sqrt(1.0 - xi**2 - eta**2) * forward + xi * east + eta * up
    return float(np.degrees(np.arctan2(p[1], p[0]))), float(np.degrees(np.arcsin(p[2])))


def distances(scan, times, radec=None, offsets=(0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """(wafers, times) distance of the source from each wafer centre, the sweep's best azimuth; source el."""
    az, el = astropy_altaz(scan.source, times, radec)
    sweep_lo = scan.az + scan.az_drift * (times - scan.t0)
    rows = []
    for wafer in scan.array_query.split(","):
        d_az, w_el = wafer_on_sky(wafer, scan.boresight, scan.el, offsets)
        lo = sweep_lo + d_az
        near = lo + ((az - lo) % 360.0 if scan.throw < 360 else 0.0)  # the source's az, on the sweep's turn
        centre_az = np.clip(near, lo, lo + scan.throw)
        rows.append(angular_distance(near, el, centre_az, w_el))
    return np.array(rows), el


def assert_crosses(scan, radec=None, whole=True, offsets=(0.0, 0.0)):
    """The source is in (or between two wafers of) the footprint mid-scan, passes over every wafer's centre it
    reaches (all, if whole), and (whole) enters at one
    edge of the footprint at t0 and leaves at the other at t1."""
    times = np.linspace(scan.t0, scan.t1, 200)
    d, el = distances(scan, times, radec, offsets)
    # Neighbouring wafers leave gaps of up to 0.7 deg between their circles.
    assert d[:, 100].min() < REACH + 0.4, "source outside the footprint at mid-scan"
    centres = np.array([wafer_on_sky(w, scan.boresight, scan.el, offsets)[1] for w in scan.array_query.split(",")])
    passed = (centres >= el.min()) & (centres <= el.max())  # all of them, for a whole crossing
    assert passed.any() and (passed.all() or not whole)
    assert d.min(axis=1)[passed].max() < 0.3, f"a wafer's centre is never crossed: {d.min(axis=1)}"
    if whole:
        low, high = min(centres) - REACH, max(centres) + REACH
        first, last = (low, high) if scan.direction == "rising" else (high, low)
        assert el[0] == pytest.approx(first, abs=0.03)
        assert el[-1] == pytest.approx(last, abs=0.03)
    assert (np.diff(el) > 0).all() == (scan.direction == "rising")
    assert 0.0 < scan.throw < 60.0


@pytest.mark.parametrize(
    "source, query, el, boresight",
    [
        ("jupiter", "ws0", 45.0, 0.0),
        ("jupiter", "bottom", 48.0, 0.0),
        ("jupiter", "right", 40.0, 0.0),
        ("saturn", "left", 45.0, 45.0),
        ("saturn", "right", 45.0, -45.0),
        ("moon", "ws0,ws4", 40.0, 0.0),
    ],
)
def test_the_source_crosses_every_wafer_of_the_set(source, query, el, boresight):
    found = plan([target(source, query, el, boresight=boresight)])
    assert not found.dropped and len(found) == 1
    assert_crosses(found[0])


def test_a_fixed_source_from_ra_dec_and_a_fixed_sweep():
    found = plan([target("rcw38", "ws0,ws1", 50.0, drift=False)])
    assert found[0].az_drift == 0.0 and not found.dropped
    assert_crosses(found[0], radec=(8.98 * 15.0, -47.5))


def test_a_source_given_by_ra_dec_and_focal_plane_offsets():
    radec = (100.0, -40.0)
    mine = target("my-source", "ws5", 45.0, ra=radec[0], dec=radec[1], boresight=45.0)
    assert_crosses(plan([mine])[0], radec=radec)
    shifted = plan([mine], xi_offset=-1.0, eta_offset=1.5)[0]
    assert_crosses(shifted, radec=radec, offsets=(-1.0, 1.5))
    assert shifted.t0 != plan([mine])[0].t0


def test_drift_follows_the_source_with_a_smaller_throw():
    drifting, fixed = plan([target(query="bottom", el=48.0)])[0], plan([target(query="bottom", el=48, drift=False)])[0]
    assert (drifting.t0, drifting.t1) == (fixed.t0, fixed.t1)
    assert fixed.az_drift == 0.0 and drifting.az_drift != 0.0
    assert drifting.throw < fixed.throw - 1.0
    assert_crosses(drifting)
    assert_crosses(fixed)


def test_rising_and_setting_pick_their_crossing():
    rising = plan([target(source_direction="rising")])[0]
    setting = plan([target(source_direction="setting")])[0]
    assert (rising.direction, setting.direction) == ("rising", "setting")
    assert_crosses(rising)
    assert_crosses(setting)
    # Rising in the east, setting in the west, at the same elevation.
    assert 0 < rising.az % 360 < 180 < setting.az % 360 < 360
    either = plan([target()])[0]
    assert either.t0 == min(rising.t0, setting.t0)


def test_a_plan_rows_window_picks_the_crossing_it_overlaps():
    setting = plan([target(source_direction="setting")])[0]
    row = target(t0=setting.t0 - 3600.0, t1=setting.t0 + 600.0, origin="cal.txt:4", tag="uid-7")
    found = plan([row])
    assert found[0].t0 == setting.t0 and found[0].direction == "setting"
    assert found[0].tag == "jupiter,setting,ws0,uid-7" and found[0].origin == "cal.txt:4"
    late = plan([target(t0=T0 + 2 * DAY, t1=T0 + 2 * DAY + 3600.0)])  # not this window's row
    assert len(late) == 0 and not late.dropped


def test_az_branch_wraps_the_sweep_and_the_az_range_holds_it():
    base = plan([target(source_direction="setting")])[0]
    for branch in (0.0, 180.0, 360.0, 500.0):
        scan = plan([target(source_direction="setting", az_branch=branch)])[0]
        assert (scan.t0, scan.t1, scan.throw) == (base.t0, base.t1, base.throw)
        assert branch - 180.0 <= scan.az < branch + 180.0
        assert (scan.az - base.az) % 360.0 == pytest.approx(0.0, abs=1e-9)
    held = plan([target(source_direction="setting", az_branch=500.0)], az_limits=(-45.0, 405.0))[0]
    turn = 0.5**2 / 1.0  # the default az_speed^2 / az_accel: the turnarounds stay inside too
    assert (
        -45.0 + turn <= held.az and held.az + held.throw + max(0.0, held.az_drift * (held.t1 - held.t0)) <= 405 - turn
    )
    outside = plan([target(source_direction="setting")], az_limits=(0.0, 20.0))
    assert len(outside) == 0 and "az range" in outside.dropped[0].reason


def test_a_crossing_cut_by_the_window_needs_allow_partial():
    whole = plan([target(query="bottom", el=48.0, source_direction="rising")])[0]
    cut = (whole.t0 + whole.t1) / 2.0
    refused = plan([target(query="bottom", el=48.0, source_direction="rising")], t0=cut, t1=cut + DAY / 2)
    assert len(refused) == 0 and "whole" in refused.dropped[0].reason
    kept = plan([target(query="bottom", el=48.0, source_direction="rising", allow_partial=True)], t0=cut)
    scan = kept[0]
    assert scan.partial and scan.t0 == pytest.approx(cut, abs=1.0) and scan.t1 == pytest.approx(whole.t1, abs=2.0)
    assert_crosses(scan, whole=False)
    # A source that never climbs the footprint's height (Jupiter peaks near 54 deg, "middle" reaches 69).
    assert "whole" in plan([target(query="middle")]).dropped[0].reason
    high = plan([target(query="middle", allow_partial=True)])[0]
    assert high.partial and high.t1 - high.t0 > 1800


def test_allow_partial_override_retries_a_plan_row_only():
    row = target(query="middle", t0=T0, t1=T0 + DAY, origin="cal.txt:3")
    assert len(plan([row])) == 0 and len(plan([target(query="middle")], allow_partial_override=True)) == 0
    retried = plan([row], allow_partial_override=True)
    assert len(retried) == 1 and retried[0].partial and not retried.dropped


def test_sun_unsafe_crossings_are_dropped_or_trimmed():
    scan = plan([target(query="bottom", el=48.0, source_direction="rising")])[0]
    mid = (scan.t0 + scan.t1) / 2.0
    # A constructed sun: far below the horizon, except for 20 minutes mid-scan beside the sweep.
    t = np.arange(T0 - 3600.0, T0 + 2 * DAY, 10.0)
    near = (t > mid - 600) & (t < mid + 600)
    sun = Samples.of("sun", ATACAMA, t, np.where(near, scan.az, 0.0), np.where(near, scan.el, -80.0))
    guard = SunGuard(sun, min_angle=41.0, lookahead=0.0)
    dropped = plan([target(query="bottom", el=48.0, source_direction="rising")], sun_guard=guard)
    assert len(dropped) == 0 and "sun" in dropped.dropped[0].reason
    pieces = plan([target(query="bottom", el=48.0, source_direction="rising", allow_partial=True)], sun_guard=guard)
    assert [p.partial for p in pieces] == [True]
    assert pieces[0].t0 == pytest.approx(scan.t0, abs=1.0) and pieces[0].t1 < mid - 600
    assert pieces[0].az == pytest.approx(scan.az, abs=0.01)


def test_the_real_sun_drops_the_moon_near_new_moon():
    sun = Samples("sun", ATACAMA, T0, T0 + DAY, 10)
    guard = SunGuard(sun, min_angle=41.0, lookahead=1980.0)
    moon = target("moon", "all", 45.0, allow_partial=True)
    assert len(plan([moon])) == 1  # the moon crosses the array three days before new moon ...
    unsafe = plan([moon], sun_guard=guard)  # ... in daylight, about 35 deg from the sun
    assert len(unsafe) == 0 and "sun" in unsafe.dropped[0].reason
    assert len(plan([target()], sun_guard=guard)) == 1  # Jupiter at night is untouched


def test_targets_in_order_take_the_earliest_crossing_free_of_earlier_scans():
    found = plan([target(), target(origin="cal_targets[1]"), target(origin="cal_targets[2]")])
    assert [s.direction for s in found] == ["rising", "setting"]
    assert found[0].t1 <= found[1].t0
    assert found.dropped[0].origin == "cal_targets[2]" and "overlaps" in found.dropped[0].reason


def test_wafers_from_focus_tables_boresight_and_ignore_list():
    cmb = [CmbBlock("patch", T0 - 7200.0, T0 - 3600.0, 100.0, 140.0, 50.0, boresight=45.0)]
    scan = plan([target(query="left", el=45.0, source="saturn", boresight=None)], cmb=cmb)[0]
    assert scan.boresight == 45.0 and scan.array_query == "ws3,ws4"
    assert plan([target(query="bottom", el=48.0)], ignore_wafers=["ws1"])[0].array_query == "ws2,ws6"
    assert plan([target(query="ws6,ws0", tag="u1")])[0].tag == "jupiter,rising,ws6,ws0,u1"  # as written
    none_left = plan([target(query="ws1")], ignore_wafers=["ws1"])
    assert len(none_left) == 0 and "ignored" in none_left.dropped[0].reason
    assert plan([target("saturn", "top", 40.0)], platform="satp3")[0].array_query == "ws3,ws4,ws5"


@pytest.mark.parametrize("platform, angles", [("satp1", (0, 45, -45)), ("satp2", (0, 45, -45)), ("satp3", (0,))])
def test_focus_tables_name_the_wafers_on_that_side(platform, angles):
    for angle in angles:
        table = focalplane.focus_table(platform, angle)
        az = {w: wafer_on_sky(w, angle, 50.0)[0] for w in focalplane.WAFERS}
        el = {w: wafer_on_sky(w, angle, 50.0)[1] for w in focalplane.WAFERS}
        sides = {
            "left": sorted(az, key=az.get),
            "right": sorted(az, key=az.get)[::-1],
            "bottom": sorted(el, key=el.get),
        }
        for focus, order in sides.items():
            named = set(table[focus].split(","))
            assert named == set(order[: len(named)]), (platform, angle, focus)


@pytest.mark.parametrize(
    "bad, field",
    [
        (target("pluto", origin="cal.txt:7"), "cal.txt:7"),
        (target("Pluto", origin="cal_targets[3]"), "cal_targets[3].source"),
        (target("sun", origin="cal_targets[1]"), "cal_targets[1].source"),
        (target(query="ws9"), "cal_targets[0].array_query"),
        (target(query="left", boresight=30.0), "cal_targets[0].array_query"),
    ],
)
def test_unknown_sources_and_wafers_name_the_field(bad, field):
    with pytest.raises(ScheduleInputError) as error:
        plan([bad])
    assert error.value.field == field


def test_an_unknown_platform_is_named():
    with pytest.raises(ScheduleInputError) as error:
        plan([target()], platform="satp9")
    assert error.value.field == "platform" and "satp9" in error.value.problem
